"""Several donors (a double graft) from NGS allele counts: one fraction per donor.

The same beta-binomial model as for one donor, with the alternate-allele fraction
``p_i = (g_R + sum_j f_j (g_j - g_R)) / 2`` over the donors ``j``. The markers used are
those where the recipient is homozygous and at least one donor carries the other allele
(donor-specific reads); a donor is told apart from the others by the markers where their
genotypes differ, and the joint fit weighs exactly those. Identical homozygous markers
show the background, as with one donor.

The fractions are fitted jointly (rho profiled with the same penalty as for one donor):
a grid over the simplex ``f_j >= 0, sum f_j <= 1`` finds the best start, then bounded
Brent searches one fraction at a time (the others and rho held at their best) until no
fraction moves. Each donor's 95 % interval is its profile: the other fractions and rho
maximised at every value, the ends where twice the drop reaches 3.841, widened by the
donor's sandwich ratio as for one donor. Detection per donor is the boundary likelihood-ratio
test of ``f_j = 0`` with the others free, at alpha 0.01, and an estimate above that
donor's limit of blank.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import gammaln

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.ngs.calibration import RHO_PRIOR_SD, marker_errors, reference_log_rho
from immuno.chimerism.ngs.counts import (
    MIN_INFORMATIVE,
    _aligned_reads,
    _background_rel_se,
    _unexplained,
)
from immuno.chimerism.ngs.detection import limits
from immuno.chimerism.ngs.genotypes import MIN_DEPTH, call_ngs_genotype
from immuno.chimerism.ngs.likelihood import (
    CHI2_95,
    LOG_RHO_GRID,
    BetaBinomialLikelihood,
    boundary_p,
)
from immuno.chimerism.ngs.references import ALPHA

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

    def __init__(self, k: np.ndarray, n: np.ndarray, g_r: np.ndarray, g_donors: np.ndarray, e: np.ndarray,
                 rho_prior: tuple[float, float] | None = None) -> None:
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
        ll = (gammaln(self.k + a) + gammaln(self.n - self.k + b) - gammaln(a) - gammaln(b)).sum(axis=2)
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
        return (gammaln(self.k + a) + gammaln(self.n - self.k + b) - gammaln(a) - gammaln(b)
                + gammaln(rho) - gammaln(self.n + rho))

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


def maximise(lik: MixtureLikelihood, start: np.ndarray | None = None, fixed: tuple[int, float] | None = None,
             rounds: int = 50) -> tuple[np.ndarray, float]:
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
        lik._log_rho = float(LOG_RHO_GRID[int(lik.loglik(pts[j:j + 1], LOG_RHO_GRID)[0].argmax())])
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

            res = optimize.minimize_scalar(neg, bounds=(0.0, room), method="bounded",
                                           options={"xatol": max(_TOL * room, 1e-12)})
            candidates = [(float(res.x), -float(res.fun)), (0.0, -neg(0.0))]
            v, value = max(candidates, key=lambda c: c[1])
            if value > best + 1e-10:
                moved = max(moved, abs(v - f[i]))
                f[i], best = v, value
        if moved < 1e-9:
            break
    return f, best


def _profile_interval(lik: MixtureLikelihood, f_hat: np.ndarray, l_max: float, i: int,
                      drop: float) -> tuple[float, float]:
    """Donor ``i``'s interval: the others and rho maximised at every value of its fraction."""
    def gap(v: float) -> float:
        start = f_hat.copy()
        start[i] = v
        scale = (1 - v) / max(1e-12, f_hat.sum() - f_hat[i]) if f_hat.sum() - f_hat[i] > 1 - v else 1.0
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


def estimate_counts_donors(biopsy: pd.DataFrame, recipient: pd.DataFrame, donors: Mapping[str, pd.DataFrame],
                           replicates: Sequence[pd.DataFrame] = (), alpha: float = ALPHA,
                           min_depth: int = MIN_DEPTH, genome_equivalents: float | None = None) -> ChimerismResult:
    """One fraction per donor from NGS allele counts (see the module docstring).

    Parameters
    ----------
    biopsy, recipient
        Count tables (``marker``, ``depth``, ``alt_count``).
    donors
        The donors' count tables by donor id (two or more).
    replicates
        Pure-recipient replicates for the per-marker background.
    alpha
        Level of each donor's detection test.
    min_depth
        Reference markers with fewer reads get no genotype.
    genome_equivalents
        Input DNA (genome equivalents), bounding each donor's LoD at 3 / GE.

    Returns
    -------
    ChimerismResult
        ``components`` holds one result per donor (``donor_id``); ``markers`` the
        per-marker table with every donor's dose.
    """
    ids = list(donors)
    rec_calls = call_ngs_genotype(recipient, min_depth)
    don_calls = {d: call_ngs_genotype(t, min_depth) for d, t in donors.items()}
    names = pd.Index(rec_calls["marker"].astype(str))
    g_r = rec_calls["genotype"].to_numpy(float)
    g = np.vstack([pd.Series(c["genotype"].to_numpy(float), index=c["marker"].astype(str)).reindex(names).to_numpy()
                   for c in don_calls.values()])
    called = ~np.isnan(g_r) & ~np.isnan(g).any(axis=0)
    people = [("recipient", g_r), *((f"donor {d}", g[k]) for k, d in enumerate(ids))]
    for (a_name, a), (b_name, b) in itertools.combinations(people, 2):
        if called.any() and np.array_equal(a[called], b[called]):
            flag = "donor_identical_to_recipient" if a_name == "recipient" else "identical_donors"
            return not_estimable("ngs", [Flag(flag, "fail", f"the {a_name} and {b_name} references agree at all "
                                              f"{int(called.sum())} called markers; check the reference files")])
    others = [(donors[d], don_calls[d]) for d in ids[1:]]
    pooled = marker_errors(recipient, rec_calls, donors[ids[0]], don_calls[ids[0]], replicates, other_donors=others)
    log_rho = reference_log_rho([(recipient, rec_calls), *((donors[d], don_calls[d]) for d in ids)],
                                pooled.rate * 0 + pooled.pooled)
    errors = marker_errors(recipient, rec_calls, donors[ids[0]], don_calls[ids[0]], replicates,
                           log_rho=log_rho, other_donors=others)
    table = pd.DataFrame({"marker": names[called], "g_recipient": g_r[called],
                          **{f"g_donor_{d}": g[k][called] for k, d in enumerate(ids)}})
    for col, series in (("error_rate", errors.rate), ("error_var", errors.variance),
                        ("error_shared_var", errors.shared_variance)):
        table[col] = table["marker"].map(series).fillna(errors.pooled if col == "error_rate" else 0.0).to_numpy(float)
    gd = g[:, called]
    hom = np.isin(table["g_recipient"].to_numpy(), (0, 2))
    differs = (gd != table["g_recipient"].to_numpy()[None, :]).any(axis=0)
    depth, alt = _aligned_reads(biopsy, table["marker"])
    reads = depth > 0
    use = hom & differs & reads
    companions = hom & ~differs & reads
    table["depth"], table["alt_count"] = depth, alt
    table["status"] = np.where(use, "used", np.where(companions, "background", "set_aside"))
    table["reason"] = np.where(use, "a donor carries an allele the recipient lacks",
                               np.where(companions, "every person homozygous for the same allele: background",
                                        np.where(~reads, "no reads in the biopsy",
                                                 "recipient heterozygous: left out at low fractions")))
    if use.sum() < MIN_INFORMATIVE:
        return not_estimable("ngs", [Flag("too_few_informative_markers", "fail",
                                          f"{int(use.sum())} donor-specific marker(s) with reads; at least "
                                          f"{MIN_INFORMATIVE} are needed")], table, n_informative=int(use.sum()))
    fitted = use | companions
    e = table["error_rate"].to_numpy(float)
    lik = MixtureLikelihood(alt[fitted], depth[fitted], table["g_recipient"].to_numpy(float)[fitted], gd[:, fitted],
                            e[fitted], (log_rho, RHO_PRIOR_SD) if log_rho is not None else None)
    f_hat, l_max = maximise(lik)
    rho = 10.0**lik._log_rho
    with np.errstate(invalid="ignore", divide="ignore"):
        table["vaf"] = alt / depth
    table["informative"] = differs
    p_fit = (lik.g_r + f_hat @ (lik.g_d - lik.g_r[None, :])) / 2
    table["expected_vaf"] = np.nan
    table.loc[fitted, "expected_vaf"] = p_fit * (1 - lik.e) + (1 - p_fit) * lik.e
    cols = {"depth": depth, "alt_count": alt, "g_recipient": table["g_recipient"].to_numpy(float),
            "error_rate": e, "error_var": table["error_var"].to_numpy(float),
            "error_shared_var": table["error_shared_var"].to_numpy(float)}
    details: dict[str, float] = {"rho": rho, "loglik": l_max, "donors": float(len(ids))}
    flags = _unexplained(cols, companions, rho, details)
    if f_hat.sum() > 0.5:
        flags.append(Flag("swapped_references", "warning",
                          f"the biopsy is {100 * f_hat.sum():.3g} % donor in all: check that the recipient and donor "
                          "references were not swapped"))
    rel_se = _background_rel_se(cols, use)
    components = [_component(lik, f_hat, l_max, k, d, rho, alpha, rel_se, fitted, use, table, cols, genome_equivalents)
                  for k, d in enumerate(ids)]
    return ChimerismResult(method="ngs", fraction=float(f_hat.sum()), lower=math.nan, upper=math.nan,
                           detected=any(c.detected for c in components), lod=min(c.lod for c in components),
                           n_informative=int(use.sum()), flags=flags, markers=table, details=details,
                           components=components)


def _component(lik: MixtureLikelihood, f_hat: np.ndarray, l_max: float, k: int, donor_id: str, rho: float,
               alpha: float, rel_se: float, fitted: np.ndarray, use: np.ndarray, table: pd.DataFrame,
               cols: dict[str, np.ndarray], genome_equivalents: float | None) -> ChimerismResult:
    """One donor's fraction, interval, detection and limits."""
    lik.profile(f_hat)
    widening = max(lik.sandwich_ratio(f_hat, k), 1.0)
    lower, upper = _profile_interval(lik, f_hat, l_max, k, widening * CHI2_95 / 2)
    _, l_zero = maximise(lik, f_hat * np.where(np.arange(len(f_hat)) == k, 0.0, 1.0), fixed=(k, 0.0), rounds=10)
    stat = max(2 * (l_max - l_zero), 0.0)
    p_value = boundary_p(stat) if f_hat[k] > 0 else 1.0
    g_j = table[f"g_donor_{donor_id}"].to_numpy(float)
    own = fitted & (g_j != cols["g_recipient"])
    single = BetaBinomialLikelihood(cols["alt_count"][own], cols["depth"][own], cols["g_recipient"][own], g_j[own],
                                    cols["error_rate"][own])
    lob, lod = limits(single, rho, None, rel_se) if own.any() else (math.nan, 1.0)
    detected = bool(p_value < alpha and f_hat[k] > lob)
    flags: list[Flag] = []
    if int((use & (g_j != cols["g_recipient"])).sum()) < MIN_INFORMATIVE:
        flags.append(Flag("few_informative_markers", "warning",
                          f"only {int((use & (g_j != cols['g_recipient'])).sum())} markers carry an allele of donor "
                          f"{donor_id} that the recipient lacks"))
    result = ChimerismResult(method="ngs", fraction=float(f_hat[k]), lower=lower, upper=upper, detected=detected,
                             lod=lod, lob=lob, p_value=p_value, n_informative=int(own.sum()), flags=flags,
                             markers=table, donor_id=donor_id,
                             details={"lr_statistic": stat, "interval_widening": widening})
    return apply_input_limit(result, genome_equivalents, "given DNA input")
