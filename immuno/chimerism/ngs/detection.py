"""What the fitted likelihood says beyond the estimate: detection, limits, a third person.

* the boundary likelihood-ratio test of f = 0 with the background level as a nuisance;
* per-sample limit of blank and limit of detection (CLSI EP17);
* whether the non-recipient reads fit an unknown third contributor better than the donor.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from immuno.chimerism.ngs.likelihood import BetaBinomialLikelihood, Fit, boundary_p, profile_max

Z95 = 1.645


def detection_test(
    lik: BetaBinomialLikelihood, fit: Fit, rho_grid: np.ndarray, error_rel_se: float
) -> tuple[float, float]:
    """Boundary likelihood-ratio test of f = 0 with the background level as a nuisance.

    The background rates come from the references with a relative standard error; a
    slightly higher background could explain a few donor-allele reads as well as a tiny
    donor fraction can. So both f = 0 and f = f_hat are profiled over a common scale c
    of the error rates (log c ~ Normal(0, error_rel_se) from the references), and the
    statistic D = 2 (L(f_hat) - L(0)) is referred to 0.5 chi2_1.

    Returns
    -------
    tuple
        (D, p-value).
    """
    if fit.fraction <= 0:
        return 0.0, 1.0
    if error_rel_se <= 0:
        return fit.lr_statistic, fit.p_value
    z = np.linspace(-4.0, 4.0, 9)
    ll = lik.loglik(np.array([0.0, fit.fraction]), rho_grid, np.exp(z * error_rel_se))
    peak, _ = profile_max(ll)
    best, _ = profile_max(peak.reshape(2, len(z)) - 0.5 * z**2)
    stat = max(2 * float(best[1] - best[0]), 0.0)
    return stat, boundary_p(stat)


def limits(
    lik: BetaBinomialLikelihood,
    rho: float,
    genome_equivalents: float | None = None,
    error_rel_se: float = 0.0,
) -> tuple[float, float]:
    """Per-sample LoB and LoD after CLSI EP17 (z = 1.645) from this sample's depths and errors.

    LoB is the 95th percentile of the estimate when no donor DNA is present: half the
    estimates sit at 0, the others are half-normal, so 1.645 SD(0), where SD(0) adds to
    the sampling error the uncertainty of the background rate learnt from the
    references (relative SE ``error_rel_se``). LoD is the fraction detected 95 % of the
    time, ``LoD = LoB + 1.645 SD(LoD)``. With the input genome equivalents, LoD is at
    least 3 / GE (fewer donor genomes cannot be sampled).
    """
    dq = np.abs(lik.g_d - lik.g_r) / 2
    background_shift = error_rel_se * float((lik.e * lik.n).sum()) / float((dq * lik.n).sum())
    lob = Z95 * math.hypot(lik.sd(0.0, rho), background_shift)
    lod = lob
    for _ in range(50):
        new = lob + Z95 * lik.sd(min(lod, 1.0), rho)
        if abs(new - lod) < 1e-10:
            break
        lod = new
    if genome_equivalents:
        lod = max(lod, 3.0 / genome_equivalents)
    return lob, min(lod, 1.0)


def third_contributor_llr(
    k: np.ndarray,
    n: np.ndarray,
    g_r: np.ndarray,
    g_d: np.ndarray,
    e: np.ndarray,
    fraction: float,
    rho: float,
    allele_frequency: float = 0.5,
) -> float:
    """Best log-likelihood of an unknown contributor minus that of the known donor.

    Give every recipient-homozygous marker with reads, including those where the donor
    matches the recipient: foreign reads there cannot come from the donor. The unknown
    person's dose at each marker is a Hardy-Weinberg mixture at ``allele_frequency``.
    Both models are maximised over f within a factor 5 of the donor fit, at the donor
    fit's overdispersion (a contributor of a different size would not change the verdict).
    """
    f_grid = np.geomspace(max(fraction, 1e-6) / 5, min(max(fraction, 1e-6) * 5, 1.0), 8)
    rho_grid = np.array([rho])
    donor = BetaBinomialLikelihood(k, n, g_r, g_d, e).loglik(f_grid, rho_grid).max()
    af = allele_frequency
    prior = np.log(np.array([(1 - af) ** 2, 2 * af * (1 - af), af**2]))
    per_dose = np.stack(
        [
            BetaBinomialLikelihood(k, n, g_r, np.full_like(g_r, dose), e).per_marker(
                f_grid, rho_grid
            )
            for dose in (0.0, 1.0, 2.0)
        ]
    )
    mixture = np.logaddexp.reduce(per_dose + prior[:, None, None, None], axis=0).sum(axis=2)
    return float(mixture.max() - donor)


def excess_reads(
    x: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    e_var: np.ndarray,
    weights: np.ndarray,
    rho: float = math.inf,
    shared_var: float = 0.0,
) -> tuple[float, float, float]:
    """One-sided test of reads above background, with marker-to-marker spread.

    Parameters
    ----------
    x, n
        Reads of the allele in question and depth per marker.
    e, e_var
        Background rate per marker and its variance (uncertainty of the rate plus its
        between-marker spread).
    weights
        Expected reads per unit fraction and depth (``|g_D - g_R| / 2`` for a donor);
        they turn the excess into a fraction.
    rho
        Overdispersion of the reads (infinite: binomial).
    shared_var
        Variance of the background common to every marker (the uncertainty of a pooled
        rate): it adds ``(sum n)^2 shared_var``.

    Returns
    -------
    tuple
        ``(z, p, fraction)``: the p-value that the summed reads reach ``sum x`` when
        only background is present, as a normal z; the p-value itself; the fraction that
        would explain the excess, ``sum (x - n e) / sum n w``.

    Notes
    -----
    With about one background read per marker the sum is far from normal (a normal
    tail gave ten times too many calls at 0.1 %); it is referred to a negative binomial
    with the background's mean ``sum n e`` and variance
    ``sum n e (1 + n / rho) + n^2 var(e)`` (Poisson when that is no larger than the mean).
    """
    if not len(x) or float((n * weights).sum()) <= 0:
        return 0.0, 1.0, 0.0
    inflation = 1 + n / rho if math.isfinite(rho) else 1.0
    mean = float((n * e).sum())
    var = float((n * e * inflation + n**2 * e_var).sum()) + float(n.sum()) ** 2 * shared_var
    total = float(x.sum())
    if total <= 0 or mean <= 0:
        p = 1.0
    elif var <= mean * (1 + 1e-9):
        p = float(stats.poisson.sf(math.ceil(total) - 1, mean))
    else:
        size = mean**2 / (var - mean)
        p = float(stats.nbinom.sf(math.ceil(total) - 1, size, size / (size + mean)))
    z = float(stats.norm.isf(min(max(p, 1e-300), 1 - 1e-16)))
    fraction = float((x - n * e).sum() / (n * weights).sum())
    return z, p, fraction
