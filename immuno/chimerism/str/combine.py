"""One donor's STR fraction from the per-locus values of a biopsy: which loci count, and why.

The per-locus table of the analysed loci (:func:`immuno.chimerism.str.loci.locus_table`)
is reduced to one estimate: loci whose value is usable (estimated, unsaturated, not in a
stutter position, not dose-only) are combined by the censored mean
(:func:`immuno.chimerism.common.intervals.censored_mean`), outliers beyond the median
+/- 3.5 MAD are set aside, every locus left out gets its reason, and the biopsy is
flagged when too few loci remain or its limit of detection is too high to say anything.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from immuno.chimerism.common.intervals import censored_mean
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable, swapped_flag
from immuno.chimerism.str.loci import Locus, locus_table
from immuno.chimerism.str.peaks import StrSettings

OUTLIER_MAD = 3.5


#: smallest MAD used for outliers, absolute and relative to the median: peak areas of one
#: sample scatter by ~10 % of the level between loci, so a tight cluster of a few loci
#: must not make ordinary scatter an outlier
MAD_FLOOR = 0.002


MAD_RELATIVE_FLOOR = 0.10


#: a biopsy whose LoD reaches this cannot say anything useful about the fraction
WEAK_LOD = 0.5


def combine_loci(loci: list[Locus], s: StrSettings, flags: list[Flag]) -> ChimerismResult:
    """One donor's fraction of a biopsy from its analysed loci.

    Parameters
    ----------
    loci
        The biopsy's loci as analysed against the recipient and the one donor
        (:func:`immuno.chimerism.str.loci.analyse_locus`).
    s
        The run's STR settings (thresholds, artefact filters, LoD floor).
    flags
        Sample-level flags found so far; the result carries them with its own.

    Returns
    -------
    ChimerismResult
        The censored mean of the usable loci with its interval and LoD; ``markers`` is
        the per-locus table, each locus with its use and the reason it was left out,
        and ``details`` the mean, SD, CV and the counts of loci used, censored and
        informative.
    """
    table = locus_table(loci)
    valid = (table["status"] == "estimated") & (table["donor_fraction"].notna() | table["censored"])
    if not valid.any():
        table["used"] = False
        reason = (
            "no informative locus has peaks in the biopsy"
            if (table["status"] != "not_informative").any()
            else "no informative locus"
        )
        return not_estimable(
            "str", [*flags, Flag("no_biopsy_peaks", "fail", reason)], table, n_informative=0
        )
    # the minor person (the donor below 50 %, the recipient above) must show an allele of
    # its own, clear of the major's stutter: loci where it only shifts a dose (the
    # donor-homozygous pattern for a minor donor, recipient-homozygous for a minor
    # recipient) or sits in a stutter position are left out while 2 clean loci exist
    minor_recipient = float(table.loc[valid, "donor_fraction"].median()) > 0.5
    table["stutter_position"] = [
        bool(x)
        for x in (
            [loc.recipient_stutter_position for loc in loci]
            if minor_recipient
            else table["stutter_position"]
        )
    ]
    dose_only = "recipient_hom" if minor_recipient else "donor_hom"
    clean = (
        valid & ~table["stutter_position"] & ~table["saturated"] & (table["pattern"] != dose_only)
    )
    used = clean if clean.sum() >= 2 else valid & ~table["saturated"]
    outlier = _outliers(table, used)
    for _, r in table[outlier].iterrows():
        flags.append(
            Flag(
                "outlier_locus",
                "warning",
                f"locus estimate {_value_text(r)} is outside median +/- {OUTLIER_MAD} MAD",
                r["marker"],
            )
        )
    for _, r in table[table["saturated"] & valid].iterrows():
        flags.append(
            Flag(
                "saturated_locus",
                "warning",
                "a biopsy peak is above the saturation limit",
                r["marker"],
            )
        )
    used &= ~outlier
    table["used"], table["outlier"] = used, outlier
    _reasons(table, valid, used, outlier, s, dose_only)
    obs = used & ~table["censored"]
    cens = used & table["censored"]
    # a bound at 0 % or 100 % is where the formula stops, not a censoring limit: a locus
    # with no recipient allele reads "at least l", whatever the noise would do beyond 1
    low = table.loc[cens, "lower_bound"].to_numpy(float)
    high = table.loc[cens, "upper_bound"].to_numpy(float)
    fit = censored_mean(
        table.loc[obs, "donor_fraction"].to_numpy(float),
        np.where(low <= 0, -np.inf, low),
        np.where(high >= 1, np.inf, high),
    )
    values = table.loc[obs, "donor_fraction"].to_numpy(float)
    n = int(used.sum())
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    lod = min(
        max(float(table.loc[used, "locus_lod"].median()), s.lod_floor)
        if used.any()
        else s.lod_floor,
        1.0,
    )
    if lod >= WEAK_LOD:
        flags.append(
            Flag(
                "too_little_signal",
                "fail",
                f"the biopsy's peaks are too weak to bound the fraction (LoD {100 * lod:.0f} % from "
                f"{int(used.sum())} loci; {_set_aside(table)})",
            )
        )
        table["used"] = used
        return not_estimable("str", flags, table, lod=lod, n_informative=int(used.sum()))
    seen = int(
        (used & (table["donor_peak_height"].fillna(0) > 0) & (table["donor_fraction"] > 0)).sum()
    )
    detected = seen >= 2 and fit.mean > lod
    lower, upper = fit.lower, fit.upper
    if n == 1:
        flags.append(
            Flag("single_locus", "warning", "only one informative locus: no spread, no interval")
        )
    if not detected:
        # below its LoD, STR cannot bound the fraction more tightly than the LoD itself
        lower, upper = 0.0, max(upper if not math.isnan(upper) else 0.0, lod)
    if n < 3:
        flags.append(
            Flag(
                "few_informative_loci",
                "warning",
                f"only {n} informative loci used ({_set_aside(table)})",
            )
        )
    if fit.mean > 0.5:
        flags.append(swapped_flag(fit.mean))
    details = {
        "mean": fit.mean,
        "sd": sd,
        "cv": sd / fit.mean if fit.mean > 0 and len(values) > 1 else math.nan,
        "loci_used": float(n),
        "loci_censored": float(cens.sum()),
        "loci_informative": float(valid.sum()),
    }
    return ChimerismResult(
        method="str",
        fraction=fit.mean,
        lower=lower,
        upper=upper,
        detected=detected,
        lod=lod,
        n_informative=n,
        flags=flags,
        markers=table,
        details=details,
    )


def _outliers(table: pd.DataFrame, used: pd.Series) -> pd.Series:
    """Loci outside median +/- 3.5 MAD of the observed loci (a censored one by its whole interval)."""
    observed = table.loc[used & ~table["censored"], "donor_fraction"]
    if len(observed) < 3:
        return pd.Series(False, index=table.index)
    median = float(observed.median())
    mad = max(
        float(stats.median_abs_deviation(observed, scale="normal")),
        MAD_FLOOR,
        MAD_RELATIVE_FLOOR * abs(median),
    )
    lo, hi = median - OUTLIER_MAD * mad, median + OUTLIER_MAD * mad
    value = table["donor_fraction"]
    plain = used & ~table["censored"] & ((value < lo) | (value > hi))
    censored = (
        used & table["censored"] & ((table["upper_bound"] < lo) | (table["lower_bound"] > hi))
    )
    return plain | censored


def _reasons(
    table: pd.DataFrame,
    valid: pd.Series,
    used: pd.Series,
    outlier: pd.Series,
    s: StrSettings,
    dose_only: str,
) -> None:
    """Status and reason of every estimated locus once the combination has chosen."""
    for i in table.index[valid]:
        r = table.loc[i]
        if used[i]:
            table.loc[i, ["status", "reason"]] = [
                "used",
                r["pattern"].replace("_", " ")
                + (" (an allele absent: censored)" if r["censored"] else ""),
            ]
            continue
        if outlier[i]:
            why = f"outlier: {_value_text(r)} outside median +/- {OUTLIER_MAD} MAD"
        elif r["saturated"]:
            why = f"saturated: a biopsy peak above {s.saturation:.0f} RFU"
        elif r["stutter_position"]:
            minor, major = (
                ("donor", "recipient") if dose_only == "donor_hom" else ("recipient", "donor")
            )
            why = f"a {minor} allele in a {major} allele's stutter position (used only without 2 clean loci)"
        elif r["pattern"] == dose_only:
            who = "donor" if dose_only == "donor_hom" else "recipient"
            why = f"{who} homozygous: the minor person only shifts a dose; left out while 2 clean loci exist"
        else:
            why = "not used"
        table.loc[i, ["status", "reason"]] = ["set_aside", why]


def _value_text(r: pd.Series) -> str:
    if r["censored"]:
        return f"[{100 * r['lower_bound']:.2f}, {100 * r['upper_bound']:.2f}] %"
    return f"{100 * r['donor_fraction']:.2f} %"


def _set_aside(table: pd.DataFrame) -> str:
    """A short list of the loci not used and why, for messages."""
    aside = table[~table["used"] & (table["status"] != "not_informative")]
    if aside.empty:
        return "no locus set aside"
    return "set aside: " + "; ".join(f"{r['marker']} ({r['reason']})" for _, r in aside.iterrows())
