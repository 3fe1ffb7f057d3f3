"""Reading every batch's results into one checked, unambiguous set of study tables.

Each batch folder under ``results/`` is read once: its ``provenance.json`` gives the
results schema version; a file of the current version is checked against the
measurement schema, a file of an older version that has a conversion rule is converted
(:func:`immuno.contract.measurements.upgrade_measurements`), anything else is refused with the
file named. Then re-runs are applied: a sample-sheet row with ``supersedes: <batch>``
replaces that batch's rows of the same patient, visit, assay and panel. What remains
duplicated across batches is listed, never resolved silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from immuno.contract.measurements import (
    check_measurements,
    concat_measurements,
    upgrade_measurements,
)
from immuno.contract.qc import flags_table, metrics_table
from immuno.errors import Problem, UserError
from immuno.run.provenance import SCHEMA_VERSION

#: schema versions read as they are, and older ones converted on reading
READABLE_SCHEMAS = (SCHEMA_VERSION,)
CONVERTED_SCHEMAS = ("1.0",)
#: what makes two rows "the same measurement of the same patient"
SAME = ["patient_id", "visit", "assay", "panel", "feature"]


def batch_dirs(results: str | Path) -> list[Path]:
    """Complete batch result folders (those with provenance.json), sorted by name."""
    root = Path(results)
    return sorted(p.parent for p in root.glob("*/provenance.json") if p.parent.name != "study")


@dataclass
class StudyTables:
    """The checked tables of every batch, before any analysis."""

    measurements: pd.DataFrame
    qc_metrics: pd.DataFrame
    qc_flags: pd.DataFrame
    #: one row per batch: batch_id, started, schema_version, converted_from, assays
    batches: pd.DataFrame
    #: rows replaced by a re-run (with the batch that replaced them)
    superseded: pd.DataFrame
    #: same patient, visit, assay, panel and feature in more than one batch
    duplicates: pd.DataFrame
    #: folders without provenance.json (incomplete runs), not read
    incomplete: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError.single(str(path), f"cannot read provenance ({exc})") from None


def read_batch(batch_dir: Path) -> tuple[pd.DataFrame, dict, str]:
    """One batch's measurement table (checked or converted), its provenance, and the
    version it was converted from (``""`` when read as is)."""
    prov = _read_json(batch_dir / "provenance.json")
    version = str(prov.get("schema_version"))
    path = batch_dir / "measurements.parquet"
    if version not in READABLE_SCHEMAS + CONVERTED_SCHEMAS:
        raise UserError.single(str(batch_dir / "provenance.json"),
                               f"results schema version {version!r}; this immuno reads "
                               f"{', '.join(READABLE_SCHEMAS)} and converts {', '.join(CONVERTED_SCHEMAS)}",
                               hint="Re-run that batch with this version, or read it with the version that wrote it.")
    if not path.is_file():
        raise UserError.single(str(path), "missing: the batch has provenance.json but no measurement table",
                               hint="Re-run the batch (immuno run) to complete its results.")
    table = pd.read_parquet(path)
    if version in READABLE_SCHEMAS:
        return check_measurements(table, str(path)), prov, ""
    try:
        return upgrade_measurements(table, version), prov, version
    except ValueError as exc:
        raise UserError.single(str(path), f"cannot convert this schema {version} table: {exc}",
                               hint="Re-run that batch with this immuno.") from None


def _supersedes(batch_dir: Path) -> pd.DataFrame:
    """The re-run marks of a batch's validated sample sheet (sample_id, supersedes)."""
    sheet = batch_dir / "validation" / "samplesheet.csv"
    if not sheet.is_file():
        return pd.DataFrame(columns=["sample_id", "supersedes"])
    df = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    if "supersedes" not in df.columns:
        return pd.DataFrame(columns=["sample_id", "supersedes"])
    return df.loc[df["supersedes"] != "", ["sample_id", "supersedes"]]


def apply_reruns(m: pd.DataFrame, marks: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop the rows that a re-run replaces.

    Parameters
    ----------
    m
        Every batch's measurements.
    marks
        Per batch id, its sheet's (sample_id, supersedes) rows.

    Returns
    -------
    kept, superseded
        ``superseded`` holds the dropped rows with ``superseded_by`` (the re-run batch).

    Raises
    ------
    UserError
        When a mark names a batch that is not in the results, or a sample with nothing
        to replace there.
    """
    problems, drop = [], []
    present = set(m["batch_id"])
    for batch, rows in sorted(marks.items()):
        for r in rows.itertuples():
            where = f"batch {batch}: sample {r.sample_id}"
            if r.supersedes not in present:
                problems.append(Problem(where, f"supersedes batch {r.supersedes!r}, which is not in these results "
                                               f"(batches: {', '.join(sorted(present))})"))
                continue
            own = m[(m.batch_id == batch) & (m.sample_id == r.sample_id)]
            keys = own[["patient_id", "visit", "assay", "panel"]].drop_duplicates()
            old = m[m.batch_id == r.supersedes].reset_index().merge(keys, on=list(keys.columns))
            if own.empty or old.empty:
                problems.append(Problem(where, f"supersedes batch {r.supersedes!r}, but that batch has no "
                                               "measurement of the same patient, visit, assay and panel"))
                continue
            drop.append(old.set_index("index").assign(superseded_by=batch))
    if problems:
        raise UserError(problems, hint="Fix the 'supersedes' column of those sample sheets (the batch id of the "
                                       "run being replaced), or remove it.")
    if not drop:
        return m, m.iloc[:0].assign(superseded_by=pd.Series(dtype="string"))
    gone = pd.concat(drop)
    gone = gone[~gone.index.duplicated()]
    return m.drop(index=gone.index).reset_index(drop=True), gone.reset_index(drop=True)


def find_duplicates(m: pd.DataFrame) -> pd.DataFrame:
    """The same patient, visit, assay, panel and feature in more than one batch.

    Returns one row per such measurement with the batches and samples that hold it.
    """
    patients = m[~m["control"]]
    n = patients.groupby(SAME, sort=True)["batch_id"].transform("nunique")
    dup = patients[n > 1]
    cols = [*SAME, "batches", "samples"]
    if dup.empty:
        return pd.DataFrame(columns=cols)
    out = dup.groupby(SAME, sort=True).agg(batches=("batch_id", lambda s: ", ".join(sorted(set(s)))),
                                           samples=("sample_id", lambda s: ", ".join(sorted(set(s)))))
    return out.reset_index()[cols]


def read_study(results: str | Path) -> StudyTables:
    """Read and check every complete batch under a results folder.

    Raises
    ------
    UserError
        When the folder does not exist, holds no complete batch, or a batch cannot be
        read (every such batch is listed).
    """
    root = Path(results)
    if not root.is_dir():
        raise UserError.single(str(root), "results folder not found",
                               hint="Give the folder that holds one sub-folder per batch (immuno run writes it).")
    dirs = batch_dirs(root)
    incomplete = sorted(p.name for p in root.iterdir()
                        if p.is_dir() and p.name not in ("study", "logs") and not (p / "provenance.json").is_file())
    if not dirs:
        extra = f"; incomplete batch folders (no provenance.json): {', '.join(incomplete)}" if incomplete else ""
        raise UserError.single(str(root), f"no complete batch results (a batch folder holds provenance.json){extra}",
                               hint="Run a batch first: immuno run BATCH --results " + str(root))
    tables, batches, problems, marks = [], [], [], {}
    metrics, flags = [], []
    for d in dirs:
        try:
            table, prov, converted = read_batch(d)
        except UserError as exc:
            problems += exc.problems
            continue
        tables.append(table)
        batches.append({"batch_id": d.name, "started": str(prov.get("started", "")),
                        "schema_version": str(prov.get("schema_version")), "converted_from": converted,
                        "assays": ", ".join(sorted(set(table["assay"])))})
        marks[d.name] = _supersedes(d)
        for name, parts in (("metrics", metrics), ("flags", flags)):
            f = d / "qc" / f"{name}.parquet"
            if f.is_file():
                parts.append(pd.read_parquet(f))
    if problems:
        raise UserError(problems, hint="Nothing was read; fix or move those batches and try again.")
    m = concat_measurements(tables)
    m, superseded = apply_reruns(m, {b: v for b, v in marks.items() if len(v)})
    return StudyTables(
        measurements=m,
        qc_metrics=metrics_table(pd.concat(metrics, ignore_index=True) if metrics else []),
        qc_flags=flags_table(pd.concat(flags, ignore_index=True) if flags else []),
        batches=pd.DataFrame(batches).sort_values(["started", "batch_id"], kind="stable").reset_index(drop=True),
        superseded=superseded, duplicates=find_duplicates(m), incomplete=incomplete)
