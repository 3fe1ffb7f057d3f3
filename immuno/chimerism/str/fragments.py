"""Donor fraction from STR fragment analysis (capillary electrophoresis peak areas).

Every informative locus gives its own estimate through the per-pattern formulas, all
cases of one dose model ``E[A_x] = S ((1 - f) c_R(x) + f c_D(x))``:

* no shared allele: ``f = sum A(donor-only) / (sum A(donor-only) + sum A(recipient-only))``
* R{a,r} D{a,d}: ``f = A_d / (A_d + A_r)``
* R{a,a} D{a,d}: ``f = 2 A_d / (A_d + A_a)``
* R{a,r} D{a,a}: ``f = 1 - 2 A_r / (A_r + A_a)`` (no donor-only allele: useless below ~5 %)

Before the formulas, artefacts are set aside (:mod:`immuno.chimerism.str.peaks`) and each
allele's area loses the back-stutter of the allele one repeat above it (the recipient's
own stutter ratio at the locus, else the panel's). Every locus of the references gets a
status and a reason (:mod:`immuno.chimerism.str.loci`). Loci where a donor-only allele
sits in a recipient allele's stutter position, saturated loci and the donor-homozygous
pattern are left out of the summary whenever two clean loci exist. Outlier loci (median
+/- 3.5 MAD, the MAD at least 10 % of the median) are flagged and left out. A locus
whose contributor-specific allele is absent is censored, not 0
(:mod:`immuno.chimerism.common.intervals`). With several donors the loci are fitted together
(:mod:`immuno.chimerism.str.mixture`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.str.combine import combine_loci
from immuno.chimerism.str.genotypes import call_str_genotype
from immuno.chimerism.str.loci import Locus, analyse_locus
from immuno.chimerism.str.mixture import estimate_mixture
from immuno.chimerism.str.peaks import StrSettings, classify_peaks


def estimate_str(
    biopsy: pd.DataFrame,
    recipient: pd.DataFrame,
    donor: pd.DataFrame | None = None,
    *,
    donors: Mapping[str, pd.DataFrame] | None = None,
    settings: StrSettings | None = None,
    analytical_threshold: float | None = None,
    stutter_filter: float | None = None,
    saturation: float | None = None,
    locus_stutter: Mapping[str, float] | None = None,
    default_stutter: float | None = None,
    lod_floor: float | None = None,
) -> ChimerismResult:
    """Estimate the donor fraction of a biopsy from STR peaks.

    Parameters
    ----------
    biopsy, recipient
        One sample's peaks each (``marker``, ``allele``, ``height``, ``area`` and, when
        exported, ``size``, ``dye``, ``quality``), e.g. from
        :func:`immuno.chimerism.str.genemapper.read_genemapper`; a reference may be a
        genotype list.
    donor
        The MSC donor's peaks or genotype list; or ``donors`` by donor id for several.
    donors
        Several donors (double graft), by id: one fraction per donor.
    settings
        Thresholds and artefact filters (:class:`immuno.chimerism.str.peaks.StrSettings`).
    analytical_threshold, stutter_filter, saturation, locus_stutter, default_stutter, lod_floor
        Shortcuts overriding the same fields of ``settings``.

    Returns
    -------
    ChimerismResult
        Fraction = the mean over the loci used (censored loci in their interval); the
        interval is ``mean +/- t SD / sqrt(n)`` (its profile-likelihood version with
        censored loci), widened to the LoD when nothing is detected. ``markers`` holds
        every locus with its ``status`` and ``reason``; ``details`` holds ``mean``,
        ``sd``, ``cv``, ``loci_used``. Detected means donor-only peaks at or above the
        analytical threshold at >= 2 loci used and a mean above the LoD. With several
        donors, ``components`` holds one result per donor.
    """
    s = _settings(
        settings,
        analytical_threshold,
        stutter_filter,
        saturation,
        locus_stutter,
        default_stutter,
        lod_floor,
    )
    donor_tables = dict(donors) if donors else {"": donor}
    if any(t is None for t in donor_tables.values()):
        raise ValueError("give the donor's peaks, or donors by id")
    names = _marker_names([biopsy, recipient, *donor_tables.values()])
    biopsy, recipient = _rename(biopsy, names), _rename(recipient, names)
    donor_tables = {d: _rename(t, names) for d, t in donor_tables.items()}
    if len(biopsy) and biopsy["height"].isna().all():
        return not_estimable(
            "str",
            [
                Flag(
                    "biopsy_without_peaks",
                    "fail",
                    "the biopsy export lists alleles without peak heights or areas (a genotype "
                    "list); a fraction needs the peaks",
                )
            ],
        )
    rec_calls = call_str_genotype(recipient, settings=s).set_index("marker")
    don_calls = {
        d: call_str_genotype(t, settings=s).set_index("marker") for d, t in donor_tables.items()
    }
    problem = _identical(rec_calls, don_calls)
    if problem is not None:
        return problem
    classified = classify_peaks(biopsy, s) if len(biopsy) else biopsy.assign(kind=[], note=[])
    threshold = max(s.analytical_threshold, float(biopsy["height"].min()) if len(biopsy) else 0.0)
    loci = [
        _locus(m, classified, rec_calls, don_calls, s, threshold)
        for m in sorted(
            set(rec_calls.index)
            | set(classified["marker"])
            | set().union(*(c.index for c in don_calls.values()))
        )
    ]
    flags = _sample_flags(loci, biopsy, s, threshold)
    if len(don_calls) > 1:
        return estimate_mixture(loci, s, flags)
    return combine_loci(loci, s, flags)


def _settings(
    settings: StrSettings | None,
    analytical_threshold: float | None,
    stutter_filter: float | None,
    saturation: float | None,
    locus_stutter: Mapping[str, float] | None,
    default_stutter: float | None,
    lod_floor: float | None,
) -> StrSettings:
    s = settings or StrSettings()
    given = {
        "analytical_threshold": analytical_threshold,
        "stutter_filter": stutter_filter,
        "saturation": saturation,
        "default_stutter": default_stutter,
        "lod_floor": lod_floor,
    }
    s = dataclasses.replace(s, **{k: v for k, v in given.items() if v is not None})
    if locus_stutter:
        s = dataclasses.replace(
            s,
            locus_stutter={
                **s.locus_stutter,
                **{k.upper(): float(v) for k, v in locus_stutter.items()},
            },
        )
    return s


def _marker_names(tables: list[pd.DataFrame]) -> dict[str, str]:
    """One spelling per locus (``VWA`` and ``vWA`` are the same): the first table's wins."""
    names: dict[str, str] = {}
    for t in tables:
        for m in t["marker"].astype(str):
            names.setdefault(m.upper(), m)
    return names


def _rename(t: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The peaks with one spelling per locus, and the optional columns present."""
    t = t.assign(marker=[names[m.upper()] for m in t["marker"].astype(str)]).reset_index(drop=True)
    for col, fill in (("size", math.nan), ("area", math.nan), ("dye", ""), ("quality", "")):
        if col not in t:
            t[col] = fill
    return t


def _identical(rec: pd.DataFrame, donors: dict[str, pd.DataFrame]) -> ChimerismResult | None:
    """A failed result when a donor's typed loci all equal the recipient's (or another donor's)."""
    ids = list(donors)
    people = [("recipient", rec)] + [(f"donor {d}" if d else "donor", donors[d]) for d in ids]
    for i in range(len(people)):
        for j in range(i + 1, len(people)):
            (a_name, a), (b_name, b) = people[i], people[j]
            ok = a[a["call"] == "ok"].join(
                b[b["call"] == "ok"], how="inner", lsuffix="_a", rsuffix="_b"
            )
            if ok.empty:
                if i == 0:
                    return not_estimable(
                        "str",
                        [
                            Flag(
                                "no_reference_calls",
                                "fail",
                                f"no locus has a clean call (1-2 alleles) in both the recipient "
                                f"and the {b_name} reference",
                            )
                        ],
                    )
                continue
            same = all(
                set(x) == set(y) for x, y in zip(ok["alleles_a"], ok["alleles_b"], strict=True)
            )
            if same:
                what = (
                    "recipient and donor share the same alleles"
                    if i == 0 and len(ids) == 1
                    else f"the {a_name} and {b_name} references share the same alleles"
                )
                return not_estimable(
                    "str",
                    [
                        Flag(
                            "donor_identical_to_recipient" if i == 0 else "identical_donors",
                            "fail",
                            f"{what} at all {len(ok)} called loci; check that the donor "
                            "reference is the MSC product, not the patient",
                        )
                    ],
                )
    return None


def _locus(
    marker: str,
    classified: pd.DataFrame,
    rec: pd.DataFrame,
    donors: dict[str, pd.DataFrame],
    s: StrSettings,
    threshold: float,
) -> Locus:
    peaks = classified[classified["marker"] == marker]
    r = rec.loc[marker] if marker in rec.index else None
    ds = {d: (c.loc[marker] if marker in c.index else None) for d, c in donors.items()}
    stutter = r["stutter_ratio"] if r is not None and np.isfinite(r["stutter_ratio"]) else math.nan
    if not np.isfinite(stutter):
        stutter = s.locus_stutter.get(marker.upper(), s.default_stutter)
    if "quality" in peaks and peaks["quality"].str.contains("OMIT").any():
        return Locus(marker, reason="omitted in GeneMapper (OMIT)")
    loc = analyse_locus(marker, peaks, r, ds, stutter, s, threshold)
    if "quality" in peaks:
        loc.notes += [q for q in peaks["quality"].unique() if q]
    return loc


def _sample_flags(
    loci: list[Locus], biopsy: pd.DataFrame, s: StrSettings, threshold: float
) -> list[Flag]:
    flags: list[Flag] = []
    odd = [loc for loc in loci if loc.unexplained and loc.status == "estimated"]
    if len(odd) >= 2:
        listed = "; ".join(f"{loc.marker}: {', '.join(loc.unexplained)}" for loc in odd)
        flags.append(
            Flag(
                "unexplained_alleles",
                "warning",
                f"alleles that no reference explains at {len(odd)} loci ({listed}): a third contributor "
                "(contamination, another donor) or a wrong reference",
            )
        )
    if len(biopsy) and biopsy["area"].isna().all() and biopsy["height"].notna().any():
        flags.append(
            Flag("heights_used", "info", "the export has no peak areas: peak heights are used")
        )
    if threshold > s.analytical_threshold:
        flags.append(
            Flag(
                "export_threshold",
                "info",
                f"the biopsy export holds no peak under {threshold:.0f} RFU: an absent allele is taken to be "
                "below that, not below the analytical threshold",
            )
        )
    return flags
