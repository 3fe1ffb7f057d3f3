"""One run at a time per results folder.

``immuno run`` holds an exclusive lock on ``<results>/.immuno/lock`` for as long as the
run (and the Snakemake process it starts, which inherits the lock) is alive. The lock is
an ``flock``, so the operating system releases it when the holders die, even by
``kill -9``: a lock file left behind by a dead run is recognised as stale because nobody
holds its lock, and the next run recovers it. The file also says who holds it, so a
second run on the same results folder, from any working folder, is refused with a
message naming the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from immuno.errors import RunError

LOCK_FILE = Path(".immuno") / "lock"


@dataclass
class RunLock:
    """A held results-folder lock.

    Attributes
    ----------
    path
        The lock file.
    fd
        Its open descriptor (holding the flock; inheritable, so a child process keeps
        the lock alive while it runs).
    stale
        What the lock file said about an earlier run that died without releasing it
        (``pid``, ``host``, ``started``, ``cwd``, ``command``), or None.
    """

    path: Path
    fd: int
    stale: dict[str, Any] | None

    def release(self) -> None:
        """Clear the holder's record and release the lock."""
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _read_record(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else None


def describe(record: dict[str, Any]) -> str:
    """A run as one phrase: pid, host, start time, working folder and command."""
    if "unreadable" in record:
        return "a run whose lock record is unreadable"
    return (
        f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started')} "
        f"in {record.get('cwd')}: {record.get('command')}"
    )


def acquire(results: str | os.PathLike[str], command: str | None = None) -> RunLock:
    """Take the lock of a results folder (creating the folder).

    Parameters
    ----------
    results
        The results folder.
    command
        The command line to record (default: this process's).

    Returns
    -------
    RunLock

    Raises
    ------
    RunError
        When a live run holds the lock (the message names it).
    OSError
        When the folder cannot be created or written (read-only, permissions, disk full).
    """
    path = Path(results) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        record = _read_record(fd) or {}
        os.close(fd)
        raise RunError(
            f"the results folder {Path(results)} is in use by another run ({describe(record)}); "
            "wait for it to finish, or stop it, then run the same command again"
        ) from None
    stale = _read_record(fd)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cwd": os.getcwd(),
        "command": command or " ".join(["immuno", *sys.argv[1:]]),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(record, sort_keys=True).encode() + b"\n")
    os.fsync(fd)
    os.set_inheritable(fd, True)
    return RunLock(path=path, fd=fd, stale=stale)
