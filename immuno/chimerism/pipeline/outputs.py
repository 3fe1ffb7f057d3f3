"""Write one batch's chimerism results (docs/architecture.md, 4) into ``results/<batch>/chimerism/``.

* ``chimerism_measurements.parquet``: donor_fraction (% with its 95 % interval, flag
  detected / not_detected / not_estimated) and donor_fraction_lod per biopsy;
* ``qc_metrics.parquet``, ``qc_flags.parquet``;
* ``genotypes.parquet``: every file's ingested peaks or counts, long;
* ``str_loci.parquet`` / ``ngs_markers.parquet``: the per-locus and per-marker tables;
* ``chimerism_summary.tsv``: the one-line reading of each biopsy;
* ``chimerism.h5ad``: obs = biopsies, var = loci/markers, X = per-marker donor fraction;
* ``plots/<sample>_loci.png`` (STR) and ``plots/<sample>_markers.png`` (NGS).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from immuno.chimerism.pipeline.inputs import FileCache
from immuno.chimerism.pipeline.plots import plot_loci, plot_markers
from immuno.chimerism.pipeline.process import (
    BiopsyResult,
    estimate_batch,
    marker_table,
    measurement_rows,
    qc_rows,
)
from immuno.contract.measurements import measurement_table
from immuno.contract.qc import flags_table, metrics_table
from immuno.errors import UserError
from immuno.io import write_h5ad, write_parquet, write_text

SCHEMA_VERSION = 1


def process_batch(batch: Any, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Estimate every biopsy of a batch and write the chimerism results.

    Parameters
    ----------
    batch
        A loaded batch (:func:`immuno.contract.batch.load_batch`).
    out_dir
        The batch's chimerism results folder.
    plots
        Also draw the per-biopsy PNGs.

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    out = Path(out_dir)
    results = estimate_batch(batch)
    written: dict[str, Path] = {}
    measurements = measurement_table(measurement_rows(batch.batch_id, results))
    written["measurements"] = write_parquet(measurements, out / "chimerism_measurements.parquet")
    metrics, flags = qc_rows(batch.batch_id, results)
    written["metrics"] = write_parquet(metrics_table(metrics), out / "qc_metrics.parquet")
    written["flags"] = write_parquet(flags_table(flags), out / "qc_flags.parquet")
    written["genotypes"] = write_parquet(genotypes_table(batch), out / "genotypes.parquet")
    for method, name in (("str", "str_loci"), ("ngs", "ngs_markers")):
        table = marker_table(results, method)
        if len(table):
            written[name] = write_parquet(_storable(table), out / f"{name}.parquet")
    summary = pd.DataFrame(
        {
            "sample_id": [br.row["sample_id"] for br in results],
            "panel": [br.panel for br in results],
            "result": [br.result.summary() for br in results],
        }
    )
    written["summary"] = write_text(
        summary.to_csv(sep="\t", index=False, lineterminator="\n"), out / "chimerism_summary.tsv"
    )
    written["anndata"] = write_h5ad(
        to_anndata(batch.batch_id, results, batch.panels), out / "chimerism.h5ad"
    )
    if plots:
        for br in results:
            sid, r = br.row["sample_id"], br.result
            if r.method == "str" and len(r.markers):
                written[f"plot_{sid}"] = plot_loci(
                    r, f"{sid}: {r.summary()}", out / "plots" / f"{sid}_loci.png"
                )
            elif r.method == "ngs" and len(r.markers) and {"vaf", "informative"} <= set(r.markers):
                written[f"plot_{sid}"] = plot_markers(
                    r, f"{sid}: {r.summary()}", out / "plots" / f"{sid}_markers.png"
                )
    return written


def _storable(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns (allele tuples) as text, so Parquet stores them plainly."""
    table = table.copy()
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].map(lambda v: "/".join(v) if isinstance(v, tuple) else v)
    return table


def genotypes_table(batch: Any) -> pd.DataFrame:
    """Every chimerism file's peaks or counts, one row per sample and marker/allele."""
    rows = batch.rows("chimerism")
    cache = FileCache.for_rows(batch.root, rows)
    parts = []
    for _, row in rows.iterrows():
        panel = batch.panels.get(row["panel"])
        method = str(panel.get("method", "")) if panel is not None else ""
        if not method:
            continue
        try:
            table = cache.sample(row, method)
        except UserError:
            continue  # the biopsy's flags carry the reason
        # names as typed in the instrument software may be free text: only sheet codes leave
        parts.append(
            table.drop(columns=["sample_name", "sample_file"], errors="ignore").assign(
                batch_id=batch.batch_id, sample_id=row["sample_id"], role=row["role"], method=method
            )
        )
    if not parts:
        return pd.DataFrame(columns=["batch_id", "sample_id", "role", "method", "marker"])
    table = pd.concat(parts, ignore_index=True)
    front = ["batch_id", "sample_id", "role", "method"]
    return _storable(table[front + [c for c in table.columns if c not in front]])


def to_anndata(batch_id: str, results: list[BiopsyResult], panels: dict[str, Any]) -> ad.AnnData:
    """The batch's biopsies as AnnData: obs = biopsies, var = loci/markers of every panel.

    ``X`` holds each marker's own donor-fraction estimate (%; NaN where not informative),
    layers ``depth`` (NGS reads; NaN for STR) and ``used`` (1 where the marker entered
    the estimate); ``obs`` holds the biopsy's estimate, interval, LoD and flag.
    """
    var_index: list[str] = []
    var_method: list[str] = []
    for br in results:
        m = br.result.markers
        if "marker" in m:
            for name in m["marker"]:
                if name not in var_index:
                    var_index.append(str(name))
                    var_method.append(br.result.method)
    col = {name: i for i, name in enumerate(var_index)}
    x = np.full((len(results), len(var_index)), np.nan)
    depth = np.full_like(x, np.nan)
    used = np.zeros_like(x)
    for i, br in enumerate(results):
        m = br.result.markers
        if "marker" not in m:
            continue
        idx = [col[str(n)] for n in m["marker"]]
        value = m["marker_fraction"] if "marker_fraction" in m else m.get("donor_fraction")
        if value is not None:
            x[i, idx] = 100 * value.to_numpy(float)
        if "depth" in m:
            depth[i, idx] = m["depth"].to_numpy(float)
        if "used" in m:
            used[i, idx] = m["used"].to_numpy(bool).astype(float)
    r = [br.result for br in results]
    obs = pd.DataFrame(
        {
            "batch_id": batch_id,
            "patient_id": [br.row["patient_id"] for br in results],
            "visit": [br.row["visit"] for br in results],
            "panel": [br.panel for br in results],
            "donor_id": [br.row["donor_id"] for br in results],
            "method": [x.method for x in r],
            "donor_fraction": [100 * x.fraction for x in r],
            "lower": [100 * x.lower for x in r],
            "upper": [100 * x.upper for x in r],
            "lod": [100 * x.lod for x in r],
            "flag": [x.flag for x in r],
            "qc_pass": [not x.failed for x in r],
            "n_informative": [x.n_informative for x in r],
            "interval_method": [x.interval_method for x in r],
        },
        index=pd.Index([str(br.row["sample_id"]) for br in results], name="sample_id"),
    )
    var = pd.DataFrame({"method": var_method}, index=pd.Index(var_index, name="marker"))
    adata = ad.AnnData(X=x, obs=obs, var=var, layers={"depth": depth, "used": used})
    used_panels = sorted({br.panel for br in results})
    adata.uns["provenance"] = {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch_id,
        "unit": "%",
        "panels": {
            p: {"sha256": panels[p].sha256, "version": panels[p].version}
            for p in used_panels
            if p in panels
        },
    }
    adata.uns["details"] = {
        str(br.row["sample_id"]): {
            k: float(v)
            for k, v in br.result.details.items()
            if isinstance(v, int | float) and not math.isnan(float(v))
        }
        for br in results
    }
    return adata
