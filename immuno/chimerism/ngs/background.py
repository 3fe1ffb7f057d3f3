"""The donor fraction net of each site's own background, with the references' reads in the fit.

At a marker where the recipient is homozygous, call *foreign* the allele the recipient
lacks. A biopsy's foreign reads there come from two sources: the recipient's own
background at that site (sequencing error, index hopping, mapping, or earlier
microchimerism: whatever the recipient reference shows there) and the donor's DNA, which
carries the foreign allele at the share its own reference reads show (0.5 at a
heterozygous donor, less or more where the assay favours one allele). So at site ``i``::

    biopsy     k_i ~ Binomial(n_i, r_i),    r_i = (1 - f) b_i + f a_i
    recipient  x_i ~ Binomial(m_i, b_i)     (and every pure-recipient replicate)
    donor      y_i ~ Binomial(t_i, a_i)

``b_i`` (the site's background) and ``a_i`` (the donor's foreign share, i.e. the
per-marker allele bias) are nuisance parameters, both profiled out site by site at
every ``f``. The background rates of a run are spread around a common level: a beta
prior fitted (by marginal likelihood) to the recipient's foreign reads at every
recipient-homozygous site ties each ``b_i`` to that level as far as the sites agree, and
leaves a site that is truly noisier its own rate. The estimate is thereby net of every
site's background and its uncertainty is in the profile.

The sample's own overdispersion ``phi`` is read from its recipient-homozygous sites at
the first fit (:func:`dispersion`; at the non-informative ones, where recipient and donor
share a homozygous genotype, the biopsy shows only the background its reference
predicts): Pearson's statistic over its degrees of freedom, never below 1. The reads then
count ``1 / phi`` each in the likelihood (quasi-likelihood; the prior, refitted on the
references' effective counts, is not scaled). The 95 % interval is the profile
likelihood interval of that quasi-likelihood, its drop ``F(0.95; 1, df) / 2`` for the
estimated ``phi`` (``chi2_1`` when ``phi`` is not estimated), and the detection test is
the boundary likelihood-ratio test against the same reference. LoB and LoD follow CLSI
EP17 from this sample's own efficient information at ``f = 0`` and at the LoD (the
background's uncertainty included). The interval method is stated in every result as
:data:`INTERVAL_METHOD`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

#: the interval method, as the result states it
INTERVAL_METHOD = "profile_likelihood_net_background"
CHI2_95 = 3.841458820694124
Z95 = 1.645
#: fewer recipient-homozygous reference sites than this: the background level is doubtful
MIN_BACKGROUND_SITES = 10
#: fewer non-informative sites than this: the sample's overdispersion is not estimated
MIN_DISPERSION_SITES = 5
#: the f grid that brackets the maximum (log-spaced near 0, then linear)
F_GRID = np.unique(np.concatenate([[0.0], np.logspace(-6, -1, 21), np.linspace(0.1, 1.0, 19)]))
_EPS = 1e-9
#: the prior's largest concentration (pseudo-reads): where the sites agree to within their
#: reads, the marginal likelihood grows without bound; 1e5 already ties every site to the
#: common level (sd 7 % of a 0.2 % rate) and keeps the profile's sums exact to 1e-9
_LOG_MAX_CONCENTRATION = math.log(1e5)
#: Newton steps at most: from each reference's own rate 8 give the fraction and its
#: interval to 5 significant digits on real and simulated panels
_NEWTON_STEPS = 12
#: points of each refining pass (the maximum's and each interval end's, twice): an end is
#: then placed within 1/64 of its grid step before the linear interpolation
_FINE = 9


@dataclass(frozen=True)
class BackgroundPrior:
    """Beta prior of the sites' background rates: ``Beta(alpha, beta)``.

    Attributes
    ----------
    alpha, beta
        The prior's shape, ``1 + level c`` and ``1 + (1 - level) c`` for a concentration
        ``c``: its mode is the run's level, so the site rates (maximised, not averaged,
        in the profile) are shrunk towards that level and not below it.
    sites
        Recipient-homozygous reference sites it was fitted on.
    """

    alpha: float
    beta: float
    sites: int

    @property
    def level(self) -> float:
        """The run's background level (the prior's mode)."""
        return (self.alpha - 1.0) / (self.alpha + self.beta - 2.0)


def fit_background_prior(x: np.ndarray, m: np.ndarray) -> BackgroundPrior:
    """Fit the beta prior of the background rates to foreign reads ``x`` of depth ``m``.

    Parameters
    ----------
    x, m
        The recipient's foreign reads and depth at each recipient-homozygous site.

    Returns
    -------
    BackgroundPrior
        The pooled rate as its mode, and the concentration that maximises the marginal
        (beta-binomial) likelihood of the sites' reads on a grid of 41 values from 1 to
        :data:`_LOG_MAX_CONCENTRATION` (a quarter decade apart, refined by a parabola);
        with fewer than 3 sites with reads a weak prior at the pooled rate.
    """
    keep = m > 0
    x, m = np.asarray(x, float)[keep], np.asarray(m, float)[keep]
    pooled = (x.sum() + 0.5) / (m.sum() + 1.0) if len(m) else 1e-3
    if len(m) < 3:
        # too few sites to tell their spread: a weak prior (two pseudo-reads' worth)
        return BackgroundPrior(1.0 + 2.0 * pooled, 1.0 + 2.0 * (1 - pooled), int(len(m)))
    log_conc = np.linspace(0.0, _LOG_MAX_CONCENTRATION, 41)[:, None]
    conc = np.exp(log_conc)
    a, b = 1.0 + pooled * conc, 1.0 + (1 - pooled) * conc
    ll = (
        special.gammaln(x + a)
        + special.gammaln(m - x + b)
        - special.gammaln(m + a + b)
        - special.betaln(a, b)
    ).sum(axis=1)
    k = int(ll.argmax())
    best = float(log_conc[k, 0])
    if 0 < k < len(ll) - 1:
        left, mid, right = ll[k - 1 : k + 2]
        curv = left - 2 * mid + right
        if curv < 0:
            best += 0.5 * (left - right) / curv * float(log_conc[1, 0] - log_conc[0, 0])
    c = math.exp(best)
    return BackgroundPrior(1.0 + pooled * c, 1.0 + (1 - pooled) * c, int(len(m)))


@dataclass
class NetLikelihood:
    """Profile log-likelihood of ``f`` with every site's background and donor share profiled.

    Parameters
    ----------
    k, n
        The biopsy's foreign reads and depth at the informative recipient-homozygous sites.
    x, m
        The recipient's (with its pure replicates') foreign reads and depth there.
    y, t
        The donor reference's foreign reads and depth there.
    prior
        The background prior.
    phi
        The sample's overdispersion (>= 1): the reads' log-likelihood is divided by it
        (quasi-likelihood), the prior's is not, so a sample whose reads scatter more
        leans more on the run's common background level.
    """

    k: np.ndarray
    n: np.ndarray
    x: np.ndarray
    m: np.ndarray
    y: np.ndarray
    t: np.ndarray
    prior: BackgroundPrior
    phi: float = 1.0

    def __post_init__(self) -> None:
        # shape terms of the background's and the donor share's own likelihoods (+0.5 on
        # the donor's counts keeps its share off 0 and 1 where every read agrees)
        # quasi-likelihood: every sample's reads count 1 / phi each, the prior does not
        q = 1.0 / self.phi
        self._ab = q * self.x + self.prior.alpha - 1.0
        self._bb = q * (self.m - self.x) + self.prior.beta - 1.0
        self._ya = q * self.y + 0.5
        self._yb = q * (self.t - self.y) + 0.5
        self._k, self._nk = q * self.k, q * (self.n - self.k)
        self._b0 = (q * self.x + self.prior.alpha) / (
            q * self.m + self.prior.alpha + self.prior.beta
        )
        self._a0 = self._ya / (q * self.t + 1.0)
        self._best: tuple[np.ndarray, np.ndarray] | None = None

    def nuisance(
        self, f: np.ndarray, start: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The profiled ``(b, a)`` per site at every ``f``, shape (len(f), sites) each.

        Damped two-dimensional Newton steps from ``start`` (default: each reference's own
        rate): the objective is concave in (b, a) for a fixed f. A step may shrink a rate
        at most tenfold and move it at most half way to 1, so both stay inside (0, 1); a
        background that tends to 0 reaches ``1e-12`` in a few steps and stops there.
        """
        f = np.asarray(f, float)[:, None]
        shape = (f.shape[0], len(self._b0))
        if start is None:
            b = np.broadcast_to(self._b0, shape).copy()
            a = np.broadcast_to(self._a0, shape).copy()
        else:
            b, a = (np.array(v, float) for v in start)
        k, nk = self._k, self._nk
        ab, bb, ya, yb = self._ab, self._bb, self._ya, self._yb
        g, g2, f2, fg = 1 - f, (1 - f) ** 2, f**2, f * (1 - f)
        for _ in range(_NEWTON_STEPS):
            # written for few temporaries: this loop is the whole cost of a fit
            r = np.maximum(g * b + f * a, _EPS)
            ir, ir1 = 1 / r, 1 / (1 - r)
            kr, nr = k * ir, nk * ir1
            s = kr - nr
            w = kr * ir + nr * ir1
            ib, ib1, ia, ia1 = 1 / b, 1 / (1 - b), 1 / a, 1 / (1 - a)
            gb = ab * ib - bb * ib1 + g * s
            ga = ya * ia - yb * ia1 + f * s
            hbb = -(ab * ib * ib + bb * ib1 * ib1) - g2 * w
            haa = -(ya * ia * ia + yb * ia1 * ia1) - f2 * w
            hab = -fg * w
            det = hbb * haa - hab * hab
            step_b = b - (haa * gb - hab * ga) / det
            # where b is held back (a site whose background tends to 0) a takes its own
            # step given b: the joint step assumed a move of b that is not made
            new_b = np.minimum(np.maximum(step_b, np.maximum(0.1 * b, 1e-12)), 0.5 * (1 + b))
            da = np.where(new_b != step_b, -ga / haa, -(hbb * ga - hab * gb) / det)
            new_a = np.minimum(np.maximum(a + da, 0.1 * a), 0.5 * (1 + a))
            moved = max(
                float(np.abs(new_b - b).max(initial=0.0)), float(np.abs(new_a - a).max(initial=0.0))
            )
            b, a = new_b, new_a
            if moved < 1e-11:
                break
        return b, a

    def profile(self, f: np.ndarray, warm: bool = False) -> np.ndarray:
        """The profile log-likelihood at every ``f`` (constants dropped).

        ``warm`` starts every site's Newton steps from its solution at the best f of the
        previous call (for points near it: fewer steps than from the references' rates).
        """
        f = np.atleast_1d(np.asarray(f, float))
        start = None
        if warm and self._best is not None:
            start = tuple(np.broadcast_to(v, (len(f), len(v))) for v in self._best)
        b, a = self.nuisance(f, start)  # type: ignore[arg-type]
        r = np.clip((1 - f[:, None]) * b + f[:, None] * a, _EPS, 1 - _EPS)
        ll = (
            self._ab * np.log(b)
            + self._bb * np.log1p(-b)
            + self._ya * np.log(a)
            + self._yb * np.log1p(-a)
            + special.xlogy(self._k, r)
            + special.xlog1py(self._nk, -r)
        )
        total = ll.sum(axis=1)
        best = int(total.argmax())
        self._best = (b[best].copy(), a[best].copy())
        return total

    def information(self, f: float) -> float:
        """Efficient Fisher information of ``f`` (the nuisances' share removed)."""
        # at the references' own rates (posterior means): a site whose profiled background
        # tends to 0 would claim unlimited information
        b, a = self._b0, self._a0
        r = np.clip((1 - f) * b + f * a, _EPS, 1 - _EPS)
        w = self.n / self.phi / (r * (1 - r))
        # expected information of (f, b, a) per site; b's and a's own from their references
        # and the prior (its pseudo-depth), read as binomial information
        ib = (self.m / self.phi + self.prior.alpha + self.prior.beta) / (b * (1 - b))
        ia = (self.t / self.phi + 1.0) / (a * (1 - a))
        iff = w * (a - b) ** 2
        ifb, ifa = w * (a - b) * (1 - f), w * (a - b) * f
        ibb, iaa, iab = ib + w * (1 - f) ** 2, ia + w * f**2, w * f * (1 - f)
        det = ibb * iaa - iab**2
        schur = iff - (ifb**2 * iaa - 2 * ifb * ifa * iab + ifa**2 * ibb) / det
        return float(np.maximum(schur, 0.0).sum())


@dataclass(frozen=True)
class NetFit:
    """The fit of one biopsy net of background (fractions in [0, 1])."""

    fraction: float
    lower: float
    upper: float
    loglik: float
    lr_statistic: float
    p_value: float
    phi: float
    lob: float
    lod: float


def dispersion(
    k: np.ndarray,
    n: np.ndarray,
    x: np.ndarray,
    m: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    prior: BackgroundPrior,
    fraction: float,
) -> tuple[float, int]:
    """The sample's overdispersion from its recipient-homozygous sites, and how many there were.

    Each site's foreign reads ``k`` of ``n`` are compared with the rate its references
    predict at the estimated fraction: the recipient's ``x`` of ``m`` (with the prior) for
    the background, the donor's ``y`` of ``t`` for the donor's share. At the
    non-informative sites (recipient and donor homozygous for the same allele) that is
    the background alone. Pearson's statistic, with a variance that includes those rates'
    own uncertainty, over its degrees of freedom (one fraction fitted); never below 1, and
    1 with fewer than :data:`MIN_DISPERSION_SITES` sites.
    """
    keep = (n > 0) & (m > 0) & (t > 0)
    k, n, x, m, y, t = k[keep], n[keep], x[keep], m[keep], y[keep], t[keep]
    if len(k) < MIN_DISPERSION_SITES:
        return 1.0, int(len(k))
    depth = m + prior.alpha + prior.beta
    b_r = (x + prior.alpha) / depth
    b_d = (y + 0.5) / (t + 1.0)
    rate = (1 - fraction) * b_r + fraction * b_d
    var = n * rate * (1 - rate) + n**2 * (
        (1 - fraction) ** 2 * b_r * (1 - b_r) / depth + fraction**2 * b_d * (1 - b_d) / (t + 1.0)
    )
    stat = float(((k - n * rate) ** 2 / var).sum())
    return max(stat / (len(k) - 1), 1.0), int(len(k))


@dataclass(frozen=True)
class Maximum:
    """Where the profile peaks, and every (f, profile) pair evaluated on the way."""

    fraction: float
    loglik: float
    grid_f: np.ndarray
    grid_values: np.ndarray


def maximise(lik: NetLikelihood, bracket: tuple[float, float] | None = None) -> Maximum:
    """The f in [0, 1] where the profile peaks.

    The best point of :data:`F_GRID` (or the given ``bracket``, e.g. a previous fit's),
    refined twice on :data:`_FINE` points between the best point's neighbours, and by a
    parabola through the best three of the last pass: the profile is smooth and unimodal
    in f, and each pass profiles all its points at once (a scalar optimiser would profile
    one point per call).
    """
    if bracket is None:
        grid_f, grid_v = F_GRID, lik.profile(F_GRID)
        j = int(grid_v.argmax())
        lo, hi = float(F_GRID[max(j - 1, 0)]), float(F_GRID[min(j + 1, len(F_GRID) - 1)])
    else:
        (lo, hi), grid_f, grid_v = bracket, np.array([0.0]), lik.profile(np.array([0.0]))
    known_f, known_v = [grid_f], [grid_v]
    for _ in range(2):
        # two passes: the bracket's points, then the neighbours of the best of them
        fine = np.linspace(lo, hi, _FINE)
        fine_values = lik.profile(fine, warm=True)
        known_f.append(fine)
        known_v.append(fine_values)
        i = int(fine_values.argmax())
        lo, hi = float(fine[max(i - 1, 0)]), float(fine[min(i + 1, _FINE - 1)])
    f_hat, l_max = float(fine[i]), float(fine_values[i])
    if 0 < i < len(fine) - 1:
        left, mid, right = fine_values[i - 1 : i + 2]
        curv = left - 2 * mid + right
        if curv < 0:
            # the parabola's vertex (its value: the profile is quadratic to ~1e-6 there)
            shift = 0.5 * (left - right) / curv
            f_hat = float(fine[i] + shift * (fine[1] - fine[0]))
            l_max = float(mid - (left - right) ** 2 / (8 * curv))
    return Maximum(f_hat, l_max, np.concatenate(known_f), np.concatenate(known_v))


def fit_net(
    lik: NetLikelihood,
    genome_equivalents: float | None = None,
    df: int | None = None,
    peak: Maximum | None = None,
) -> NetFit:
    """The profile's maximum over [0, 1], its interval, the detection test and the limits.

    Parameters
    ----------
    lik
        The biopsy's likelihood net of background.
    genome_equivalents
        Input DNA, when known: the LoD is then at least 3 / GE.
    df
        Degrees of freedom of the likelihood's ``phi`` when it was estimated: the drop,
        the test and the limits then use F(1, df) and Student's t instead of chi2_1 and
        the normal, as quasi-likelihood does for an estimated dispersion (None: ``phi``
        is known).
    peak
        The maximum, when :func:`maximise` has already found it for ``lik``.

    Notes
    -----
    Each interval end is bracketed by the evaluated points on either side of the drop
    and narrowed 8-fold twice (both ends in the same passes) before a linear
    interpolation.
    """
    peak = maximise(lik) if peak is None else peak
    f_hat, l_max = peak.fraction, peak.loglik
    stat = max(2 * (l_max - float(peak.grid_values[0])), 0.0)
    if df is None:
        p_value = 0.5 * float(special.erfc(math.sqrt(stat / 2)))
        drop, z = CHI2_95 / 2, Z95
    else:
        p_value = 0.5 * float(stats.f.sf(stat, 1, df))
        drop, z = float(stats.f.isf(0.05, 1, df)) / 2, float(stats.t.isf(0.05, df))
    p_value = p_value if f_hat > 0 else 1.0
    lower, upper = _ends(lik, f_hat, l_max - drop, peak.grid_f, peak.grid_values)
    lob = z / math.sqrt(max(lik.information(0.0), 1e-300))
    lod = lob
    for _ in range(50):
        new = lob + z / math.sqrt(max(lik.information(min(lod, 1.0)), 1e-300))
        if abs(new - lod) < 1e-10:
            break
        lod = new
    if genome_equivalents:
        lod = max(lod, 3.0 / genome_equivalents)
    return NetFit(f_hat, lower, upper, l_max, stat, p_value, lik.phi, min(lob, 1.0), min(lod, 1.0))


def _ends(
    lik: NetLikelihood, f_hat: float, target: float, known_f: np.ndarray, known_v: np.ndarray
) -> tuple[float, float]:
    """Where the profile crosses ``target`` below and above ``f_hat`` (0 or 1 if it does not)."""
    missing = [
        side
        for side in (-1, 1)
        if not ((known_f < f_hat) if side < 0 else (known_f > f_hat))[known_v < target].any()
    ]
    if missing:
        # a ladder beyond the estimate on the sides where no evaluated point lies beyond
        # the drop yet (after a search in a narrow bracket)
        ladder = {
            -1: f_hat * np.array([0.9, 0.75, 0.5, 0.25, 0.0]),
            1: f_hat + (1 - f_hat) * np.logspace(-6, 0, 13),
        }
        extra = np.clip(np.concatenate([ladder[side] for side in missing]), 0.0, 1.0)
        known_f = np.concatenate([known_f, extra])
        known_v = np.concatenate([known_v, lik.profile(extra, warm=True)])
    brackets: list[tuple[float, float] | None] = []
    for side in (-1, 1):
        beyond = (known_f < f_hat) if side < 0 else (known_f > f_hat)
        below = known_f[beyond & (known_v < target)]
        if not len(below):
            brackets.append(None)
            continue
        far = float(below.max() if side < 0 else below.min())
        between = (
            (known_f > far) & (known_f <= f_hat)
            if side < 0
            else (known_f < far) & (known_f >= f_hat)
        )
        above = known_f[between & (known_v >= target)]
        near = float(above.min() if side < 0 else above.max()) if len(above) else f_hat
        brackets.append((near, far))
    open_ = [k for k, b in enumerate(brackets) if b is not None]
    values: dict[int, tuple[float, float, float, float]] = {}
    for _ in range(2):
        if not open_:
            break
        grids = [np.linspace(*brackets[k], _FINE) for k in open_]  # type: ignore[misc]
        v_all = lik.profile(np.concatenate(grids), warm=True).reshape(len(open_), _FINE)
        for k, grid, v in zip(open_, grids, v_all, strict=True):
            # the first point beyond the drop (grid[0] inside, grid[-1] beyond, to the
            # last digits of the profile)
            j = max(int(np.argmax(v < target)), 1) if (v < target).any() else _FINE - 1
            brackets[k] = (float(grid[j - 1]), float(grid[j]))
            values[k] = (float(grid[j - 1]), float(grid[j]), float(v[j - 1]), float(v[j]))
    ends = []
    for k, edge in ((0, 0.0), (1, 1.0)):
        if k not in values:
            ends.append(edge)
            continue
        near, far, v_near, v_far = values[k]
        ends.append(
            near if v_far >= v_near else near + (target - v_near) / (v_far - v_near) * (far - near)
        )
    return ends[0], ends[1]
