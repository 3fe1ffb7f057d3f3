"""Several donors (a double graft) by STR: every locus fitted at once.

At a locus the allele proportions of the dose model are ``y_x = sum_j w_j c_j(x) / 2``
over the recipient and the donors (``w`` their fractions, ``c`` allele copies), linear in
the donors' fractions once the recipient's share is ``1 - sum f``. The informative loci
are stacked and the fractions fitted by bounded least squares (each in [0, 1], their sum
at most 1). A locus informs a donor only where that donor's alleles differ from the
others', so the fit uses exactly the markers that tell the donors apart. Each donor's
95 % interval is ``f +/- t_{L-1} SE`` with the leave-one-locus-out jackknife SE over the L
loci used. An absent allele counts as 0 here (no censoring), and loci are weighted
equally.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.str.loci import Locus, locus_table
from immuno.chimerism.str.peaks import StrSettings


def _copies(alleles: tuple[str, ...], allele: str) -> float:
    return (
        2.0 if len(set(alleles)) == 1 and allele in alleles else (1.0 if allele in alleles else 0.0)
    )


def _rows(loc: Locus, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The locus's design rows (alleles x donors) and responses, on the proportion scale."""
    alleles = sorted(loc.areas)
    total = sum(loc.areas.values())
    y = np.array([loc.areas[a] / total for a in alleles])
    c_r = np.array([_copies(loc.recipient, a) for a in alleles])
    x = np.array(
        [
            [(_copies(loc.donors[d], a) - _copies(loc.recipient, a)) / 2 for d in ids]
            for a in alleles
        ]
    )
    return x, y - c_r / 2


def fit_fractions(loci: list[Locus], ids: list[str]) -> np.ndarray:
    """Least-squares donor fractions (each in [0, 1], summing to at most 1)."""
    parts = [_rows(loc, ids) for loc in loci]
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    res = optimize.lsq_linear(x, y, bounds=(0.0, 1.0))
    f = res.x
    if f.sum() > 1.0:
        cons = {"type": "ineq", "fun": lambda v: 1.0 - v.sum()}
        fit = optimize.minimize(
            lambda v: float(((x @ v - y) ** 2).sum()),
            f / f.sum(),
            method="SLSQP",
            bounds=[(0.0, 1.0)] * len(ids),
            constraints=[cons],
        )
        f = fit.x
    return np.asarray(f, float)


def estimate_mixture(loci: list[Locus], s: StrSettings, flags: list[Flag]) -> ChimerismResult:
    """One fraction per donor from the estimated loci of a biopsy (see the module docstring)."""
    ids = list(next((loc.donors for loc in loci if loc.donors), {}))
    table = locus_table(loci)
    usable = [
        loc
        for loc in loci
        if loc.status == "estimated" and not loc.saturated and sum(loc.areas.values()) > 0
    ]
    for loc in loci:
        if loc.status == "estimated" and loc not in usable:
            loc.status, loc.reason = (
                "set_aside",
                "saturated" if loc.saturated else "no signal at its alleles",
            )
    if len(usable) < 2:
        table = locus_table(loci)
        return not_estimable(
            "str",
            [
                *flags,
                Flag(
                    "few_informative_loci",
                    "fail",
                    f"{len(usable)} informative locus/loci with peaks; several donors "
                    "need at least 2",
                ),
            ],
            table,
        )
    f = fit_fractions(usable, ids)
    jack = np.array([fit_fractions(usable[:i] + usable[i + 1 :], ids) for i in range(len(usable))])
    n = len(usable)
    se = np.sqrt((n - 1) / n * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0))
    t = float(stats.t.ppf(0.975, n - 1))
    for loc in usable:
        loc.status, loc.reason = "used", "fitted with the other loci (several donors)"
    table = locus_table(loci)
    table["used"] = table["status"] == "used"
    components = []
    for k, d in enumerate(ids):
        specific = [
            loc
            for loc in usable
            if set(loc.donors[d])
            - set(loc.recipient)
            - set().union(*(loc.donors[o] for o in ids if o != d))
        ]
        seen = [
            loc
            for loc in specific
            if any(loc.areas.get(a, 0.0) > 0 for a in set(loc.donors[d]) - set(loc.recipient))
        ]
        lods = [
            s.analytical_threshold
            / (loc.per_copy_height * max(_copies(loc.donors[d], a) for a in loc.donors[d]))
            for loc in specific
            if loc.per_copy_height > 0
        ]
        lod = max(float(np.median(lods)) if lods else 0.05, s.lod_floor)
        detected = len(seen) >= 2 and f[k] > lod
        lower, upper = max(f[k] - t * se[k], 0.0), min(f[k] + t * se[k], 1.0)
        own: list[Flag] = []
        if len(specific) < 2:
            own.append(
                Flag(
                    "few_informative_loci",
                    "warning",
                    f"only {len(specific)} loci carry an allele of donor {d} that no other person has",
                )
            )
        if not detected:
            lower, upper = 0.0, max(upper, lod)
        components.append(
            ChimerismResult(
                method="str",
                fraction=float(f[k]),
                lower=lower,
                upper=upper,
                detected=detected,
                lod=lod,
                n_informative=len(specific),
                flags=own,
                markers=table,
                donor_id=d,
                details={
                    "se": float(se[k]),
                    "loci_used": float(n),
                    "loci_specific": float(len(specific)),
                },
            )
        )
    total = float(f.sum())
    return ChimerismResult(
        method="str",
        fraction=total,
        lower=math.nan,
        upper=math.nan,
        detected=any(c.detected for c in components),
        lod=min(c.lod for c in components),
        n_informative=n,
        flags=flags,
        markers=table,
        components=components,
        details={"loci_used": float(n), "donors": float(len(ids))},
    )
