"""STR peaks that are not alleles: what a GeneMapper analyst removes by eye.

One sample's peaks (every dye at once) are sorted into

* ``below_threshold``: under the analytical threshold;
* ``spike``: a sharp signal at the same size in several dyes at similar heights;
* ``pull_up``: a peak at the size of a much taller peak of another dye (spectral
  bleed-through, worst from saturated peaks);
* ``plus_a``: a small peak 1 bp from a taller one of the same dye (incomplete
  non-template adenylation);
* ``off_ladder``: an ``OL`` peak that none of the above explains;
* ``peak``: everything else (alleles and stutter, told apart against the references).

Stutter is judged per locus against the alleles present (:func:`stutter_kind`). All
parameters come from the panel (:class:`StrSettings`); each removal keeps a note saying
why, so a locus's reason can name it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: loci that carry sex, not identity (left out of the fraction; named in the locus table)
SEX_LOCI = ("AMEL", "AMELOGENIN", "DYS391", "YINDEL", "Y INDEL", "SRY")


@dataclass(frozen=True)
class StrSettings:
    """Peak thresholds and artefact filters of an STR panel (every one can be set there).

    Attributes
    ----------
    analytical_threshold
        RFU; lower peaks are noise.
    saturation
        RFU; higher peaks are off-scale (areas unreliable, pull-up likely).
    stutter_filter
        Largest back-stutter (one repeat below) as a fraction of its parent.
    forward_stutter_filter
        Largest forward stutter (one repeat above).
    double_stutter_filter
        Largest stutter two repeats below, and half-repeat (2 bp) stutter.
    default_stutter
        Expected back-stutter ratio used for correction when neither the recipient's own
        peaks nor the panel give one.
    locus_stutter
        The kit's expected back-stutter per locus.
    pullup_ratio
        A peak at most this fraction of a peak of another dye at the same size is pull-up.
    size_window
        bp; "the same size" for pull-up, spikes and off-ladder alleles.
    spike_min_dyes
        Dyes showing a peak at one size (at similar heights) that make it a spike.
    plus_a_ratio
        A peak 1 bp from a taller peak of its dye and at most this fraction of it is a
        plus-A artefact.
    allele_min_ratio
        In a reference, peaks under this fraction of the locus's tallest are not alleles.
    lod_floor
        Smallest LoD claimed (STR is not reliable below ~1 %).
    exclude_loci
        Loci left out of the fraction (sex markers by default).
    repeat_bp
        Repeat length (bp) by locus where it is not 4.
    """

    analytical_threshold: float = 50.0
    saturation: float = 30_000.0
    stutter_filter: float = 0.15
    forward_stutter_filter: float = 0.06
    double_stutter_filter: float = 0.06
    default_stutter: float = 0.07
    locus_stutter: dict[str, float] = field(default_factory=dict)
    pullup_ratio: float = 0.10
    size_window: float = 0.5
    spike_min_dyes: int = 4
    plus_a_ratio: float = 0.25
    allele_min_ratio: float = 0.3
    lod_floor: float = 0.01
    exclude_loci: tuple[str, ...] = SEX_LOCI
    repeat_bp: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_panel(
        cls,
        thresholds: dict[str, Any] | None = None,
        artefacts: dict[str, Any] | None = None,
        loci: list[dict[str, Any]] | None = None,
    ) -> StrSettings:
        """Settings from a panel's ``thresholds``, ``artefacts`` and ``loci`` sections."""
        values: dict[str, Any] = {}
        for section in (thresholds or {}, artefacts or {}):
            values.update({k: v for k, v in section.items() if k in cls.__dataclass_fields__})
        if "exclude_loci" in values:
            values["exclude_loci"] = tuple(str(x).upper() for x in values["exclude_loci"])
        loci = loci or []
        values["locus_stutter"] = {
            str(loc["name"]).upper(): float(loc["stutter_ratio"])
            for loc in loci
            if "stutter_ratio" in loc
        }
        values["repeat_bp"] = {
            str(loc["name"]).upper(): float(loc["repeat_bp"]) for loc in loci if "repeat_bp" in loc
        }
        return cls(**values)

    def repeat(self, marker: str) -> float:
        """Repeat length (bp) of a locus."""
        return self.repeat_bp.get(marker.upper(), 4.0)


def classify_peaks(peaks: pd.DataFrame, s: StrSettings) -> pd.DataFrame:
    """One sample's peaks with ``kind`` and ``note`` columns (see the module docstring).

    Parameters
    ----------
    peaks
        Columns ``marker``, ``allele``, ``size``, ``height``, ``dye`` (as read by
        :func:`immuno.chimerism.str.genemapper.read_genemapper`). Without sizes or dyes the
        size-based filters are skipped.
    s
        The panel's settings.
    """
    out = peaks.reset_index(drop=True).copy()
    kind = np.full(len(out), "peak", dtype=object)
    note = np.full(len(out), "", dtype=object)
    height = out["height"].to_numpy(float)
    size = out["size"].to_numpy(float) if "size" in out else np.full(len(out), np.nan)
    dye = out["dye"].astype(str).to_numpy() if "dye" in out else np.full(len(out), "")
    marker = out["marker"].astype(str).to_numpy()
    allele = out["allele"].astype(str).to_numpy()
    low = ~(height >= s.analytical_threshold)
    kind[low] = "below_threshold"
    live = ~low & np.isfinite(size)
    sized = np.flatnonzero(live)
    has_dyes = live.any() and len(set(dye[live]) - {""}) > 1
    for i in sized:
        near = sized[np.abs(size[sized] - size[i]) <= s.size_window]
        if has_dyes:
            others = near[dye[near] != dye[i]]
            dyes = set(dye[near])
            heights = height[near]
            if len(dyes) >= s.spike_min_dyes and heights.max() <= 3 * heights.min():
                kind[i] = "spike"
                note[i] = f"spike: peaks at {size[i]:.1f} bp in {len(dyes)} dyes"
                continue
            if len(others) and height[i] <= s.pullup_ratio * height[others].max():
                j = others[int(height[others].argmax())]
                kind[i] = "pull_up"
                note[i] = (
                    f"pull-up at {size[i]:.1f} bp ({height[i]:.0f} RFU) from {marker[j]} {allele[j]} "
                    f"({dye[j]}, {height[j]:.0f} RFU)"
                )
                continue
        same = sized[(dye[sized] == dye[i]) & (np.abs(np.abs(size[sized] - size[i]) - 1.0) <= 0.4)]
        if len(same) and height[i] <= s.plus_a_ratio * height[same].max():
            j = same[int(height[same].argmax())]
            kind[i] = "plus_a"
            note[i] = (
                f"plus-A artefact at {size[i]:.1f} bp ({height[i]:.0f} RFU), 1 bp from {allele[j]} "
                f"({height[j]:.0f} RFU)"
            )
    ol = (kind == "peak") & (allele == "OL")
    for i in np.flatnonzero(ol):
        kind[i] = "off_ladder"
        where = f"at {size[i]:.1f} bp " if np.isfinite(size[i]) else ""
        note[i] = f"off-ladder peak {where}({height[i]:.0f} RFU)"
    out["kind"], out["note"] = kind, note
    return out


def label_step(allele: str, repeats: int) -> str | None:
    """The label ``repeats`` repeats away from ``allele`` (``9.3`` and -1 give ``8.3``), or None."""
    try:
        v = float(allele)
    except ValueError:
        return None
    moved = round(v + repeats, 1)
    if moved <= 0:
        return None
    return str(int(moved)) if moved == int(moved) else f"{moved:.1f}"


def stutter_kind(
    allele: str, size: float, height: float, parents: pd.DataFrame, s: StrSettings, marker: str
) -> tuple[str, str] | None:
    """Whether a peak is stutter of a taller peak of its locus, and of which kind.

    ``parents`` holds the locus's candidate alleles (``allele``, ``size``, ``height``).
    Returns ``(kind, parent allele)`` or None. Kinds: ``back`` (one repeat below, up to
    ``stutter_filter``), ``forward`` (one above), ``double`` (two below) and ``half``
    (2 bp below, by size), the last two up to ``double_stutter_filter``.
    """
    checks = (
        (-1, "back", s.stutter_filter),
        (1, "forward", s.forward_stutter_filter),
        (-2, "double", s.double_stutter_filter),
    )
    for step, name, limit in checks:
        for _, p in parents.iterrows():
            if label_step(str(p["allele"]), step) == allele and height <= limit * p["height"]:
                return name, str(p["allele"])
    if math.isfinite(size):
        half = s.repeat(marker) / 2
        for _, p in parents.iterrows():
            if (
                abs(float(p["size"]) - half - size) <= s.size_window
                and height <= s.double_stutter_filter * p["height"]
            ):
                return "half", str(p["allele"])
    return None
