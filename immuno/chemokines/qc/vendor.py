"""Agreement with the vendor software, value by value.

Two questions, asked wherever an export carries the vendor's own curve or results:

1. *Reproduction*: do the vendor's printed curve coefficients give the vendor's printed
   results? Every number in an export is rounded, so each value's tolerance is its
   print-precision budget: how far the result moves when the response, each coefficient
   and the result itself move by half a unit in their last printed digit. A value near
   an asymptote, where that budget is unbounded, cannot be checked and is counted apart.
2. *Agreement*: how far is our refit from the vendor's results, among the values both
   call quantifiable (the vendor reports a plain number, ours lies within LLOQ-ULOQ)?
   The median relative difference is judged (<= 2 % by default) only where the vendor's
   curve itself passes recovery by the same rules as ours; elsewhere it is reported with
   the reason it is not judged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.fit.curves import CurveParams, back_calculate
from immuno.chemokines.fit.standards import StandardCurve, judge_curve

#: columns of the per-value vendor table
VENDOR_COLUMNS = [
    "plate_id",
    "well",
    "sample_name",
    "role",
    "analyte",
    "feature",
    "net_mfi",
    "dilution",
    "vendor_result",
    "vendor_flag",
    "vendor_curve_result",
    "tolerance",
    "reproduced",
    "ours",
    "ours_in_range",
    "relative_difference",
]


def _recompute(p: CurveParams, y: np.ndarray, dil: np.ndarray) -> np.ndarray:
    return back_calculate(p, y) * dil


def print_tolerance(
    p: CurveParams,
    ulp: dict[str, float],
    y: np.ndarray,
    y_ulp: np.ndarray,
    dil: np.ndarray,
    result_ulp: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The vendor curve's result for each response and its print-precision tolerance.

    Parameters
    ----------
    p
        The vendor curve as printed.
    ulp
        Half a unit in the last printed digit of each coefficient (keys a, b, c, d, g).
    y, y_ulp
        The responses as printed and their half-units.
    dil
        Dilution factors (printed exactly).
    result_ulp
        Half-units of the printed results.

    Returns
    -------
    (result, tolerance)
        Tolerance is infinite where a half-unit step crosses an asymptote.
    """
    x = _recompute(p, y, dil)
    tol = np.nan_to_num(result_ulp, nan=0.0).astype(float).copy()
    steps = [("y", np.nan_to_num(y_ulp, nan=0.0))] + [
        (k, float(ulp.get(k, 0.0) or 0.0)) for k in "abcdg"
    ]
    for name, h in steps:
        if name != "y" and not h:
            continue
        worst = np.zeros_like(x)
        for sign in (-1.0, 1.0):
            if name == "y":
                xs = _recompute(p, y + sign * h, dil)
            else:
                q = CurveParams(
                    **{k: getattr(p, k) + (sign * h if k == name else 0.0) for k in "abcdg"}
                )
                xs = _recompute(q, y, dil)
            dev = np.where(np.isfinite(xs), np.abs(xs - x), np.inf)
            worst = np.maximum(worst, dev)
        tol = tol + worst
    return x, tol


def vendor_values(
    aw: pd.DataFrame,
    v: pd.Series | None,
    ours_well: np.ndarray,
    lloq: float,
    uloq: float,
    feature: str,
) -> pd.DataFrame:
    """One row per well with a vendor result: the vendor curve's own result and tolerance,
    whether it reproduces the printed result, and our value beside it."""
    has = (aw["vendor_result"].notna() & (aw["role"] != "blank")).to_numpy()
    col = {
        c: aw[c].to_numpy()[has]
        for c in (
            "plate_id",
            "well",
            "sample_name",
            "role",
            "analyte",
            "net_mfi",
            "dilution",
            "vendor_result",
            "vendor_flag",
            "problem",
            "net_mfi_ulp",
            "vendor_result_ulp",
        )
    }
    dil = np.nan_to_num(col["dilution"].astype(float), nan=1.0)
    y = col["net_mfi"].astype(float)
    rep = col["vendor_result"].astype(float)
    clean = col["problem"] == ""
    n = len(rep)
    x = tol = np.full(n, np.nan)
    reproduced = pd.array([pd.NA] * n, dtype="boolean")
    if v is not None and n:
        p = CurveParams(*(float(v[k]) for k in "abcdg"))
        ulp = {
            k: float(v.get(f"{k}_ulp", 0.0)) if pd.notna(v.get(f"{k}_ulp", np.nan)) else 0.0
            for k in "abcdg"
        }
        x, tol = print_tolerance(
            p, ulp, y, col["net_mfi_ulp"].astype(float), dil, col["vendor_result_ulp"].astype(float)
        )
        checkable = np.isfinite(x) & np.isfinite(tol) & clean
        ok = np.abs(x - rep) <= tol * (1 + 1e-9) + 1e-12
        reproduced = pd.array(np.where(checkable, ok, None), dtype="boolean")
    well_conc = ours_well[has]
    ours = well_conc * dil
    inside = np.isfinite(ours) & (well_conc >= lloq * (1 - 1e-9)) & (well_conc <= uloq * (1 + 1e-9))
    vendor_inside = (col["vendor_flag"] == "") & (rep > 0) & clean
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(inside & vendor_inside, np.abs(ours / rep - 1.0), np.nan)
    return pd.DataFrame(
        {
            "plate_id": col["plate_id"],
            "well": col["well"],
            "sample_name": col["sample_name"],
            "role": col["role"],
            "analyte": col["analyte"],
            "feature": feature,
            "net_mfi": y,
            "dilution": col["dilution"].astype(float),
            "vendor_result": rep,
            "vendor_flag": col["vendor_flag"],
            "vendor_curve_result": x,
            "tolerance": tol,
            "reproduced": reproduced,
            "ours": ours,
            "ours_in_range": inside,
            "relative_difference": rel,
        },
        columns=VENDOR_COLUMNS,
    )


def vendor_summary(
    values: pd.DataFrame,
    vendor_curve: StandardCurve | None,
    q: dict[str, Any],
    feature: str,
    pid: str,
    metrics: list[dict[str, Any]],
    flags: list[dict[str, Any]],
) -> dict[str, Any]:
    """Per-analyte summary (into the curves table) plus QC metric and flag rows."""
    out: dict[str, Any] = {}
    rep = values["reproduced"]
    n_checked = int(rep.notna().sum())
    n_vendor = int(values["vendor_result"].notna().sum())
    if vendor_curve is not None:
        n_ok = int(rep.fillna(False).sum())
        frac = n_ok / n_checked if n_checked else math.nan
        out.update(
            {
                "vendor_reproduced_fraction": frac,
                "vendor_reproduced_n": n_ok,
                "vendor_checked_n": n_checked,
                "vendor_values_n": n_vendor,
                "vendor_curve_status": vendor_curve.status,
                "vendor_curve_reason": vendor_curve.reason,
            }
        )
        if n_checked:
            metrics.append(
                {
                    "check": "vendor_reproduction",
                    "target": feature,
                    "value": frac,
                    "lower_limit": q["vendor_reproduction_min"],
                    "passed": bool(frac >= q["vendor_reproduction_min"]),
                    "detail": f"plate {pid}; {n_ok} of {n_checked} vendor results reproduced from the printed "
                    f"curve within print precision ({n_vendor - n_checked} at an asymptote or "
                    "unreadable, not checkable)",
                }
            )
        for r in values[rep.fillna(True) == False].itertuples():  # noqa: E712
            flags.append(
                {
                    "sample_id": r.sample_name,
                    "target": f"{feature}@{r.well}",
                    "flag": "vendor_not_reproduced",
                    "severity": "warning",
                    "reason": f"plate {pid}: the vendor curve gives {r.vendor_curve_result:.6g} for well {r.well}, "
                    f"the vendor printed {r.vendor_result:.6g} (print tolerance {r.tolerance:.3g})",
                }
            )
    rel = values["relative_difference"].dropna()
    out["vendor_agreement_n"] = int(len(rel))
    out["vendor_agreement_median_rel_diff"] = float(rel.median()) if len(rel) else math.nan
    out["vendor_agreement_max_rel_diff"] = float(rel.max()) if len(rel) else math.nan
    if n_vendor:
        judged = vendor_curve is not None and vendor_curve.status == "ok" and len(rel)
        why = (
            ""
            if judged
            else "not judged: "
            + (
                "no in-range value in common"
                if not len(rel)
                else "the export carries no vendor curve"
                if vendor_curve is None
                else f"the vendor curve itself fails recovery ({vendor_curve.reason})"
            )
        )
        metrics.append(
            {
                "check": "vendor_agreement",
                "target": feature,
                "value": out["vendor_agreement_median_rel_diff"],
                "upper_limit": q["vendor_agreement_max"] if judged else math.nan,
                "passed": bool(out["vendor_agreement_median_rel_diff"] <= q["vendor_agreement_max"])
                if judged
                else None,
                "detail": f"plate {pid}; median |ours / vendor - 1| over {len(rel)} values in range for both "
                f"(max {out['vendor_agreement_max_rel_diff']:.3g}){'; ' + why if why else ''}",
            }
        )
    return out


def vendor_curve_of(
    v: pd.Series | None, std: pd.DataFrame, analyte: str, rules: dict, blank_net: np.ndarray
) -> StandardCurve | None:
    """The vendor's printed curve judged on the plate's standards by our rules."""
    if v is None or not all(np.isfinite(float(v[k])) for k in "abcdg"):
        return None
    return judge_curve(std, CurveParams(*(float(v[k]) for k in "abcdg")), analyte, rules, blank_net)
