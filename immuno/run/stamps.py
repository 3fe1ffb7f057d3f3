"""Content stamps: the rerun triggers of the workflow, by hash rather than by time.

Snakemake decides that a job must run again when an input is newer than its outputs, or
when a parameter differs from the one recorded in its metadata. Both fail for an input
edited with its modification time kept: the time says nothing changed, and the recorded
parameters are only compared when Snakemake has a metadata record for the output. That
record is written by Snakemake after the step has finished; a run stopped between the two
(``kill -9``, a power cut) leaves a complete output without a record, and for a job behind
the validation checkpoint Snakemake's own "incomplete" check does not see it either (it
runs before the checkpoint's jobs join the plan). The job's hash parameter is then never
compared again, and an edited input would leave its results stale.

So every input file and panel of a batch gets a stamp under the results folder,
``.immuno/stamps/<batch>/inputs/<file>.sha256`` and ``.../panels/<name>.sha256``, holding
its SHA-256. ``immuno run`` rewrites a stamp only when the hash it has just computed
differs from the stamp's content, so a stamp's modification time is the time its file's
content last changed. The rules take the stamps of the files they read as inputs: an edit
makes the stamp newer than the job's outputs, and Snakemake's time rule reruns exactly
the jobs that read the file, with or without a metadata record. Stamps are written before
Snakemake starts and never during a run, so they cannot race a running job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from immuno.io import write_text

#: the stamps, under the results folder
STAMPS = Path(".immuno") / "stamps"


def stamp_path(stamps: str | os.PathLike[str], batch: str, kind: str, name: str) -> Path:
    """Where the stamp of one input file (``kind="inputs"``) or panel (``"panels"``) lies.

    Parameters
    ----------
    stamps
        The stamps folder (``<results>/.immuno/stamps``).
    batch
        The batch id.
    kind
        ``"inputs"`` for a file of the batch folder, ``"panels"`` for a panel.
    name
        The file's path relative to the batch folder, or the panel's name.
    """
    if kind not in ("inputs", "panels"):
        raise ValueError(f"unknown stamp kind {kind!r}")
    return Path(stamps) / batch / kind / f"{name}.sha256"


def _entries(manifest: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(batch, kind, name, sha256) of every file and panel in a run's input manifest."""
    for batch, entry in manifest["batches"].items():
        for name, record in entry["inputs"].items():
            yield batch, "inputs", name, record["sha256"]
        for name, record in entry["panels"].items():
            yield batch, "panels", name, record["sha256"]


def write_stamps(manifest: Mapping[str, Any], stamps: str | os.PathLike[str]) -> list[Path]:
    """Bring the stamps in line with a run's input hashes; touch only those that differ.

    Parameters
    ----------
    manifest
        The run's input manifest (``{"batches": {id: {"inputs": ..., "panels": ...}}}``,
        as :func:`immuno.run.workflow.input_manifest` builds it).
    stamps
        The stamps folder (``<results>/.immuno/stamps``).

    Returns
    -------
    list of Path
        The stamps written (new, or whose file changed since the last run).
    """
    written = []
    for batch, kind, name, digest in _entries(manifest):
        path = stamp_path(stamps, batch, kind, name)
        try:
            if path.read_text(encoding="utf-8").strip() == digest:
                continue  # unchanged: keep its time, so nothing reruns for it
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(digest + "\n", path)
        written.append(path)
    return written
