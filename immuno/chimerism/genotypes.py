"""Reference genotypes of recipient and donor, and which markers tell them apart.

STR: peaks above the analytical threshold, with artefacts (pull-up, spikes, plus-A,
small off-ladder peaks) and stutter set aside, give one or two alleles per locus; a
genotype list is taken as listed.
NGS: the alternate-allele fraction at depth >= 100 gives the alternate dose 0/1/2
(homozygous at VAF <= 0.05 or >= 0.95, heterozygous within 0.3-0.7, otherwise no call).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from immuno.chimerism.str_peaks import StrSettings, classify_peaks, label_step, stutter_kind

#: STR defaults (RFU; ratios of the parent peak): see :class:`immuno.chimerism.str_peaks.StrSettings`
ANALYTICAL_THRESHOLD = StrSettings.analytical_threshold
SATURATION = StrSettings.saturation
STUTTER_FILTER = StrSettings.stutter_filter
DEFAULT_STUTTER = StrSettings.default_stutter
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
    return label_step(allele, -1)


def off_ladder_label(size: float) -> str:
    """The label of an off-ladder allele: ``OL@159.7`` (matched between samples by size)."""
    return f"OL@{size:.1f}"


def call_str_genotype(peaks: pd.DataFrame, analytical_threshold: float | None = None,
                      stutter_filter: float | None = None, saturation: float | None = None,
                      settings: StrSettings | None = None) -> pd.DataFrame:
    """Call STR alleles per locus from one reference sample's peaks.

    Parameters
    ----------
    peaks
        One sample's peaks (columns ``marker``, ``allele``, ``height``, ``area`` and,
        when exported, ``size`` and ``dye``), as from
        :func:`immuno.chimerism.genemapper.read_genemapper`; or a genotype list (heights
        NaN), whose alleles are taken as they are.
    analytical_threshold, stutter_filter, saturation
        Shortcuts overriding the same fields of ``settings``.
    settings
        Thresholds and artefact filters (:class:`immuno.chimerism.str_peaks.StrSettings`).

    Returns
    -------
    pandas.DataFrame
        One row per locus: ``marker``, ``alleles`` (tuple of labels, 1 or 2; an
        off-ladder allele is ``OL@<size>``), ``sizes`` (allele -> bp), ``stutter_ratio``
        (mean area ratio of this sample's own back-stutter peaks under unsaturated
        parents, NaN when none was seen), ``call`` (``ok``, ``no_peaks``,
        ``more_than_two``, ``off_ladder`` for a genotype list naming OL), ``saturated``
        (bool) and ``note`` (what was set aside and why).

    Notes
    -----
    Pull-up, spikes, plus-A and small off-ladder peaks are set aside first
    (:func:`immuno.chimerism.str_peaks.classify_peaks`); then, tallest first, a peak in a
    stutter position of an allele already called and under the stutter filter is
    stutter, a peak of at least ``allele_min_ratio`` of the tallest is an allele, and
    anything smaller is set aside as a minor peak (a reference is one person: its alleles
    are of comparable height). An off-ladder peak that tall is an allele the ladder lacks.
    """
    s = settings or StrSettings()
    overrides = {k: v for k, v in (("analytical_threshold", analytical_threshold), ("stutter_filter", stutter_filter),
                                   ("saturation", saturation)) if v is not None}
    if overrides:
        s = dataclasses.replace(s, **overrides)
    rows = []
    calls_only = peaks["height"].isna().all() if len(peaks) else False
    classified = peaks if calls_only else classify_peaks(peaks, s)
    for marker, g in classified.groupby("marker", sort=True):
        if calls_only:
            rows.append(_call_list(str(marker), g))
        else:
            rows.append(_call_peaks(str(marker), g, s))
    return pd.DataFrame(rows, columns=["marker", "alleles", "sizes", "stutter_ratio", "call", "saturated", "note"])


def _call_list(marker: str, g: pd.DataFrame) -> dict[str, Any]:
    """A locus of a genotype list: its alleles as listed (homozygotes once or twice)."""
    alleles = sorted(set(g["allele"].astype(str)) - {""}, key=_allele_key)
    call, note = "ok", ""
    if not alleles:
        call, note = "no_peaks", "no allele listed"
    elif "OL" in alleles:
        call, note = "off_ladder", "the genotype list names an off-ladder allele without its size"
    elif len(alleles) > 2:
        call, note = "more_than_two", f"{len(alleles)} alleles listed ({', '.join(alleles)})"
    return {"marker": marker, "alleles": tuple(alleles), "sizes": {}, "stutter_ratio": math.nan, "call": call,
            "saturated": False, "note": note}


def _call_peaks(marker: str, g: pd.DataFrame, s: StrSettings) -> dict[str, Any]:
    """A locus of one person's peaks: artefacts set aside, stutter told from alleles."""
    notes = [n for n in g.loc[g["kind"].isin(("pull_up", "spike", "plus_a")), "note"]]
    cand = g[g["kind"].isin(("peak", "off_ladder"))].sort_values("height", ascending=False, kind="stable")
    area = cand["area"].where(cand["area"].notna(), cand["height"])
    alleles: list[dict[str, Any]] = []
    stutters: list[float] = []
    tallest = float(cand["height"].max()) if len(cand) else math.nan
    for (_, p), a in zip(cand.iterrows(), area, strict=True):
        label = off_ladder_label(p["size"]) if p["allele"] == "OL" else str(p["allele"])
        called = pd.DataFrame(alleles, columns=["allele", "size", "height", "area"])
        st = stutter_kind(label, float(p["size"]), float(p["height"]), called, s, marker) if len(called) else None
        if st is not None:
            parent = called[called["allele"] == st[1]].iloc[0]
            if st[0] == "back" and parent["height"] <= s.saturation:
                stutters.append(float(a / parent["area"]))
            continue
        if p["height"] >= s.allele_min_ratio * tallest:
            alleles.append({"allele": label, "size": float(p["size"]), "height": float(p["height"]), "area": float(a)})
        else:
            what = "off-ladder peak" if p["allele"] == "OL" else f"minor peak {label}"
            notes.append(f"{what} ({p['height']:.0f} RFU, under {100 * s.allele_min_ratio:.0f} % of the tallest) "
                         "set aside")
    labels = sorted((a["allele"] for a in alleles), key=_allele_key)
    call = "ok" if labels else "no_peaks"
    if len(labels) > 2:
        call = "more_than_two"
        notes.append(f"{len(labels)} alleles of comparable height ({', '.join(labels)}): a mixed or contaminated "
                     "reference")
    return {"marker": marker, "alleles": tuple(labels), "sizes": {a["allele"]: a["size"] for a in alleles},
            "stutter_ratio": float(np.mean(stutters)) if stutters else math.nan, "call": call,
            "saturated": bool((cand["height"] > s.saturation).any()), "note": "; ".join(notes)}


def _allele_key(a: str) -> tuple[float, str]:
    v = repeat_value(a)
    if math.isnan(v) and a.startswith("OL@"):
        return (math.inf, a)
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
