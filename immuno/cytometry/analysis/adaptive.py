"""Gates placed per sample from the data (in transformed coordinates).

Fixed gates do not transfer across batches and instrument drift, so a panel can ask for
a gate to be found on each sample:

- :func:`density_valley` - the low point of the smoothed 1-D density between a negative
  and a positive peak, searched only inside a window the panel gives (so a gate can
  never cut on the wrong side of a peak that lies outside the window);
- :func:`tail_threshold` - a percentile of a control tube (e.g. the 99.9th of the
  unstimulated tube's CD4+ events for a cytokine gate);
- :func:`singlet_ratio` - singlets as the events whose FSC-H/FSC-A ratio lies within
  median +/- k MAD (doublets have a larger area for the same height);
- :func:`lymphocyte_gmm` - the component of a 2-D Gaussian mixture on FSC-A/SSC-A
  closest to where the panel expects the lymphocytes.

Each returns a :class:`Placement`: the value(s) found, whether the panel's default had
to be used instead (``fallback``) and why, so the pipeline can flag the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numba
import numpy as np

from immuno.cytometry.analysis import order_stats

#: scale factor making the MAD a consistent estimator of the SD for normal data
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Placement:
    """Where an adaptive method put a gate on one sample.

    Attributes
    ----------
    method
        The method's name as the panel writes it.
    value
        What was found: a threshold (float), a pair of ratios, or a dict of ellipse
        parameters; the panel default when ``fallback`` is True.
    fallback
        True when the method could not find its feature and the default was used.
    detail
        Why the fallback was needed, or a short description of what was found.
    extra
        Diagnostics (peak positions, number of events used, ...), for QC tables.
    """

    method: str
    value: Any
    fallback: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _smoothed_density(x: np.ndarray, lo: float, hi: float, bins: int, bandwidth: float | None,
                      quartiles: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram density smoothed with a Gaussian kernel (a binned KDE, linear in events).

    ``quartiles`` are the 25th and 75th percentiles of ``x`` when the caller has them.
    """
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    step = edges[1] - edges[0]
    if bandwidth is None:
        # Silverman's rule on a robust spread, so a bright tail does not oversmooth the valley
        q1, q3 = quartiles if quartiles is not None else order_stats.percentile(x, [25, 75])
        iqr = q3 - q1
        spread = min(np.std(x), iqr / 1.349) if iqr > 0 else np.std(x)
        bandwidth = 0.9 * spread * len(x) ** -0.2 if spread > 0 else step
    sigma = max(bandwidth / step, 1.0)
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    density = np.convolve(counts.astype(float), kernel / kernel.sum(), mode="same")
    return centres, density / max(density.sum() * step, 1e-300)


def _peaks(d: np.ndarray, min_prominence: float) -> np.ndarray:
    """Local maxima of ``d`` that rise at least ``min_prominence`` above the higher of the
    two lowest points separating them from a higher point (or the edge) on either side."""
    # (scipy.signal.find_peaks does the same, but importing it costs ~2 s per process)
    candidates = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])) + 1
    keep = []
    for p in candidates:
        higher_left = np.flatnonzero(d[:p] > d[p])
        lo = higher_left[-1] if len(higher_left) else 0
        higher_right = np.flatnonzero(d[p + 1:] > d[p])
        hi = p + 1 + higher_right[0] if len(higher_right) else len(d)
        base = max(d[lo:p].min() if p > lo else d[p], d[p + 1:hi].min() if hi > p + 1 else d[p])
        if d[p] - base >= min_prominence:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64)


def density_valley(x: np.ndarray, window: tuple[float, float], default: float, *,
                   bins: int = 512, bandwidth: float | None = None, min_peak: float = 0.02,
                   max_valley_ratio: float = 0.8, min_events: int = 100) -> Placement:
    """Threshold at the density minimum between a negative and a positive peak.

    Parameters
    ----------
    x
        Transformed values of one channel (the parent population's events).
    window
        ``(low, high)``: the valley must lie inside it.
    default
        Threshold used when no valley is found.
    bins, bandwidth
        Resolution of the smoothed density; ``bandwidth`` in data units (Silverman's rule
        on a robust spread when None).
    min_peak
        A peak must rise above its surroundings by this fraction of the highest peak.
    max_valley_ratio
        The valley's density must be below this fraction of the lower of its two peaks.
    min_events
        Fewer events than this cannot define a density; the default is used.

    Returns
    -------
    Placement
        ``value`` is the threshold; ``extra`` holds the flanking peaks.
    """
    given = np.asarray(x)
    given = given[np.isfinite(given)]
    # percentiles are read on the values as given (float32 events select fastest; a
    # float cast is exact and keeps the order), the density on float64 values
    x = given.astype(float)
    lo_w, hi_w = float(window[0]), float(window[1])
    if len(x) < min_events:
        return Placement("density_valley", float(default), True,
                         f"only {len(x)} events (need {min_events}); default {default} used",
                         {"events": int(len(x))})
    lo, q1, q3, hi = order_stats.percentile(given, [0.1, 25, 75, 99.9])
    lo, hi = min(lo, lo_w), max(hi, hi_w)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    centres, dens = _smoothed_density(x, lo - pad, hi + pad, bins, bandwidth, quartiles=(q1, q3))
    peaks = _peaks(dens, min_peak * dens.max())
    best: tuple[float, int] | None = None
    for left, right in zip(peaks[:-1], peaks[1:], strict=True):
        valley = left + int(np.argmin(dens[left:right + 1]))
        if not lo_w <= centres[valley] <= hi_w:
            continue
        depth = dens[valley] / min(dens[left], dens[right])
        if depth <= max_valley_ratio and (best is None or dens[valley] < best[0]):
            best = (float(dens[valley]), valley)
    extra = {"events": int(len(x)), "peaks": [float(centres[p]) for p in peaks]}
    if best is None:
        return Placement("density_valley", float(default), True,
                         f"no valley between two peaks inside window [{lo_w}, {hi_w}]; "
                         f"default {default} used", extra)
    v = best[1]
    return Placement("density_valley", float(centres[v]), False,
                     f"valley at {centres[v]:.4g}", extra)


def tail_threshold(control: np.ndarray, percentile: float, default: float, *,
                   estimate: str = "negative_peak", min_events: int = 500) -> Placement:
    """Threshold at a percentile of a control tube's events.

    Parameters
    ----------
    control
        Transformed values of the channel in the control tube's parent population
        (e.g. the unstimulated tube's CD4+ T cells).
    percentile
        In percent, e.g. 99.9.
    default
        Used when the control has too few events to estimate the percentile.
    estimate
        ``"empirical"``: the percentile of all control events. ``"negative_peak"``: the
        percentile of the control's negative population, modelled as a normal
        distribution from its median and the spread of its upper half (scaled MAD).
        An unstimulated tube usually holds a few genuine cytokine producers (0.1-0.5 %);
        with the empirical 99.9th percentile they would pull the gate into the positive
        population, so the negative peak is the default.
    min_events
        Minimum number of control events.

    Returns
    -------
    Placement
    """
    given = np.asarray(control)
    given = given[np.isfinite(given)]  # order statistics on the values as given (exact)
    c = given.astype(float)
    if len(c) < min_events:
        return Placement("control_percentile", float(default), True,
                         f"control has {len(c)} events in the parent gate (need {min_events}); "
                         f"default {default} used", {"events": int(len(c))})
    if estimate == "empirical":
        value = float(order_stats.percentile(given, percentile))
        detail = f"{percentile}th percentile of {len(c)} control events"
        extra: dict[str, Any] = {"events": int(len(c))}
    elif estimate == "negative_peak":
        med = order_stats.median(given)
        upper = c[c > med] - med
        # the upper half-MAD describes the side the gate sits on; skew on the low side is irrelevant
        spread = MAD_SCALE * order_stats.median(upper) if len(upper) else 0.0
        value = med + NormalDist().inv_cdf(percentile / 100.0) * spread
        detail = (f"{percentile}th percentile of the negative peak of {len(c)} control events "
                  f"(median {med:.4g}, spread {spread:.3g})")
        extra = {"events": int(len(c)), "median": med, "spread": spread,
                 "empirical": float(order_stats.percentile(given, percentile))}
    else:
        raise ValueError(f"unknown estimate {estimate!r}")
    return Placement("control_percentile", value, False, detail, extra)


def singlet_ratio(area: np.ndarray, height: np.ndarray, k_mad: float = 4.0, *,
                  min_events: int = 100, min_inside: float = 0.5,
                  default: tuple[float, float] | None = None) -> Placement:
    """Ratio band ``height / area`` in median +/- k MAD.

    Parameters
    ----------
    area, height
        FSC-A and FSC-H on a linear (ratio-preserving) scale.
    k_mad
        Half-width of the band in scaled MADs.
    min_events
        Fewer events fall back to ``default``.
    min_inside
        If the band holds less than this fraction of the events the distribution has no
        clear singlet diagonal and the default is used.
    default
        ``(low_ratio, high_ratio)`` used on fallback.

    Returns
    -------
    Placement
        ``value`` is ``(low_ratio, high_ratio)``.
    """
    a = np.asarray(area, dtype=float)
    h = np.asarray(height, dtype=float)
    ok = np.isfinite(a) & np.isfinite(h) & (a > 0)
    ratio = h[ok] / a[ok]
    fallback_value = tuple(default) if default is not None else (0.0, np.inf)
    if len(ratio) < min_events:
        return Placement("singlet_ratio", fallback_value, True,
                         f"only {len(ratio)} events with positive area (need {min_events})",
                         {"events": int(len(ratio))})
    med = order_stats.median(ratio)
    mad = MAD_SCALE * order_stats.median(np.abs(ratio - med))
    low, high = med - k_mad * mad, med + k_mad * mad
    inside = float(np.mean((ratio >= low) & (ratio <= high)))
    extra = {"events": int(len(ratio)), "median_ratio": med, "mad": mad, "inside": inside}
    if mad <= 0 or inside < min_inside:
        return Placement("singlet_ratio", fallback_value, True,
                         f"no clear singlet diagonal (MAD {mad:.3g}, {inside:.0%} inside)", extra)
    return Placement("singlet_ratio", (low, high), False,
                     f"H/A ratio {med:.4g} +/- {k_mad} MAD", extra)


def singlet_polygon(low: float, high: float, max_area: float) -> tuple[tuple[float, float], ...]:
    """The ratio band as a polygon in (area, height) coordinates: a wedge from the origin."""
    return ((0.0, 0.0), (max_area, low * max_area), (max_area, high * max_area))


@dataclass(frozen=True)
class Mixture:
    """A fitted 2-D Gaussian mixture: ``weights`` (k,), ``means`` (k, 2), ``covariances`` (k, 2, 2)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    iterations: int


@numba.njit(cache=True, nogil=True)
def _em(pts, resp, max_iter, tol, reg):
    # EM for a 2-D, full-covariance mixture, from initial responsibilities: the M step
    # (weights, means, covariances + reg on the diagonal), the E step with log-sum-exp,
    # stopping when the mean log-likelihood gains less than tol; compiled, since the
    # arrays are small and numpy's per-call cost would dominate
    n, k = resp.shape
    weights = np.empty(k)
    means = np.empty((k, 2))
    covs = np.empty((k, 2, 2))
    logp = np.empty(k)
    det = np.empty(k)
    half_log_det = np.empty(k)
    log_w = np.empty(k)
    log_2pi = np.log(2 * np.pi)
    previous = -np.inf
    steps = 0
    while steps < max_iter:
        steps += 1
        for j in range(k):
            nk = 1e-12
            mx = 0.0
            my = 0.0
            for i in range(n):
                r = resp[i, j]
                nk += r
                mx += r * pts[i, 0]
                my += r * pts[i, 1]
            weights[j] = nk / n
            mx /= nk
            my /= nk
            means[j, 0], means[j, 1] = mx, my
            sxx = 0.0
            sxy = 0.0
            syy = 0.0
            for i in range(n):
                r = resp[i, j]
                dx = pts[i, 0] - mx
                dy = pts[i, 1] - my
                sxx += r * dx * dx
                sxy += r * dx * dy
                syy += r * dy * dy
            covs[j, 0, 0] = sxx / nk + reg
            covs[j, 0, 1] = sxy / nk
            covs[j, 1, 0] = sxy / nk
            covs[j, 1, 1] = syy / nk + reg
        for j in range(k):
            det[j] = covs[j, 0, 0] * covs[j, 1, 1] - covs[j, 0, 1] * covs[j, 0, 1]
            half_log_det[j] = 0.5 * np.log(det[j])
            log_w[j] = np.log(weights[j])
        total = 0.0
        for i in range(n):
            top = -np.inf
            for j in range(k):
                a, b, d = covs[j, 0, 0], covs[j, 0, 1], covs[j, 1, 1]
                dx = pts[i, 0] - means[j, 0]
                dy = pts[i, 1] - means[j, 1]
                m2 = (d * dx * dx - 2 * b * dx * dy + a * dy * dy) / det[j]
                logp[j] = -0.5 * m2 - log_2pi - half_log_det[j] + log_w[j]
                if logp[j] > top:
                    top = logp[j]
            acc = 0.0
            for j in range(k):
                logp[j] = np.exp(logp[j] - top)
                acc += logp[j]
            for j in range(k):
                resp[i, j] = logp[j] / acc
            total += top + np.log(acc)
        ll = total / n
        if ll - previous < tol:
            break
        previous = ll
    return weights, means, covs, steps


def fit_gaussian_mixture(pts: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 300,
                         tol: float = 1e-6, reg: float = 1e-6) -> Mixture:
    """Fit a k-component, full-covariance Gaussian mixture to 2-D points by EM.

    Seeded by k-means++ and a few k-means steps, so a seed gives the same fit. A small
    EM of our own: 2-D needs no library, and importing one costs more than the fit.

    Parameters
    ----------
    pts
        ``(n, 2)`` points.
    k
        Number of components.
    seed
        Seed of the k-means++ draw.
    max_iter, tol
        EM stops after ``max_iter`` steps or when the mean log-likelihood gains < ``tol``.
    reg
        Added to the covariance diagonals (keeps a component on a few identical points invertible).

    Returns
    -------
    Mixture
    """
    rng = np.random.default_rng(seed)
    n = len(pts)
    centres = [pts[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((pts - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(pts[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else pts[rng.integers(n)])
    c = np.array(centres)
    for _ in range(10):
        labels = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
        c = np.array([pts[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)])
    weights, means, covs, steps = _em(np.ascontiguousarray(pts, dtype=np.float64), np.eye(k)[labels],
                                      max_iter, tol, reg)
    return Mixture(weights, means, covs, steps)


def lymphocyte_gmm(x: np.ndarray, y: np.ndarray, expected: tuple[float, float], *,
                   components: int = 3, coverage: float = 0.95, max_distance: float | None = None,
                   min_weight: float = 0.05, max_events: int = 5000, min_events: int = 200,
                   seed: int = 0) -> Placement:
    """The Gaussian-mixture component nearest the expected lymphocyte position.

    Parameters
    ----------
    x, y
        FSC-A and SSC-A, transformed.
    expected
        Where the panel expects the lymphocyte cloud's centre.
    components
        Number of mixture components (lymphocytes, monocytes, debris ...).
    coverage
        Probability mass of the fitted component the ellipse holds (chi-square, 2 dof).
    max_distance
        If the nearest component's mean is farther than this from ``expected`` the
        feature is not found (fallback).
    min_weight
        Components lighter than this are ignored.
    max_events
        The mixture is fitted on an evenly spaced subsample of this size (deterministic).
    min_events
        Fewer events fall back.
    seed
        Seed of the mixture fit (results are deterministic for a seed).

    Returns
    -------
    Placement
        ``value`` is ``{"mean": (mx, my), "covariance": ((a, b), (b, d)),
        "distance_square": D2}`` or None on fallback.
    """
    xs, ys = np.asarray(x), np.asarray(y)
    finite = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    if len(finite) < min_events:
        return Placement("gmm", None, True, f"only {len(finite)} events (need {min_events})",
                         {"events": int(len(finite))})
    if len(finite) > max_events:
        # the evenly spaced subsample is taken before the points are stacked: the same
        # points, without a float64 copy of every event
        finite = finite[np.linspace(0, len(finite) - 1, max_events).astype(np.int64)]
    pts = np.column_stack([xs[finite].astype(float), ys[finite].astype(float)])
    gmm = fit_gaussian_mixture(pts, components, seed=seed)
    target = np.asarray(expected, dtype=float)
    dist = np.linalg.norm(gmm.means - target, axis=1)
    dist[gmm.weights < min_weight] = np.inf
    k = int(np.argmin(dist))
    extra = {"events": int(len(pts)), "weights": [float(w) for w in gmm.weights],
             "means": [[float(v) for v in m] for m in gmm.means]}
    if not np.isfinite(dist[k]) or (max_distance is not None and dist[k] > max_distance):
        return Placement("gmm", None, True,
                         f"no mixture component within {max_distance} of {tuple(expected)}", extra)
    cov = gmm.covariances[k]
    value = {"mean": (float(gmm.means[k][0]), float(gmm.means[k][1])),
             "covariance": ((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
             "distance_square": -2.0 * math.log1p(-coverage)}  # chi-square quantile, 2 dof
    return Placement("gmm", value, False,
                     f"component {k} (weight {gmm.weights[k]:.2f}) at "
                     f"({value['mean'][0]:.3g}, {value['mean'][1]:.3g})", extra)
