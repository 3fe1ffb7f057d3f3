"""Standard-curve mathematics: the 5PL / 4PL model, its weighted fit and inverse.

The curve is ``y = d + (a - d) / (1 + (x / c) ** b) ** g`` (4PL: g = 1), fitted on net
MFI of the individual standard wells by least squares with 1/y^2 weights, bounded
parameters and several starting points (a single start lands in poor local minima on
real plates). Parameters are searched as (a, d, log c, b, log g) with an analytic
Jacobian and a small Levenberg-Marquardt loop, which keeps a 30-analyte plate well
under a second. The acceptance rules applied to a plate's standards live in
:mod:`immuno.chemokines.fit.standards`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit


@dataclass
class CurveParams:
    """Coefficients of a 5PL curve ``y = d + (a - d) / (1 + (x / c) ** b) ** g``."""

    a: float
    b: float
    c: float
    d: float
    g: float = 1.0

    def as_array(self) -> np.ndarray:
        return np.array([self.a, self.b, self.c, self.d, self.g], dtype=float)

    @property
    def ec50(self) -> float:
        """Concentration giving the response halfway between the asymptotes."""
        return float(self.c * (2.0 ** (1.0 / self.g) - 1.0) ** (1.0 / self.b))


def predict(p: CurveParams, x: np.ndarray | float) -> np.ndarray:
    """Response of the curve at concentrations ``x`` (x >= 0)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return p.d + (p.a - p.d) / (1.0 + (x / p.c) ** p.b) ** p.g


def back_calculate(p: CurveParams, y: np.ndarray | float) -> np.ndarray:
    """Concentration for responses ``y``: ``c * (((a - d) / (y - d)) ** (1 / g) - 1) ** (1 / b)``.

    NaN where ``y`` is not strictly between the asymptotes: beyond an asymptote the curve
    gives no number.
    """
    y = np.asarray(y, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = (p.a - p.d) / (y - p.d)
        inner = ratio ** (1.0 / p.g) - 1.0
        x = p.c * inner ** (1.0 / p.b)
    lo, hi = min(p.a, p.d), max(p.a, p.d)
    ok = (y > lo) & (y < hi) & np.isfinite(x) & (inner > 0)
    return np.where(ok, x, np.nan)


@dataclass
class CurveFit:
    """Result of one least-squares fit."""

    params: CurveParams | None
    model: str
    converged: bool
    message: str
    r2: float = math.nan
    n_points: int = 0
    #: residual SD of the weighted fit; with 1/y^2 weights, the relative SD of one well
    residual_sd: float = math.nan


def _model(theta: np.ndarray, u: np.ndarray, five: bool) -> tuple[np.ndarray, np.ndarray]:
    """Response and Jacobian at log-concentrations ``u`` for theta = (a, d, log c, b[, log g])."""
    a, d, lc, b = (float(t) for t in theta[:4])
    g = math.exp(theta[4]) if five else 1.0
    du = u - lc
    z = np.minimum(np.maximum(b * du, -700.0), 700.0)
    L = np.logaddexp(0.0, z)  # log(1 + (x/c)^b)
    h = np.exp(-g * L)
    f = d + (a - d) * h
    # one array, filled column by column: these small fits are called thousands of times
    jac = np.empty((len(u), 5 if five else 4))
    jac[:, 0] = h
    jac[:, 1] = 1.0 - h
    t = (a - d) * g * h * expit(z)
    jac[:, 2] = t * b
    jac[:, 3] = -t * du
    if five:
        jac[:, 4] = -(a - d) * g * L * h
    return f, jac


def _levenberg_marquardt(
    resid_jac, theta: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_iter: int = 200
) -> tuple[np.ndarray, float, bool]:
    """Projected Levenberg-Marquardt for a handful of parameters.

    Small dense problems (5 parameters, ~16 points) spend most of a general solver's time
    in bookkeeping; this loop keeps a plate of 30 analytes well under a second. Steps are
    clipped into the box [lo, hi].
    """
    r, J = resid_jac(theta)
    cost = float(r @ r)
    lam = 1e-3
    history: list[np.ndarray] = []
    for _ in range(max_iter):
        history.append(r)
        A = J.T @ J
        grad = J.T @ r
        damped = A.copy()
        damped.flat[:: len(A) + 1] += lam * np.maximum(np.diag(A), 1e-12)
        try:
            step = np.linalg.solve(damped, -grad)
        except np.linalg.LinAlgError:
            lam *= 10.0
            continue
        cand = np.minimum(np.maximum(theta + step, lo), hi)
        r2, J2 = resid_jac(cand)
        c2 = float(r2 @ r2)
        if np.isfinite(c2) and c2 < cost:
            done = (cost - c2) <= 1e-10 * max(cost, 1e-300) or float(
                np.max(np.abs(cand - theta))
            ) < 1e-10
            theta, r, J, cost = cand, r2, J2, c2
            lam = max(lam / 3.0, 1e-12)
            if done or (len(history) > 20 and float(np.max(np.abs(r - history[-20]))) < 1e-5):
                return theta, cost, True
        else:
            lam *= 4.0
            if lam > 1e12:  # no step lowers the cost: a (bounded) minimum
                return theta, cost, True
    # a 5PL whose top is not reached drifts along a flat valley (d, c and g trade off);
    # with 1/y weights the residuals are relative, so when none of them moved by more
    # than 0.1 % over the last 20 steps the fitted responses are settled and usable
    flat = len(history) > 20 and float(np.max(np.abs(r - history[-20]))) < 1e-3
    return theta, cost, flat


def fit_curve(
    x: np.ndarray,
    y: np.ndarray,
    model: str = "5PL",
    weights: str = "1/y^2",
    start: CurveParams | None = None,
    reweight: bool = True,
    keep_family: bool = False,
) -> CurveFit:
    """Fit a 5PL (or 4PL) to standards.

    Parameters
    ----------
    x
        Expected concentrations (> 0) of the standard wells.
    y
        Their net MFI.
    model
        ``"5PL"`` or ``"4PL"``.
    weights
        ``"1/y^2"`` (default, relative residuals), ``"1/y"`` or ``"none"``.
    start
        A previous fit of nearly the same points (a refit after dropping a standard):
        used as an extra starting point that usually wins at once.
    reweight
        Refine with weights from the fitted curve instead of the observed responses
        (iteratively reweighted least squares). Observed-response weights favour wells
        that happen to read low and bias the curve near its lower end; they are steadier
        in the presence of a gross outlier, so the choice of standards to drop is made
        without reweighting and the final curve with it.
    keep_family
        Search only the 5PL family of ``start`` (a final refinement of a settled fit).

    Returns
    -------
    CurveFit
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    five = model.upper() == "5PL"
    n_par = 5 if five else 4
    if len(np.unique(x)) < n_par or len(x) <= n_par:
        return CurveFit(
            None,
            model,
            False,
            f"{len(np.unique(x))} distinct standard levels; a {model} needs at least {n_par + 1} points",
            n_points=len(x),
        )
    u = np.log(x)
    ymin, ymax = float(np.min(y)), float(np.max(y))
    span = max(ymax - ymin, 1e-9)
    floor = max(1.0, 1e-3 * abs(ymax))
    # residual weights: 1/y for "1/y^2" (relative residuals), 1/sqrt(y) for "1/y"
    power = {"1/y^2": 1.0, "1/y": 0.5}.get(weights, 0.0)
    w = 1.0 / np.maximum(np.abs(y), floor) ** power

    def resid_jac(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, jf = _model(theta, u, five)
        return (y - f) * w, -jf * w[:, None]

    # order of y along x tells where the response crosses its midpoint: a good log c start
    mid = ymin + 0.5 * span
    order = np.argsort(u)
    above = u[order][y[order] >= mid]
    lc_mid = float(above[0]) if len(above) else float(np.median(u))
    # A 5PL's asymmetry sits at one end of the curve: with b > 0 the curve bends slowly
    # into its upper asymptote, with b < 0 (a and d swapped) into its lower one. They are
    # two different families (only the 4PL is the same in both), and vendor software fits
    # either (Bio-Plex Manager writes negative exponents), so both are searched and the
    # lower weighted cost wins.
    families = (1.0, -1.0) if five else (1.0,)
    if keep_family and start is not None and five:
        families = (1.0 if start.b > 0 else -1.0,)
    best_of: dict[float, tuple[np.ndarray, float, bool, np.ndarray, np.ndarray]] = {}
    for sign in families:
        bottom = (ymin - span, ymin + 0.5 * span)
        top = (ymin + 0.3 * span, ymax + 100.0 * span)
        a_rng, d_rng = (bottom, top) if sign > 0 else (top, bottom)
        b_rng = (0.1, 10.0) if sign > 0 else (-10.0, -0.1)
        lo = [a_rng[0], d_rng[0], u.min() - 6.0, b_rng[0]]
        hi = [a_rng[1], d_rng[1], u.max() + 6.0, b_rng[1]]
        if five:
            lo.append(math.log(0.05))
            hi.append(math.log(20.0))
        lo_a, hi_a = np.array(lo), np.array(hi)
        low0, high0 = ymin - 0.01 * span, ymax + 0.5 * span
        a0, d0 = (low0, high0) if sign > 0 else (high0, low0)
        # few, spread starting points: log c at the response midpoint (asymmetry 1, 1/2, 2
        # for a 5PL) and one decade and a half higher; a short run from each, the best is refined
        starts = [(lc_mid, lg) for lg in ((0.0, math.log(0.5), math.log(2.0)) if five else (0.0,))]
        starts.append((lc_mid + 1.5 * sign, 0.0))
        thetas = [np.array([a0, d0, lc0, sign] + ([lg0] if five else [])) for lc0, lg0 in starts]
        if start is not None:
            # a refit: the previous solution (in its family) and one fresh start per family
            prev = [start.a, start.d, math.log(start.c), start.b] + (
                [math.log(start.g)] if five else []
            )
            thetas = ([np.array(prev)] if (start.b > 0) == (sign > 0) else []) + thetas[:1]
        for th in thetas:
            res = _levenberg_marquardt(resid_jac, np.clip(th, lo_a, hi_a), lo_a, hi_a, max_iter=15)
            if sign not in best_of or res[1] < best_of[sign][1]:
                best_of[sign] = (*res, lo_a, hi_a)
    # Each family's best start is refined; weights then follow the fitted curve rather
    # than the observed responses (iteratively reweighted): observed weights favour the
    # wells that happen to read low, which biases the curve near its lower end.
    final: tuple[np.ndarray, float, bool] | None = None
    w_y = w.copy()
    # a family whose best short run is far behind the other's is not refined
    lead = min(c for _, c, _, _, _ in best_of.values())
    for theta0, short, _, lo_a, hi_a in best_of.values():
        if short > 4.0 * lead:
            continue
        w[:] = w_y
        theta, cost, converged = _levenberg_marquardt(resid_jac, theta0, lo_a, hi_a, max_iter=300)
        for _ in range(8 if power and reweight else 0):
            f = _model(theta, u, five)[0]
            new = 1.0 / np.maximum(np.abs(f), floor) ** power
            if not np.all(np.isfinite(new)) or float(np.max(np.abs(new / w - 1.0))) < 1e-3:
                break
            w[:] = new
            theta, cost, converged = _levenberg_marquardt(
                resid_jac, theta, lo_a, hi_a, max_iter=300
            )
        if final is None or cost < final[1]:
            final = (theta.copy(), cost, converged)
    assert final is not None
    theta, cost, converged = final
    if not np.all(np.isfinite(theta)):
        return CurveFit(
            None, model, False, "the fit did not converge (no finite solution)", n_points=len(x)
        )
    th = theta
    params = CurveParams(
        a=float(th[0]),
        b=float(th[3]),
        c=float(math.exp(th[2])),
        d=float(th[1]),
        g=float(math.exp(th[4])) if five else 1.0,
    )
    pred = predict(params, x)
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    converged = converged and bool(np.isfinite(r2))
    resid_sd = math.sqrt(cost / (len(x) - n_par)) if len(x) > n_par else math.nan
    return CurveFit(
        params,
        model,
        converged,
        "ok" if converged else "no convergence within 300 iterations",
        r2,
        len(x),
        resid_sd,
    )


def precision_profile(
    p: CurveParams,
    relative_sd: float,
    x_low: float,
    x_high: float,
    max_cv: float = 20.0,
    n_wells: int = 1,
) -> tuple[float, float]:
    """Concentration range where the predicted CV of a back-calculated value is <= ``max_cv``.

    With a proportional response error (1/y^2 weights) of relative SD ``s``, a
    concentration's CV is ``s * y / |x dy/dx| / sqrt(n_wells)``: large where the curve
    flattens towards an asymptote. Searched within [x_low, x_high] (the standards).

    Returns
    -------
    (low, high)
        NaN, NaN when no concentration reaches the precision.
    """
    if not (math.isfinite(relative_sd) and x_low > 0 and x_high > x_low):
        return math.nan, math.nan
    x = np.geomspace(x_low, x_high, 400)
    z = (x / p.c) ** p.b
    elasticity = np.abs((p.d - p.a) * p.g * p.b * z * (1.0 + z) ** (-p.g - 1.0))  # x dy/dx
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = 100.0 * relative_sd * np.abs(predict(p, x)) / elasticity / math.sqrt(max(n_wells, 1))
    ok = np.isfinite(cv) & (cv <= max_cv)
    if not ok.any():
        return math.nan, math.nan
    return float(x[ok].min()), float(x[ok].max())
