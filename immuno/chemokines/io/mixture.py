"""Gaussian mixtures fitted by EM, and density peaks, in numpy: how bead populations are found.

Bead arrays read on a flow cytometer (LEGENDplex) are told apart by where their events
fall, not by a region number the instrument writes: two bead groups by size (forward and
side scatter), then bead IDs by the intensity of a classification dye. Both are dense,
nearly Gaussian clouds on a log scale, among sparse debris and doublets. The model here
is a mixture of ``k`` Gaussians (full covariances) plus one uniform component over the
data's box that takes the sparse events, so that debris never drags a bead population.

Starting points come from density peaks (a smoothed histogram's local maxima), which
need no randomness, and from seeded k-means++ draws; EM is run from each and the fit of
highest likelihood kept. The result is deterministic for a seed, and on well-separated
beads the same for every seed (the peak start and the random starts meet at one optimum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: EM stops when the mean log-likelihood per event improves by less than this
_TOL = 1e-6
_MAX_ITER = 300
#: smallest variance kept, in squared log10 units: a population of identical values
#: (saturated events) must not collapse a component to a point
_MIN_VAR = 1e-6


@dataclass(frozen=True)
class Mixture:
    """A fitted mixture: ``k`` Gaussians and a uniform background.

    Attributes
    ----------
    weights
        ``(k + 1,)`` mixing weights, the last one the background's.
    means
        ``(k, d)`` component means.
    covariances
        ``(k, d, d)`` component covariances.
    background_density
        Density of the uniform component (1 / volume of the data's box).
    log_likelihood
        Mean log-likelihood per event of the fitted data.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    background_density: float
    log_likelihood: float

    def _log_parts(self, x: np.ndarray) -> np.ndarray:
        d = x.shape[1]
        maha = self.mahalanobis2(x)
        _sign, logdet = np.linalg.slogdet(self.covariances)
        out = np.empty((x.shape[0], maha.shape[1] + 1))
        out[:, :-1] = np.log(self.weights[:-1]) - 0.5 * (maha + logdet + d * np.log(2 * np.pi))
        out[:, -1] = np.log(max(self.weights[-1], 1e-300)) + np.log(self.background_density)
        return out

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """``(n, k + 1)`` posterior probability of each component (background last)."""
        parts = self._log_parts(x)
        top = parts.max(axis=1, keepdims=True)
        p = np.exp(parts - top)
        return p / p.sum(axis=1, keepdims=True)

    def mahalanobis2(self, x: np.ndarray) -> np.ndarray:
        """``(n, k)`` squared Mahalanobis distance of each event to each component."""
        inverse = np.linalg.inv(self.covariances)
        out = np.empty((x.shape[0], self.means.shape[0]))
        for j in range(self.means.shape[0]):
            diff = x - self.means[j]
            out[:, j] = np.einsum("ni,ij,nj->n", diff, inverse[j], diff)
        return out


def _box_density(x: np.ndarray) -> float:
    span = np.maximum(x.max(axis=0) - x.min(axis=0), 1e-3)
    return float(1.0 / np.prod(span))


def fit_em(
    x: np.ndarray, means: np.ndarray, covariances: np.ndarray, background: float = 0.05
) -> Mixture:
    """Fit a Gaussian mixture with a uniform background by EM from the given start.

    Parameters
    ----------
    x
        ``(n, d)`` events (already on the log scale).
    means, covariances
        The start: ``(k, d)`` and ``(k, d, d)``.
    background
        Starting weight of the uniform component.

    Returns
    -------
    Mixture
    """
    n, d = x.shape
    k = means.shape[0]
    weights = np.append(np.full(k, (1.0 - background) / k), background)
    mix = Mixture(weights, means.copy(), covariances.copy(), _box_density(x), -np.inf)
    last = -np.inf
    eye = np.eye(d) * _MIN_VAR
    for _ in range(_MAX_ITER):
        parts = mix._log_parts(x)
        top = parts.max(axis=1, keepdims=True)
        total = top[:, 0] + np.log(np.exp(parts - top).sum(axis=1))
        ll = float(total.mean())
        resp = np.exp(parts - total[:, None])
        mass = resp.sum(axis=0) + 1e-12
        new_means = (resp[:, :k].T @ x) / mass[:k, None]
        new_covs = np.empty((k, d, d))
        for j in range(k):
            diff = x - new_means[j]
            new_covs[j] = (resp[:, j, None] * diff).T @ diff / mass[j] + eye
        mix = Mixture(mass / n, new_means, new_covs, mix.background_density, ll)
        if ll - last < _TOL:
            break
        last = ll
    return mix


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` starting means drawn by k-means++ (each next one far from those chosen)."""
    chosen = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min([np.sum((x - c) ** 2, axis=1) for c in chosen], axis=0)
        p = d2 / d2.sum() if d2.sum() > 0 else None
        chosen.append(x[rng.choice(len(x), p=p)])
    return np.array(chosen)


def _smooth(h: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D or 2-D histogram, separable, edges padded with zeros."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    out = h.astype(float)
    for axis in range(h.ndim):
        out = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, out)
    return out


@dataclass(frozen=True)
class Peak:
    """A local maximum of a smoothed density: where, how high."""

    position: np.ndarray
    height: float
    #: how far the density falls, on the higher of its two sides, before rising to another
    #: peak (1-D only): a tight population stands out by nearly its whole height
    prominence: float = float("nan")


def density_peaks_1d(v: np.ndarray, bandwidth: float) -> list[Peak]:
    """Local maxima of the density of ``v`` (Gaussian kernel of ``bandwidth``), tallest first.

    The histogram's bins are a quarter of the bandwidth, so that two populations a few
    bandwidths apart show as two peaks.
    """
    step = bandwidth / 4.0
    lo, hi = float(v.min()) - 3 * bandwidth, float(v.max()) + 3 * bandwidth
    edges = np.arange(lo, hi + step, step)
    h, _ = np.histogram(v, bins=edges)
    dens = _smooth(h, 4.0) / (len(v) * step)
    centres = 0.5 * (edges[:-1] + edges[1:])
    inner = (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])
    idx = np.flatnonzero(inner) + 1
    peaks = []
    for i in idx:
        # the lowest point on each side before the density climbs above this peak again
        left = dens[: i + 1][::-1]
        right = dens[i:]
        sides = []
        for side in (left, right):
            higher = np.flatnonzero(side > dens[i])
            stop = higher[0] if len(higher) else len(side)
            sides.append(float(side[:stop].min()))
        peaks.append(Peak(np.array([centres[i]]), float(dens[i]), float(dens[i] - max(sides))))
    return sorted(peaks, key=lambda p: -p.height)


def density_peaks_2d(x: np.ndarray, bins: int = 64, sigma: float = 1.5) -> list[Peak]:
    """Local maxima of the smoothed 2-D histogram of ``x`` over its 0.5-99.5 % box, tallest
    first (a maximum must exceed its eight neighbours)."""
    lo = np.percentile(x, 0.5, axis=0)
    hi = np.percentile(x, 99.5, axis=0)
    hx = np.linspace(lo[0], hi[0], bins + 1)
    hy = np.linspace(lo[1], hi[1], bins + 1)
    h, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[hx, hy])
    s = _smooth(h, sigma)
    pad = np.pad(s, 1, constant_values=-1.0)
    centre = pad[1:-1, 1:-1]
    is_max = np.ones_like(centre, dtype=bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                is_max &= centre > pad[1 + dx : bins + 1 + dx, 1 + dy : bins + 1 + dy]
    cx = 0.5 * (hx[:-1] + hx[1:])
    cy = 0.5 * (hy[:-1] + hy[1:])
    peaks = [
        Peak(np.array([cx[i], cy[j]]), float(s[i, j]))
        for i, j in zip(*np.nonzero(is_max), strict=True)
    ]
    return sorted(peaks, key=lambda p: -p.height)
