"""``provenance.json``: what went into a batch's results, and with which software.

Records every input file and panel with its SHA-256 (as hashed when the run started: the
workflow checks each file against that hash when it reads it), every output file of the
batch with its SHA-256, the software versions, the parameters, the start and end times,
and the results schema version, so that a result can be traced, a results folder
verified (``immuno verify``) and an older results folder recognised rather than misread.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from immuno.contract.batch import Batch
from immuno.io import sha256_file, write_json

#: version of the results layout and table schemas; bump on any incompatible change
SCHEMA_VERSION = (
    "2.0"  # 2.0: measurement schema enforced (one "no flag", qc_pass rule, control column)
)
_PACKAGES = (
    "immuno",
    "numpy",
    "pandas",
    "scipy",
    "anndata",
    "scanpy",
    "flowkit",
    "flowutils",
    "snakemake",
    "pyarrow",
    "matplotlib",
    "seaborn",
)


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages results depend on."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


#: files of a batch results folder that are not outputs recorded in provenance: the record
#: itself, the report (written from it) and the logs
NOT_OUTPUTS = ("provenance.json", "report.html", "logs")


def input_files(batch: Batch) -> list[str]:
    """The batch's input files, relative to its folder: the sheet, data files and layouts."""
    return sorted(
        {*batch.sheet["file"], *[x for x in batch.sheet["layout"] if x], "samplesheet.csv"}
    )


def hash_files(root: Path, relative: list[str]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of files under ``root``."""
    return {
        rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
        for rel in relative
    }


def output_files(batch_dir: str | Path) -> list[str]:
    """Output files of a batch results folder (POSIX paths relative to it), sorted.

    Everything but :data:`NOT_OUTPUTS` and hidden files or folders (workflow bookkeeping).
    """
    root = Path(batch_dir)
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if (
            rel.parts[0] in NOT_OUTPUTS
            or any(part.startswith(".") for part in rel.parts)
            or not path.is_file()
        ):
            continue
        found.append(rel.as_posix())
    return sorted(found)


def build_provenance(
    batch: Batch,
    parameters: dict[str, Any] | None = None,
    started: str | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
    batch_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The provenance record of one batch run.

    Parameters
    ----------
    batch
        The validated batch.
    parameters
        Workflow parameters (the configuration) to record.
    started
        ISO start time of the run (default: now).
    inputs
        ``{relative path: {"sha256", "bytes"}}`` of the input files as hashed when the run
        started (default: hash them now).
    batch_dir
        The batch's results folder, whose output files are hashed into the record.

    Returns
    -------
    dict
        JSON-ready record.
    """
    files = inputs if inputs is not None else hash_files(batch.root, input_files(batch))
    outputs = hash_files(Path(batch_dir), output_files(batch_dir)) if batch_dir is not None else {}
    panels = {
        name: {"file": p.path.name, "sha256": p.sha256, "version": p.version, "assay": p.assay}
        for name, p in sorted(batch.panels.items())
    }
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch.batch_id,
        "inputs": dict(sorted(files.items())),
        "outputs": outputs,
        "panels": panels,
        "samples": {
            a: int((batch.sheet["assay"] == a).sum()) for a in sorted(set(batch.sheet["assay"]))
        },
        "software": software_versions(),
        "parameters": parameters or {},
        "started": started or now,
        "finished": now,
    }


def write_provenance(
    batch: Batch,
    path: str | Path,
    parameters: dict[str, Any] | None = None,
    started: str | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``provenance.json`` for a batch atomically, with the hashes of the output
    files beside it (see :func:`build_provenance`)."""
    path = Path(path)
    return write_json(
        build_provenance(batch, parameters, started, inputs, batch_dir=path.parent), path
    )


def read_schema_version(results_dir: str | Path) -> str | None:
    """The schema version of a batch results folder, or None when it has no provenance."""
    path = Path(results_dir) / "provenance.json"
    if not path.is_file():
        return None
    return str(json.loads(path.read_text()).get("schema_version"))
