"""Intervals the methods share: a censored mean of per-locus values, a binomial proportion.

**Censored mean.** A locus whose contributor-specific allele is absent does not say "0 %": it says the
fraction is below what a peak at the detection threshold would give (or, for the other
person's allele, above). Treating it as 0 biases the mean down (at 23 % donor, loci where
a large donor allele dropped out read 0 %); leaving it out biases it up at low levels
(only the loci where the donor's peak happened to clear the threshold would count).
The per-locus values are modelled as normal around the fraction ``mu`` with spread
``sigma``; observed loci contribute their density, censored ones the probability of their
interval (a Tobit model). ``mu`` is the maximum-likelihood value within [0, 1]; its 95 %
interval is where the profile log-likelihood (``sigma`` maximised) stays within
``t_{n-1, 0.975}^2 / 2`` of the maximum: with every locus observed this is exactly the
familiar ``mean +/- t sd / sqrt(n)``.

**Binomial proportion.** The exact (Clopper-Pearson) interval of ``k`` successes in ``n``
trials, from beta quantiles: positive droplets among accepted ones (digital PCR), donor
nuclei among nuclei scored (XY-FISH).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

#: smallest spread allowed (fraction): loci never agree better than peak-area noise allows
SIGMA_FLOOR = 0.002


@dataclass(frozen=True)
class CensoredMean:
    """The fraction from observed and censored loci, with its interval."""

    mean: float
    lower: float
    upper: float
    sigma: float
    n: int


def censored_mean(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> CensoredMean:
    """Maximum-likelihood mean of observed values and interval-censored ones.

    Parameters
    ----------
    observed
        Per-locus values known exactly.
    lower, upper
        Bounds of the censored loci (same length; ``upper`` may be inf, ``lower`` -inf).

    Returns
    -------
    CensoredMean
        ``mean`` in [0, 1] and its interval (NaN ends with fewer than 2 loci).
    """
    observed = np.asarray(observed, float)
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    n = len(observed) + len(lower)
    if n == 0:
        return CensoredMean(math.nan, math.nan, math.nan, math.nan, 0)
    if len(lower) == 0:
        mean = float(observed.mean())
        sd = float(observed.std(ddof=1)) if n > 1 else math.nan
        if n < 2:
            return CensoredMean(mean, math.nan, math.nan, sd, n)
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        return CensoredMean(mean, max(mean - half, 0.0), min(mean + half, 1.0), sd, n)

    # sigma is profiled on a fine log grid (vectorised), refined by a parabola
    log_sigma = np.linspace(math.log(SIGMA_FLOOR), math.log(2.0), 121)
    sigma = np.exp(log_sigma)

    def nll(mu: np.ndarray) -> np.ndarray:
        """Negative log-likelihood at every (mu, sigma grid) pair, shape (len(mu), len(sigma))."""
        mu = np.atleast_1d(np.asarray(mu, float))[:, None, None]
        s = sigma[None, :, None]
        ll = stats.norm.logpdf(observed[None, None, :], mu, s).sum(axis=2)
        p = stats.norm.cdf(upper[None, None, :], mu, s) - stats.norm.cdf(
            lower[None, None, :], mu, s
        )
        return -(ll + np.log(np.maximum(p, 1e-300)).sum(axis=2))

    def profile_many(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = nll(mu)
        j = np.clip(values.argmin(axis=1), 1, len(sigma) - 2)
        rows = np.arange(len(values))
        left, mid, right = values[rows, j - 1], values[rows, j], values[rows, j + 1]
        curv = left - 2 * mid + right
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = (curv > 0) & (mid <= left) & (mid <= right)
            best = np.where(inside, mid - (left - right) ** 2 / (8 * curv), values.min(axis=1))
            shift = np.where(inside, 0.5 * (left - right) / curv, 0.0)
        return best, np.exp(log_sigma[j] + shift * (log_sigma[1] - log_sigma[0]))

    def profile(mu: float) -> float:
        return float(profile_many(np.array([mu]))[0][0])

    grid = np.linspace(0.0, 1.0, 201)
    values = profile_many(grid)[0]
    j = int(values.argmin())
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(
        profile, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7}
    )
    mu, best = (
        (float(res.x), float(res.fun))
        if res.fun < values[j]
        else (float(grid[j]), float(values[j]))
    )
    # where every locus only bounds the fraction (each allele of one person absent) the
    # likelihood is flat over the bounds' intersection: an intersection reaching 0 or 1
    # gives that end (nothing of that person was seen), as an all-absent donor gives 0
    for end in (0.0, 1.0):
        if profile(end) <= best + 1e-9:
            mu, best = end, min(best, profile(end))
    sigma_fit = float(profile_many(np.array([mu]))[1][0])
    if n < 2:
        return CensoredMean(mu, math.nan, math.nan, sigma_fit, n)
    drop = float(stats.t.ppf(0.975, n - 1)) ** 2 / 2

    def gap(m: float) -> float:
        return best + drop - profile(m)

    ends = []
    for edge, side in ((0.0, grid[grid < mu][::-1]), (1.0, grid[grid > mu])):
        if mu == edge or gap(edge) >= 0:
            ends.append(edge)
            continue
        far = next((float(x) for x in side if gap(float(x)) < 0), edge)
        a, b = sorted((far, mu))
        ends.append(float(optimize.brentq(gap, a, b, xtol=1e-9)))
    return CensoredMean(mu, ends[0], ends[1], sigma_fit, n)


def clopper_pearson(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion.

    Parameters
    ----------
    k
        Successes (positive partitions, donor nuclei).
    n
        Trials (accepted partitions, nuclei scored).
    level
        Two-sided coverage.

    Returns
    -------
    tuple of float
        ``(lower, upper)``; 0 when ``k`` is 0 and 1 when ``k`` is ``n``.
    """
    a = (1 - level) / 2
    lo = float(stats.beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi
