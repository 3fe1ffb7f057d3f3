"""Errors a user can cause, and how they are reported.

Everything a lab scientist can get wrong (a misspelt visit, a missing file, a renamed
channel) is raised as :class:`UserError`. The CLI prints its problems and exits with
status 2, without a traceback. Library callers in notebooks get the same exception with
the full list of problems in ``.problems``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

#: exit status for problems the user can fix (bad sheet, bad panel, bad file)
EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as possible.

    Parameters
    ----------
    where
        The file (and, when known, ``row N``, ``line N``, column or key) at fault.
    what
        What is wrong and what was expected.
    """

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


@dataclass
class UserError(Exception):
    """One or more problems with user-supplied inputs.

    Parameters
    ----------
    problems
        Every problem found; validation collects them all before raising.
    hint
        What to do next, printed after the list.
    """

    problems: list[Problem] = field(default_factory=list)
    hint: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.report())

    @classmethod
    def single(cls, where: str, what: str, hint: str = "") -> UserError:
        """Build an error holding one problem."""
        return cls([Problem(str(where), what)], hint)

    def report(self) -> str:
        """The problems as the text the CLI prints."""
        lines = [f"- {p}" for p in self.problems]
        head = f"{len(self.problems)} problem(s) found:" if len(self.problems) != 1 else "1 problem found:"
        text = "\n".join([head, *lines])
        if self.hint:
            text += f"\n{self.hint}"
        return text


#: exit status when a run cannot be done or finished (results folder in use, disk full,
#: read-only or forbidden folder, an input changed during the run); inputs are fine
EXIT_RUN_ERROR = 1


class RunError(Exception):
    """A run that cannot go on, for a reason outside the inputs; one line, exit status 1.

    The message says what happened, to which file or folder, and what to do next.
    """


#: what to tell the user for the errors of the machine rather than of the inputs
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def describe_os_error(exc: OSError) -> str | None:
    """One line for a disk-full, read-only or permission error, or None for other errors.

    Parameters
    ----------
    exc
        The error raised by a read or a write.

    Returns
    -------
    str or None
        ``"<what> (<file>): <what to do>"``; None when the error is not one of these.
    """
    what = _OS_ERRORS.get(exc.errno or 0)
    if what is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    todo = ("free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else "give this user write access to the results folder (or choose another with --results)")
    return (f"{what}{where}: {todo}, then run the same command again; finished steps are kept and "
            "nothing partial was left")
