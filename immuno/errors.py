"""Errors a user can cause, and how they are reported.

Everything a lab scientist can get wrong (a misspelt visit, a missing file, a renamed
channel) is raised as :class:`UserError`. The CLI prints its problems and exits with
status 2, without a traceback. Library callers in notebooks get the same exception with
the full list of problems in ``.problems``.
"""

from __future__ import annotations

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
