"""Standards of a plate: curve acceptance, exclusions and the quantifiable range.

Acceptance follows FDA 2018 / ICH M10 for ligand-binding assays: >= 6 non-zero levels
(4PL below that), back-calculated standards within 80-120 % (75-125 % at the ends),
>= 75 % of levels passing; at most 2 failing levels are dropped, each drop recorded.
LLOQ / ULOQ are the lowest / highest passing standard whose replicate CV is <= 20 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from immuno.chemokines.curves import CurveFit, CurveParams, back_calculate, fit_curve

#: defaults of the acceptance rules (a panel's ``curve:`` section overrides them)
CURVE_DEFAULTS: dict[str, float | int | str] = {
    "model": "5PL", "weights": "1/y^2", "min_levels_5pl": 6, "min_levels": 5,
    "recovery_low": 80.0, "recovery_high": 120.0, "recovery_low_ends": 75.0,
    "recovery_high_ends": 125.0, "min_fraction_passing": 0.75, "max_excluded": 2,
    "max_standard_cv": 20.0,
}


@dataclass
class StandardCurve:
    """One analyte's accepted (or failed) standard curve on one plate."""

    analyte: str
    status: str  # "ok" or "failed"
    reason: str
    fit: CurveFit | None
    points: pd.DataFrame  # one row per standard level
    lloq: float = math.nan
    uloq: float = math.nan
    excluded: list[str] = field(default_factory=list)

    @property
    def params(self) -> CurveParams | None:
        return self.fit.params if self.fit else None


def _judge(lv: dict[str, np.ndarray], codes: np.ndarray, yw: np.ndarray, active: np.ndarray,
           p: CurveParams, rules: dict) -> None:
    """Back-calculated recovery, replicate CV and pass/fail of every level (in place)."""
    n = len(lv["expected_conc"])
    bc = back_calculate(p, lv["mean_net_mfi"])
    lv["back_calculated"] = bc
    lv["recovery"] = 100.0 * bc / lv["expected_conc"]
    xw = back_calculate(p, yw)
    ok = np.isfinite(xw)
    k = np.bincount(codes, weights=ok.astype(float), minlength=n)
    s1 = np.bincount(codes, weights=np.where(ok, xw, 0.0), minlength=n)
    s2 = np.bincount(codes, weights=np.where(ok, xw * xw, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        sd = np.sqrt(np.maximum(s2 - k * mean * mean, 0.0) / (k - 1))
        lv["replicate_cv"] = np.where(k >= 2, 100.0 * sd / np.abs(mean), 0.0)
    conc = lv["expected_conc"]
    ends = np.isin(conc, [conc[active].min(), conc[active].max()]) if active.any() else np.zeros(n, bool)
    lo = np.where(ends, rules["recovery_low_ends"], rules["recovery_low"])
    hi = np.where(ends, rules["recovery_high_ends"], rules["recovery_high"])
    rec = lv["recovery"]
    lv["recovery_low"], lv["recovery_high"] = lo, hi
    with np.errstate(invalid="ignore"):
        lv["passed"] = np.isfinite(rec) & (rec >= lo) & (rec <= hi)


def fit_standards(std: pd.DataFrame, analyte: str, rules: dict | None = None) -> StandardCurve:
    """Fit, judge and (if needed) trim the standard curve of one analyte.

    Parameters
    ----------
    std
        Standard wells of one analyte on one plate (columns standard_level,
        expected_conc, net_mfi; wells already excluded for bead count removed).
    analyte
        Its name, for messages.
    rules
        Overrides of :data:`CURVE_DEFAULTS`.

    Returns
    -------
    StandardCurve
        ``status="failed"`` with the reason when the standards are unusable or the fit
        does not converge; the plate's other analytes are unaffected.
    """
    r = {**CURVE_DEFAULTS, **(rules or {})}
    lvl_w = std["standard_level"].to_numpy(dtype=float)
    x_w = std["expected_conc"].to_numpy(dtype=float)
    y_w = std["net_mfi"].to_numpy(dtype=float)
    keep = np.isfinite(y_w) & np.isfinite(x_w) & (x_w > 0) & np.isfinite(lvl_w)
    lvl_w, x_w, y_w = lvl_w[keep], x_w[keep], y_w[keep]
    empty = pd.DataFrame(columns=["standard_level", "expected_conc", "mean_net_mfi", "n_wells", "excluded"])
    if len(y_w) == 0:
        return StandardCurve(analyte, "failed", "no standard wells with an expected concentration and a net MFI", None, empty)
    levels, codes = np.unique(lvl_w, return_inverse=True)
    n = len(levels)
    count = np.bincount(codes, minlength=n)
    first = np.zeros(n, dtype=int)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    lv: dict[str, np.ndarray] = {"standard_level": levels, "expected_conc": x_w[first],
                                 "mean_net_mfi": np.bincount(codes, weights=y_w, minlength=n) / count,
                                 "n_wells": count, "excluded": np.zeros(n, dtype=bool)}

    def table() -> pd.DataFrame:
        return pd.DataFrame(lv)

    conc = lv["expected_conc"]
    if np.any(np.diff(conc) >= 0):
        return StandardCurve(analyte, "failed", "expected concentrations do not decrease from standard 1 onwards "
                             f"({', '.join(f'{v:g}' for v in conc)}); check the export's number format", None, table())
    if n < int(r["min_levels"]):
        return StandardCurve(analyte, "failed", f"only {n} standard levels; at least {r['min_levels']} needed", None, table())
    rho = pd.Series(conc).corr(pd.Series(lv["mean_net_mfi"]), method="spearman")
    if not rho > 0.5:
        return StandardCurve(analyte, "failed", f"net MFI does not rise with concentration (Spearman {rho:.2f})", None, table())
    excluded: list[str] = []
    fit: CurveFit | None = None
    while True:
        active = ~lv["excluded"]
        wells = active[codes]
        n_active = int(active.sum())
        model = str(r["model"]) if n_active >= int(r["min_levels_5pl"]) else "4PL"
        if n_active < int(r["min_levels"]):
            return StandardCurve(analyte, "failed", f"only {n_active} usable standard levels; at least {r['min_levels']} needed",
                                 None, table(), excluded=excluded)
        prev = fit.params if excluded and fit is not None and fit.model == model else None
        fit = fit_curve(x_w[wells], y_w[wells], model, str(r["weights"]), start=prev)
        if not fit.converged or fit.params is None:
            return StandardCurve(analyte, "failed", f"the {model} fit did not converge: {fit.message}", fit, table(), excluded=excluded)
        _judge(lv, codes, y_w, active, fit.params, r)
        failing = np.flatnonzero(active & ~lv["passed"])
        if len(failing) == 0 or len(excluded) >= int(r["max_excluded"]):
            break
        dev = np.abs(lv["recovery"][failing] - 100.0)
        worst = int(failing[np.argmax(np.where(np.isfinite(dev), dev, np.inf))])
        lv["excluded"][worst] = True
        excluded.append(f"standard {int(levels[worst])} ({conc[worst]:g}): recovery {lv['recovery'][worst]:.1f} % "
                        f"outside {lv['recovery_low'][worst]:g}-{lv['recovery_high'][worst]:g} %")
    active = ~lv["excluded"]
    frac = float(lv["passed"][active].mean()) if active.any() else 0.0
    good = active & lv["passed"] & (np.nan_to_num(lv["replicate_cv"]) <= float(r["max_standard_cv"]))
    curve = StandardCurve(analyte, "ok", "", fit, table(), excluded=excluded)
    if not good.any():
        curve.status, curve.reason = "failed", "no standard level passes recovery and replicate CV"
        return curve
    curve.lloq = float(conc[good].min())
    curve.uloq = float(conc[good].max())
    if frac < float(r["min_fraction_passing"]):
        curve.status = "failed"
        curve.reason = (f"{100 * frac:.0f} % of standard levels pass recovery; at least "
                        f"{100 * float(r['min_fraction_passing']):.0f} % required")
    return curve


def fit_standard_curves(wells: pd.DataFrame, rules: dict | None = None,
                        bead_count_min: float = 35) -> tuple[pd.DataFrame, dict[str, StandardCurve]]:
    """Fit every analyte's standard curve on one plate's wells table.

    Parameters
    ----------
    wells
        The wells table of one plate (:data:`immuno.chemokines.plate.WELL_COLUMNS`).
    rules
        Overrides of :data:`CURVE_DEFAULTS`.
    bead_count_min
        Standard wells with fewer beads are left out of the fit.

    Returns
    -------
    (curves table, fitted curves by analyte)
        The table has one row per analyte: status, reason, model, coefficients a b c d g,
        EC50, R^2, LLOQ, ULOQ and the excluded standards.
    """
    rows, fitted = [], {}
    std = wells[(wells["role"] == "standard") & ~(wells["bead_count"] < bead_count_min)]
    for analyte in dict.fromkeys(wells["analyte"]):
        curve = fit_standards(std[std["analyte"] == analyte], analyte, rules)
        fitted[analyte] = curve
        p = curve.params
        rows.append({"analyte": analyte, "status": curve.status, "reason": curve.reason,
                     "model": curve.fit.model if curve.fit else "", "r2": curve.fit.r2 if curve.fit else math.nan,
                     **{k: getattr(p, k) if p else math.nan for k in "abcdg"},
                     "ec50": p.ec50 if p else math.nan, "lloq": curve.lloq, "uloq": curve.uloq,
                     "excluded": "; ".join(curve.excluded)})
    return pd.DataFrame(rows), fitted
