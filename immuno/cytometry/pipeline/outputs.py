"""Cytometry result files: one sample's files, and the batch tables gathered from them.

Per sample (one workflow job each), under ``<out>/``::

    samples/<sample_id>/sample_measurements.parquet   measurement rows
    samples/<sample_id>/sample_qc_metrics.parquet     QC metric rows
    samples/<sample_id>/sample_qc_flags.parquet       QC flag rows
    samples/<sample_id>/sample_populations.parquet    population statistics and medians
    samples/<sample_id>/sample_gates.json             the gates as placed (with transforms)
    events/<sample_id>.h5ad                           per-event AnnData
    plots/<sample_id>.png                             gating figure

Per batch (:func:`aggregate_batch`)::

    cytometry_measurements.parquet, qc_metrics.parquet, qc_flags.parquet,
    population_statistics.parquet, populations.h5ad,
    gatingml/<sample_id>.xml                          the gates as placed, GatingML 2.0

Every file is written atomically; a failed sample writes only its three tables (its
fail flag among them), so the batch tables always account for every sample.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd

from immuno.contract.measurements import concat_measurements, measurement_table
from immuno.contract.qc import flags_table, metrics_table
from immuno.cytometry.analysis.acquisition_qc import keep_gates
from immuno.cytometry.analysis.populations import population_gates
from immuno.cytometry.engine import gates as gate_model
from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.engine.transforms import transform_from_spec
from immuno.cytometry.io.gatingml import valid_gate_id, write_gatingml
from immuno.cytometry.pipeline.panel_checks import panel_populations
from immuno.cytometry.pipeline.plots import plot_gating
from immuno.errors import UserError
from immuno.io import write_h5ad, write_json, write_parquet

if TYPE_CHECKING:
    from immuno.cytometry.pipeline.sample import SampleOutcome

MEASUREMENTS = "cytometry_measurements.parquet"
METRICS = "qc_metrics.parquet"
FLAGS = "qc_flags.parquet"
POPULATION_STATS = "population_statistics.parquet"
POPULATIONS_H5AD = "populations.h5ad"
SAMPLE_TABLES = ("sample_measurements.parquet", "sample_qc_metrics.parquet", "sample_qc_flags.parquet")


def sample_dir(out_dir: str | os.PathLike[str], sample_id: str) -> Path:
    """Folder of one sample's tables."""
    return Path(out_dir) / "samples" / sample_id


def write_sample_outputs(outcome: SampleOutcome, out_dir: str | os.PathLike[str], *,
                         plots: bool = True, gatingml: bool = True, events: bool = True) -> list[Path]:
    """Write one sample's files (see the module docstring).

    Parameters
    ----------
    outcome
        From :func:`immuno.cytometry.pipeline.sample.process_sample`.
    out_dir
        The batch's cytometry results folder.
    plots, gatingml, events
        Write the gating figure, the GatingML file and the per-event AnnData.

    Returns
    -------
    list of Path
        The files written.
    """
    info = outcome.info
    folder = sample_dir(out_dir, info.sample_id)
    written = [
        write_parquet(measurement_table(outcome.measurements), folder / SAMPLE_TABLES[0]),
        write_parquet(metrics_table(outcome.metrics), folder / SAMPLE_TABLES[1]),
        write_parquet(flags_table(outcome.flags), folder / SAMPLE_TABLES[2]),
    ]
    base = Path(out_dir)
    if not outcome.ok:
        # a sample that failed now must not keep the files of an earlier, successful run
        for stale in (folder / "sample_populations.parquet", folder / "sample_gates.json",
                      base / "events" / f"{info.sample_id}.h5ad", base / "plots" / f"{info.sample_id}.png",
                      base / "gatingml" / f"{info.sample_id}.xml"):
            stale.unlink(missing_ok=True)
        return written
    tube = outcome.tube
    if events and tube is not None:
        tube.uns["sample"] = {"sample_id": info.sample_id, "patient_id": info.patient_id, "visit": info.visit,
                              "batch_id": info.batch_id, "panel": info.panel.name, "tube": info.tube}
        if outcome.gating is not None:
            tube.uns["gates"] = placements_table(outcome.gating.placements)
        written.append(tube.write(base / "events" / f"{info.sample_id}.h5ad"))
    if outcome.gating is None:  # a compensation control: ingested, not gated
        return written
    stats = outcome.statistics.copy()
    stats.insert(0, "sample_id", info.sample_id)
    stats.insert(1, "panel", info.panel.name)
    written.append(write_parquet(stats, folder / "sample_populations.parquet"))
    if outcome.gating.template:
        return written  # template gates live on the template's dimensions: the template is their record
    if gatingml:
        # the GatingML file itself is written by the batch step: its writer needs FlowKit,
        # whose import costs more than processing a sample
        written.append(write_json(gates_document(outcome), folder / "sample_gates.json"))
    if plots and tube is not None:
        labels = {c: f"{m} ({c})" if isinstance(m, str) and m else c
                  for c, m in zip(tube.channels, tube.var["marker"], strict=True)}
        plot_gating(tube.x, tube.channels, outcome.gating.gates, outcome.gating.memberships,
                    base / "plots" / f"{info.sample_id}.png", labels=labels, title=info.sample_id)
        written.append(base / "plots" / f"{info.sample_id}.png")
    return written


def exported_gate(gate: gate_model.Gate) -> gate_model.Gate:
    """A placed gate with its thresholds written as exact float64 limits.

    The pipeline tests gates on float32 events; a range or quadrant limit is replaced by
    :func:`~immuno.cytometry.engine.gates.float32_limit` of itself, which splits the
    float64 values FlowKit and FlowJo compute exactly as the limit splits our float32
    values (it moves by less than one float32 step). Polygons and ellipses cut events
    along curves, which no limit can make exact; they are written as placed.
    """
    def limits(values: tuple[float | None, ...]) -> tuple[float | None, ...]:
        return tuple(None if v is None else gate_model.float32_limit(v) for v in values)

    if isinstance(gate, gate_model.RectangleGate):
        return dataclasses.replace(gate, mins=limits(gate.mins), maxs=limits(gate.maxs))
    if isinstance(gate, gate_model.QuadrantGate):
        return dataclasses.replace(gate, dividers={d: tuple(gate_model.float32_limit(v) for v in values)
                                                   for d, values in gate.dividers.items()})
    return gate


def gates_document(outcome: SampleOutcome) -> dict:
    """The gates as placed on a sample, with their transforms and spillover, as JSON data.

    Needs the outcome's per-event data (for the acquisition QC parameters): call it
    before the data is released.
    """
    assert outcome.gating is not None and outcome.tube is not None

    def encode(gates: list) -> list[dict]:
        return [{"kind": type(g).__name__, **_jsonable(dataclasses.asdict(g))} for g in gates]

    transforms = {c: t.spec() for c, t in outcome.transforms.items() if t is not None}
    spill = ({"channels": list(outcome.spill.channels), "matrix": outcome.spill.matrix.tolist(),
              "source": outcome.spill.source} if outcome.spill is not None else None)
    # the events acquisition QC removed, as gates on raw values: the exported hierarchy
    # starts below them, so the GatingML file alone reproduces every count
    qc_gates, qc_root = keep_gates(outcome.tube.qc.params)
    # the panel's populations as boolean gates, so that their counts can be checked too
    populations = _exportable(population_gates(panel_populations(outcome.info.panel)))
    placed = [exported_gate(g) for g in outcome.gating.gates]
    return {"sample_id": outcome.info.sample_id, "gates": encode([*placed, *populations]),
            "transforms": transforms,
            "spill": spill, "acquisition_gates": encode(qc_gates), "acquisition_root": qc_root}


def _exportable(gates: list) -> list:
    """The boolean gates whose ids (and operands) GatingML can hold; a population named
    e.g. ``CD4+`` stays out of the file rather than failing the export."""
    dropped: set[str] = set()
    kept = []
    for g in gates:
        if not valid_gate_id(g.gate_id) or any(ref in dropped for ref, _ in g.operands):
            dropped.add(g.gate_id)
        else:
            kept.append(g)
    return kept


def write_gatingml_file(document: dict, path: str | os.PathLike[str]) -> Path:
    """Write a :func:`gates_document` as GatingML 2.0."""
    def tuples(v: object) -> object:
        return tuple(tuples(x) for x in v) if isinstance(v, list) else v

    def decode(items: list[dict]) -> list:
        gates = []
        for g in items:
            fields = {k: v for k, v in g.items() if k != "kind"}
            if g["kind"] == "QuadrantGate":
                fields["dividers"] = {d: tuple(v) for d, v in fields["dividers"].items()}
            else:
                fields = {k: tuples(v) for k, v in fields.items()}
            if "dims" in fields:
                fields["dims"] = tuple(fields["dims"])
            gates.append(getattr(gate_model, g["kind"])(**fields))
        return gates

    transforms = {c: transform_from_spec(spec) for c, spec in document["transforms"].items()}
    sp = document.get("spill")
    spill = Spillover(sp["channels"], np.asarray(sp["matrix"]), source=sp.get("source", "")) if sp else None
    return write_gatingml(decode(document["gates"]), transforms, spill, path,
                          raw_gates=decode(document.get("acquisition_gates") or []),
                          root=document.get("acquisition_root"))


def placements_table(placements: list[dict]) -> pd.DataFrame:
    """Where each adaptive gate was put (value as JSON), for ``uns["gates"]`` and reviews."""
    rows = [{"gate": str(p["gate"]), "dim": str(p["dim"]), "method": str(p["method"]),
             "value": json.dumps(_jsonable(p["value"])), "fallback": bool(p["fallback"]),
             "detail": str(p["detail"])} for p in placements]
    return pd.DataFrame(rows, columns=["gate", "dim", "method", "value", "fallback", "detail"])


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


def _read(folder: Path, name: str, sample_id: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise UserError.single(str(path), f"missing: sample {sample_id} has not been processed",
                               hint="Run `immuno cytometry process` for it first.")
    return pd.read_parquet(path)


def aggregate_batch(out_dir: str | os.PathLike[str], samples: pd.DataFrame) -> pd.DataFrame:
    """Gather the per-sample tables of a batch into its final cytometry files.

    Parameters
    ----------
    out_dir
        The batch's cytometry results folder (holding ``samples/``).
    samples
        One row per processed sample with ``sample_id``, ``patient_id``, ``visit``,
        ``panel``, ``tube`` and ``batch_id`` (the sheet rows).

    Returns
    -------
    pandas.DataFrame
        The batch's cytometry measurement table (also written).
    """
    out = Path(out_dir)
    meas, metrics, flags, stats = [], [], [], []
    for sid in samples["sample_id"]:
        folder = sample_dir(out, sid)
        meas.append(_read(folder, SAMPLE_TABLES[0], sid))
        metrics.append(_read(folder, SAMPLE_TABLES[1], sid))
        flags.append(_read(folder, SAMPLE_TABLES[2], sid))
        if (folder / "sample_populations.parquet").is_file():
            stats.append(pd.read_parquet(folder / "sample_populations.parquet"))
    for sid in samples["sample_id"]:
        doc = sample_dir(out, sid) / "sample_gates.json"
        if doc.is_file():
            write_gatingml_file(json.loads(doc.read_text(encoding="utf-8")), out / "gatingml" / f"{sid}.xml")
    m = concat_measurements(meas)
    write_parquet(m, out / MEASUREMENTS)
    write_parquet(metrics_table(pd.concat(metrics, ignore_index=True) if metrics else []), out / METRICS)
    write_parquet(flags_table(pd.concat(flags, ignore_index=True) if flags else []), out / FLAGS)
    table = pd.concat(stats, ignore_index=True) if stats else pd.DataFrame()
    write_parquet(table, out / POPULATION_STATS)
    write_h5ad(populations_anndata(table, samples), out / POPULATIONS_H5AD)
    return m


def populations_anndata(stats: pd.DataFrame, samples: pd.DataFrame) -> ad.AnnData:
    """Population statistics as AnnData: obs = samples, var = ``<panel>/<population>``.

    X is the percentage of the parent; layers ``count``, ``parent_count`` and
    ``pct_of_reference``. Populations of another panel are NaN (counts -1).
    """
    meta_cols = [c for c in ("sample_id", "patient_id", "visit", "batch_id", "panel", "tube") if c in samples]
    obs = samples[meta_cols].astype(str).set_index("sample_id", drop=False)
    if stats.empty:
        return ad.AnnData(obs=obs.iloc[:0])
    stats = stats.assign(var=stats["panel"] + "/" + stats["population"])
    done = [s for s in obs.index if s in set(stats["sample_id"])]
    obs = obs.loc[done]
    var_names: Sequence[str] = list(dict.fromkeys(stats["var"]))
    var = stats.drop_duplicates("var").set_index("var")[["panel", "population", "parent"]].loc[var_names]

    def layer(col: str, fill: float) -> np.ndarray:
        wide = stats.pivot(index="sample_id", columns="var", values=col).reindex(index=done, columns=var_names)
        return wide.to_numpy(dtype=np.float64, na_value=fill)

    adata = ad.AnnData(X=layer("pct_of_parent", np.nan), obs=obs.rename_axis(None),
                       var=var.rename_axis(None))
    adata.layers["count"] = layer("count", -1).astype(np.int64)
    adata.layers["parent_count"] = layer("parent_count", -1).astype(np.int64)
    adata.layers["pct_of_reference"] = layer("pct_of_reference", np.nan)
    adata.uns["provenance"] = {"assay": "cytometry", "X": "% of parent population"}
    return adata
