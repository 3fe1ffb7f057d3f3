"""Quantification of one multiplex plate: integrity, curves, sample values, plate QC and
the agreement with the vendor software.

For every analyte the standards are fitted (:mod:`immuno.chemokines.fit.standards`); each
sample's usable replicate wells are averaged on net MFI and back-calculated, multiplied
by the dilution factor and censored against LLOQ / ULOQ (:mod:`immuno.chemokines.quantify.sample_values`).
Wells that cannot be trusted - unreadable, duplicated, outside the plate, designated
outliers, too few beads - are left out of fits and means and flagged with their reason.
Blank and negative-control bead regions are never fitted: their signal per well is kept
for background (subtracted from every analyte when a panel sets ``qc: background:
negative_bead``). The vendor's own curve and results are checked value by value
(:mod:`immuno.chemokines.qc.vendor`). A failing analyte is marked failed with its reason;
the rest of the plate is reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.fit.curves import back_calculate, precision_profile
from immuno.chemokines.fit.standards import StandardCurve, fit_standards
from immuno.chemokines.io.plate import PlateData, PlateIssue
from immuno.chemokines.qc.integrity import all_issues, mark_wells
from immuno.chemokines.qc.plate_checks import check_controls, well_flags
from immuno.chemokines.qc.vendor import (
    VENDOR_COLUMNS,
    vendor_curve_of,
    vendor_summary,
    vendor_values,
)
from immuno.chemokines.quantify.sample_values import quantify_samples

#: QC defaults (a panel's ``qc:`` section overrides them)
QC_DEFAULTS: dict[str, Any] = {
    "bead_count_warn": 50,
    "bead_count_min": 35,
    "replicate_cv_max": 20.0,
    "replicate_cv_max_lloq": 25.0,
    "vendor_reproduction_min": 0.99,
    "vendor_agreement_max": 0.02,
    "background": "blank_wells",
}


@dataclass
class PlateResult:
    """Everything quantified on one plate."""

    plate_id: str
    samples: pd.DataFrame
    curves: pd.DataFrame
    standards: pd.DataFrame
    metrics: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[str, StandardCurve] = field(default_factory=dict)
    #: one row per vendor value: the vendor curve's reproduction and our refit beside it
    vendor: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=VENDOR_COLUMNS))
    #: the export's problems and notes (duplicated wells, unreadable cells, sheets left aside)
    issues: list[PlateIssue] = field(default_factory=list)
    #: the wells table as used: problem column filled, ``used`` says which wells entered
    wells: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def quantified(self) -> bool:
        """Whether at least one analyte (not a negative-control bead) has an accepted curve."""
        return bool(len(self.curves)) and bool((self.curves["status"] == "ok").any())


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def analyte_map(analytes: list[str], panel: Any = None) -> dict[str, dict[str, str]]:
    """Map each export analyte label to its feature (gene symbol) and class via the panel.

    A label matches a panel analyte when it equals (ignoring case and punctuation) the
    feature or one of its ``labels``, or starts with one of them followed by a separator
    (``CXCL10/IP-10``, ``IL-10 (27)``).
    """
    entries = list(panel.get("analytes", [])) if panel is not None else []
    out: dict[str, dict[str, str]] = {}
    for label in analytes:
        hit = None
        for e in entries:
            names = [e["feature"], *e.get("labels", [])]
            if any(_key(n) == _key(label) for n in names):
                hit = e
                break
            parts = re.split(r"[/()\s]+", label)
            if any(_key(p) == _key(n) for p in parts if p for n in names):
                hit = e
        out[label] = (
            {"feature": hit["feature"], "class": hit.get("class", ""), "in_panel": "yes"}
            if hit
            else {"feature": label, "class": "", "in_panel": "no" if entries else "yes"}
        )
    return out


def _negative_beads(plate: PlateData, panel: Any) -> list[str]:
    listed = {_key(b) for b in (panel.get("negative_beads", []) if panel is not None else [])}
    return [
        a
        for a in plate.analytes
        if a in plate.negative_beads
        or _key(a) in listed
        or _key(re.sub(r"\s*\(\d+\)$", "", a)) in listed
    ]


def _background(
    wells: pd.DataFrame,
    negatives: list[str],
    q: dict[str, Any],
    pid: str,
    metrics: list[dict[str, Any]],
) -> pd.DataFrame:
    """Per-well signal of the negative-control beads; subtracted when the panel asks."""
    wells["negative_bead_net_mfi"] = np.nan
    if not negatives:
        return wells
    neg = wells[wells["analyte"].isin(negatives) & (wells["problem"] == "")]
    per_well = neg.groupby("well")["net_mfi"].mean()
    wells["negative_bead_net_mfi"] = wells["well"].map(per_well)
    for bead, b in neg.groupby("analyte", sort=False):
        s = b[b["role"] == "unknown"]["net_mfi"]
        metrics.append(
            {
                "check": "negative_bead_signal",
                "target": bead,
                "value": float(s.median()) if len(s) else math.nan,
                "passed": None,
                "detail": f"plate {pid}; median net MFI of the negative-control bead over "
                f"{len(s)} sample wells (not fitted)",
            }
        )
    if str(q.get("background")) == "negative_bead":
        sub = wells["negative_bead_net_mfi"].fillna(0.0)
        keep = ~wells["analyte"].isin(negatives)
        wells.loc[keep, "net_mfi"] = wells.loc[keep, "net_mfi"] - sub[keep]
    return wells


def quantify_plate(
    plate: PlateData,
    panel: Any = None,
    curve_rules: dict | None = None,
    qc_rules: dict | None = None,
) -> PlateResult:
    """Fit every analyte's standards and quantify every sample and control on a plate.

    Parameters
    ----------
    plate
        A multiplex plate from :func:`immuno.chemokines.read_plate`.
    panel
        The chemokine panel (maps labels to gene symbols and classes; its ``curve`` and
        ``qc`` sections override the defaults; ``negative_beads`` names bead regions that
        are negative controls). Without one, features are the labels.
    curve_rules, qc_rules
        Further overrides of the curve acceptance and QC rules.

    Returns
    -------
    PlateResult
        ``samples`` (one row per sample and analyte: value, flag, extrapolated, LLOQ/ULOQ
        in sample units, replicate CV, qc_pass, note), ``curves`` (one row per analyte,
        with the vendor summary), ``standards`` (one row per standard level), ``vendor``
        (one row per vendor value), QC metric and flag rows, the export's issues.
    """
    if plate.kind != "multiplex":
        raise ValueError(
            "quantify_plate needs a multiplex plate; use immuno.chemokines.quantify_run for qPCR runs"
        )
    crules = {**(panel.get("curve", {}) if panel is not None else {}), **(curve_rules or {})}
    q = {**QC_DEFAULTS, **(panel.get("qc", {}) if panel is not None else {}), **(qc_rules or {})}
    names = analyte_map(plate.analytes, panel)
    pid = plate.plate_id
    issues = all_issues(plate)
    wells = mark_wells(plate, issues)
    wells["dilution"] = wells["dilution"].fillna(1.0)
    metrics: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    negatives = _negative_beads(plate, panel)
    wells = _background(wells, negatives, q, pid, metrics)
    low_beads = wells["bead_count"] < q["bead_count_min"]
    wells["used"] = wells["net_mfi"].notna() & ~low_beads & (wells["problem"] == "")
    well_flags(wells, names, q, flags)
    vendor = plate.vendor_curves.set_index("analyte") if len(plate.vendor_curves) else None
    curve_rows, sample_rows, std_rows, vendor_rows, fitted = [], [], [], [], {}
    by_analyte = dict(tuple(wells.groupby("analyte", sort=False)))
    for analyte in plate.analytes:
        feat = names[analyte]["feature"]
        aw = by_analyte[analyte]
        unit = plate.units.get(
            analyte, panel.get("unit", "pg/mL") if panel is not None else "pg/mL"
        )
        base = {
            "plate_id": pid,
            "analyte": analyte,
            "feature": feat,
            "class": names[analyte]["class"],
            "unit": unit,
        }
        if analyte in negatives:
            curve_rows.append(
                {
                    **base,
                    "in_panel": False,
                    "status": "negative_control",
                    "reason": "blank / negative-control bead: used for background, not fitted",
                }
            )
            continue
        in_panel = names[analyte]["in_panel"] == "yes"
        if not in_panel:
            flags.append(
                {
                    "sample_id": "",
                    "target": feat,
                    "flag": "analyte_not_in_panel",
                    "severity": "info",
                    "reason": f"plate {pid}: bead region {analyte!r} matches no analyte of the panel; "
                    "quantified but not reported as a measurement",
                }
            )
        std = aw[(aw["role"] == "standard") & aw["used"]]
        blank_net = aw.loc[(aw["role"] == "blank") & aw["used"], "net_mfi"].to_numpy(dtype=float)
        curve = fit_standards(std, analyte, crules, blank_net)
        fitted[analyte] = curve
        p = curve.params if curve.status == "ok" else None
        row = _curve_row(base, in_panel, curve, q, pid, metrics, flags)
        if len(curve.points):
            std_rows.append(curve.points.assign(plate_id=pid, analyte=analyte, feature=feat))
        conc_well = back_calculate(p, aw["net_mfi"].to_numpy()) if p else np.full(len(aw), np.nan)
        aw = aw.assign(conc_well=conc_well)
        v = vendor.loc[analyte] if vendor is not None and analyte in vendor.index else None
        if v is not None or aw["vendor_result"].notna().any():
            vcurve = vendor_curve_of(v, std, analyte, crules, blank_net)
            values = vendor_values(
                aw, v, conc_well, curve.lloq if p else math.nan, curve.uloq if p else math.nan, feat
            )
            vendor_rows.append(values)
            if v is not None:
                row.update({f"vendor_{k}": float(v[k]) for k in "abcdg"})
                row["vendor_model"] = str(v["model"])
            row.update(vendor_summary(values, vcurve, q, feat, pid, metrics, flags))
        curve_rows.append(row)
        sw = aw[aw["role"].isin(["unknown", "control"])]
        if len(sw):
            sample_rows.append(quantify_samples(sw, p, curve, row, q, flags))
    samples = pd.concat(sample_rows, ignore_index=True) if sample_rows else pd.DataFrame()
    if len(samples):
        samples.insert(0, "plate_id", pid)
    check_controls(samples, plate.control_ranges, names, pid, metrics, flags)
    for m in metrics:
        m.setdefault("sample_id", "")
    standards = pd.concat(std_rows, ignore_index=True) if std_rows else pd.DataFrame()
    vendor_table = (
        pd.concat(vendor_rows, ignore_index=True)
        if vendor_rows
        else pd.DataFrame(columns=VENDOR_COLUMNS)
    )
    return PlateResult(
        pid,
        samples,
        pd.DataFrame(curve_rows),
        standards,
        metrics,
        flags,
        fitted,
        vendor_table,
        issues,
        wells,
    )


def _curve_row(
    base: dict[str, Any],
    in_panel: bool,
    curve: StandardCurve,
    q: dict[str, Any],
    pid: str,
    metrics: list[dict[str, Any]],
    flags: list[dict[str, Any]],
) -> dict[str, Any]:
    """The curves-table row of one analyte, with its QC metrics and flags."""
    feat = base["feature"]
    cp = curve.params
    row: dict[str, Any] = {
        **base,
        "in_panel": in_panel,
        "status": curve.status,
        "reason": curve.reason,
        "model": curve.fit.model if curve.fit else "",
        "r2": curve.fit.r2 if curve.fit else math.nan,
        "n_levels": int(len(curve.points)),
        "n_excluded": len(curve.excluded),
        "excluded": "; ".join(curve.excluded),
        "n_anchors": len(curve.anchors),
        "anchors": "; ".join(curve.anchors),
        "lloq": curve.lloq,
        "uloq": curve.uloq,
    }
    for k in "abcdg":
        row[k] = getattr(cp, k) if cp else math.nan
    row["ec50"] = cp.ec50 if cp else math.nan
    # LLOQ/ULOQ confirmed by the precision profile of a duplicate (predicted CV <= 20 %)
    row["lloq_profile"], row["uloq_profile"] = (
        precision_profile(
            cp,
            curve.fit.residual_sd,
            float(curve.points["expected_conc"].min()),
            float(curve.points["expected_conc"].max()),
            q["replicate_cv_max"],
            2,
        )
        if cp and curve.fit is not None and len(curve.points)
        else (math.nan, math.nan)
    )
    metrics.append(
        {
            "check": "curve_r2",
            "target": feat,
            "value": row["r2"],
            "lower_limit": 0.95,
            "passed": curve.status == "ok" and row["r2"] >= 0.95,
            "detail": f"plate {pid}; {row['model']}",
        }
    )
    metrics.append(
        {
            "check": "curve_ec50",
            "target": feat,
            "value": row["ec50"],
            "passed": None,
            "detail": f"plate {pid}",
        }
    )
    if "recovery" in curve.points:
        for pt in curve.points.itertuples():
            detail = (
                "anchor point outside the range (not judged)"
                if pt.anchor
                else "excluded from the fit"
                if pt.excluded
                else f"plate {pid}"
            )
            metrics.append(
                {
                    "check": "standard_recovery",
                    "target": f"{feat}@S{int(pt.standard_level)}",
                    "value": pt.recovery,
                    "lower_limit": pt.recovery_low,
                    "upper_limit": pt.recovery_high,
                    "passed": None if pt.anchor else bool(pt.passed) and not bool(pt.excluded),
                    "detail": detail,
                }
            )
    for text in curve.excluded:
        flags.append(
            {
                "sample_id": "",
                "target": feat,
                "flag": "standard_excluded",
                "severity": "info",
                "reason": f"plate {pid}: {text}",
            }
        )
    for text in curve.anchors:
        flags.append(
            {
                "sample_id": "",
                "target": feat,
                "flag": "standard_anchor",
                "severity": "info",
                "reason": f"plate {pid}: {text}",
            }
        )
    if curve.status != "ok":
        flags.append(
            {
                "sample_id": "",
                "target": feat,
                "flag": "curve_failed",
                "severity": "fail",
                "reason": f"plate {pid}: {curve.reason}",
            }
        )
    return row
