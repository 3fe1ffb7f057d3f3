"""``provenance.json``: what went into a batch's results, and with which software.

Records every input file and panel with its SHA-256, the software versions, the
parameters, the start and end times, and the results schema version, so that a result
can be traced and an older results folder recognised rather than misread.
"""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from immuno.batch import Batch
from immuno.io import sha256_file, write_json

#: version of the results layout and table schemas; bump on any incompatible change
SCHEMA_VERSION = "2.0"  # 2.0: measurement schema enforced (one "no flag", qc_pass rule, control column)
_PACKAGES = ("immuno", "numpy", "pandas", "scipy", "anndata", "scanpy", "flowkit", "flowutils",
             "snakemake", "pyarrow", "matplotlib", "seaborn")


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages results depend on."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_provenance(batch: Batch, parameters: dict[str, Any] | None = None,
                     started: str | None = None) -> dict[str, Any]:
    """The provenance record of one batch run.

    Parameters
    ----------
    batch
        The validated batch.
    parameters
        Workflow parameters (the configuration) to record.
    started
        ISO start time of the run (default: now).

    Returns
    -------
    dict
        JSON-ready record.
    """
    files = {}
    for rel in sorted({*batch.sheet["file"], *[x for x in batch.sheet["layout"] if x], "samplesheet.csv"}):
        path = batch.root / rel
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    panels = {name: {"file": p.path.name, "sha256": p.sha256, "version": p.version, "assay": p.assay}
              for name, p in sorted(batch.panels.items())}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch.batch_id,
        "inputs": files,
        "panels": panels,
        "samples": {a: int((batch.sheet["assay"] == a).sum()) for a in sorted(set(batch.sheet["assay"]))},
        "software": software_versions(),
        "parameters": parameters or {},
        "started": started or now,
        "finished": now,
    }


def write_provenance(batch: Batch, path: str | Path, parameters: dict[str, Any] | None = None,
                     started: str | None = None) -> Path:
    """Write ``provenance.json`` for a batch atomically."""
    return write_json(build_provenance(batch, parameters, started), path)


def read_schema_version(results_dir: str | Path) -> str | None:
    """The schema version of a batch results folder, or None when it has no provenance."""
    import json

    path = Path(results_dir) / "provenance.json"
    if not path.is_file():
        return None
    return str(json.loads(path.read_text()).get("schema_version"))
