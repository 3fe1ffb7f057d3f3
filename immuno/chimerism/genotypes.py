"""Reference genotypes of recipient and donor, and which markers tell them apart.

STR: peaks above the analytical threshold, minus back-stutter (a peak one repeat below a
larger one and below the stutter filter), give one or two alleles per locus.
NGS: the alternate-allele fraction at depth >= 100 gives the alternate dose 0/1/2
(homozygous at VAF <= 0.05 or >= 0.95, heterozygous within 0.3-0.7, otherwise no call).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: STR defaults (RFU; ratios of the parent peak)
ANALYTICAL_THRESHOLD = 50.0
SATURATION = 30_000.0
STUTTER_FILTER = 0.15
DEFAULT_STUTTER = 0.07
#: NGS defaults
MIN_DEPTH = 100
HOM_VAF = 0.05
HET_RANGE = (0.3, 0.7)


def repeat_value(allele: str) -> float:
    """Numeric repeat count of an allele label (``9.3`` -> 9.3); NaN for X, Y, OL."""
    try:
        return float(allele)
    except ValueError:
        return math.nan


def stutter_position(allele: str) -> str | None:
    """The label one repeat below ``allele`` (its back-stutter position), or None."""
    v = repeat_value(allele)
    if math.isnan(v):
        return None
    below = round(v - 1, 1)
    return str(int(below)) if below == int(below) else f"{below:.1f}"


def call_str_genotype(peaks: pd.DataFrame, analytical_threshold: float = ANALYTICAL_THRESHOLD,
                      stutter_filter: float = STUTTER_FILTER,
                      saturation: float = SATURATION) -> pd.DataFrame:
    """Call STR alleles per locus from one reference sample's peaks.

    Parameters
    ----------
    peaks
        One sample's peaks (columns ``marker``, ``allele``, ``height``, ``area``), as from
        :func:`immuno.chimerism.readers.read_genemapper`.
    analytical_threshold
        Peaks below this height (RFU) are noise.
    stutter_filter
        A peak one repeat below a called allele and under this fraction of its height is
        back-stutter, not an allele.
    saturation
        Peaks above this height are saturated (their areas are unreliable).

    Returns
    -------
    pandas.DataFrame
        One row per locus: ``marker``, ``alleles`` (tuple of labels, 1 or 2),
        ``stutter_ratio`` (mean area ratio of this sample's own back-stutter peaks, NaN
        when none was seen), ``call`` (``ok``, ``no_peaks``, ``off_ladder``,
        ``more_than_two``), ``saturated`` (bool).
    """
    rows = []
    for marker, g in peaks.groupby("marker", sort=True):
        g = g[g["height"] >= analytical_threshold]
        # areas carry the dose; exports without areas fall back to heights
        area = g["area"].where(g["area"].notna(), g["height"]).groupby(g["allele"]).sum()
        height = g.groupby("allele")["height"].sum()
        order = height.sort_values(ascending=False, kind="stable").index.tolist()
        alleles: list[str] = []
        stutters: list[float] = []
        for a in order:
            parent = next((p for p in alleles if stutter_position(p) == a), None)
            if parent is not None and height[a] < stutter_filter * height[parent]:
                stutters.append(float(area[a] / area[parent]))
                continue
            alleles.append(a)
        call = "ok"
        if not alleles:
            call = "no_peaks"
        elif "OL" in alleles:
            call = "off_ladder"
        elif len(alleles) > 2:
            call = "more_than_two"
        rows.append({"marker": str(marker), "alleles": tuple(sorted(alleles, key=_allele_key)),
                     "stutter_ratio": float(np.mean(stutters)) if stutters else math.nan,
                     "call": call, "saturated": bool((g["height"] > saturation).any())})
    return pd.DataFrame(rows, columns=["marker", "alleles", "stutter_ratio", "call", "saturated"])


def _allele_key(a: str) -> tuple[float, str]:
    v = repeat_value(a)
    return (math.inf if math.isnan(v) else v, a)


def str_pattern(recipient: tuple[str, ...], donor: tuple[str, ...]) -> str:
    """Name the informative pattern of a locus (a = shared, r/d = person-specific).

    ``identical``; ``no_shared``; ``shared_both_het`` (R{a,r} D{a,d});
    ``recipient_hom`` (R{a,a} D{a,d}); ``donor_hom`` (R{a,r} D{a,a}, useless below ~5 %).
    """
    r, d = set(recipient), set(donor)
    if r == d:
        return "identical"
    if not r & d:
        return "no_shared"
    if len(r) == 2 and len(d) == 2:
        return "shared_both_het"
    return "recipient_hom" if len(r) == 1 else "donor_hom"


def call_ngs_genotype(counts: pd.DataFrame, min_depth: int = MIN_DEPTH, hom_vaf: float = HOM_VAF,
                      het_range: tuple[float, float] = HET_RANGE) -> pd.DataFrame:
    """Call the alternate-allele dose (0/1/2) per marker from one reference's counts.

    Parameters
    ----------
    counts
        Columns ``marker``, ``depth``, ``alt_count`` (e.g. from
        :func:`immuno.chimerism.readers.read_marker_counts`).
    min_depth
        Markers with fewer reads get no call.
    hom_vaf
        Homozygous when VAF <= ``hom_vaf`` (dose 0) or >= 1 - ``hom_vaf`` (dose 2).
    het_range
        Heterozygous (dose 1) when VAF lies within this range.

    Returns
    -------
    pandas.DataFrame
        ``marker``, ``depth``, ``vaf``, ``genotype`` (float 0/1/2, NaN for no call) and
        ``call`` (``ok``, ``low_depth``, ``ambiguous_vaf``).
    """
    depth = counts["depth"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vaf = np.where(depth > 0, counts["alt_count"].to_numpy(float) / depth, np.nan)
    geno = np.full(len(vaf), np.nan)
    geno[vaf <= hom_vaf] = 0
    geno[vaf >= 1 - hom_vaf] = 2
    geno[(vaf >= het_range[0]) & (vaf <= het_range[1])] = 1
    call = np.where(np.isnan(geno), "ambiguous_vaf", "ok").astype(object)
    low = ~(depth >= min_depth)
    geno[low] = np.nan
    call[low] = "low_depth"
    return pd.DataFrame({"marker": counts["marker"].astype(str).to_numpy(), "depth": depth, "vaf": vaf,
                         "genotype": geno, "call": call})


def informative_markers(recipient: pd.DataFrame, donor: pd.DataFrame) -> pd.DataFrame:
    """Pair recipient and donor calls and say which markers or loci are informative.

    Parameters
    ----------
    recipient, donor
        Outputs of :func:`call_ngs_genotype` (column ``genotype``) or of
        :func:`call_str_genotype` (column ``alleles``).

    Returns
    -------
    pandas.DataFrame
        One row per marker called in both: ``marker``, the two genotypes (``g_recipient``,
        ``g_donor`` for NGS; ``recipient_alleles``, ``donor_alleles`` for STR),
        ``pattern`` and ``informative``. NGS patterns: ``recipient_hom`` (the donor carries
        an allele the recipient lacks: usable at any level), ``recipient_het`` (only the
        dose changes: useful above ~2 %), ``identical``.
    """
    if "alleles" in recipient.columns:
        m = recipient[recipient["call"] == "ok"].merge(
            donor[donor["call"] == "ok"], on="marker", suffixes=("_r", "_d"))
        out = pd.DataFrame({"marker": m["marker"], "recipient_alleles": m["alleles_r"],
                            "donor_alleles": m["alleles_d"],
                            "recipient_stutter": m["stutter_ratio_r"]})
        out["pattern"] = [str_pattern(r, d) for r, d in zip(out["recipient_alleles"], out["donor_alleles"], strict=True)]
    else:
        # plain arrays: this runs once per biopsy in a batch, pandas merges cost milliseconds
        g_r = recipient["genotype"].to_numpy(float)
        idx = pd.Index(donor["marker"].astype(str)).get_indexer(recipient["marker"].astype(str))
        g_d = np.where(idx >= 0, donor["genotype"].to_numpy(float)[idx], np.nan)
        keep = ~np.isnan(g_r) & ~np.isnan(g_d)
        g_r, g_d = g_r[keep], g_d[keep]
        pattern = np.where(g_r == g_d, "identical", np.where(g_r == 1, "recipient_het", "recipient_hom"))
        out = pd.DataFrame({"marker": recipient["marker"].astype(str).to_numpy()[keep], "g_recipient": g_r,
                            "g_donor": g_d, "pattern": pattern})
    out["informative"] = out["pattern"] != "identical"
    return out.reset_index(drop=True)
