"""Standards of a plate: curve acceptance, exclusions and the quantifiable range.

Acceptance follows FDA 2018 / ICH M10 for ligand-binding assays: >= 6 levels (4PL below
that), back-calculated standards within 80-120 % (75-125 % at the ends), >= 75 % of levels
passing; at most 2 failing levels are dropped, each drop recorded. LLOQ / ULOQ are the
lowest / highest passing standard whose replicate CV is <= 20 %. The levels themselves and
their anchor points outside the dynamic range are told in
:mod:`immuno.chemokines.fit.levels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from immuno.chemokines.fit.curves import CurveFit, CurveParams, back_calculate, fit_curve, predict
from immuno.chemokines.fit.levels import Levels, mark_anchors, standard_levels

#: defaults of the acceptance rules (a panel's ``curve:`` section overrides them)
CURVE_DEFAULTS: dict[str, float | int | str] = {
    "model": "5PL",
    "weights": "1/y^2",
    "min_levels_5pl": 6,
    "min_levels": 5,
    "recovery_low": 80.0,
    "recovery_high": 120.0,
    "recovery_low_ends": 75.0,
    "recovery_high_ends": 125.0,
    "min_fraction_passing": 0.75,
    "max_excluded": 2,
    "max_standard_cv": 20.0,
    "anchors": "auto",
    "background_sd": 3.0,
    "plateau_rise": 1.05,
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
    anchors: list[str] = field(default_factory=list)

    @property
    def params(self) -> CurveParams | None:
        return self.fit.params if self.fit else None


def _judge(lv: Levels, active: np.ndarray, p: CurveParams, rules: dict) -> None:
    """Back-calculated recovery, replicate CV and pass/fail of every level (in place)."""
    t, codes = lv.table, lv.codes
    n = len(t["expected_conc"])
    bc = back_calculate(p, t["mean_net_mfi"])
    t["back_calculated"] = bc
    t["recovery"] = 100.0 * bc / t["expected_conc"]
    xw = back_calculate(p, lv.y_w)
    ok = np.isfinite(xw)
    k = np.bincount(codes, weights=ok.astype(float), minlength=n)
    s1 = np.bincount(codes, weights=np.where(ok, xw, 0.0), minlength=n)
    s2 = np.bincount(codes, weights=np.where(ok, xw * xw, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        sd = np.sqrt(np.maximum(s2 - k * mean * mean, 0.0) / (k - 1))
        t["replicate_cv"] = np.where(k >= 2, 100.0 * sd / np.abs(mean), 0.0)
    conc = t["expected_conc"]
    ends = (
        np.isin(conc, [conc[active].min(), conc[active].max()])
        if active.any()
        else np.zeros(n, bool)
    )
    lo = np.where(ends, rules["recovery_low_ends"], rules["recovery_low"])
    hi = np.where(ends, rules["recovery_high_ends"], rules["recovery_high"])
    rec = t["recovery"]
    t["recovery_low"], t["recovery_high"] = lo, hi
    with np.errstate(invalid="ignore"):
        t["passed"] = np.isfinite(rec) & (rec >= lo) & (rec <= hi)


def _finish(curve: StandardCurve, lv: Levels, rules: dict) -> StandardCurve:
    """LLOQ/ULOQ and the overall verdict once the levels are judged."""
    t = lv.table
    active = ~t["excluded"] & ~t["anchor"]
    frac = float(t["passed"][active].mean()) if active.any() else 0.0
    good = (
        active & t["passed"] & (np.nan_to_num(t["replicate_cv"]) <= float(rules["max_standard_cv"]))
    )
    curve.points = lv.frame()
    if not good.any():
        curve.status, curve.reason = "failed", "no standard level passes recovery and replicate CV"
        return curve
    curve.lloq = float(t["expected_conc"][good].min())
    curve.uloq = float(t["expected_conc"][good].max())
    if frac < float(rules["min_fraction_passing"]):
        curve.status = "failed"
        curve.reason = (
            f"{100 * frac:.0f} % of standard levels pass recovery; at least "
            f"{100 * float(rules['min_fraction_passing']):.0f} % required"
        )
    return curve


def _worst(lv: Levels, failing: np.ndarray, p: CurveParams) -> int:
    # the worst level is the one farthest from the curve in the fit's own (relative)
    # terms: a level at a flat end may fail recovery without being an outlier
    t = lv.table
    pred = predict(p, t["expected_conc"][failing])
    dev = np.abs(t["mean_net_mfi"][failing] - pred) / np.maximum(np.abs(pred), 1.0)
    return int(failing[np.argmax(np.where(np.isfinite(dev), dev, np.inf))])


def _drop_note(t: dict[str, np.ndarray], i: int) -> str:
    return (
        f"standard {int(t['standard_level'][i])} ({t['expected_conc'][i]:g}): recovery {t['recovery'][i]:.1f} % "
        f"outside {t['recovery_low'][i]:g}-{t['recovery_high'][i]:g} %"
    )


def fit_standards(
    std: pd.DataFrame, analyte: str, rules: dict | None = None, blank_net: np.ndarray | None = None
) -> StandardCurve:
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
    blank_net
        Net MFI of the analyte's blank wells: their noise tells which of the lowest
        standards are indistinguishable from background (anchor points).

    Returns
    -------
    StandardCurve
        ``status="failed"`` with the reason when the standards are unusable or the fit
        does not converge; the plate's other analytes are unaffected.
    """
    r = {**CURVE_DEFAULTS, **(rules or {})}
    lv, problem = standard_levels(std)
    empty = pd.DataFrame(
        columns=[
            "standard_level",
            "expected_conc",
            "mean_net_mfi",
            "n_wells",
            "excluded",
            "anchor",
            "note",
        ]
    )
    if lv is None:
        return StandardCurve(analyte, "failed", problem, None, empty)
    if problem:
        return StandardCurve(analyte, "failed", problem, None, lv.frame())
    t = lv.table
    n = len(t["expected_conc"])
    if n < int(r["min_levels"]):
        return StandardCurve(
            analyte,
            "failed",
            f"only {n} standard levels; at least {r['min_levels']} needed",
            None,
            lv.frame(),
        )
    rho = pd.Series(t["expected_conc"]).corr(pd.Series(t["mean_net_mfi"]), method="spearman")
    if not rho > 0.5:
        return StandardCurve(
            analyte,
            "failed",
            f"net MFI does not rise with concentration (Spearman {rho:.2f})",
            None,
            lv.frame(),
        )
    anchors = mark_anchors(lv, blank_net, r)
    excluded: list[str] = []
    fit: CurveFit | None = None
    while True:
        active = ~t["excluded"] & ~t["anchor"]
        fitted = ~t["excluded"]  # anchor points help the fit; they are not judged
        wells = fitted[lv.codes]
        n_active = int(active.sum())
        model = str(r["model"]) if int(fitted.sum()) >= int(r["min_levels_5pl"]) else "4PL"
        if n_active < int(r["min_levels"]):
            return StandardCurve(
                analyte,
                "failed",
                f"only {n_active} usable standard levels (anchor points and dropped "
                f"levels aside); at least {r['min_levels']} needed",
                None,
                lv.frame(),
                excluded=excluded,
                anchors=anchors,
            )
        prev = fit.params if excluded and fit is not None and fit.model == model else None
        fit = fit_curve(
            lv.x_w[wells], lv.y_w[wells], model, str(r["weights"]), start=prev, reweight=False
        )
        if not fit.converged or fit.params is None:
            return StandardCurve(
                analyte,
                "failed",
                f"the {model} fit did not converge: {fit.message}",
                fit,
                lv.frame(),
                excluded=excluded,
                anchors=anchors,
            )
        _judge(lv, active, fit.params, r)
        failing = np.flatnonzero(active & ~t["passed"])
        if len(failing) == 0 or len(excluded) >= int(r["max_excluded"]):
            break
        worst = _worst(lv, failing, fit.params)
        t["excluded"][worst] = True
        excluded.append(_drop_note(t, worst))
    # the standards settled, the final curve weights the wells by the fitted response
    final = fit_curve(
        lv.x_w[wells],
        lv.y_w[wells],
        model,
        str(r["weights"]),
        start=fit.params,
        reweight=True,
        keep_family=True,
    )
    if final.converged and final.params is not None:
        fit = final
        _judge(lv, active, fit.params, r)
    return _finish(
        StandardCurve(analyte, "ok", "", fit, lv.frame(), excluded=excluded, anchors=anchors), lv, r
    )


def judge_curve(
    std: pd.DataFrame,
    params: CurveParams,
    analyte: str,
    rules: dict | None = None,
    blank_net: np.ndarray | None = None,
) -> StandardCurve:
    """Judge a given curve (the vendor's) on a plate's standards by the same rules as our
    own fit: same levels and anchor points, at most 2 failing levels set aside, >= 75 %
    of the rest within their recovery limits. Nothing is refitted."""
    r = {**CURVE_DEFAULTS, **(rules or {})}
    lv, problem = standard_levels(std)
    fit = CurveFit(params, "vendor", True, "given")
    if lv is None or problem:
        return StandardCurve(analyte, "failed", problem, fit, lv.frame() if lv else pd.DataFrame())
    anchors = mark_anchors(lv, blank_net, r)
    t = lv.table
    active = ~t["anchor"]
    if int(active.sum()) < int(r["min_levels"]):
        return StandardCurve(
            analyte,
            "failed",
            f"only {int(active.sum())} standard levels inside the range",
            fit,
            lv.frame(),
            anchors=anchors,
        )
    excluded: list[str] = []
    while True:
        active = ~t["excluded"] & ~t["anchor"]
        _judge(lv, active, params, r)
        failing = np.flatnonzero(active & ~t["passed"])
        if len(failing) == 0 or len(excluded) >= int(r["max_excluded"]):
            break
        worst = _worst(lv, failing, params)
        t["excluded"][worst] = True
        excluded.append(_drop_note(t, worst))
    curve = _finish(
        StandardCurve(analyte, "ok", "", fit, lv.frame(), excluded=excluded, anchors=anchors), lv, r
    )
    if curve.status == "ok" and int((~t["excluded"] & ~t["anchor"]).sum()) < int(
        r["min_levels_5pl"]
    ):
        curve.status = "failed"
        curve.reason = f"only {int((~t['excluded'] & ~t['anchor']).sum())} levels pass; at least {r['min_levels_5pl']} needed"
    return curve


def fit_standard_curves(
    wells: pd.DataFrame, rules: dict | None = None, bead_count_min: float = 35
) -> tuple[pd.DataFrame, dict[str, StandardCurve]]:
    """Fit every analyte's standard curve on one plate's wells table.

    Parameters
    ----------
    wells
        The wells table of one plate (:data:`immuno.chemokines.io.plate.WELL_COLUMNS`).
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
    blanks = wells[wells["role"] == "blank"]
    for analyte in dict.fromkeys(wells["analyte"]):
        blank_net = blanks.loc[blanks["analyte"] == analyte, "net_mfi"].to_numpy(dtype=float)
        curve = fit_standards(std[std["analyte"] == analyte], analyte, rules, blank_net)
        fitted[analyte] = curve
        p = curve.params
        rows.append(
            {
                "analyte": analyte,
                "status": curve.status,
                "reason": curve.reason,
                "model": curve.fit.model if curve.fit else "",
                "r2": curve.fit.r2 if curve.fit else math.nan,
                **{k: getattr(p, k) if p else math.nan for k in "abcdg"},
                "ec50": p.ec50 if p else math.nan,
                "lloq": curve.lloq,
                "uloq": curve.uloq,
                "excluded": "; ".join(curve.excluded),
            }
        )
    return pd.DataFrame(rows), fitted
