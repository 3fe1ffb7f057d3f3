"""Merge one batch's assay outputs into the batch's result files (docs/architecture.md, 3).

Each assay room writes ``<assay dir>/<assay dir>_measurements.parquet``,
``qc_metrics.parquet`` and ``qc_flags.parquet`` under ``results/<batch_id>/``; this step
concatenates them into ``measurements.parquet``, ``qc/metrics.parquet`` and
``qc/flags.parquet``, then writes ``provenance.json`` last, as the mark of a complete
batch. Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.contract.batch import DEFAULT_VISITS, load_batch
from immuno.contract.measurements import concat_measurements
from immuno.contract.qc import flags_table, metrics_table
from immuno.io import write_parquet
from immuno.run.provenance import write_provenance
from immuno.run.steps import check_unchanged, parse_expectations

#: results sub-folder of each assay
ASSAY_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}


def assay_outputs(batch_dir: Path, assay: str) -> dict[str, Path]:
    """The three per-assay tables the merge reads, by kind."""
    d = batch_dir / ASSAY_DIRS[assay]
    return {
        "measurements": d / f"{ASSAY_DIRS[assay]}_measurements.parquet",
        "metrics": d / "qc_metrics.parquet",
        "flags": d / "qc_flags.parquet",
    }


def collect_batch(
    batch_folder: str | Path,
    batch_dir: str | Path,
    panels_dir: str | Path | None = None,
    visits: Sequence[str] = DEFAULT_VISITS,
    parameters: dict[str, Any] | None = None,
    started: str | None = None,
    expected: Mapping[Path, str] | None = None,
) -> pd.DataFrame:
    """Merge the assay tables of one batch and write its provenance.

    Parameters
    ----------
    batch_folder
        The batch folder (its sheet says which assays it holds).
    batch_dir
        ``results/<batch_id>``.
    panels_dir
        Panels folder.
    visits
        Allowed visits.
    parameters
        The workflow configuration, recorded in provenance.
    started
        ISO time the batch run started (recorded in provenance).
    expected
        ``{path: sha256}`` of the input files as hashed when the run started (the workflow
        checked each step's files against them); recorded in provenance instead of
        hashing the files again now. Default: hash them now.

    Returns
    -------
    pandas.DataFrame
        The merged measurement table.
    """
    batch = load_batch(batch_folder, visits=visits, panels_dir=panels_dir)
    out = Path(batch_dir)
    assays = sorted(set(batch.sheet["assay"]))
    measurements, metrics, flags = [], [], []
    for assay in assays:
        files = assay_outputs(out, assay)
        measurements.append(pd.read_parquet(files["measurements"]))
        metrics.append(pd.read_parquet(files["metrics"]))
        flags.append(pd.read_parquet(files["flags"]))
    table = concat_measurements(measurements)
    write_parquet(table, out / "measurements.parquet")
    write_parquet(
        metrics_table(pd.concat(metrics, ignore_index=True) if metrics else []),
        out / "qc" / "metrics.parquet",
    )
    write_parquet(
        flags_table(pd.concat(flags, ignore_index=True) if flags else []),
        out / "qc" / "flags.parquet",
    )
    write_provenance(
        batch,
        out / "provenance.json",
        parameters=parameters or {},
        started=started,
        inputs=_recorded_inputs(batch.root, expected) if expected else None,
    )
    return table


def _recorded_inputs(root: Path, expected: Mapping[Path, str]) -> dict[str, dict[str, Any]]:
    """The batch's input files among ``expected``, keyed by their path in the batch folder."""
    root = root.resolve()
    inputs = {}
    for path, digest in expected.items():
        resolved = Path(path).resolve()
        if resolved.is_relative_to(root):
            inputs[resolved.relative_to(root).as_posix()] = {
                "sha256": digest,
                "bytes": resolved.stat().st_size,
            }
    return inputs


def collect_step(
    batch_folder: str | Path,
    batch_dir: str | Path,
    panels_dir: str | Path | None = None,
    visits: Sequence[str] = DEFAULT_VISITS,
    parameters: str | None = None,
    expect: Sequence[str] = (),
) -> pd.DataFrame:
    """The workflow's collect step: :func:`collect_batch` with what the run recorded.

    Parameters
    ----------
    batch_folder, batch_dir, panels_dir, visits
        As for :func:`collect_batch`.
    parameters
        The workflow configuration as JSON text (as the rule passes it), or None.
    expect
        ``SHA256=PATH`` of each input file as hashed when the run started; the files are
        checked against them first, and the hashes recorded in provenance.

    Returns
    -------
    pandas.DataFrame
        The merged measurement table.
    """
    # the batch's run started when its validation step wrote the validated sheet
    sheet = Path(batch_dir) / "validation" / "samplesheet.csv"
    started = (
        datetime.fromtimestamp(sheet.stat().st_mtime, UTC).isoformat(timespec="seconds")
        if sheet.is_file()
        else None
    )
    expected = parse_expectations(expect)
    check_unchanged(expected, "before")
    return collect_batch(
        batch_folder,
        batch_dir,
        panels_dir=panels_dir,
        visits=visits,
        parameters=json.loads(parameters) if parameters else None,
        started=started,
        expected=expected,
    )
