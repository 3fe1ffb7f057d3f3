"""STR reference genotypes of recipient and donor from their peaks or genotype lists.

Peaks above the analytical threshold, with artefacts (pull-up, spikes, plus-A, small
off-ladder peaks) and stutter set aside, give one or two alleles per locus; a genotype
list is taken as listed. Which loci are informative is decided for both methods in
:mod:`immuno.chimerism.common.genotypes`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from immuno.chimerism.common.genotypes import off_ladder_label, repeat_value
from immuno.chimerism.str.peaks import StrSettings, classify_peaks, label_step, stutter_kind

#: STR defaults (RFU; ratios of the parent peak): see :class:`immuno.chimerism.str.peaks.StrSettings`
ANALYTICAL_THRESHOLD = StrSettings.analytical_threshold
SATURATION = StrSettings.saturation
STUTTER_FILTER = StrSettings.stutter_filter
DEFAULT_STUTTER = StrSettings.default_stutter


def stutter_position(allele: str) -> str | None:
    """The label one repeat below ``allele`` (its back-stutter position), or None."""
    return label_step(allele, -1)


def call_str_genotype(
    peaks: pd.DataFrame,
    analytical_threshold: float | None = None,
    stutter_filter: float | None = None,
    saturation: float | None = None,
    settings: StrSettings | None = None,
) -> pd.DataFrame:
    """Call STR alleles per locus from one reference sample's peaks.

    Parameters
    ----------
    peaks
        One sample's peaks (columns ``marker``, ``allele``, ``height``, ``area`` and,
        when exported, ``size`` and ``dye``), as from
        :func:`immuno.chimerism.str.genemapper.read_genemapper`; or a genotype list (heights
        NaN), whose alleles are taken as they are.
    analytical_threshold, stutter_filter, saturation
        Shortcuts overriding the same fields of ``settings``.
    settings
        Thresholds and artefact filters (:class:`immuno.chimerism.str.peaks.StrSettings`).

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
    (:func:`immuno.chimerism.str.peaks.classify_peaks`); then, tallest first, a peak in a
    stutter position of an allele already called and under the stutter filter is
    stutter, a peak of at least ``allele_min_ratio`` of the tallest is an allele, and
    anything smaller is set aside as a minor peak (a reference is one person: its alleles
    are of comparable height). An off-ladder peak that tall is an allele the ladder lacks.
    """
    s = settings or StrSettings()
    overrides = {
        k: v
        for k, v in (
            ("analytical_threshold", analytical_threshold),
            ("stutter_filter", stutter_filter),
            ("saturation", saturation),
        )
        if v is not None
    }
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
    return pd.DataFrame(
        rows, columns=["marker", "alleles", "sizes", "stutter_ratio", "call", "saturated", "note"]
    )


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
    return {
        "marker": marker,
        "alleles": tuple(alleles),
        "sizes": {},
        "stutter_ratio": math.nan,
        "call": call,
        "saturated": False,
        "note": note,
    }


def _call_peaks(marker: str, g: pd.DataFrame, s: StrSettings) -> dict[str, Any]:
    """A locus of one person's peaks: artefacts set aside, stutter told from alleles."""
    notes = [n for n in g.loc[g["kind"].isin(("pull_up", "spike", "plus_a")), "note"]]
    cand = g[g["kind"].isin(("peak", "off_ladder"))].sort_values(
        "height", ascending=False, kind="stable"
    )
    area = cand["area"].where(cand["area"].notna(), cand["height"])
    alleles: list[dict[str, Any]] = []
    stutters: list[float] = []
    tallest = float(cand["height"].max()) if len(cand) else math.nan
    for (_, p), a in zip(cand.iterrows(), area, strict=True):
        label = off_ladder_label(p["size"]) if p["allele"] == "OL" else str(p["allele"])
        called = pd.DataFrame(alleles, columns=["allele", "size", "height", "area"])
        st = (
            stutter_kind(label, float(p["size"]), float(p["height"]), called, s, marker)
            if len(called)
            else None
        )
        if st is not None:
            parent = called[called["allele"] == st[1]].iloc[0]
            if st[0] == "back" and parent["height"] <= s.saturation:
                stutters.append(float(a / parent["area"]))
            continue
        if p["height"] >= s.allele_min_ratio * tallest:
            alleles.append(
                {
                    "allele": label,
                    "size": float(p["size"]),
                    "height": float(p["height"]),
                    "area": float(a),
                }
            )
        else:
            what = "off-ladder peak" if p["allele"] == "OL" else f"minor peak {label}"
            notes.append(
                f"{what} ({p['height']:.0f} RFU, under {100 * s.allele_min_ratio:.0f} % of the tallest) "
                "set aside"
            )
    labels = sorted((a["allele"] for a in alleles), key=_allele_key)
    call = "ok" if labels else "no_peaks"
    if len(labels) > 2:
        call = "more_than_two"
        notes.append(
            f"{len(labels)} alleles of comparable height ({', '.join(labels)}): a mixed or contaminated "
            "reference"
        )
    return {
        "marker": marker,
        "alleles": tuple(labels),
        "sizes": {a["allele"]: a["size"] for a in alleles},
        "stutter_ratio": float(np.mean(stutters)) if stutters else math.nan,
        "call": call,
        "saturated": bool((cand["height"] > s.saturation).any()),
        "note": "; ".join(notes),
    }


def _allele_key(a: str) -> tuple[float, str]:
    v = repeat_value(a)
    if math.isnan(v) and a.startswith("OL@"):
        return (math.inf, a)
    return (math.inf if math.isnan(v) else v, a)
