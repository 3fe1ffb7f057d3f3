"""Donor fraction without references: wide allele-count tables, recipient read from the sample.

Some panels report one row per allele of each SNP (``<group>_<SNP>_A``, ``..._B``) and
one column per sample, with a few metadata rows on top (DonorGenotypeFree's MOAT panel
results). :func:`read_allele_matrix` turns such a table into the long count table of
one sample (the two most-read alleles of each SNP across the file as ref/alt; rows that
are not SNP alleles, such as HLA variants or ZFX/ZFY/SRY, and metadata rows are left
out and never echoed: they may hold names).

When neither reference is available, :func:`estimate_genotype_free` reads the recipient
(the major contributor) from the sample itself: markers where the major allele holds at
least 70 % of the reads are taken as recipient-homozygous, and the donor's dose there is
unknown (0, 1 or 2 copies of the other allele with Hardy-Weinberg weights at allele
frequency 1/2, or as given). The beta-binomial likelihood, summed over those doses, is
maximised over f in [0, 0.5] with rho profiled. It assumes the donor is the minor
contributor and unrelated; without references there is no check of that, and the
result says so.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import gammaln

from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.common.tables import delimited, numbers
from immuno.chimerism.ngs.detection import limits
from immuno.chimerism.ngs.likelihood import (
    CHI2_95,
    LOG_RHO_GRID,
    BetaBinomialLikelihood,
    boundary_p,
)
from immuno.errors import UserError

_ALLELE_ROW = re.compile(r"^(?P<marker>.+?)\s*_(?P<allele>[A-Da-d])$")
#: the major allele's share of reads above which a marker is taken as recipient-homozygous
MAJOR_SHARE = 0.7
BACKGROUND = 1e-3


def is_allele_matrix(text: str) -> bool:
    """A wide table whose first column names alleles (``..._A``, ``..._B``) row by row."""
    first = [ln.split(",")[0].strip() for ln in text.splitlines()[1:80] if ln.strip()]
    hits = sum(bool(_ALLELE_ROW.match(c)) for c in first)
    return len(first) >= 10 and hits >= 0.5 * len(first)


def read_allele_matrix(path: str | Path, sample_name: str) -> pd.DataFrame:
    """One sample's column of a wide allele-count table, as a long count table.

    Parameters
    ----------
    path
        The table (first column: allele row names; one column per sample).
    sample_name
        The sample's column.

    Returns
    -------
    pandas.DataFrame
        ``sample_name``, ``marker``, ``ref``, ``alt``, ``depth``, ``ref_count``,
        ``alt_count`` (see :data:`immuno.chimerism.ngs.exports.COUNT_COLUMNS`).
    """
    path = Path(path)
    df = delimited(path)
    label = df.columns[0]
    samples = list(df.columns[1:])
    if sample_name not in samples:
        raise UserError.single(
            str(path),
            f"no sample column {sample_name!r}; the table has {len(samples)} "
            f"sample columns: {', '.join(samples[:10])}",
        )
    names = df[label].astype(str).str.strip()
    match = names.str.extract(_ALLELE_ROW)
    rows = df[match["marker"].notna().to_numpy()]
    match = match[match["marker"].notna()]
    counts = pd.DataFrame(
        {
            "marker": match["marker"].str.strip().str.replace(r"^FF_", "", regex=True),
            "allele": match["allele"].str.upper(),
        }
    )
    for s in samples:
        counts[s] = numbers(rows[s], path, s, allow_missing=True, count=True)
    counts = counts.fillna(0.0)
    out = []
    for marker, g in counts.groupby("marker", sort=False):
        if len(g) < 2:
            continue
        top = (
            g.assign(total=g[samples].sum(axis=1))
            .sort_values("total", ascending=False, kind="stable")
            .head(2)
        )
        ref, alt = top.iloc[0], top.iloc[1]
        out.append(
            {
                "sample_name": sample_name,
                "marker": marker,
                "ref": ref["allele"],
                "alt": alt["allele"],
                "ref_count": float(ref[sample_name]),
                "alt_count": float(alt[sample_name]),
            }
        )
    table = pd.DataFrame(out)
    table["depth"] = table["ref_count"] + table["alt_count"]
    return table[["sample_name", "marker", "ref", "alt", "depth", "ref_count", "alt_count"]]


def _mixture_loglik(
    f: np.ndarray, log_rho: np.ndarray, k: np.ndarray, n: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """log sum_g P(g) BB(k | n, q(f, g)) summed over markers, at every (f, log10 rho)."""
    f = np.atleast_1d(np.asarray(f, float))[:, None, None, None]
    rho = 10.0 ** np.atleast_1d(np.asarray(log_rho, float))[None, :, None, None]
    dose = np.array([0.0, 1.0, 2.0])[None, None, :, None]
    p = f * dose / 2
    q = p * (1 - BACKGROUND) + (1 - p) * BACKGROUND
    a, b = q * rho, (1 - q) * rho
    ll = (
        gammaln(k + a)
        + gammaln(n - k + b)
        - gammaln(a)
        - gammaln(b)
        + gammaln(rho)
        - gammaln(n + rho)
    )
    mixed = np.logaddexp.reduce(ll + np.log(prior)[None, None, :, None], axis=2)
    return mixed.sum(axis=2)


def estimate_genotype_free(
    sample: pd.DataFrame, allele_frequency: float = 0.5, major_share: float = MAJOR_SHARE
) -> ChimerismResult:
    """The donor fraction of a sample without its references (see the module docstring).

    Parameters
    ----------
    sample
        The sample's counts (``marker``, ``depth``, ``alt_count``).
    allele_frequency
        Frequency of the recipient's missing allele in the population, for the donor's
        unknown dose.
    major_share
        Share of reads of the major allele above which a marker is taken as
        recipient-homozygous.
    """
    n = sample["depth"].to_numpy(float)
    alt = sample["alt_count"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        minor = np.minimum(alt, n - alt)
        share = 1 - minor / n
    use = (n > 0) & (share >= major_share)
    k, n = minor[use], n[use]
    if len(k) < 5:
        return not_estimable(
            "ngs",
            [
                Flag(
                    "too_few_informative_markers",
                    "fail",
                    f"{len(k)} markers look recipient-homozygous; at least 5 are needed "
                    "without references",
                )
            ],
        )
    af = allele_frequency
    prior = np.array([(1 - af) ** 2, 2 * af * (1 - af), af**2])
    f_grid = np.concatenate([[0.0], np.logspace(-4, math.log10(0.5), 30)])
    values = _mixture_loglik(f_grid, LOG_RHO_GRID, k, n, prior)
    j, r = np.unravel_index(int(values.argmax()), values.shape)
    log_rho = float(LOG_RHO_GRID[r])

    def profile(f: float) -> float:
        grid = log_rho + np.arange(-1.0, 1.01, 0.05)
        return float(_mixture_loglik(np.array([f]), grid, k, n, prior).max())

    lo, hi = f_grid[max(j - 1, 0)], f_grid[min(j + 1, len(f_grid) - 1)]
    res = optimize.minimize_scalar(
        lambda x: -profile(x), bounds=(lo, hi), method="bounded", options={"xatol": 1e-7}
    )
    f_hat, l_max = (float(res.x), -float(res.fun))
    if profile(0.0) >= l_max:
        f_hat, l_max = 0.0, profile(0.0)
    target = l_max - CHI2_95 / 2

    def gap(x: float) -> float:
        return profile(x) - target

    lower = (
        0.0 if f_hat == 0 or gap(0.0) >= 0 else float(optimize.brentq(gap, 0.0, f_hat, xtol=1e-9))
    )
    upper = 0.5 if gap(0.5) >= 0 else float(optimize.brentq(gap, f_hat, 0.5, xtol=1e-9))
    stat = max(2 * (l_max - profile(0.0)), 0.0)
    p_value = boundary_p(stat) if f_hat > 0 else 1.0
    flags = [
        Flag(
            "no_references",
            "warning",
            "estimated without recipient and donor references: the recipient is read from the sample (the "
            "major contributor) and the donor's alleles are unknown; neither a swap nor a third person can "
            "be checked",
        )
    ]
    # limits as for a donor carrying the missing allele at its expected dose (2 x frequency)
    typical = BetaBinomialLikelihood(
        k, n, np.zeros(len(k)), np.full(len(k), 2 * af), np.full(len(k), BACKGROUND)
    )
    lob, lod = limits(typical, 10.0**log_rho)
    table = sample.assign(used=use)
    return ChimerismResult(
        method="ngs",
        fraction=f_hat,
        lower=lower,
        upper=upper,
        detected=bool(p_value < 0.01 and f_hat > lob),
        lod=lod,
        lob=lob,
        p_value=p_value,
        n_informative=int(use.sum()),
        flags=flags,
        markers=table,
        details={
            "rho": 10.0**log_rho,
            "loglik": l_max,
            "lr_statistic": stat,
            "allele_frequency": af,
        },
    )
