"""One STR locus of a biopsy against its references: what is there, what it says, and why.

Every locus of the references and the biopsy gets a ``status`` and a ``reason``:

* ``used`` / ``estimated`` - informative and read (the combination decides which are used);
* ``not_informative`` - recipient and donors share the same alleles;
* ``set_aside`` - a reference that could not be called (with its note), a sex marker, no
  biopsy peak, a contributor allele that looks like an artefact (pull-up, spike, plus-A).

Peaks of the biopsy are matched to the contributors' alleles (an off-ladder allele of a
reference by its size), stutter of those alleles is recognised and, where it falls on
another contributor's allele, subtracted; artefacts are set aside with a note; any other
peak is an *unexplained allele* (a third contributor, or a reference that is wrong).
When a contributor-specific allele is absent, the locus's value is only known to lie in
an interval (the allele was below the threshold): it is kept as censored, not as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from immuno.chimerism.common.genotypes import off_ladder_label, str_pattern
from immuno.chimerism.str.peaks import StrSettings, label_step, stutter_kind

#: peak kinds that are artefacts (see :func:`immuno.chimerism.str.peaks.classify_peaks`)
ARTEFACTS = ("pull_up", "spike", "plus_a")


@dataclass
class Locus:
    """What one locus of a biopsy says.

    ``areas`` are the contributors' alleles' areas after stutter correction (0 when
    absent); ``absent`` the contributor alleles with no peak; ``threshold_area`` the area
    a peak at the detection threshold would have; ``fraction``, ``lower_bound`` and
    ``upper_bound`` the single-donor estimate and, when an allele is absent, the interval
    it is censored to.
    """

    marker: str
    pattern: str = ""
    status: str = "set_aside"
    reason: str = ""
    recipient: tuple[str, ...] = ()
    donors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    areas: dict[str, float] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    threshold_area: float = math.nan
    fraction: float = math.nan
    lower_bound: float = math.nan
    upper_bound: float = math.nan
    stutter_ratio: float = math.nan
    stutter_position: bool = False
    recipient_stutter_position: bool = False
    saturated: bool = False
    donor_peak_height: float = math.nan
    locus_lod: float = math.nan
    per_copy_height: float = math.nan
    unexplained: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def censored(self) -> bool:
        """Whether the value is an interval (a contributor-specific allele was absent)."""
        return bool(self.absent) and math.isfinite(self.upper_bound)


def analyse_locus(
    marker: str,
    peaks: pd.DataFrame,
    recipient: pd.Series,
    donors: dict[str, pd.Series],
    stutter: float,
    s: StrSettings,
    threshold: float,
) -> Locus:
    """Read one locus of a biopsy against its references.

    Parameters
    ----------
    marker
        The locus.
    peaks
        The biopsy's classified peaks at this locus (``kind``, ``note``, ``allele``,
        ``size``, ``height``, ``area``).
    recipient, donors
        The references' calls at this locus (rows of
        :func:`immuno.chimerism.str.genotypes.call_str_genotype`), donors by id.
    stutter
        Back-stutter ratio used for correction.
    s
        Thresholds and filters.
    threshold
        Height (RFU) below which a peak would not be in the export (the detection limit
        of an absent allele).
    """
    loc = Locus(marker, stutter_ratio=stutter)
    refs = {"recipient": recipient, **{f"donor {d}": r for d, r in donors.items()}}
    bad = [(who, r) for who, r in refs.items() if r is None or r["call"] != "ok"]
    if bad:
        who, r = bad[0]
        loc.reason = (
            f"{who} reference: not typed at this locus"
            if r is None
            else f"{who} reference: {r['call'].replace('_', ' ')}"
            + (f" ({r['note']})" if r["note"] else "")
        )
        return loc
    loc.recipient = tuple(recipient["alleles"])
    loc.donors = {d: tuple(r["alleles"]) for d, r in donors.items()}
    contributors = set(loc.recipient).union(*loc.donors.values())
    if marker.upper() in s.exclude_loci:
        loc.status, loc.reason = "set_aside", "sex marker: not used for the fraction"
        return loc
    if all(set(a) == set(loc.recipient) for a in loc.donors.values()):
        loc.status, loc.pattern, loc.reason = (
            "not_informative",
            "identical",
            "recipient and donor share the same alleles",
        )
        return loc
    if len(loc.donors) == 1:
        loc.pattern = str_pattern(loc.recipient, next(iter(loc.donors.values())))
    else:
        loc.pattern = "several_donors"
    peaks = _match_off_ladder(peaks, refs, s)
    loc.notes += [n for n in peaks.loc[peaks["kind"].isin(ARTEFACTS + ("off_ladder",)), "note"]]
    suspect = peaks[peaks["kind"].isin(ARTEFACTS) & peaks["allele"].isin(contributors)]
    specific = {
        a for a in contributors if sum(a in al for al in [loc.recipient, *loc.donors.values()]) == 1
    }
    for _, p in suspect.iterrows():
        if p["allele"] in specific:
            loc.reason = f"allele {p['allele']} may be an artefact: {p['note']}"
            return loc
    live = peaks[peaks["kind"] == "peak"]
    if live.empty:
        loc.reason = f"no biopsy peak above {s.analytical_threshold:.0f} RFU"
        return loc
    area = live["area"].where(live["area"].notna(), live["height"]).groupby(live["allele"]).sum()
    height = live.groupby("allele")["height"].sum()
    ratio = (
        float(np.nanmedian(live["area"] / live["height"])) if live["area"].notna().any() else 1.0
    )
    loc.threshold_area = threshold * ratio
    loc.saturated = bool((live["height"] > s.saturation).any())
    _unexplained(loc, live, contributors, s)
    raw = {a: float(area.get(a, 0.0)) for a in contributors}
    parent = {label_step(a, -1): a for a in contributors}
    loc.areas = {
        a: max(raw[a] - stutter * raw[parent[a]], 0.0) if a in parent else raw[a]
        for a in contributors
    }
    loc.absent = sorted(a for a in specific if raw[a] == 0.0)
    loc.per_copy_height = sum(float(height.get(a, 0.0)) for a in contributors) / 2
    loc.status, loc.reason = "estimated", "informative"
    if len(loc.donors) == 1:
        _single_donor(loc, raw, parent, height, s)
        if not math.isfinite(loc.fraction):
            loc.status, loc.reason = (
                "set_aside",
                "no signal at the alleles that tell recipient and donor apart",
            )
    return loc


def _match_off_ladder(
    peaks: pd.DataFrame, refs: dict[str, pd.Series], s: StrSettings
) -> pd.DataFrame:
    """Off-ladder peaks of the biopsy at the size of a reference's off-ladder allele take its label."""
    sizes = {
        a: size
        for r in refs.values()
        for a, size in (r["sizes"] or {}).items()
        if a.startswith("OL@")
    }
    if not sizes:
        return peaks
    peaks = peaks.copy()
    for i, p in peaks[
        (peaks["allele"] == "OL") & peaks["kind"].isin(("off_ladder", "peak"))
    ].iterrows():
        match = [a for a, size in sizes.items() if abs(size - p["size"]) <= s.size_window]
        if match:
            peaks.loc[i, ["allele", "kind", "note"]] = [match[0], "peak", ""]
    peaks.loc[peaks["allele"] == "OL", "allele"] = [
        off_ladder_label(x) for x in peaks.loc[peaks["allele"] == "OL", "size"]
    ]
    return peaks


def _unexplained(loc: Locus, live: pd.DataFrame, contributors: set[str], s: StrSettings) -> None:
    """Peaks that are neither a contributor's allele nor its stutter."""
    parents = live[live["allele"].isin(contributors)][["allele", "size", "height"]]
    for _, p in live[~live["allele"].isin(contributors)].iterrows():
        st = stutter_kind(
            str(p["allele"]), float(p["size"]), float(p["height"]), parents, s, loc.marker
        )
        if st is None:
            loc.unexplained.append(f"{p['allele']} ({p['height']:.0f} RFU)")


def _single_donor(
    loc: Locus,
    raw: dict[str, float],
    parent: dict[str | None, str],
    height: pd.Series,
    s: StrSettings,
) -> None:
    """The pattern formula, its censoring interval, the stutter-position flag and the locus LoD."""
    rec, don = set(loc.recipient), set(next(iter(loc.donors.values())))
    donor_only = sorted(don - rec)
    # a minor person's allele in the stutter position of the major's: the donor's at low
    # fractions, the recipient's at high ones (the combination picks)
    loc.stutter_position = any(a in parent and parent[a] in rec for a in donor_only)
    loc.recipient_stutter_position = any(
        a in parent and parent[a] in don for a in sorted(rec - don)
    )
    loc.fraction = pattern_fraction(loc.pattern, loc.areas, rec, don)
    if loc.absent and math.isfinite(loc.threshold_area):
        filled = {a: (loc.threshold_area if a in loc.absent else v) for a, v in loc.areas.items()}
        bounds = sorted([loc.fraction, pattern_fraction(loc.pattern, filled, rec, don)])
        loc.lower_bound, loc.upper_bound = bounds
    donor_heights = [float(height.get(a, 0.0)) for a in donor_only]
    loc.donor_peak_height = (
        max(donor_heights) if donor_heights and max(donor_heights) > 0 else math.nan
    )
    donor_copies = 2 if len(don) == 1 else 1
    if donor_only:
        noise = s.analytical_threshold + max(
            (
                loc.stutter_ratio * float(height.get(parent[a], 0.0))
                for a in donor_only
                if a in parent
            ),
            default=0.0,
        )
        loc.locus_lod = (
            noise / (loc.per_copy_height * donor_copies) if loc.per_copy_height > 0 else math.nan
        )
    else:
        loc.locus_lod = 0.05  # a dose shift of a shared allele is not seen below ~5 %


def pattern_fraction(pattern: str, areas: dict[str, float], rec: set[str], don: set[str]) -> float:
    """The donor fraction of one locus by its pattern's formula (NaN without signal)."""
    donor_only, rec_only, shared = sorted(don - rec), sorted(rec - don), sorted(rec & don)

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else math.nan

    if pattern == "no_shared":
        d, r = sum(areas[a] for a in donor_only), sum(areas[a] for a in rec_only)
        return ratio(d, d + r)
    if pattern == "shared_both_het":
        d, r = areas[donor_only[0]], areas[rec_only[0]]
        return ratio(d, d + r)
    if pattern == "recipient_hom":
        d, a = areas[donor_only[0]], areas[shared[0]]
        return ratio(2 * d, d + a)
    if pattern == "donor_hom":
        r, a = areas[rec_only[0]], areas[shared[0]]
        value = ratio(2 * r, r + a)
        return 1 - value if math.isfinite(value) else math.nan
    return math.nan


LOCUS_COLUMNS = [
    "marker",
    "status",
    "reason",
    "pattern",
    "recipient_alleles",
    "donor_alleles",
    "donor_fraction",
    "lower_bound",
    "upper_bound",
    "censored",
    "stutter_ratio",
    "stutter_position",
    "saturated",
    "donor_peak_height",
    "locus_lod",
    "used",
    "outlier",
    "unexplained",
    "notes",
]


def locus_table(loci: list[Locus]) -> pd.DataFrame:
    """The per-locus table (:data:`LOCUS_COLUMNS`) of analysed loci."""
    rows = [
        {
            "marker": loc.marker,
            "status": loc.status,
            "reason": loc.reason,
            "pattern": loc.pattern,
            "recipient_alleles": "/".join(loc.recipient),
            "donor_alleles": " | ".join("/".join(a) for a in loc.donors.values()),
            "donor_fraction": loc.fraction,
            "lower_bound": loc.lower_bound,
            "upper_bound": loc.upper_bound,
            "censored": loc.censored,
            "stutter_ratio": loc.stutter_ratio,
            "stutter_position": loc.stutter_position,
            "saturated": loc.saturated,
            "donor_peak_height": loc.donor_peak_height,
            "locus_lod": loc.locus_lod,
            "used": False,
            "outlier": False,
            "unexplained": ", ".join(loc.unexplained),
            "notes": "; ".join(loc.notes),
        }
        for loc in loci
    ]
    return pd.DataFrame(rows, columns=LOCUS_COLUMNS)
