"""Donor fraction from XY-FISH nucleus counts, and their reader.

Donor nuclei / nuclei scored with a Clopper-Pearson interval; the count table has one row
per sample (``Sample``, ``Donor nuclei``, ``Nuclei scored``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from immuno.chimerism.common.intervals import clopper_pearson
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.common.tables import delimited, numbers, pick

FISH_MIN_NUCLEI = 300


def estimate_fish(donor_nuclei: int, nuclei: int, background: float = 0.0) -> ChimerismResult:
    """Donor fraction from XY-FISH: donor-sex nuclei among nuclei scored.

    Parameters
    ----------
    donor_nuclei, nuclei
        Nuclei with the donor's sex-chromosome pattern, and nuclei scored.
    background
        Rate of donor-pattern nuclei in recipient-only tissue (false signals).

    Returns
    -------
    ChimerismResult
        Clopper-Pearson 95 % interval; detected when its lower end exceeds the background.
        LoD is the upper bound that 0 of N nuclei would give (~3.7 / N): claiming < 1 %
        needs >= 300 nuclei.
    """
    if nuclei <= 0:
        return not_estimable("fish", [Flag("no_nuclei", "fail", "no nuclei were scored")])
    lower, upper = clopper_pearson(donor_nuclei, nuclei)
    lod = clopper_pearson(0, nuclei)[1]
    flags = []
    if nuclei < FISH_MIN_NUCLEI:
        flags.append(
            Flag(
                "few_nuclei",
                "warning",
                f"{nuclei} nuclei scored; < {FISH_MIN_NUCLEI} cannot support a claim below 1 %",
            )
        )
    return ChimerismResult(
        method="fish",
        fraction=donor_nuclei / nuclei,
        lower=lower,
        upper=upper,
        detected=lower > background,
        lod=lod,
        lob=background,
        flags=flags,
        n_informative=1,
    )


FISH_COLUMNS = ["sample_name", "donor_nuclei", "nuclei"]


def read_fish(path: str | Path) -> pd.DataFrame:
    """Read XY-FISH nucleus counts (``Sample``, ``Donor nuclei``, ``Nuclei scored``)."""
    path = Path(path)
    t = pick(
        delimited(path),
        path,
        {
            "sample_name": ("Sample", "Sample Name"),
            "donor_nuclei": ("Donor nuclei", "Donor"),
            "nuclei": ("Nuclei scored", "Nuclei", "Total nuclei"),
        },
    )
    t["donor_nuclei"] = numbers(t["donor_nuclei"], path, "Donor nuclei", count=True)
    t["nuclei"] = numbers(t["nuclei"], path, "Nuclei scored", count=True)
    return t[FISH_COLUMNS].reset_index(drop=True)
