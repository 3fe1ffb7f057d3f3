"""Donor fraction from STR fragment analysis (capillary electrophoresis peak areas).

Every informative locus gives its own estimate through the per-pattern formulas, all
cases of one dose model ``E[A_x] = S ((1 - f) c_R(x) + f c_D(x))``:

* no shared allele: ``f = sum A(donor-only) / (sum A(donor-only) + sum A(recipient-only))``
* R{a,r} D{a,d}: ``f = A_d / (A_d + A_r)``
* R{a,a} D{a,d}: ``f = 2 A_d / (A_d + A_a)``
* R{a,r} D{a,a}: ``f = 1 - 2 A_r / (A_r + A_a)`` (no donor-only allele: useless below ~5 %)

Before the formulas, each allele's area loses the back-stutter of the allele one repeat
above it (the recipient's own stutter ratio at the locus, else the panel's). Loci where a
donor-only allele sits in a recipient allele's stutter position, saturated loci and the
donor-homozygous pattern are kept in the table but left out of the summary whenever two
clean loci exist. Outlier loci (median +/- 3.5 MAD) are flagged and left out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from immuno.chimerism.genotypes import (
    ANALYTICAL_THRESHOLD,
    DEFAULT_STUTTER,
    SATURATION,
    STUTTER_FILTER,
    call_str_genotype,
    informative_markers,
    stutter_position,
)
from immuno.chimerism.result import ChimerismResult, Flag, not_estimable

#: a donor fraction a lab reports from STR at best (EuroChimerism: 0.8-1.6 %)
STR_LOD_FLOOR = 0.01
OUTLIER_MAD = 3.5
#: smallest MAD used for outliers, so identical loci (e.g. all 0) do not make noise an outlier
MAD_FLOOR = 0.002
LOCUS_COLUMNS = ["marker", "pattern", "recipient_alleles", "donor_alleles", "donor_fraction", "stutter_ratio",
                 "stutter_position", "saturated", "donor_peak_height", "locus_lod", "used", "outlier"]


def estimate_str(biopsy: pd.DataFrame, recipient: pd.DataFrame, donor: pd.DataFrame,
                 analytical_threshold: float = ANALYTICAL_THRESHOLD, stutter_filter: float = STUTTER_FILTER,
                 saturation: float = SATURATION, locus_stutter: dict[str, float] | None = None,
                 default_stutter: float = DEFAULT_STUTTER, lod_floor: float = STR_LOD_FLOOR) -> ChimerismResult:
    """Estimate the donor fraction of a biopsy from STR peaks.

    Parameters
    ----------
    biopsy, recipient, donor
        One sample's peaks each (``marker``, ``allele``, ``height``, ``area``), e.g. from
        :func:`immuno.chimerism.readers.read_genemapper`.
    analytical_threshold
        Peaks below this height (RFU) are not signal.
    stutter_filter
        Reference peaks one repeat below an allele and under this ratio are stutter.
    saturation
        Loci with a biopsy peak above this height are left out of the summary.
    locus_stutter
        Back-stutter ratio per locus from the kit (used when the recipient reference
        shows no stutter peak of its own at the locus).
    default_stutter
        Stutter ratio when neither is known.
    lod_floor
        Smallest LoD claimed, whatever the peak heights (noise, pull-up and stutter
        variability make STR unreliable below ~1 %).

    Returns
    -------
    ChimerismResult
        Fraction = mean over the loci used; the interval is mean +/- t SD / sqrt(n),
        widened to the LoD when nothing is detected. ``details`` holds ``mean``, ``sd``,
        ``cv`` and ``loci_used``. Detected means donor-only peaks at or above the
        analytical threshold at >= 2 loci used and a mean above the LoD.
    """
    kwargs = {"analytical_threshold": analytical_threshold, "stutter_filter": stutter_filter,
              "saturation": saturation}
    pairs = informative_markers(call_str_genotype(recipient, **kwargs), call_str_genotype(donor, **kwargs))
    if pairs.empty:
        return not_estimable("str", [Flag("no_reference_calls", "fail",
                                          "no locus has a clean call (1-2 alleles) in both references")])
    if not pairs["informative"].any():
        return not_estimable("str", [Flag("donor_identical_to_recipient", "fail",
                                          f"recipient and donor share the same alleles at all {len(pairs)} called loci; "
                                          "check that the donor reference is the MSC product, not the patient")])
    signal = biopsy[biopsy["height"] >= analytical_threshold]
    rows = []
    for _, pr in pairs[pairs["informative"]].iterrows():
        g = signal[signal["marker"] == pr["marker"]]
        stutter = pr["recipient_stutter"]
        if not np.isfinite(stutter):
            stutter = (locus_stutter or {}).get(pr["marker"], default_stutter)
        rows.append(_locus(pr, g, stutter, analytical_threshold, saturation))
    loci = pd.DataFrame(rows)
    return _summarise(loci, lod_floor)


def _locus(pr: pd.Series, peaks: pd.DataFrame, stutter: float, threshold: float,
           saturation: float) -> dict[str, Any]:
    """One informative locus: stutter-corrected areas, the pattern formula, the locus LoD."""
    rec, don = set(pr["recipient_alleles"]), set(pr["donor_alleles"])
    alleles = rec | don
    area = peaks["area"].where(peaks["area"].notna(), peaks["height"]).groupby(peaks["allele"]).sum()
    height = peaks.groupby("allele")["height"].sum()
    raw = {a: float(area.get(a, 0.0)) for a in alleles}
    parent = {stutter_position(a): a for a in alleles}
    # an allele one repeat below another carries that allele's back-stutter
    corr = {a: max(raw[a] - stutter * raw[parent[a]], 0.0) if a in parent else raw[a] for a in alleles}
    donor_only, rec_only, shared = sorted(don - rec), sorted(rec - don), sorted(rec & don)
    in_stutter = any(a in parent and parent[a] in rec for a in donor_only)
    pattern = pr["pattern"]
    fraction = math.nan
    if pattern == "no_shared":
        d, r = sum(corr[a] for a in donor_only), sum(corr[a] for a in rec_only)
        fraction = d / (d + r) if d + r > 0 else math.nan
    elif pattern == "shared_both_het":
        d, r = corr[donor_only[0]], corr[rec_only[0]]
        fraction = d / (d + r) if d + r > 0 else math.nan
    elif pattern == "recipient_hom":
        d, a = corr[donor_only[0]], corr[shared[0]]
        fraction = 2 * d / (d + a) if d + a > 0 else math.nan
    elif pattern == "donor_hom":
        r, a = corr[rec_only[0]], corr[shared[0]]
        fraction = 1 - 2 * r / (r + a) if r + a > 0 else math.nan
    per_copy = sum(float(height.get(a, 0.0)) for a in alleles) / 2
    donor_copies = 2 if len(don) == 1 else 1
    if donor_only:
        noise = threshold + max((stutter * float(height.get(parent[a], 0.0)) for a in donor_only if a in parent), default=0.0)
        lod = noise / (per_copy * donor_copies) if per_copy > 0 else math.nan
    else:
        lod = 0.05  # a dose shift of a shared allele is not seen below ~5 %
    donor_height = max((float(height.get(a, 0.0)) for a in donor_only), default=math.nan)
    return {"marker": pr["marker"], "pattern": pattern, "recipient_alleles": "/".join(pr["recipient_alleles"]),
            "donor_alleles": "/".join(pr["donor_alleles"]), "donor_fraction": fraction, "stutter_ratio": stutter,
            "stutter_position": in_stutter, "saturated": bool((peaks["height"] > saturation).any()),
            "donor_peak_height": donor_height, "locus_lod": lod}


def _summarise(loci: pd.DataFrame, lod_floor: float) -> ChimerismResult:
    flags: list[Flag] = []
    valid = loci["donor_fraction"].notna()
    clean = valid & ~loci["stutter_position"] & ~loci["saturated"] & (loci["pattern"] != "donor_hom")
    used = clean if clean.sum() >= 2 else valid & ~loci["saturated"]
    for _, r in loci[loci["saturated"]].iterrows():
        flags.append(Flag("saturated_locus", "warning", "a biopsy peak is above the saturation limit", r["marker"]))
    if not valid.any():
        loci["used"] = False
        loci["outlier"] = False
        return not_estimable("str", [Flag("no_biopsy_peaks", "fail", "no informative locus has peaks in the biopsy")],
                             loci[LOCUS_COLUMNS], n_informative=0)
    values = loci.loc[used, "donor_fraction"]
    median = float(values.median())
    mad = max(float(stats.median_abs_deviation(values, scale="normal")), MAD_FLOOR)
    outlier = used & ((loci["donor_fraction"] - median).abs() > OUTLIER_MAD * mad)
    for _, r in loci[outlier].iterrows():
        flags.append(Flag("outlier_locus", "warning",
                          f"locus estimate {100 * r['donor_fraction']:.2f} % is outside median +/- {OUTLIER_MAD} MAD",
                          r["marker"]))
    used &= ~outlier
    loci["used"], loci["outlier"] = used, outlier
    values = loci.loc[used, "donor_fraction"].to_numpy(float)
    n = len(values)
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if n > 1 else math.nan
    lod = max(float(loci.loc[used, "locus_lod"].median()), lod_floor)
    seen = int((used & (loci["donor_peak_height"].fillna(0) > 0) & (loci["donor_fraction"] > 0)).sum())
    detected = seen >= 2 and mean > lod
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        lower, upper = max(mean - half, 0.0), min(mean + half, 1.0)
    else:
        lower, upper = math.nan, math.nan
        flags.append(Flag("single_locus", "warning", "only one informative locus: no spread, no interval"))
    if not detected:
        # below its LoD, STR cannot bound the fraction more tightly than the LoD itself
        lower, upper = 0.0, max(upper if not math.isnan(upper) else 0.0, lod)
    if n < 3:
        flags.append(Flag("few_informative_loci", "warning", f"only {n} informative loci used"))
    details = {"mean": mean, "sd": sd, "cv": sd / mean if mean > 0 and n > 1 else math.nan,
               "loci_used": float(n), "loci_informative": float(len(loci))}
    return ChimerismResult(method="str", fraction=mean, lower=lower, upper=upper, detected=detected, lod=lod,
                           n_informative=n, flags=flags, markers=loci[LOCUS_COLUMNS], details=details)
