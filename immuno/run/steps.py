"""Workflow steps as the rules run them: inputs checked against the run's hashes.

``immuno run`` hashes every input file once, when the run starts; each rule passes the
hashes of the files its step reads (``--expect SHA256=PATH``) and runs the step through
:func:`run_step`, which checks those files before the step reads them and again after it
finished. A file changed in between (a plate re-exported during the run) fails the step
with the reason, so no result is ever recorded under a hash it did not come from; the
next run hashes the new file and redoes the step. The step itself is an ``immuno``
command run in this same process (one Python start per job); the command line hands
:func:`run_step` its own entry point, so this module never imports the command line.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from immuno.contract.batch import PATIENT_ID_PATTERN_ENV
from immuno.errors import RunError
from immuno.io import sha256_file


def parse_expectations(items: Sequence[str]) -> dict[Path, str]:
    """``["<sha256>=<path>", ...]`` as ``{path: sha256}``.

    Raises
    ------
    RunError
        For an item that is not a SHA-256 digest, ``=`` and a path.
    """
    expected: dict[Path, str] = {}
    for item in items:
        digest, sep, path = item.partition("=")
        if (
            not sep
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
            or not path
        ):
            raise RunError(f"--expect {item!r}: expected SHA256=PATH")
        expected[Path(path)] = digest
    return expected


def changed_files(expected: Mapping[Path, str]) -> list[str]:
    """One description per file that is gone or whose SHA-256 differs from ``expected``."""
    changes = []
    for path, digest in sorted(expected.items()):
        try:
            now = sha256_file(path)
        except FileNotFoundError:
            changes.append(f"{path} was removed since the run started")
            continue
        if now != digest:
            changes.append(
                f"{path} changed since the run started (SHA-256 {digest[:12]}... when the run "
                f"started, {now[:12]}... now)"
            )
    return changes


def check_unchanged(expected: Mapping[Path, str], when: str) -> None:
    """Raise :class:`RunError` naming every file that changed since the run started.

    Parameters
    ----------
    expected
        ``{path: sha256}`` as hashed when the run started.
    when
        ``"before"`` or ``"after"`` the step ran (said in the message).
    """
    changes = changed_files(expected)
    if changes:
        raise RunError(
            f"{'; '.join(changes)}: this step's results would not match the files recorded "
            f"in provenance ({when} the step ran), so they are not kept; run the same command "
            "again to process the files as they are now"
        )


def gather(sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str]) -> int:
    """Link every file of the ``sources`` folders into ``into`` under the same relative path
    (hidden files excepted).

    Per-job folders are assembled this way into a room's results folder (hard links, so
    nothing is copied; a copy where the file system has no hard links).

    Returns
    -------
    int
        Files linked.

    Raises
    ------
    RunError
        When two sources hold the same relative path (two jobs wrote the same file).
    """
    dest_root = Path(into)
    dest_root.mkdir(parents=True, exist_ok=True)
    seen: dict[Path, Path] = {}
    for source in map(Path, sources):
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            # hidden files are bookkeeping (Snakemake's timestamp of a directory output)
            if not path.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            if rel in seen:
                raise RunError(f"{rel} is written by two steps ({seen[rel]} and {source})")
            seen[rel] = source
            dest = dest_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.unlink(missing_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)
    return len(seen)


#: suffix of the marker written beside each output while its step runs
RUNNING = ".running"


def running_marker(output: str | os.PathLike[str]) -> Path:
    """The marker beside an output while the step writing it runs (``.<name>.running``)."""
    path = Path(output)
    return path.parent / f".{path.name}{RUNNING}"


def interrupted_outputs(results: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """``(marker, output)`` of every step that was killed while writing (its marker is left)."""
    found = []
    for marker in Path(results).rglob(f".*{RUNNING}"):
        if ".snakemake" not in marker.parts and marker.is_file():
            found.append((marker, marker.parent / marker.name[1 : -len(RUNNING)]))
    return sorted(found)


def run_step(
    command: Sequence[str],
    run_command: Callable[[list[str]], int],
    expect: Sequence[str] = (),
    gather_from: Sequence[str] = (),
    into: str | None = None,
    patient_id_pattern: str | None = None,
    folders: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> int:
    """Run one workflow step: check its input files, run the ``immuno`` command, check again.

    Parameters
    ----------
    command
        The ``immuno`` command line of the step (without ``immuno``).
    run_command
        Runs an ``immuno`` command line and returns its exit status: the command's own
        entry point (:func:`immuno.cli.main`), handed over by the command line.
    expect
        ``SHA256=PATH`` of each file the step reads, as hashed when the run started.
    gather_from, into
        Per-job folders to link into ``into`` before the command runs.
    patient_id_pattern
        The configured pattern of patient codes (for the steps' sheet checks).
    folders
        Folders the step must leave behind even when it writes nothing in them (the
        rule's declared directory outputs).
    outputs
        The rule's declared outputs. A marker beside each says the step is writing it, and
        is removed when the step ends; a step killed on the way leaves its markers, and
        the next run removes the outputs they name before Snakemake plans the jobs
        (Snakemake does not notice interrupted jobs that depend on a checkpoint).

    Returns
    -------
    int
        The command's exit status.
    """
    expected = parse_expectations(expect)
    if patient_id_pattern:
        os.environ[PATIENT_ID_PATTERN_ENV] = patient_id_pattern
    check_unchanged(expected, "before")
    markers = [running_marker(o) for o in outputs]
    for marker in markers:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    try:
        if gather_from:
            gather(gather_from, into or ".")
        status = run_command(list(command))
        if status == 0:
            check_unchanged(expected, "after")
            for folder in folders:
                Path(folder).mkdir(parents=True, exist_ok=True)
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
    return status
