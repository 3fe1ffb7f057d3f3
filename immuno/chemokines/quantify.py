"""Quantification of one multiplex plate: curves, back-calculation, censoring and plate QC.

For every analyte the standards are fitted (:mod:`immuno.chemokines.curves`); each
sample's replicate wells with enough beads are averaged on net MFI and back-calculated,
multiplied by the dilution factor and censored against LLOQ / ULOQ: between an
asymptote and the quantifiable range the value is ``<LLOQ`` / ``>ULOQ`` and the
extrapolated number is kept in its own column; beyond an asymptote there is no number.
Bead counts (warn < 50, exclude < 35), negative net MFI, discordant replicates, kit
controls against their lot range and the vendor's own results are checked and reported
as QC metrics and flags. A failing analyte is marked failed with its reason; the rest of
the plate is reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.curves import CurveParams, back_calculate, precision_profile
from immuno.chemokines.plate import PlateData
from immuno.chemokines.standards import StandardCurve, fit_standards

#: QC defaults (a panel's ``qc:`` section overrides them)
QC_DEFAULTS: dict[str, float] = {
    "bead_count_warn": 50, "bead_count_min": 35, "replicate_cv_max": 20.0,
    "replicate_cv_max_lloq": 25.0, "vendor_reproduction_rtol": 1e-6,
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
        out[label] = ({"feature": hit["feature"], "class": hit.get("class", ""), "in_panel": "yes"} if hit
                      else {"feature": label, "class": "", "in_panel": "no" if entries else "yes"})
    return out


def _cv(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    if len(v) < 2 or np.mean(v) == 0:
        return math.nan
    return float(100.0 * np.std(v, ddof=1) / abs(np.mean(v)))


def quantify_plate(plate: PlateData, panel: Any = None, curve_rules: dict | None = None,
                   qc_rules: dict | None = None) -> PlateResult:
    """Fit every analyte's standards and quantify every sample and control on a plate.

    Parameters
    ----------
    plate
        A multiplex plate from :func:`immuno.chemokines.read_plate`.
    panel
        The chemokine panel (maps labels to gene symbols and classes; its ``curve`` and
        ``qc`` sections override the defaults). Without one, features are the labels.
    curve_rules, qc_rules
        Further overrides of the curve acceptance and QC rules.

    Returns
    -------
    PlateResult
        ``samples`` (one row per sample and analyte: value, flag, extrapolated, LLOQ/ULOQ
        in sample units, replicate CV, qc_pass), ``curves`` (one row per analyte),
        ``standards`` (one row per standard level), QC metric and flag rows.
    """
    if plate.kind != "multiplex":
        raise ValueError("quantify_plate needs a multiplex plate; use immuno.chemokines.qpcr for qPCR runs")
    crules = {**(panel.get("curve", {}) if panel is not None else {}), **(curve_rules or {})}
    q = {**QC_DEFAULTS, **(panel.get("qc", {}) if panel is not None else {}), **(qc_rules or {})}
    names = analyte_map(plate.analytes, panel)
    wells = plate.wells.copy()
    wells["dilution"] = wells["dilution"].fillna(1.0)
    low_beads = wells["bead_count"] < q["bead_count_min"]
    wells["used"] = wells["net_mfi"].notna() & ~low_beads
    pid = plate.plate_id
    metrics: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for r in wells[wells["bead_count"] < q["bead_count_warn"]].itertuples():
        excluded = r.bead_count < q["bead_count_min"]
        flags.append({"sample_id": r.sample_name, "target": f"{names[r.analyte]['feature']}@{r.well}",
                      "flag": "bead_count_excluded" if excluded else "bead_count_low",
                      "severity": "warning",
                      "reason": f"{int(r.bead_count)} beads in well {r.well} ({'excluded, < ' if excluded else 'warn, < '}"
                                f"{int(q['bead_count_min'] if excluded else q['bead_count_warn'])})"})
    for r in wells[(wells["net_mfi"] < 0) & (wells["role"].isin(["unknown", "control"]))].itertuples():
        flags.append({"sample_id": r.sample_name, "target": f"{names[r.analyte]['feature']}@{r.well}",
                      "flag": "negative_net_mfi", "severity": "info",
                      "reason": f"net MFI {r.net_mfi:g} below the blank mean in well {r.well}"})
    vendor = plate.vendor_curves.set_index("analyte") if len(plate.vendor_curves) else None
    curve_rows, sample_rows, std_rows, fitted = [], [], [], {}
    by_analyte = dict(tuple(wells.groupby("analyte", sort=False)))
    for analyte in plate.analytes:
        feat = names[analyte]["feature"]
        aw = by_analyte[analyte]
        std = aw[(aw["role"] == "standard") & aw["used"]]
        curve = fit_standards(std, analyte, crules)
        fitted[analyte] = curve
        p = curve.params if curve.status == "ok" else None
        in_panel = names[analyte]["in_panel"] == "yes"
        if not in_panel:
            flags.append({"sample_id": "", "target": feat, "flag": "analyte_not_in_panel", "severity": "info",
                          "reason": f"plate {pid}: bead region {analyte!r} matches no analyte of the panel; "
                                    "quantified but not reported as a measurement"})
        row: dict[str, Any] = {"plate_id": pid, "analyte": analyte, "feature": feat, "class": names[analyte]["class"],
                               "in_panel": in_panel,
                               "status": curve.status, "reason": curve.reason,
                               "model": curve.fit.model if curve.fit else "", "r2": curve.fit.r2 if curve.fit else math.nan,
                               "n_levels": int(len(curve.points)), "n_excluded": len(curve.excluded),
                               "excluded": "; ".join(curve.excluded), "lloq": curve.lloq, "uloq": curve.uloq,
                               "unit": plate.units.get(analyte, panel.get("unit", "pg/mL") if panel is not None else "pg/mL")}
        cp = curve.params
        for k in "abcdg":
            row[k] = getattr(cp, k) if cp else math.nan
        row["ec50"] = cp.ec50 if cp else math.nan
        # LLOQ/ULOQ confirmed by the precision profile of a duplicate (predicted CV <= 20 %)
        row["lloq_profile"], row["uloq_profile"] = (
            precision_profile(cp, curve.fit.residual_sd, float(curve.points["expected_conc"].min()),
                              float(curve.points["expected_conc"].max()), q["replicate_cv_max"], 2)
            if cp and curve.fit is not None and len(curve.points) else (math.nan, math.nan))
        if len(curve.points):
            pts = curve.points.assign(plate_id=pid, analyte=analyte, feature=feat)
            std_rows.append(pts)
        metrics.append({"sample_id": "", "check": "curve_r2", "target": feat, "value": row["r2"],
                        "lower_limit": 0.95, "passed": curve.status == "ok" and row["r2"] >= 0.95,
                        "detail": f"plate {pid}; {row['model']}"})
        metrics.append({"sample_id": "", "check": "curve_ec50", "target": feat, "value": row["ec50"],
                        "passed": None, "detail": f"plate {pid}"})
        if "recovery" in curve.points:
            for pt in curve.points.itertuples():
                metrics.append({"sample_id": "", "check": "standard_recovery",
                                "target": f"{feat}@S{int(pt.standard_level)}", "value": pt.recovery,
                                "lower_limit": pt.recovery_low, "upper_limit": pt.recovery_high,
                                "passed": bool(pt.passed) and not bool(pt.excluded),
                                "detail": "excluded from the fit" if pt.excluded else f"plate {pid}"})
        for text in curve.excluded:
            flags.append({"sample_id": "", "target": feat, "flag": "standard_excluded", "severity": "info",
                          "reason": f"plate {pid}: {text}"})
        if curve.status != "ok":
            flags.append({"sample_id": "", "target": feat, "flag": "curve_failed", "severity": "fail",
                          "reason": f"plate {pid}: {curve.reason}"})
        # per-well back-calculation (sample units = in-well x dilution)
        aw = aw.assign(conc_well=back_calculate(p, aw["net_mfi"].to_numpy()) if p else np.nan)
        if vendor is not None and analyte in vendor.index:
            row.update(_vendor_checks(aw, vendor.loc[analyte], p, feat, pid, q, metrics))
        curve_rows.append(row)
        sw = aw[aw["role"].isin(["unknown", "control"])]
        if len(sw):
            sample_rows.append(_quantify_samples(sw, p, curve, row, q, flags))
    samples = pd.concat(sample_rows, ignore_index=True) if sample_rows else pd.DataFrame()
    if len(samples):
        samples.insert(0, "plate_id", pid)
    _check_controls(samples, plate.control_ranges, names, pid, metrics, flags)
    for m in metrics:
        m.setdefault("sample_id", "")
    standards = pd.concat(std_rows, ignore_index=True) if std_rows else pd.DataFrame()
    return PlateResult(pid, samples, pd.DataFrame(curve_rows), standards, metrics, flags, fitted)


def _quantify_samples(sw: pd.DataFrame, p: CurveParams | None, curve: StandardCurve,
                      crow: dict[str, Any], q: dict[str, float], flags: list[dict[str, Any]]) -> pd.DataFrame:
    """Quantify every sample of one analyte at once (replicate wells averaged on net MFI).

    Vectorised with bincount over sample codes: a 30-analyte plate has ~1200
    sample-analyte pairs, and a per-pair DataFrame loop would dominate the run time.
    """
    codes, names = pd.factorize(sw["sample_name"], sort=False)
    n = len(names)
    used = sw["used"].to_numpy()
    net = sw["net_mfi"].to_numpy(dtype=float)
    conc = sw["conc_well"].to_numpy(dtype=float)
    dil = sw["dilution"].to_numpy(dtype=float)
    roles = sw["role"].to_numpy()
    n_wells = np.bincount(codes, minlength=n)
    n_used = np.bincount(codes, weights=used.astype(float), minlength=n)
    y = np.bincount(codes, weights=np.where(used, net, 0.0), minlength=n) / np.maximum(n_used, 1)
    y = np.where(n_used > 0, y, np.nan)
    # the dilution of a sample: its first used well (all replicates share it)
    first = np.full(n, -1)
    for i in np.flatnonzero(used)[::-1]:
        first[codes[i]] = i
    first_any = np.zeros(n, dtype=int)
    first_any[codes[::-1]] = np.arange(len(codes))[::-1]
    df = dil[np.where(first >= 0, first, first_any)]
    role = roles[first_any]
    vr = sw["vendor_result"].to_numpy(dtype=float)
    has_vr = np.isfinite(vr)
    vcount = np.bincount(codes, weights=has_vr.astype(float), minlength=n)
    vendor = np.where(vcount > 0, np.bincount(codes, weights=np.where(has_vr, vr, 0.0), minlength=n) / np.maximum(vcount, 1), np.nan)
    out = pd.DataFrame({"sample_name": names.astype(str), "role": role, "analyte": crow["analyte"],
                        "feature": crow["feature"], "class": crow["class"], "unit": crow["unit"],
                        "n_wells": n_wells, "n_used": n_used.astype(int), "dilution": df,
                        "mean_net_mfi": y, "conc_in_well": np.nan, "value": np.nan, "extrapolated": np.nan,
                        "lloq": curve.lloq * df, "uloq": curve.uloq * df, "replicate_cv": np.nan,
                        "flag": "", "qc_pass": False, "vendor_result": vendor, "in_panel": crow["in_panel"]})
    feat = crow["feature"]
    if p is None:
        out["flag"] = "curve_failed"
        return out
    x = back_calculate(p, y)
    flag = np.full(n, "", dtype=object)
    none = n_used == 0
    flag[none] = "no_wells"
    for i in np.flatnonzero(none):
        flags.append({"sample_id": names[i], "target": feat, "flag": "no_usable_wells", "severity": "fail",
                      "reason": "every replicate well was excluded (bead count or missing MFI)"})
    finite = np.isfinite(x)
    lo_asym = min(p.a, p.d)
    beyond = ~none & ~finite
    flag[beyond & (y <= lo_asym)] = "<LLOQ"
    flag[beyond & (y > lo_asym)] = ">ULOQ"
    below = ~none & finite & (x < curve.lloq)
    above = ~none & finite & (x > curve.uloq)
    inside = ~none & finite & ~below & ~above
    flag[below] = "<LLOQ"
    flag[above] = ">ULOQ"
    out["conc_in_well"] = x
    out["extrapolated"] = np.where(below | above, x * df, np.nan)
    out["value"] = np.where(inside, x * df, np.nan)
    for i in np.flatnonzero(above | (beyond & (y > lo_asym))):
        flags.append({"sample_id": names[i], "target": feat, "flag": "above_uloq", "severity": "info",
                      "reason": f"above the highest passing standard; re-run diluted (current 1:{df[i]:g})"})
    # replicate CV on back-calculated well concentrations (on net MFI where those are missing)
    ok_c = used & np.isfinite(conc)
    kc = np.bincount(codes, weights=ok_c.astype(float), minlength=n)
    use_conc = kc >= 2
    val = np.where(use_conc[codes], conc, net)
    ok = np.where(use_conc[codes], ok_c, used & np.isfinite(net))
    k = np.bincount(codes, weights=ok.astype(float), minlength=n)
    s1 = np.bincount(codes, weights=np.where(ok, val, 0.0), minlength=n)
    s2 = np.bincount(codes, weights=np.where(ok, val * val, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        var = np.maximum(s2 - k * mean * mean, 0.0) / (k - 1)
        cv = np.where((k >= 2) & (mean != 0), 100.0 * np.sqrt(var) / np.abs(mean), np.nan)
    out["replicate_cv"] = cv
    near = finite & (x < 2 * curve.lloq)
    limit = np.where(near, q["replicate_cv_max_lloq"], q["replicate_cv_max"])
    bad = np.isfinite(cv) & (cv > limit)
    out["qc_pass"] = ~none & ~bad
    out["flag"] = flag
    wells = sw["well"].to_numpy()
    for i in np.flatnonzero(bad):
        flags.append({"sample_id": names[i], "target": feat, "flag": "replicate_cv", "severity": "warning",
                      "reason": f"replicate CV {cv[i]:.1f} % > {limit[i]:g} %; discordant duplicate, check the wells "
                                f"{', '.join(wells[(codes == i) & used])}"})
    return out


def _vendor_checks(aw: pd.DataFrame, v: pd.Series, p: CurveParams | None, feat: str, pid: str,
                   q: dict[str, float], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Store the vendor's curve; check that its coefficients reproduce its results and how
    far our results are from the vendor's."""
    vp = CurveParams(a=float(v["a"]), b=float(v["b"]), c=float(v["c"]), d=float(v["d"]), g=float(v["g"]))
    out: dict[str, Any] = {f"vendor_{k}": getattr(vp, k) for k in "abcdg"}
    out["vendor_model"] = str(v["model"])
    ours_vendor = back_calculate(vp, aw["net_mfi"].to_numpy()) * aw["dilution"].to_numpy()
    reported = aw["vendor_result"].to_numpy()
    both = np.isfinite(ours_vendor) & np.isfinite(reported) & (reported != 0)
    rel = np.abs(ours_vendor[both] / reported[both] - 1.0)
    out["vendor_reproduction_max_rel_err"] = float(rel.max()) if both.any() else math.nan
    if both.any():
        metrics.append({"check": "vendor_reproduction", "target": feat, "value": out["vendor_reproduction_max_rel_err"],
                        "upper_limit": q["vendor_reproduction_rtol"],
                        "passed": bool(out["vendor_reproduction_max_rel_err"] <= q["vendor_reproduction_rtol"]),
                        "detail": f"plate {pid}; {int(both.sum())} wells: vendor coefficients vs vendor results"})
    ours = aw["conc_well"].to_numpy() * aw["dilution"].to_numpy()
    both = np.isfinite(ours) & np.isfinite(reported) & (reported > 0) & aw["role"].isin(["unknown", "control"]).to_numpy()
    out["vendor_agreement_median_rel_diff"] = float(np.median(np.abs(ours[both] / reported[both] - 1.0))) if both.any() else math.nan
    metrics.append({"check": "vendor_agreement", "target": feat, "value": out["vendor_agreement_median_rel_diff"],
                    "passed": None, "detail": f"plate {pid}; median |ours / vendor - 1| over {int(both.sum())} wells"})
    return out


def _check_controls(samples: pd.DataFrame, ranges: pd.DataFrame, names: dict[str, dict[str, str]],
                    pid: str, metrics: list[dict[str, Any]], flags: list[dict[str, Any]]) -> None:
    if samples.empty:
        return
    rng = ranges.set_index(["sample_name", "analyte"]) if len(ranges) else None
    for r in samples[samples["role"] == "control"].itertuples():
        low = high = math.nan
        if rng is not None and (r.sample_name, r.analyte) in rng.index:
            low, high = (float(v) for v in rng.loc[(r.sample_name, r.analyte), ["low", "high"]])
        value = r.value if math.isfinite(r.value) else r.extrapolated
        passed = None if math.isnan(low) else bool(math.isfinite(value) and low <= value <= high)
        if passed is False:
            flags.append({"sample_id": r.sample_name, "target": names[r.analyte]["feature"], "flag": "control_out_of_range",
                          "severity": "fail", "reason": f"plate {pid}: kit control {r.sample_name} at {value:.4g}, "
                                                        f"lot range {low:g}-{high:g}"})
        metrics.append({"sample_id": r.sample_name, "check": "control_range", "target": names[r.analyte]["feature"],
                        "value": value, "lower_limit": low, "upper_limit": high, "passed": passed,
                        "detail": f"plate {pid}; kit control {r.sample_name}"})
