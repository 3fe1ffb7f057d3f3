"""The result of one chimerism estimate, whatever the method.

A donor fraction is never a bare number: it carries its 95 % interval, whether donor
DNA was detected, the level below which nothing could have been seen (LoD), and every
flag a reader must know. A fraction that could not be estimated is NaN with a ``fail``
flag saying why; it is never reported as 0 %.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

UNIT = "%"


@dataclass(frozen=True)
class Flag:
    """One thing a reader must know about an estimate (severity info/warning/fail)."""

    flag: str
    severity: str
    reason: str
    target: str = ""


@dataclass
class ChimerismResult:
    """A donor-fraction estimate for one biopsy.

    Attributes
    ----------
    method
        ``str``, ``ngs``, ``ddpcr``, ``qpcr`` or ``fish``.
    fraction, lower, upper
        Donor fraction and its 95 % interval, as fractions in [0, 1] (NaN when not
        estimable).
    detected
        Whether donor DNA was detected (the method's detection rule, see each estimator).
    lod, lob
        Limit of detection and limit of blank for this sample, as fractions.
    p_value
        Detection test p-value where the method has one.
    n_informative
        Informative loci or markers used.
    flags
        Everything a reader must know; a ``fail`` flag means no usable fraction.
    markers
        The per-locus / per-marker table behind the estimate.
    details
        Further numbers (overdispersion, SD/CV over loci, third-contributor check ...).
    donor_id
        The donor this fraction belongs to (set for each of several donors).
    components
        With several donors: one result per donor (``donor_id`` set); the biopsy's own
        ``fraction`` is then their sum, and its flags those that concern the whole sample.
    interval_method
        How ``lower`` and ``upper`` were computed (e.g.
        ``profile_likelihood_net_background``; see docs/chimerism.md); empty where the
        method does not say.
    """

    method: str
    fraction: float
    lower: float
    upper: float
    detected: bool
    lod: float
    lob: float = math.nan
    p_value: float = math.nan
    n_informative: int = 0
    flags: list[Flag] = field(default_factory=list)
    markers: pd.DataFrame = field(default_factory=pd.DataFrame)
    details: dict[str, Any] = field(default_factory=dict)
    donor_id: str = ""
    components: list[ChimerismResult] = field(default_factory=list)
    interval_method: str = ""

    @property
    def estimable(self) -> bool:
        """False when no fraction could be computed (see the ``fail`` flags)."""
        return not math.isnan(self.fraction)

    @property
    def failed(self) -> bool:
        """True when a ``fail`` flag makes the result unusable."""
        return any(f.severity == "fail" for f in self.flags)

    @property
    def flag(self) -> str:
        """The measurement-table flag: ``detected``, ``not_detected`` or ``not_estimated``."""
        if self.failed:
            return "not_estimated"
        return "detected" if self.detected else "not_detected"

    def summary(self) -> str:
        """One line a clinician can read, e.g. ``donor 0.42 % [0.21, 0.77], detected; LoD 0.06 %``.

        With several donors, one part per donor (``donor MSC01 ...; donor MSC02 ...``).
        """
        if self.components and not self.failed:
            parts = [
                c.summary().replace("donor ", f"donor {c.donor_id} ", 1) for c in self.components
            ]
            warnings = sorted({f.flag for f in self.flags if f.severity == "warning"})
            return " | ".join(parts) + (f" | flags: {', '.join(warnings)}" if warnings else "")
        if self.failed or (not self.estimable and math.isnan(self.upper)):
            reasons = (
                "; ".join(f.reason for f in self.flags if f.severity == "fail") or "no estimate"
            )
            return f"donor fraction not estimable ({self.method}): {reasons}"
        lod = f"LoD {_pct(self.lod)} %" if not math.isnan(self.lod) else "LoD unknown"
        ci = f"[{_pct(self.lower)}, {_pct(self.upper)}]"
        if self.detected:
            text = f"donor {_pct(self.fraction)} % {ci}, detected; {lod}"
        else:
            text = f"donor not detected (< {lod})"
            if self.estimable:
                text += f"; estimate {_pct(self.fraction)} % {ci}"
        warnings = [f.flag for f in self.flags if f.severity == "warning"]
        if warnings:
            text += f"; flags: {', '.join(sorted(set(warnings)))}"
        return text

    def measurement_rows(self) -> list[dict[str, Any]]:
        """The ``donor_fraction`` and ``donor_fraction_lod`` rows (values in %).

        With several donors, one pair per donor: ``donor_fraction_<donor_id>`` and
        ``donor_fraction_lod_<donor_id>``.
        """
        if self.components:
            rows = []
            for c in self.components:
                part = dataclasses.replace(c, flags=[*self.flags, *c.flags], components=[])
                for row in part.measurement_rows():
                    row["feature"] = f"{row['feature']}_{c.donor_id}"
                    rows.append(row)
            return rows
        ok = not self.failed
        return [
            {
                "assay": "chimerism",
                "feature": "donor_fraction",
                "value": 100 * self.fraction,
                "unit": UNIT,
                "lower": 100 * self.lower,
                "upper": 100 * self.upper,
                "flag": self.flag,
                "qc_pass": ok,
            },
            {
                "assay": "chimerism",
                "feature": "donor_fraction_lod",
                "value": 100 * self.lod,
                "unit": UNIT,
                "lower": math.nan,
                "upper": math.nan,
                "flag": None,
                "qc_pass": ok,
            },
        ]

    def all_flags(self) -> list[Flag]:
        """The flags of the biopsy and of each donor's component (targets name the donor)."""
        out = list(self.flags)
        for c in self.components:
            out += [
                dataclasses.replace(f, target=f.target or f"donor {c.donor_id}") for f in c.flags
            ]
        return out


def _pct(x: float) -> str:
    """A fraction as percent with enough digits for rare-cell levels."""
    if math.isnan(x):
        return "nan"
    p = 100 * x
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def not_estimable(
    method: str,
    flags: list[Flag],
    markers: pd.DataFrame | None = None,
    lod: float = math.nan,
    n_informative: int = 0,
) -> ChimerismResult:
    """A result that says why no fraction could be computed."""
    return ChimerismResult(
        method=method,
        fraction=math.nan,
        lower=math.nan,
        upper=math.nan,
        detected=False,
        lod=lod,
        flags=flags,
        n_informative=n_informative,
        markers=markers if markers is not None else pd.DataFrame(),
    )


def swapped_flag(fraction: float) -> Flag:
    """The warning for a biopsy that matches the donor reference better than the recipient's."""
    return Flag(
        "swapped_references",
        "warning",
        f"the biopsy is {100 * fraction:.3g} % donor: it matches the donor reference better than the "
        "recipient's; check that the recipient and donor references were not swapped",
    )
