"""The cytometry pipeline of one sample and of a batch.

Per sample: read -> compensate -> transform -> acquisition QC (the ingest step) -> place
the panel's gates -> evaluate populations -> statistics and headline features. An ICS
stimulated tube is processed together with its unstimulated control (the sheet row
whose ``control_of`` names it): the control sets the cytokine gates and its frequencies
are subtracted. A sample that cannot be processed fails alone, with its reason in the
QC flags; the others finish.

Per batch (:func:`process_batch`), every sample's files are written under
``<out>/samples/<sample_id>/`` (the workflow runs one job per tube, an ICS pair being one
unit: :func:`process_unit`), then :func:`immuno.cytometry.outputs.aggregate_batch`
gathers them into the final tables.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.cytometry.acquisition_qc import qc_rows
from immuno.cytometry.compensation import Spillover
from immuno.cytometry.gating import (
    RESERVED_PREFIX,
    ROOT,
    ControlGating,
    GatingResult,
    gate_names,
    panel_populations,
    panel_problems,
    place_gates,
)
from immuno.cytometry.ingest import acquisition_qc_of, ingest_sample, reading_flags
from immuno.cytometry.markers import marker_of
from immuno.cytometry.panel_checks import gate_specs_of
from immuno.cytometry.populations import Population
from immuno.cytometry.sample_rows import measurement_rows, sample_qc_rows
from immuno.cytometry.statistics import (
    marker_medians,
    population_masks,
    population_statistics,
)
from immuno.cytometry.transforms import transform_from_spec
from immuno.cytometry.tubes import (
    ASSAY,
    COMPENSATION_TUBES,
    CONTROL_TUBES,
    SampleInfo,
    batch_samples,
    batch_spillover,
    compensation_tubes,
    fcs_dataset,
    needs_single_stains,
    sample_table,
)
from immuno.errors import UserError
from immuno.panels import Panel

__all__ = [
    "ASSAY", "COMPENSATION_TUBES", "CONTROL_TUBES", "RESERVED_PREFIX", "SampleInfo", "SampleOutcome", "batch_samples",
    "batch_spillover", "compensation_tubes", "fail_outcome", "ingest_only", "needs_single_stains",
    "panel_populations", "panel_problems", "process_batch", "process_sample", "process_unit", "sample_table",
    "write_compensation_tubes",
]

@dataclass
class SampleOutcome:
    """Everything one sample produced (or why it failed).

    Attributes
    ----------
    info
        The sample.
    ok
        False when the sample failed; ``flags`` says why.
    measurements, metrics, flags
        Rows for the measurement table and the QC tables.
    statistics
        Population statistics (:data:`immuno.cytometry.statistics.STAT_COLUMNS`) with
        one ``median:<marker>`` column per marker.
    events
        The per-event AnnData (transformed X, raw/compensated layers, QC flags and gate
        memberships in obs).
    gating
        The gates as placed.
    transforms
        Channel -> transform used.
    spill
        The spillover matrix used.
    """

    info: SampleInfo
    ok: bool = True
    measurements: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    statistics: pd.DataFrame | None = None
    events: Any = None
    gating: GatingResult | None = None
    transforms: dict[str, Any] = field(default_factory=dict)
    spill: Spillover | None = None


def _transforms_of(adata: Any) -> dict[str, Any]:
    """Channel -> the transform ingest applied (as recorded in ``var``)."""
    out: dict[str, Any] = {}
    for channel, kind, params in zip(adata.var_names, adata.var["transform"], adata.var["transform_params"],
                                     strict=True):
        out[str(channel)] = None if kind == "none" else transform_from_spec({"type": kind, **json.loads(params)})
    return out


def _spill_of(adata: Any) -> Spillover | None:
    prov = adata.uns.get("provenance", {})
    channels = list(prov.get("spillover_channels", []))
    if not channels:
        return None
    return Spillover(channels, np.asarray(prov["spillover_matrix"], dtype=np.float64),
                     source=str(prov.get("spillover_source", "")))


@dataclass
class _Gated:
    events: Any
    transformed: np.ndarray
    channels: list[str]
    gating: GatingResult
    masks: dict[str, np.ndarray]


def _gate_tube(info: SampleInfo, populations: list[Population], batch_spill: Spillover | None,
               control: ControlGating | None, own_control: bool) -> _Gated:
    panel = info.panel
    uses_batch = (panel.get("compensation") or {}).get("source") == "single_stains"
    adata = ingest_sample(info.path, panel, spill=batch_spill if uses_batch else None, sample_id=info.sample_id)
    transformed = np.asarray(adata.X)
    channels = [str(c) for c in adata.var_names]
    keep = adata.obs["qc_pass"].to_numpy(dtype=bool)
    if panel.get("template"):
        gating = _template_gating(info, adata, keep)
    else:
        gating = place_gates(transformed, channels, panel["gates"], panel["channels"], keep,
                             control=control, own_control=own_control, sample_id=info.sample_id)
    masks = population_masks(gating.memberships, populations)
    return _Gated(adata, transformed, channels, gating, masks)


def _template_gating(info: SampleInfo, adata: Any, keep: np.ndarray) -> GatingResult:
    """The panel's template applied unchanged to the tube's raw events (its own compensation
    and transforms), on the events acquisition QC kept."""
    from immuno.cytometry.compensation import spillover_from_keywords
    from immuno.cytometry.fcs import read_fcs_header
    from immuno.cytometry.templates import panel_template

    template = panel_template(info.panel)
    assert template is not None
    spill = None
    if any(d.compensation == "FCS" for d in template.dimensions.values()):
        spill = spillover_from_keywords(read_fcs_header(info.path, dataset=fcs_dataset(info.panel)))
    masks = template.evaluate(np.asarray(adata.layers["raw"]), [str(c) for c in adata.var_names],
                              [str(m) or None for m in adata.var["pns"]], spill)
    return GatingResult(gates=list(template.gates), memberships={ROOT: keep, **{k: v & keep for k, v in masks.items()}},
                        template=template.source)


def _counts(masks: Mapping[str, np.ndarray]) -> dict[str, int]:
    return {k: int(v.sum()) for k, v in masks.items()}


def _parents(panel: Panel, populations: list[Population]) -> dict[str, str | None]:
    parents: dict[str, str | None] = {}
    for g in gate_specs_of(panel):
        ids = list(g.get("quadrants", {})) if g.get("type") == "quadrant" else [g["id"]]
        for i in ids:
            parents[str(i)] = g.get("parent")
    for p in populations:
        parents[p.name] = p.parent
    return parents


def _base(info: SampleInfo) -> dict[str, Any]:
    return {"batch_id": info.batch_id, "sample_id": info.sample_id, "assay": ASSAY, "panel": info.panel.name}


def fail_outcome(info: SampleInfo, exc: BaseException) -> SampleOutcome:
    """The outcome of a sample that could not be processed: one fail flag with the reason."""
    if isinstance(exc, UserError):
        reason = "; ".join(str(p) for p in exc.problems)
    else:
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
        reason = f"unexpected {type(exc).__name__}: {exc}{where}"
    out = SampleOutcome(info=info, ok=False)
    out.flags.append({**_base(info), "target": "sample", "flag": "sample_failed", "severity": "fail",
                      "reason": reason})
    out.metrics.append({**_base(info), "check": "processed", "target": "sample", "value": 0.0,
                        "lower_limit": 1.0, "passed": False, "detail": reason})
    return out


def process_sample(info: SampleInfo, batch_spill: Spillover | None = None) -> SampleOutcome:
    """Process one tube (and its control, for an ICS stimulated tube).

    Parameters
    ----------
    info
        The sample, its panel and (for a stimulated tube) its control.
    batch_spill
        The batch's single-stain spillover, for panels that use it.

    Returns
    -------
    SampleOutcome
        With ``ok`` False and a fail flag when the sample could not be processed; any
        problem with its file, panel or control is reported there, never raised.
    """
    return process_unit(info, batch_spill)[0]


def process_unit(info: SampleInfo, batch_spill: Spillover | None = None) -> list[SampleOutcome]:
    """Process a tube together with its control tube: ``[tube, control]`` (or ``[tube]``).

    The control is gated anyway to set the tube's cytokine gates, so its own results
    come at no extra cost; the workflow runs one job per such unit.
    """
    from threadpoolctl import threadpool_limits

    # one unit is one core's work (the workflow runs units in parallel); threaded BLAS on
    # the small per-gate matrices only adds synchronisation
    with threadpool_limits(limits=1):
        try:
            populations = panel_populations(info.panel)
        except UserError as exc:
            return [fail_outcome(i, exc) for i in (info, info.control) if i is not None]
        control: _Gated | None = None
        control_out: list[SampleOutcome] = []
        if info.control is not None and not info.is_control:
            try:
                control = _gate_tube(info.control, populations, batch_spill, None, True)
                control_out = [_outcome(info.control, control, populations, None)]
            except Exception as exc:  # a bad control fails itself and the tube it controls
                failed = fail_outcome(info.control, exc)
                why = UserError.single(f"sample {info.sample_id}", f"its control tube {info.control.sample_id} "
                                       f"failed: {failed.flags[0]['reason']}")
                return [fail_outcome(info, why), failed]
        try:
            return [_process(info, populations, batch_spill, control), *control_out]
        except Exception as exc:  # one bad sample must not stop the batch; the reason goes to QC
            return [fail_outcome(info, exc), *control_out]


def ingest_only(info: SampleInfo, batch_spill: Spillover | None = None) -> SampleOutcome:
    """A compensation control (single stain, unstained tube): ingested and QC-checked, not gated.

    Its per-event AnnData and acquisition QC rows are kept like every other tube's, so
    every file of a batch has its ingested form; it adds no measurements.
    """
    try:
        uses_batch = (info.panel.get("compensation") or {}).get("source") == "single_stains"
        adata = ingest_sample(info.path, info.panel, spill=batch_spill if uses_batch else None,
                              sample_id=info.sample_id, check_pns=False)
        metrics, flags = qc_rows(acquisition_qc_of(adata), info.batch_id, info.sample_id, info.panel.name)
        flags += reading_flags(adata, _base(info))
        return SampleOutcome(info=info, events=adata, metrics=metrics, flags=flags, spill=_spill_of(adata),
                             transforms=_transforms_of(adata))
    except Exception as exc:  # the reason goes to QC; the batch goes on
        return fail_outcome(info, exc)


def _process(info: SampleInfo, populations: list[Population], batch_spill: Spillover | None,
             control: _Gated | None) -> SampleOutcome:
    headline = info.panel.get("headline") or {}
    needs_control = any(h.get("subtract_control") for h in headline.values())
    if control is None and needs_control and not info.is_control:
        raise UserError.single(f"sample {info.sample_id}", "no control tube: the panel "
                               f"{info.panel.name} subtracts an unstimulated tube, but no row of the sample "
                               f"sheet names {info.sample_id} in its control_of column")
    gating = (ControlGating(info.control.sample_id, control.transformed, control.channels, control.gating.memberships)
              if control is not None and info.control is not None else None)
    g = _gate_tube(info, populations, batch_spill, gating, info.is_control)
    return _outcome(info, g, populations, _counts(control.masks) if control is not None else None)


def _outcome(info: SampleInfo, g: _Gated, populations: list[Population],
             control_counts: dict[str, int] | None) -> SampleOutcome:
    panel = info.panel
    headline = panel.get("headline") or {}
    out = SampleOutcome(info=info, events=g.events, gating=g.gating, transforms=_transforms_of(g.events),
                        spill=_spill_of(g.events))
    # "% of CD4+" for every population: the broadest headline denominator (CD4 contains memory CD4)
    denominators = [h["of"] for h in headline.values() if "of" in h and h["of"] in g.masks]
    reference = max(denominators, key=lambda d: (int(g.masks[d].sum()), d), default=None)
    stats = population_statistics(g.masks, _parents(panel, populations), reference=reference)
    markers, cols = _marker_labels(panel, g.channels)
    medians = marker_medians(g.masks, np.asarray(g.events.layers["compensated"]), markers, cols)
    out.statistics = stats.join(medians.add_prefix("median:"), on="population")
    counts = _counts(g.masks)
    _add_event_columns(g.events, g.masks)
    row = {**_base(info), "patient_id": info.patient_id, "visit": info.visit}
    out.measurements = measurement_rows(row, headline, counts, control_counts, info.is_control, out.statistics)
    metrics, flags = qc_rows(acquisition_qc_of(g.events), info.batch_id, info.sample_id, panel.name)
    acquisition = (metrics, flags + reading_flags(g.events, _base(info)))
    out.metrics, out.flags = sample_qc_rows(_base(info), acquisition, g.gating.placements,
                                            gate_names(gate_specs_of(panel)), headline, counts,
                                            out.measurements, info.tube == "reference_control")
    return out


def _marker_labels(panel: Panel, channels: list[str]) -> tuple[list[str], list[int]]:
    labels, cols = [], []
    for ch in panel["channels"]:
        if marker_of(ch) and ch["channel"] in channels:
            labels.append(str(marker_of(ch)))
            cols.append(channels.index(ch["channel"]))
    return labels, cols


def _add_event_columns(adata: Any, masks: Mapping[str, np.ndarray]) -> None:
    for name, mask in masks.items():
        if name == "root":
            continue
        col = name if name not in adata.obs.columns else f"gate:{name}"
        adata.obs[col] = np.asarray(mask, dtype=bool)


def write_compensation_tubes(batch: Any, out_dir: str | Path, spill: Spillover | None) -> list[SampleInfo]:
    """Ingest the batch's compensation tubes and write their per-sample files.

    Returns
    -------
    list of SampleInfo
        The tubes written (for :func:`immuno.cytometry.outputs.aggregate_batch`).
    """
    from immuno.cytometry.outputs import write_sample_outputs

    tubes = compensation_tubes(batch)
    for info in tubes:
        write_sample_outputs(ingest_only(info, spill), out_dir, plots=False, gatingml=False)
    return tubes


def process_batch(batch: Any, out_dir: str | Path, *, sample_ids: list[str] | None = None,
                  plots: bool = True, gatingml: bool = True, events: bool = True,
                  progress: bool = False) -> pd.DataFrame:
    """Process every gated cytometry tube of a batch and write the batch's cytometry files.

    Parameters
    ----------
    batch
        A loaded batch (:func:`immuno.batch.load_batch`).
    out_dir
        The batch's cytometry results folder (``results/<batch>/cytometry``).
    sample_ids
        Only these samples (default: all).
    plots, gatingml, events
        Also write gating figures, GatingML files and per-event AnnData.
    progress
        Show a progress bar (notebooks render it).

    Returns
    -------
    pandas.DataFrame
        The cytometry measurement table (also written as
        ``cytometry_measurements.parquet``).
    """
    from tqdm.auto import tqdm

    from immuno.cytometry.compensation import write_spillover_file
    from immuno.cytometry.outputs import aggregate_batch, write_sample_outputs

    out = Path(out_dir)
    infos = batch_samples(batch, sample_ids)
    units = batch_samples(batch, sample_ids, units=True)
    spill: Spillover | None = None
    spill_error: UserError | None = None
    if needs_single_stains(batch):
        try:
            spill = batch_spillover(batch)
            write_spillover_file(spill, out / "compensation.csv")
        except UserError as exc:
            spill_error = exc  # only the samples whose panel needs it fail
    for info in tqdm(units, desc="cytometry samples", disable=not progress):
        uses = (info.panel.get("compensation") or {}).get("source") == "single_stains"
        if uses and spill_error:
            outcomes = [fail_outcome(i, spill_error) for i in (info, info.control) if i is not None]
        else:
            outcomes = process_unit(info, spill)
        for outcome in outcomes:
            write_sample_outputs(outcome, out, plots=plots, gatingml=gatingml, events=events)
    if sample_ids is None:
        infos += write_compensation_tubes(batch, out, spill)
    return aggregate_batch(out, sample_table(infos))
