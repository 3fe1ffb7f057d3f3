"""The cytometry tubes of a batch, as its sample sheet describes them.

Each gated tube becomes a :class:`SampleInfo` with its panel and, for a stimulated ICS
tube, the control tube whose ``control_of`` names it (the two are one unit of work).
Single-stain controls and the unstained tube only serve compensation: their matrix is
computed once per batch (:func:`batch_spillover`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.contract.panels import Panel
from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.io.spillover import spillover_from_control_files
from immuno.errors import UserError

ASSAY = "cytometry"
#: tubes that only serve compensation and are not gated
COMPENSATION_TUBES = ("single_stain", "unstained")
#: tubes gated as their own control (cytokine gates from their own events)
CONTROL_TUBES = ("unstimulated", "fmo")


@dataclass
class SampleInfo:
    """What the sample sheet says about one cytometry tube."""

    sample_id: str
    path: Path
    panel: Panel
    patient_id: str = ""
    visit: str = ""
    tube: str = ""
    control_of: str = ""
    control: SampleInfo | None = None
    batch_id: str = ""

    @property
    def is_control(self) -> bool:
        """True for a tube that controls another (its own events set its cytokine gates)."""
        return bool(self.control_of) or self.tube in CONTROL_TUBES


def batch_samples(batch: Any, sample_ids: list[str] | None = None, units: bool = False) -> list[SampleInfo]:
    """The gated cytometry tubes of a batch (single stains and unstained tubes excluded),
    each with its panel and, for a stimulated tube, its control.

    Parameters
    ----------
    batch
        A loaded :class:`immuno.contract.batch.Batch`.
    sample_ids
        Only these samples (default: all gated tubes, in sheet order).
    units
        Leave out the control tubes that come with another listed tube (each item is then
        one unit of work for :func:`immuno.cytometry.pipeline.sample.process_unit`).

    Raises
    ------
    UserError
        If a requested sample is not a gated cytometry tube of the batch.
    """
    rows = batch.rows(ASSAY)
    by_id = {r["sample_id"]: r for _, r in rows.iterrows()}

    def info_of(r: Any) -> SampleInfo:
        return SampleInfo(sample_id=r["sample_id"], path=batch.path_of(r), panel=batch.panels[r["panel"]],
                          patient_id=r["patient_id"], visit=r["visit"], tube=r["tube"],
                          control_of=r["control_of"], batch_id=batch.batch_id)

    # a row naming another sample in control_of is that sample's control (an unstimulated
    # tube, or the reference control's unstimulated aliquot)
    controls = {r["control_of"]: r for _, r in rows.iterrows() if r["control_of"]}
    gated = [r for _, r in rows.iterrows() if r["tube"] not in COMPENSATION_TUBES]
    wanted = [r["sample_id"] for r in gated] if sample_ids is None else list(sample_ids)
    unknown = [s for s in wanted if s not in by_id or by_id[s]["tube"] in COMPENSATION_TUBES]
    if unknown:
        raise UserError.single(str(batch.sheet_path), f"not a gated cytometry sample of this batch: {', '.join(unknown)}")
    out = []
    for sid in wanted:
        info = info_of(by_id[sid])
        if sid in controls and not info.is_control:
            info.control = info_of(controls[sid])
        out.append(info)
    if units:
        attached = {i.control.sample_id for i in out if i.control is not None}
        out = [i for i in out if i.sample_id not in attached]
    return out


def compensation_tubes(batch: Any) -> list[SampleInfo]:
    """The batch's single-stain controls and unstained tubes (ingested, never gated)."""
    rows = batch.rows(ASSAY)
    return [SampleInfo(sample_id=r["sample_id"], path=batch.path_of(r), panel=batch.panels[r["panel"]],
                       patient_id=r["patient_id"], visit=r["visit"], tube=r["tube"], batch_id=batch.batch_id)
            for _, r in rows.iterrows() if r["tube"] in COMPENSATION_TUBES]


def needs_single_stains(batch: Any) -> bool:
    """True when a panel of the batch's gated tubes computes compensation from single stains."""
    return any((batch.panels[r["panel"]].get("compensation") or {}).get("source") == "single_stains"
               for _, r in batch.rows(ASSAY).iterrows() if r["tube"] not in COMPENSATION_TUBES)


def batch_spillover(batch: Any) -> Spillover:
    """The spillover matrix computed from the batch's single-stain controls and unstained tube.

    The candidate detectors are every marker channel of the batch's cytometry panels.

    Raises
    ------
    UserError
        When the batch has no single-stain controls, or they do not give one control per
        detector (see :func:`immuno.cytometry.io.spillover.spillover_from_control_files`).
    """
    rows = batch.rows(ASSAY)
    stains = [batch.path_of(r) for _, r in rows.iterrows() if r["tube"] == "single_stain"]
    unstained = [batch.path_of(r) for _, r in rows.iterrows() if r["tube"] == "unstained"]
    if not stains:
        raise UserError.single(str(batch.sheet_path), "a panel computes compensation from single stains, "
                               "but the sheet has no row with tube single_stain")
    channels: list[str] = []
    gate_settings: dict[str, Any] | None = None
    for name in dict.fromkeys(rows["panel"]):
        panel = batch.panels[name]
        for ch in panel.get("channels") or []:
            if ch.get("marker") and ch["channel"] not in channels:
                channels.append(str(ch["channel"]))
        gate_settings = gate_settings or (panel.get("compensation") or {}).get("scatter_gate")
    return spillover_from_control_files(stains, unstained[0] if unstained else None, channels, gate_settings)


def sample_table(infos: list[SampleInfo]) -> pd.DataFrame:
    """The samples as the table :func:`immuno.cytometry.pipeline.outputs.aggregate_batch` takes."""
    return pd.DataFrame([{"sample_id": i.sample_id, "patient_id": i.patient_id, "visit": i.visit,
                          "batch_id": i.batch_id, "panel": i.panel.name, "tube": i.tube} for i in infos],
                        columns=["sample_id", "patient_id", "visit", "batch_id", "panel", "tube"])


def fcs_dataset(panel: Panel, dataset: int | None = None) -> int | None:
    """The data set to read from a tube's file: ``dataset`` when given, else the panel's."""
    return dataset if dataset is not None else panel.get("dataset")
