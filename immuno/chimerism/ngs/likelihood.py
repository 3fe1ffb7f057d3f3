"""The beta-binomial likelihood of allele counts, its profile over rho and the fit of f.

Reads of the alternate allele at marker ``i``: ``k_i ~ BetaBinomial(n_i, q_i rho,
(1 - q_i) rho)`` with ``q_i = p_i(f) (1 - e_i) + (1 - p_i(f)) e_i``,
``p_i(f) = ((1 - f) g_R + f g_D) / 2`` and ``e_i`` the marker's background error. ``rho``
(overdispersion shared by the markers) is profiled out.

The maximiser is built so that it provably reaches the maximum of the profile over the
whole of [0, 1]:

1. the profile is evaluated on a fixed grid of f covering [0, 1] (log-spaced near 0 and
   near 1, every 5 % in between), with rho maximised over a grid from 10^-1 to 10^8
   (0.25 decade steps, refined by a parabola);
2. the best grid point and its two neighbours bracket a maximum; a bounded Brent search
   over f inside that bracket, with rho maximised exactly at every f (a small stencil
   around the previous f's rho, moved until the maximum lies inside it), finds it;
3. the result is compared with every grid value and never worse than the best of them.

Interval ends are the roots of ``profile(f) - (L_max - drop)`` found by Brent's root
finder between the estimate and the grid point beyond the drop, so the estimate always
lies inside its own interval. Detection, limits and the third-contributor check are in
:mod:`immuno.chimerism.ngs.detection`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy.special import gammaln

CHI2_95 = 3.841458820694124

#: f grid: 0, log-spaced to 10 %, every 5 % to 90 %, log-spaced towards 1, and 1
F_GRID = np.unique(
    np.concatenate(
        [
            [0.0],
            np.logspace(-6, -1, 11),
            np.linspace(0.1, 0.9, 17),
            1 - np.logspace(-1, -6, 11),
            [1.0],
        ]
    )
)
#: log10 rho grid of the first pass (rho from 0.1: extreme overdispersion, to 1e8: binomial)
LOG_RHO_GRID = np.arange(-1.0, 8.001, 0.25)
#: half-width of the stencil (log10 rho) around the previous rho at every exact evaluation
_STENCIL = np.array([-0.1, 0.0, 0.1])
#: relative tolerance of f in the Brent search and the interval ends
_F_TOL = 1e-5


@dataclass
class BetaBinomialLikelihood:
    """Log-likelihood of one biopsy's counts as a function of (f, rho).

    Parameters
    ----------
    k, n
        Alternate reads and depth per marker.
    g_r, g_d
        Alternate-allele dose (0/1/2) of recipient and donor per marker.
    e
        Background error rate per marker.
    """

    k: np.ndarray
    n: np.ndarray
    g_r: np.ndarray
    g_d: np.ndarray
    e: np.ndarray

    def __post_init__(self) -> None:
        # markers sharing (g_R, g_D, e) share q(f): the q-only terms are computed per class;
        # with a consensus error (one rate) the doses alone make at most 9 classes
        if len(self.e) and np.all(self.e == self.e[0]):
            codes, self._inverse = np.unique(3 * self.g_r + self.g_d, return_inverse=True)
            self._cr, self._cd = np.floor(codes / 3), codes % 3
            self._ce = np.full(len(codes), self.e[0])
        else:
            self._inverse = np.arange(len(self.e))
            self._cr, self._cd, self._ce = self.g_r, self.g_d, self.e
        self._class_sizes = np.bincount(self._inverse, minlength=len(self._ce)).astype(float)

    def q(self, f: np.ndarray) -> np.ndarray:
        """Expected alternate-read fraction per marker, shape (len(f), markers)."""
        f = np.asarray(f, float)[:, None]
        p = ((1 - f) * self._cr + f * self._cd) / 2
        return (p * (1 - self._ce) + (1 - p) * self._ce)[:, self._inverse]

    def per_marker(
        self, f: np.ndarray, rho: np.ndarray, error_scale: np.ndarray | None = None
    ) -> np.ndarray:
        """Log-likelihood of every marker, shape (len(f) * len(error_scale), len(rho), markers).

        ``error_scale`` multiplies every background rate (default: 1); rows run over f
        first, then over the scales.
        """
        a, b, rho = self._shape_terms(f, rho, error_scale)
        per_class = (-gammaln(a) - gammaln(b))[:, :, self._inverse]
        a, b = a[:, :, self._inverse], b[:, :, self._inverse]
        norm = gammaln(rho)[:, None] - gammaln(self.n[None, :] + rho[:, None])
        return gammaln(self.k + a) + gammaln(self.n - self.k + b) + per_class + norm[None]

    def loglik(
        self, f: np.ndarray, rho: np.ndarray, error_scale: np.ndarray | None = None
    ) -> np.ndarray:
        """Log-likelihood at every (f, rho) pair, shape (len(f) * len(error_scale), len(rho)).

        The same sum as ``per_marker(...).sum(axis=2)``, with the per-class terms weighted
        by class sizes instead of being spread over the markers (the hot path).
        """
        a, b, rho = self._shape_terms(f, rho, error_scale)
        per_class = (-gammaln(a) - gammaln(b)) @ self._class_sizes
        a, b = a[:, :, self._inverse], b[:, :, self._inverse]
        data = (gammaln(self.k + a) + gammaln(self.n - self.k + b)).sum(axis=2)
        norm = (gammaln(rho)[:, None] - gammaln(self.n[None, :] + rho[:, None])).sum(axis=1)
        return data + per_class + norm[None, :]

    def _shape_terms(
        self, f: np.ndarray, rho: np.ndarray, error_scale: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beta parameters per class, ``q rho`` and ``(1 - q) rho``, shape (rows, rho, classes)."""
        f, rho = np.asarray(f, float)[:, None, None], np.asarray(rho, float)
        scale = np.ones(1) if error_scale is None else np.asarray(error_scale, float)
        e = np.clip(self._ce[None, None, :] * scale[None, :, None], 0.0, 0.5)
        p = ((1 - f) * self._cr + f * self._cd) / 2
        qc = (p * (1 - e) + (1 - p) * e).reshape(-1, len(self._ce))
        return qc[:, None, :] * rho[None, :, None], (1 - qc)[:, None, :] * rho[None, :, None], rho

    def sd(self, f: float, rho: float) -> float:
        """Standard error of f at ``f`` from the expected Fisher information."""
        q = self.q(np.array([f]))[0]
        dq = (self.g_d - self.g_r) / 2 * (1 - 2 * self.e)
        info = dq**2 * self.n * (rho + 1) / (q * (1 - q) * (rho + self.n))
        return 1 / math.sqrt(info.sum())


def profile_max(ll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum over an evenly log-spaced rho grid, refined by a parabola.

    Returns the maxima and their fractional positions on the grid.
    """
    i = np.clip(ll.argmax(axis=1), 1, ll.shape[1] - 2)
    rows = np.arange(ll.shape[0])
    left, mid, right = ll[rows, i - 1], ll[rows, i], ll[rows, i + 1]
    curv = left - 2 * mid + right
    inside = (curv < 0) & (mid >= left) & (mid >= right)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(inside, 0.5 * (left - right) / curv, 0.0)
        peak = np.where(inside, mid - (left - right) ** 2 / (8 * curv), ll.max(axis=1))
    return peak, i + shift


class ProfileLikelihood:
    """Profile log-likelihood of f: rho maximised at every f.

    Parameters
    ----------
    lik
        The likelihood.
    rho_prior
        Optional ``(centre, sd)`` of a normal penalty on log10 rho (e.g. the overdispersion
        the run's references show); None profiles rho freely.

    Notes
    -----
    :meth:`grid` evaluates many f at once on the whole rho grid (a parabola through the
    best three rho points: accurate to ~0.01 log-likelihood units, enough to bracket);
    calling the object evaluates one f exactly (rho maximised on a moving 3-point stencil
    0.1 decade apart, to ~1e-5 units).
    """

    def __init__(
        self, lik: BetaBinomialLikelihood, rho_prior: tuple[float, float] | None = None
    ) -> None:
        self.lik = lik
        self.rho_prior = rho_prior
        self._log_rho = 2.0
        self._cache: dict[float, tuple[float, float]] = {}
        self._grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def penalty(self, log_rho: np.ndarray) -> np.ndarray:
        """Log-penalty of log10 rho (0 without a prior)."""
        if self.rho_prior is None:
            return np.zeros_like(np.asarray(log_rho, float))
        centre, sd = self.rho_prior
        return -0.5 * ((np.asarray(log_rho, float) - centre) / sd) ** 2

    def grid(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate profile at every f, and the log10 rho where it peaks."""
        ll = (
            self.lik.loglik(np.asarray(f, float), 10.0**LOG_RHO_GRID)
            + self.penalty(LOG_RHO_GRID)[None, :]
        )
        peak, pos = profile_max(ll)
        step = LOG_RHO_GRID[1] - LOG_RHO_GRID[0]
        log_rho = LOG_RHO_GRID[0] + step * pos
        order = np.argsort(f)
        self._grid = (np.asarray(f, float)[order], peak[order], log_rho[order])
        return peak, log_rho

    def __call__(self, f: float) -> float:
        """The profile at one f (rho maximised to ~1e-4 decade)."""
        return self.at(f)[0]

    def at(self, f: float) -> tuple[float, float]:
        """(profile value, log10 rho at the maximum) at one f."""
        f = float(f)
        if f in self._cache:
            return self._cache[f]
        lo, hi = LOG_RHO_GRID[0], LOG_RHO_GRID[-1]
        # start where the grid pass (or the previous f) put rho's maximum
        start = (
            self._log_rho
            if self._grid is None
            else float(np.interp(f, self._grid[0], self._grid[2]))
        )
        centre = float(np.clip(start, lo, hi))
        fa = np.array([f])
        for _ in range(20):
            x = np.clip(centre + _STENCIL, lo, hi)
            y = self.lik.loglik(fa, 10.0**x)[0] + self.penalty(x)
            j = int(y.argmax())
            if j == 1 or x[j] in (lo, hi):
                break
            # the maximum lies beyond the stencil: one wider scan (2 decades each side)
            # finds it, then the stencil sits on it
            wide = np.clip(centre + np.arange(-2.0, 2.001, _STENCIL[2]), lo, hi)
            yw = self.lik.loglik(fa, 10.0**wide)[0] + self.penalty(wide)
            centre = float(wide[int(yw.argmax())])
        if j == 1 and x[0] < x[1] < x[2]:
            value, shift = _parabola(y)
            log_rho = float(x[1] + shift * (x[2] - x[1]))
        else:
            value, log_rho = float(y[j]), float(x[j])
        self._log_rho = log_rho
        self._cache[f] = (value, log_rho)
        return value, log_rho

    def rho_grid(self, log_rho: float, half_width: float = 1.0, step: float = 0.125) -> np.ndarray:
        """An evenly log-spaced rho grid around ``log_rho`` (for tests that profile rho)."""
        return 10.0 ** np.arange(log_rho - half_width, log_rho + half_width + 1e-9, step)


def _parabola(y: np.ndarray) -> tuple[float, float]:
    """Peak value and its offset (in steps from the middle) of a parabola through 3 points."""
    left, mid, right = y
    curv = left - 2 * mid + right
    if curv >= 0:
        return float(mid), 0.0
    shift = 0.5 * (left - right) / curv
    return float(mid - (left - right) ** 2 / (8 * curv)), float(shift)


@dataclass(frozen=True)
class Fit:
    """Maximum-likelihood donor fraction with its profile interval and detection test."""

    fraction: float
    lower: float
    upper: float
    loglik: float
    rho: float
    lr_statistic: float
    p_value: float


def fit_fraction(
    lik: BetaBinomialLikelihood,
    rho_prior: tuple[float, float] | None = None,
    drop: float = CHI2_95 / 2,
) -> tuple[Fit, ProfileLikelihood]:
    """Fit f on [0, 1] by profile likelihood.

    Parameters
    ----------
    lik
        The likelihood of one biopsy's counts.
    rho_prior
        Optional normal penalty on log10 rho, ``(centre, sd)``.
    drop
        Log-likelihood drop that defines the interval (``3.841 / 2`` for 95 %; a widened
        interval passes a larger drop).

    Returns
    -------
    tuple
        The :class:`Fit` (interval where ``L(f_hat) - L(f) <= drop``; detection p-value of
        the boundary likelihood-ratio test ``0.5 P(chi2_1 >= D)``, D = 2 (L(f_hat) - L(0)))
        and the profile.
    """
    prof = ProfileLikelihood(lik, rho_prior)
    f_hat, l_max = maximise(prof)
    lower, upper = interval(prof, f_hat, l_max, drop)
    stat = max(2 * (l_max - prof(0.0)), 0.0)
    p_value = boundary_p(stat) if f_hat > 0 else 1.0
    rho = 10.0 ** prof.at(f_hat)[1]
    return Fit(f_hat, lower, upper, l_max, rho, stat, p_value), prof


def maximise(prof: ProfileLikelihood) -> tuple[float, float]:
    """The f in [0, 1] where the profile peaks, and the peak value (steps 1-3 above)."""
    values, log_rho = prof.grid(F_GRID)
    j = int(values.argmax())
    prof._log_rho = float(log_rho[j])
    best_f, best = float(F_GRID[j]), prof(float(F_GRID[j]))
    lo, hi = float(F_GRID[max(j - 1, 0)]), float(F_GRID[min(j + 1, len(F_GRID) - 1)])
    res = optimize.minimize_scalar(
        lambda x: -prof(x),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": max(_F_TOL * hi, 1e-12)},
    )
    if -res.fun > best:
        best_f, best = float(res.x), float(-res.fun)
    # the bounded search never evaluates the bracket's ends: 0 and 1 are checked directly
    for end in (lo, hi):
        if end in (0.0, 1.0) and prof(end) > best:
            best_f, best = end, prof(end)
    return best_f, best


def interval(
    prof: ProfileLikelihood, f_hat: float, l_max: float, drop: float
) -> tuple[float, float]:
    """Where the profile stays within ``drop`` of ``l_max``, found by root finding."""
    target = l_max - drop

    def gap(f: float) -> float:
        return prof(f) - target

    ends = []
    for side in (-1, 1):
        edge = 0.0 if side < 0 else 1.0
        if f_hat == edge or gap(edge) >= 0:
            ends.append(edge)
            continue
        # the grid point nearest the estimate on this side that is beyond the drop (the
        # grid pass's values pick the candidates; the exact profile confirms them)
        grid_f, grid_value, _ = (
            prof._grid if prof._grid is not None else (F_GRID, *prof.grid(F_GRID))
        )
        side_mask = (grid_f < f_hat) if side < 0 else (grid_f > f_hat)
        beyond = grid_f[side_mask & (grid_value < target + 0.05)]
        beyond = beyond[::-1] if side < 0 else beyond
        far = next((float(x) for x in beyond if gap(float(x)) < 0), edge)
        a, b = (far, f_hat) if side < 0 else (f_hat, far)
        ends.append(float(optimize.brentq(gap, a, b, xtol=1e-12, rtol=_F_TOL)))
    return ends[0], ends[1]


def boundary_p(stat: float) -> float:
    """0.5 P(chi2_1 >= stat): the boundary likelihood-ratio p-value (f = 0 is an edge)."""
    return 0.5 * float(special.erfc(math.sqrt(stat / 2)))
