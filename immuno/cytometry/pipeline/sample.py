"""The cytometry pipeline of one sample (and of its control tube).

Per tube: ingest (read, acquisition QC, compensate and transform in one pass:
:func:`~immuno.cytometry.pipeline.ingest.read_tube`) -> place the panel's gates ->
evaluate populations -> statistics, marker medians and headline features. An ICS
stimulated tube is processed together with its unstimulated control (the sheet row
whose ``control_of`` names it), as one unit of work: the control is processed first, its
results handed over (and its events released) as soon as they are complete, and only
the control events its percentile gates read are kept to set the stimulated tube's
cytokine gates; its frequencies are subtracted. A sample that cannot be processed fails
alone, with its reason in the QC flags; the others finish.

:mod:`immuno.cytometry.pipeline.batch` runs the units of a batch and writes their files;
the workflow runs them as jobs (``immuno cytometry process``).
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from immuno.contract.panels import Panel
from immuno.cytometry.analysis.acquisition_qc import qc_rows
from immuno.cytometry.analysis.gating import (
    ROOT,
    ControlGating,
    GatingResult,
    control_gating,
    gate_names,
    place_gates,
)
from immuno.cytometry.analysis.populations import Population
from immuno.cytometry.analysis.statistics import (
    marker_medians,
    population_masks,
    population_statistics,
)
from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.io.fcs import read_fcs_header
from immuno.cytometry.io.markers import marker_of
from immuno.cytometry.io.spillover import spillover_from_keywords
from immuno.cytometry.io.templates import panel_template
from immuno.cytometry.pipeline.events import TubeEvents
from immuno.cytometry.pipeline.ingest import keep_layers, read_tube, reading_flags
from immuno.cytometry.pipeline.panel_checks import gate_specs_of, panel_populations
from immuno.cytometry.pipeline.sample_rows import measurement_rows, sample_qc_rows
from immuno.cytometry.pipeline.tubes import ASSAY, SampleInfo, fcs_dataset
from immuno.errors import UserError

__all__ = ["SampleOutcome", "fail_outcome", "ingest_only", "process_sample", "process_unit"]


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
        Population statistics (:data:`immuno.cytometry.analysis.statistics.STAT_COLUMNS`) with
        one ``median:<marker>`` column per marker (compensated values).
    tube
        The per-event data (transformed events, QC flags, gate and population
        memberships; raw/compensated copies when the panel keeps them), or None once
        released (see :func:`process_unit`'s ``emit``).
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
    tube: TubeEvents | None = None
    gating: GatingResult | None = None
    transforms: dict[str, Any] = field(default_factory=dict)
    spill: Spillover | None = None

    @property
    def events(self) -> Any:
        """The per-event AnnData (built on request: X, obs with QC flags and memberships)."""
        return None if self.tube is None else self.tube.to_anndata()


@dataclass
class _Gated:
    tube: TubeEvents
    gating: GatingResult
    masks: dict[str, np.ndarray]


def _read(info: SampleInfo, batch_spill: Spillover | None, *, check_pns: bool = True,
          template: bool = False) -> TubeEvents:
    panel = info.panel
    uses_batch = (panel.get("compensation") or {}).get("source") == "single_stains"
    layers = set(keep_layers(panel)) | ({"raw"} if template else set())
    return read_tube(info.path, panel, spill=batch_spill if uses_batch else None, sample_id=info.sample_id,
                     check_pns=check_pns, layers=sorted(layers))


def _gate_tube(info: SampleInfo, populations: list[Population], batch_spill: Spillover | None,
               control: ControlGating | None, own_control: bool) -> _Gated:
    panel = info.panel
    template = bool(panel.get("template"))
    tube = _read(info, batch_spill, template=template)
    keep = tube.keep
    if template:
        gating = _template_gating(info, tube, keep)
        if "raw" not in keep_layers(panel):
            del tube.layers["raw"]  # read for the template only: the FCS file is the record
    else:
        gating = place_gates(tube.x, tube.channels, panel["gates"], panel["channels"], keep,
                             control=control, own_control=own_control, sample_id=info.sample_id)
    masks = population_masks(gating.memberships, populations)
    return _Gated(tube, gating, masks)


def _template_gating(info: SampleInfo, tube: TubeEvents, keep: np.ndarray) -> GatingResult:
    """The panel's template applied unchanged to the tube's raw events (its own compensation
    and transforms), on the events acquisition QC kept."""
    template = panel_template(info.panel)
    assert template is not None
    spill = None
    if any(d.compensation == "FCS" for d in template.dimensions.values()):
        spill = spillover_from_keywords(read_fcs_header(info.path, dataset=fcs_dataset(info.panel)))
    masks = template.evaluate(np.asarray(tube.layers["raw"]), tube.channels,
                              [str(m) or None for m in tube.var["pns"]], spill)
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


def process_unit(info: SampleInfo, batch_spill: Spillover | None = None, *,
                 emit: Callable[[SampleOutcome], Any] | None = None) -> list[SampleOutcome]:
    """Process a tube together with its control tube: ``[tube, control]`` (or ``[tube]``).

    The control is gated anyway to set the tube's cytokine gates, so its own results
    come at no extra cost; the workflow runs a patient's units one after the other in one job.

    Parameters
    ----------
    info
        The tube, its panel and (for a stimulated tube) its control.
    batch_spill
        The batch's single-stain spillover, for panels that use it.
    emit
        Called with each outcome as soon as it is complete (e.g. to write its files);
        the outcome's per-event data (events and gate memberships) is released
        afterwards, so that a pair of large tubes never holds both tubes' events at once.

    Returns
    -------
    list of SampleOutcome
        ``[tube, control]``; with ``emit``, without their per-event data.
    """
    def done(outcome: SampleOutcome) -> SampleOutcome:
        if emit is not None:
            emit(outcome)
            # the memberships are read from the events (packed): both go
            outcome.tube = None
            if outcome.gating is not None:
                outcome.gating = dataclasses.replace(outcome.gating, memberships={})
        return outcome

    # one unit is one core's work (the workflow runs units in parallel); threaded BLAS on
    # the small per-gate matrices only adds synchronisation
    with threadpool_limits(limits=1):
        try:
            populations = panel_populations(info.panel)
        except UserError as exc:
            return [done(fail_outcome(i, exc)) for i in (info, info.control) if i is not None]
        control: ControlGating | None = None
        control_counts: dict[str, int] | None = None
        control_out: list[SampleOutcome] = []
        if info.control is not None and not info.is_control:
            try:
                g = _gate_tube(info.control, populations, batch_spill, None, True)
                control_out = [_outcome(info.control, g, populations, None)]
                control_counts = _counts(g.masks)
                if not info.panel.get("template"):
                    control = control_gating(info.control.sample_id, g.tube.x, g.tube.channels,
                                             g.gating.memberships, info.panel["gates"], info.panel["channels"])
                del g  # the control's events are not needed any more
            except Exception as exc:  # a bad control fails itself and the tube it controls
                failed = fail_outcome(info.control, exc)
                why = UserError.single(f"sample {info.sample_id}", f"its control tube {info.control.sample_id} "
                                       f"failed: {failed.flags[0]['reason']}")
                return [done(fail_outcome(info, why)), done(failed)]
            done(control_out[0])
        try:
            outcome = _process(info, populations, batch_spill, control, control_counts)
        except Exception as exc:  # one bad sample must not stop the batch; the reason goes to QC
            outcome = fail_outcome(info, exc)
        return [done(outcome), *control_out]


def ingest_only(info: SampleInfo, batch_spill: Spillover | None = None) -> SampleOutcome:
    """A compensation control (single stain, unstained tube): ingested and QC-checked, not gated.

    Its per-event data and acquisition QC rows are kept like every other tube's, so
    every file of a batch has its ingested form; it adds no measurements.
    """
    try:
        tube = _read(info, batch_spill, check_pns=False)
        metrics, flags = qc_rows(tube.qc, info.batch_id, info.sample_id, info.panel.name)
        flags += reading_flags(tube, _base(info))
        return SampleOutcome(info=info, tube=tube, metrics=metrics, flags=flags, spill=tube.spill,
                             transforms=dict(tube.transforms))
    except Exception as exc:  # the reason goes to QC; the batch goes on
        return fail_outcome(info, exc)


def _process(info: SampleInfo, populations: list[Population], batch_spill: Spillover | None,
             control: ControlGating | None, control_counts: dict[str, int] | None) -> SampleOutcome:
    headline = info.panel.get("headline") or {}
    needs_control = any(h.get("subtract_control") for h in headline.values())
    if control_counts is None and needs_control and not info.is_control:
        raise UserError.single(f"sample {info.sample_id}", "no control tube: the panel "
                               f"{info.panel.name} subtracts an unstimulated tube, but no row of the sample "
                               f"sheet names {info.sample_id} in its control_of column")
    g = _gate_tube(info, populations, batch_spill, control, info.is_control)
    return _outcome(info, g, populations, control_counts)


def _outcome(info: SampleInfo, g: _Gated, populations: list[Population],
             control_counts: dict[str, int] | None) -> SampleOutcome:
    panel = info.panel
    headline = panel.get("headline") or {}
    tube = g.tube
    out = SampleOutcome(info=info, tube=tube, gating=g.gating, transforms=dict(tube.transforms), spill=tube.spill)
    # "% of CD4+" for every population: the broadest headline denominator (CD4 contains memory CD4)
    denominators = [h["of"] for h in headline.values() if "of" in h and h["of"] in g.masks]
    reference = max(denominators, key=lambda d: (int(g.masks[d].sum()), d), default=None)
    stats = population_statistics(g.masks, _parents(panel, populations), reference=reference)
    markers, cols = _marker_labels(panel, tube.channels)
    # medians of the compensated values, read on the transformed events (the same middle
    # event on either scale) and mapped back through each channel's transform
    inverse = {c: tube.transforms[tube.channels[c]] for c in cols}
    medians = marker_medians(g.masks, tube.x, markers, cols, inverse=inverse)
    out.statistics = stats.join(medians.add_prefix("median:"), on="population")
    counts = _counts(g.masks)
    # memberships are kept packed from here on (what the per-event file and figures read)
    tube.add_memberships(g.masks)
    out.gating = dataclasses.replace(g.gating, memberships=tube.membership_view())
    row = {**_base(info), "patient_id": info.patient_id, "visit": info.visit}
    out.measurements = measurement_rows(row, headline, counts, control_counts, info.is_control, out.statistics)
    metrics, flags = qc_rows(tube.qc, info.batch_id, info.sample_id, panel.name)
    acquisition = (metrics, flags + reading_flags(tube, _base(info)))
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
