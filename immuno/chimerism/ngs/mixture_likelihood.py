"""The likelihood of NGS allele counts over several donors' fractions, and its maximum.

The beta-binomial model of one donor with the alternate-allele fraction
``p_i = (g_R + sum_j f_j (g_j - g_R)) / 2`` over the donors ``j``, rho profiled with the
same penalty as for one donor; its joint maximum over the simplex ``f_j >= 0,
sum f_j <= 1`` (a grid for the start, then bounded Brent searches one fraction at a time
until no fraction moves); and one donor's profile interval, the other fractions and rho
maximised at every value. The estimate built on them is in
:mod:`immuno.chimerism.ngs.mixture`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import optimize
from scipy.special import gammaln

from immuno.chimerism.ngs.likelihood import LOG_RHO_GRID

_STENCIL = np.array([-0.1, 0.0, 0.1])


_TOL = 1e-7


class MixtureLikelihood:
    """Beta-binomial log-likelihood of a biopsy's counts over several donors' fractions.

    Parameters
    ----------
    k, n
        Alternate reads and depth per marker.
    g_r
        Recipient's alternate dose per marker.
    g_donors
        Donors' doses, shape (donors, markers).
    e
        Background error per marker.
    rho_prior
        ``(centre, sd)`` of the normal penalty on log10 rho, or None.
    """

    def __init__(
        self,
        k: np.ndarray,
        n: np.ndarray,
        g_r: np.ndarray,
        g_donors: np.ndarray,
        e: np.ndarray,
        rho_prior: tuple[float, float] | None = None,
    ) -> None:
        self.k, self.n, self.g_r, self.g_d, self.e = k, n, g_r, np.atleast_2d(g_donors), e
        self.rho_prior = rho_prior
        self._log_rho = 2.0

    def loglik(self, f: np.ndarray, log_rho: np.ndarray) -> np.ndarray:
        """Log-likelihood (penalised) at fraction vectors ``f`` (points, donors) and log10 rho values."""
        f = np.atleast_2d(np.asarray(f, float))
        rho = 10.0 ** np.asarray(log_rho, float)
        p = (self.g_r[None, :] + f @ (self.g_d - self.g_r[None, :])) / 2
        q = p * (1 - self.e) + (1 - p) * self.e
        a, b = q[:, None, :] * rho[None, :, None], (1 - q)[:, None, :] * rho[None, :, None]
        ll = (gammaln(self.k + a) + gammaln(self.n - self.k + b) - gammaln(a) - gammaln(b)).sum(
            axis=2
        )
        ll += (gammaln(rho)[:, None] - gammaln(self.n[None, :] + rho[:, None])).sum(axis=1)[None, :]
        if self.rho_prior is not None:
            ll += -0.5 * ((np.asarray(log_rho, float) - self.rho_prior[0]) / self.rho_prior[1]) ** 2
        return ll

    def per_marker(self, f: np.ndarray, log_rho: float) -> np.ndarray:
        """Each marker's log-likelihood at one fraction vector and log10 rho."""
        rho = 10.0**log_rho
        p = (self.g_r + np.asarray(f, float) @ (self.g_d - self.g_r[None, :])) / 2
        q = p * (1 - self.e) + (1 - p) * self.e
        a, b = q * rho, (1 - q) * rho
        return (
            gammaln(self.k + a)
            + gammaln(self.n - self.k + b)
            - gammaln(a)
            - gammaln(b)
            + gammaln(rho)
            - gammaln(self.n + rho)
        )

    def sandwich_ratio(self, f: np.ndarray, k: int) -> float:
        """Robust over model-based variance of donor ``k``'s fraction (1 when not judged),
        as :func:`immuno.chimerism.ngs.calibration.sandwich_ratio` for one donor."""
        carries = self.g_d[k] != self.g_r
        m = int(carries.sum())
        room = 1 - (f.sum() - f[k])
        if m < 3 or not 0 < f[k] < room:
            return 1.0
        # the donor's own standard error, from the expected information at fixed rho
        rho = 10.0**self._log_rho
        p = (self.g_r + f @ (self.g_d - self.g_r[None, :])) / 2
        q = p * (1 - self.e) + (1 - p) * self.e
        dq = (self.g_d[k] - self.g_r) / 2 * (1 - 2 * self.e)
        info = float((dq**2 * self.n * (rho + 1) / (q * (1 - q) * (rho + self.n))).sum())
        sd = 1 / math.sqrt(info) if info > 0 else math.inf
        if not math.isfinite(sd) or f[k] < 2 * sd or room - f[k] < 2 * sd:
            return 1.0  # on an edge the scores need not average zero
        h = 0.01 * sd
        step = np.zeros(len(f))
        step[k] = h
        ll = [self.per_marker(f + d * step, self._log_rho) for d in (-1, 0, 1)]
        score = (ll[2] - ll[0]) / (2 * h)
        curvature = -(ll[2] - 2 * ll[1] + ll[0]) / h**2
        a = float(curvature[carries].sum())
        return float((score[carries] ** 2).sum()) / a * m / (m - 1) if a > 0 else 1.0

    def profile(self, f: np.ndarray) -> float:
        """The log-likelihood at ``f`` with rho maximised (a moving 3-point stencil)."""
        lo, hi = LOG_RHO_GRID[0], LOG_RHO_GRID[-1]
        centre = self._log_rho
        for _ in range(40):
            x = np.clip(centre + _STENCIL, lo, hi)
            y = self.loglik(f, x)[0]
            j = int(y.argmax())
            if j == 1 or x[j] in (lo, hi):
                break
            centre = float(x[j])
        if j == 1 and x[0] < x[1] < x[2]:
            curv = y[0] - 2 * y[1] + y[2]
            if curv < 0:
                shift = 0.5 * (y[0] - y[2]) / curv
                self._log_rho = float(x[1] + shift * 0.1)
                return float(y[1] - (y[0] - y[2]) ** 2 / (8 * curv))
        self._log_rho = float(x[j])
        return float(y[j])


def _simplex_grid(donors: int) -> np.ndarray:
    """Start points: a few levels per donor (log-spaced and linear), their sum at most 1."""
    levels = np.unique(np.concatenate([[0.0], np.logspace(-4, -1, 4), np.linspace(0.2, 1.0, 5)]))
    pts = np.array([p for p in itertools.product(levels, repeat=donors) if sum(p) <= 1 + 1e-12])
    return pts


def maximise(
    lik: MixtureLikelihood,
    start: np.ndarray | None = None,
    fixed: tuple[int, float] | None = None,
    rounds: int = 50,
) -> tuple[np.ndarray, float]:
    """Coordinate ascent over the donors' fractions (``fixed``: one held at a value)."""
    d = lik.g_d.shape[0]
    if start is None:
        pts = _simplex_grid(d)
        if fixed is not None:
            pts = pts[np.isclose(pts[:, fixed[0]], 0.0)]
            pts[:, fixed[0]] = fixed[1]
            pts = pts[pts.sum(axis=1) <= 1 + 1e-12]
        values = lik.loglik(pts, LOG_RHO_GRID).max(axis=1)
        j = int(values.argmax())
        lik._log_rho = float(
            LOG_RHO_GRID[int(lik.loglik(pts[j : j + 1], LOG_RHO_GRID)[0].argmax())]
        )
        start = pts[j]
    f = np.array(start, float)
    if fixed is not None:
        f[fixed[0]] = fixed[1]
    best = lik.profile(f)
    for _ in range(rounds):
        moved = 0.0
        for i in range(d):
            if fixed is not None and i == fixed[0]:
                continue
            room = max(1.0 - (f.sum() - f[i]), 0.0)

            def neg(v: float, i: int = i) -> float:
                g = f.copy()
                g[i] = v
                return -lik.profile(g)

            res = optimize.minimize_scalar(
                neg,
                bounds=(0.0, room),
                method="bounded",
                options={"xatol": max(_TOL * room, 1e-12)},
            )
            candidates = [(float(res.x), -float(res.fun)), (0.0, -neg(0.0))]
            v, value = max(candidates, key=lambda c: c[1])
            if value > best + 1e-10:
                moved = max(moved, abs(v - f[i]))
                f[i], best = v, value
        if moved < 1e-9:
            break
    return f, best


def profile_interval(
    lik: MixtureLikelihood, f_hat: np.ndarray, l_max: float, i: int, drop: float
) -> tuple[float, float]:
    """Donor ``i``'s interval: the others and rho maximised at every value of its fraction."""

    def gap(v: float) -> float:
        start = f_hat.copy()
        start[i] = v
        scale = (
            (1 - v) / max(1e-12, f_hat.sum() - f_hat[i]) if f_hat.sum() - f_hat[i] > 1 - v else 1.0
        )
        others = [k for k in range(len(f_hat)) if k != i]
        start[others] *= min(scale, 1.0)
        return maximise(lik, start, fixed=(i, v), rounds=10)[1] - (l_max - drop)

    ends = []
    for edge in (0.0, 1.0):
        if f_hat[i] == edge or gap(edge) >= 0:
            ends.append(edge)
            continue
        steps = np.linspace(f_hat[i], edge, 11)[1:]
        far = next((float(v) for v in steps if gap(float(v)) < 0), edge)
        a, b = sorted((far, float(f_hat[i])))
        ends.append(float(optimize.brentq(gap, a, b, xtol=1e-9, rtol=1e-6)))
    return ends[0], ends[1]
