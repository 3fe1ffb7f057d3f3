"""Longitudinal statistics, the trial's read-out: paired change from baseline per feature.

For each feature (keyed by assay, panel and feature, never pooled across units) and
each later visit, the patients with a value at both the baseline and that visit form
pairs. Reported per pair set: the median of the baseline and visit values, the median
change (median of the paired differences), the Wilcoxon signed-rank test (scipy,
two-sided, zero differences dropped, exact distribution for small samples without
ties), the Hodges-Lehmann estimate of the change with its distribution-free confidence
interval from the exact signed-rank distribution, and the Benjamini-Hochberg adjusted
p-value across the features of one contrast.

Censored values (stated rule, ``censored="substitute"``): a value below the LLOQ enters
as LLOQ/2 and one above the ULOQ as the ULOQ; a pair whose two values are censored on
the same side carries no direction and counts as a zero change. With
``censored="exclude"`` pairs holding a censored value are left out. Values failing QC
are never used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from immuno.contract.measurements import censored_substitute, flag_words

#: the columns of :func:`paired_change`
STAT_COLUMNS = ["assay", "panel", "feature", "unit", "contrast", "n_pairs", "n_censored_pairs",
                "median_baseline", "median_visit", "median_change", "hl_estimate", "ci_low", "ci_high",
                "ci_level", "wilcoxon_statistic", "p_value", "p_adjusted", "note"]


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN entries stay NaN and are not counted).

    ``q_(i) = min_{j >= i} p_(j) m / j`` over the m non-missing p-values in ascending
    order, capped at 1.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    q = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(q[::-1])[::-1])
    return out


def signed_rank_counts(n: int) -> np.ndarray:
    """Number of sign patterns giving each value 0..n(n+1)/2 of the signed-rank sum T+."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts


def hodges_lehmann(d: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Hodges-Lehmann estimate of a paired change and its confidence interval.

    The estimate is the median of the Walsh averages ``(d_i + d_j) / 2, i <= j``. The
    interval is ``[W_(C), W_(M + 1 - C)]`` over the M sorted Walsh averages, where C is
    the largest integer with ``P(T+ <= C - 1) <= (1 - level) / 2`` under the exact null
    distribution of the signed-rank sum T+. With too few pairs for the level (fewer than
    6 at 95 %) the interval is NaN.

    Returns
    -------
    estimate, low, high, achieved_level
    """
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n == 0:
        return (math.nan,) * 4
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    estimate = float(np.median(walsh))
    cdf = np.cumsum(signed_rank_counts(n)) / 2.0 ** n
    c = int(np.searchsorted(cdf, (1 - level) / 2, side="right"))  # number of cdf values <= alpha/2
    if c < 1:
        return estimate, math.nan, math.nan, math.nan
    achieved = 1.0 - 2.0 * cdf[c - 1]
    return estimate, float(walsh[c - 1]), float(walsh[len(walsh) - c]), float(achieved)


def _values(m: pd.DataFrame, censored: str) -> pd.DataFrame:
    m = m[m["qc_pass"]].copy()
    words = m["flag"].map(lambda f: set(flag_words(f)))
    m["side"] = np.where(words.map(lambda w: "<LLOQ" in w) & m["value"].isna(), -1,
                         np.where(words.map(lambda w: ">ULOQ" in w) & m["value"].isna(), 1, 0))
    if censored == "exclude":
        m = m[m["side"] == 0]
        m["used"] = m["value"]
    elif censored == "substitute":
        m["used"] = censored_substitute(m["value"], m["flag"], m["lower"], m["upper"])
    else:
        raise ValueError(f"censored must be 'substitute' or 'exclude', not {censored!r}")
    return m[m["used"].notna()]


def paired_change(m: pd.DataFrame, baseline: str = "D0", visits: Sequence[str] = ("D10", "M1"),
                  censored: str = "substitute", level: float = 0.95) -> pd.DataFrame:
    """Paired change from baseline per (assay, panel, feature) and visit.

    Parameters
    ----------
    m
        Measurement rows of patients (no controls), at most one per patient, visit,
        assay, panel and feature (the study checks this first).
    baseline
        The baseline visit.
    visits
        The visits compared with the baseline, one contrast each.
    censored
        ``"substitute"`` or ``"exclude"`` (see the module docstring).
    level
        Confidence level of the Hodges-Lehmann interval.

    Returns
    -------
    pandas.DataFrame
        One row per feature and contrast (:data:`STAT_COLUMNS`); ``p_adjusted`` is the
        Benjamini-Hochberg adjustment across the features of each contrast.
    """
    v = _values(m, censored)
    keys = ["assay", "panel", "feature"]
    rows = []
    for key, g in m.groupby(keys, sort=True):
        unit = str(g["unit"].iloc[0])
        gv = v[(v.assay == key[0]) & (v.panel == key[1]) & (v.feature == key[2])]
        base = gv[gv.visit == baseline].set_index("patient_id")
        for visit in visits:
            later = gv[gv.visit == visit].set_index("patient_id")
            both = base.index.intersection(later.index).sort_values()
            b, a = base.loc[both], later.loc[both]
            diff = (a["used"] - b["used"]).to_numpy(dtype=float)
            tied = ((a["side"] != 0) & (a["side"].to_numpy() == b["side"].to_numpy())).to_numpy()
            diff[tied] = 0.0
            row = {"assay": key[0], "panel": key[1], "feature": key[2], "unit": unit,
                   "contrast": f"{baseline}->{visit}", "n_pairs": len(both),
                   "n_censored_pairs": int(((a["side"] != 0) | (b["side"].to_numpy() != 0)).sum()),
                   "median_baseline": float(b["used"].median()) if len(both) else math.nan,
                   "median_visit": float(a["used"].median()) if len(both) else math.nan,
                   "median_change": float(np.median(diff)) if len(both) else math.nan}
            est, lo, hi, achieved = hodges_lehmann(diff, level)
            row.update(hl_estimate=est, ci_low=lo, ci_high=hi, ci_level=achieved)
            notes = []
            if len(both) and math.isnan(lo):
                notes.append(f"too few pairs for a {level:.0%} interval")
            if np.count_nonzero(diff) == 0:
                row.update(wilcoxon_statistic=math.nan, p_value=math.nan)
                notes.append("no pairs" if not len(both) else "no non-zero change")
            else:
                res = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
                row.update(wilcoxon_statistic=float(res.statistic), p_value=float(res.pvalue))
            row["note"] = "; ".join(notes)
            rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in STAT_COLUMNS if c != "p_adjusted"])
    out["p_adjusted"] = np.nan
    for _, idx in out.groupby("contrast").groups.items():
        out.loc[idx, "p_adjusted"] = benjamini_hochberg(out.loc[idx, "p_value"].to_numpy())
    return out[STAT_COLUMNS]
