"""What a run's own references say about its error: background per marker, overdispersion,
and how much more the markers scatter than the read model allows.

* **Background per marker** (the limit of blank, marker by marker): the recipient
  reference is a blank for every marker where it is homozygous; reads of the other allele
  there are that marker's background. One reference at ~1000x sees about one such read
  per marker, so each marker's rate is shrunk towards the run's pooled rate with an
  empirical-Bayes beta prior whose spread is the between-marker variance of the
  homozygous calls of both references (method of moments). Markers that truly differ
  (a 10-fold noisier amplicon) keep their own rate; markers that do not are pooled.
  Pure-recipient replicates add their reads marker by marker.
* **Overdispersion of the run**: the beta-binomial rho of both references at their called
  genotypes; a biopsy's rho is profiled with a weak penalty centred there (sd 0.5 decade).
* **Sandwich widening**: after the fit, the markers' own scatter of the score against the
  model's information (``B / A``, with ``m / (m - 1)``); above 1 the interval is widened
  by using a drop of ``phi * 1.92`` instead of 1.92 (a quasi-likelihood interval). It
  never narrows an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from immuno.chimerism.ngs.likelihood import BetaBinomialLikelihood, ProfileLikelihood

ERROR_FLOOR = 1e-4
#: sd (log10) of the penalty that ties a biopsy's rho to the references' rho
RHO_PRIOR_SD = 0.5


@dataclass
class MarkerErrors:
    """Background error per marker, with its posterior variance.

    Attributes
    ----------
    rate
        Error rate per marker (index: marker name).
    variance
        Variance of each rate that is the marker's own (the between-marker part left
        after shrinkage).
    shared_variance
        Variance each rate shares with the other markers of its group (the uncertainty of
        the centre it was shrunk towards): it does not average out over markers.
    pooled
        The run's pooled rate (every homozygous reference call but the recipient's at
        donor-allele markers).
    between_sd
        Between-marker standard deviation of the true rates (0 when the markers agree).
    prior_strength
        Pseudo-depth of the shrinkage prior (inf: every marker gets the pooled rate).
    donor_allele_rate
        The recipient reference's pooled rate at the markers where only the donor carries
        an allele (its blank of the donor's alleles).
    """

    rate: pd.Series
    variance: pd.Series
    pooled: float
    between_sd: float
    prior_strength: float
    donor_allele_rate: float = math.nan
    shared_variance: pd.Series | None = None
    pooled_variance: float = 0.0
    between_sd_high: float = 0.0
    other_rate: float = math.nan
    other_variance: float = 0.0
    between_sd_clean: float = 0.0


def marker_errors(
    recipient: pd.DataFrame,
    recipient_calls: pd.DataFrame,
    donor: pd.DataFrame,
    donor_calls: pd.DataFrame,
    replicates: Sequence[pd.DataFrame] = (),
    floor: float = ERROR_FLOOR,
    log_rho: float | None = None,
    other_donors: Sequence[tuple[pd.DataFrame, pd.DataFrame]] = (),
    donor_allele_centre: bool = False,
) -> MarkerErrors:
    """Background rate per marker from the recipient reference (and replicates), shrunk.

    Parameters
    ----------
    recipient, donor
        Reference counts (``marker``, ``depth``, ``alt_count``).
    recipient_calls, donor_calls
        Their genotype calls (:func:`immuno.chimerism.ngs.genotypes.call_ngs_genotype`).
    replicates
        Pure-recipient count tables (genotyped with the recipient's calls).
    floor
        Smallest rate used.
    log_rho
        log10 of the read-level overdispersion (None: binomial reads).
    other_donors
        Further donors' (counts, calls), with several donors.
    donor_allele_centre
        Centre the donor-allele markers on the recipient's own rate there (when that rate
        stands out from the run's other blanks: see
        :func:`immuno.chimerism.ngs.references.reference_pair`) rather than on the pooled rate.

    Returns
    -------
    MarkerErrors
        Rates for every marker of the recipient's table.

    Notes
    -----
    Every homozygous reference call is a blank for the allele it lacks; their summed
    reads over summed depth is the run's pooled error, the centre every marker's rate is
    shrunk towards. At the markers where only the donor carries an allele, the recipient
    reference (sequenced in the same run) is the blank of exactly what a biopsy is
    tested for, and its reads there include whatever reaches every sample of the run
    (index hopping, carry-over) besides sequencing error: when they stand out
    (``donor_allele_centre``) their own pooled rate is their centre instead. (With ~1
    read per marker and beta-binomial reads a single blank's rate is skewed low most of
    the time, so a separate centre is only used when the excess is evident.) A single blank cannot tell a persistently noisy amplicon from a read-level
    fluctuation; the blanks together can, given the read-level overdispersion of the
    references: the between-marker variance of the true rates is what their scatter
    around their centre leaves beyond it (:func:`_between_marker_variance`). A marker's
    own rate is then its centre moved towards its blanks' rate by
    ``tau^2 / (tau^2 + var_read)``; its variance adds the centre's own uncertainty. With
    pure-recipient replicates (the lab's own calibration, >= 3 recommended) each marker's
    rate is its blanks' rate as it is.
    """
    names = pd.Index(recipient["marker"].astype(str), name="marker")
    rec_dose = _dose(recipient_calls, names)
    donors = [(donor, donor_calls), *other_donors]
    don_doses = [_dose(calls, names) for _, calls in donors]
    blanks = [_blank(recipient, rec_dose, names)] + [
        _blank(t, d, names) for (t, _), d in zip(donors, don_doses, strict=True)
    ]
    blanks += [_blank(rep, rec_dose, names) for rep in replicates]
    x = np.stack([b[0] for b in blanks])  # (blanks, markers); NaN where not a blank
    n = np.stack([b[1] for b in blanks])
    is_blank = ~np.isnan(x)
    if float(np.nansum(n)) == 0:
        return MarkerErrors(
            pd.Series(floor, index=names),
            pd.Series(floor**2, index=names),
            floor,
            0.0,
            math.inf,
            floor,
            pd.Series(0.0, index=names),
        )
    # donor-allele blanks: recipient homozygous where a donor differs (not the donors' rows)
    donor_allele = np.isin(rec_dose, (0, 2)) & np.any(
        [~np.isnan(d) & (d != rec_dose) for d in don_doses], axis=0
    )
    donor_rows = np.isin(np.arange(len(blanks)), np.arange(1, 1 + len(donors)))
    group = np.where(donor_allele[None, :] & ~donor_rows[:, None] & donor_allele_centre, 1, 0)
    centre, centre_var = np.zeros(2), np.zeros(2)
    for k in (0, 1):
        sel = is_blank & (group == k)
        total = float(n[sel].sum())
        centre[k] = max(float(x[sel].sum()) / total, floor) if total > 0 else np.nan
        centre_var[k] = centre[k] * (1 - centre[k]) / total if total > 0 else np.nan
    if np.isnan(centre[0]):
        centre[0], centre_var[0] = centre[1], centre_var[1]
    if np.isnan(centre[1]):
        centre[1], centre_var[1] = centre[0], centre_var[0]
    pooled = float(centre[0])
    # the run's clean background, what the donor-allele blanks are tested against: blanks
    # at markers where every person is homozygous for the same allele (elsewhere each
    # reference may carry the other's DNA through the run: index hopping)
    everyone_same = np.all([d == rec_dose for d in don_doses], axis=0) & np.isin(rec_dose, (0, 2))
    rest = is_blank & everyone_same[None, :]
    if float(n[rest].sum()) == 0:
        rest = is_blank & ~(donor_allele[None, :] & ~donor_rows[:, None])
    rest_total = float(n[rest].sum())
    other = max(float(x[rest].sum()) / rest_total, floor) if rest_total > 0 else pooled
    other_var = other * (1 - other) / rest_total if rest_total > 0 else float(centre_var[0])
    inflation = 1.0 / 10.0**log_rho if log_rho is not None else 0.0
    rows, cols = np.nonzero(is_blank)
    tau2, tau2_all_high = _between_marker_variance(
        cols, x[rows, cols], n[rows, cols], centre[group[rows, cols]], inflation
    )
    # for testing the donor-allele blanks against the rest, the spread of the rest alone
    # (an excess at the donor-allele markers must not widen the yardstick it is measured by)
    rest_rows, rest_cols = np.nonzero(rest)
    tau2_low, tau2_high = _between_marker_variance(
        rest_cols, x[rest_rows, rest_cols], n[rest_rows, rest_cols], other, inflation
    )
    tau2_test = (
        tau2_low + tau2_high
    ) / 2  # the estimate itself (the low and high readings are +/- 1 SE)
    # the high reading: the larger of the clean blanks' and every blank's (a few clean
    # markers with heavy-tailed errors understate the spread more often than not)
    tau2_high = max(tau2_high, tau2_all_high)
    # each marker's own reads: the recipient's blanks, its replicates' and the donor's
    # where it is homozygous for the same allele
    same = is_blank.copy()
    for k, d in enumerate(don_doses, start=1):
        same[k] &= d == rec_dose
    xs, ns = np.where(same, x, 0.0).sum(axis=0), np.where(same, n, 0.0).sum(axis=0)
    n2 = (np.where(same, n, 0.0) ** 2).sum(axis=0)
    own = same[0] & (ns > 0)
    own_centre = donor_allele & donor_allele_centre
    target = np.where(own_centre, centre[1], centre[0])
    target_var = np.where(own_centre, centre_var[1], centre_var[0])
    rate, var = target.copy(), np.full(len(names), tau2)
    r = np.divide(xs, ns, out=target.copy(), where=ns > 0)
    if replicates:
        # pure-recipient replicates are the lab's own calibration of each marker: their
        # rate is used as it is (+0.5 / +1: no marker is error-free)
        r = (xs + 0.5) / (ns + 1.0)
        rate[own] = r[own]
        var[own] = (r * (ns + n2 * inflation) / np.maximum(ns, 1.0) ** 2)[own]
        target_var = np.zeros(len(names))
    else:
        # the read-level variance at the centre's rate: a marker whose blank happened to
        # read nothing is not thereby error-free (at its own rate, 0 reads would look exact)
        read_var = target * (ns + n2 * inflation) / np.maximum(ns, 1.0) ** 2
        weight = tau2 / (tau2 + read_var) if tau2 > 0 else np.zeros(len(names))
        shrunk = target + weight * (r - target)
        rate[own] = shrunk[own]
        var[own] = ((1 - weight) * tau2)[own]
        # the centre's own uncertainty is shared by its markers: kept apart
        target_var = target_var * (1 - weight) ** 2
    strength = pooled * (1 - pooled) / tau2 if tau2 > 0 else math.inf
    return MarkerErrors(
        pd.Series(np.maximum(rate, floor), index=names),
        pd.Series(var, index=names),
        pooled,
        math.sqrt(tau2),
        strength,
        float(centre[1]),
        pd.Series(target_var, index=names),
        float(centre_var[0]),
        math.sqrt(tau2_high),
        other,
        other_var,
        math.sqrt(tau2_test),
    )


def _dose(calls: pd.DataFrame, names: pd.Index) -> np.ndarray:
    """A sample's called doses in ``names`` order (NaN where not called)."""
    idx = pd.Index(calls["marker"].astype(str)).get_indexer(names)
    g = calls["genotype"].to_numpy(float)
    return np.where(idx >= 0, g[idx], np.nan)


def _blank(
    counts: pd.DataFrame, dose: np.ndarray, names: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """Reads of the allele a homozygous dose lacks, and depth, in ``names`` order (NaN
    where the marker is not a blank of this sample)."""
    cnames = pd.Index(counts["marker"].astype(str))
    depth, alt = counts["depth"].to_numpy(float), counts["alt_count"].to_numpy(float)
    if not cnames.is_unique:
        summed = pd.DataFrame({"d": depth, "a": alt}, index=cnames).groupby(level=0).sum()
        cnames, depth, alt = summed.index, summed["d"].to_numpy(), summed["a"].to_numpy()
    idx = cnames.get_indexer(names)
    n = np.where(idx >= 0, depth[idx], 0.0)
    k = np.where(idx >= 0, alt[idx], 0.0)
    hom = ((dose == 0) | (dose == 2)) & (n > 0)
    return np.where(hom, np.where(dose == 0, k, n - k), np.nan), np.where(hom, n, np.nan)


def _between_marker_variance(
    marker: np.ndarray, x: np.ndarray, n: np.ndarray, pooled: np.ndarray | float, inflation: float
) -> tuple[float, float]:
    """Variance of the true rates across markers: a low and a high reading of it.

    Method of moments on every blank (``marker`` its column, ``x`` its reads, ``n`` its
    depth): ``Var(x) = n e (1 + n / rho) + n^2 tau^2`` (read level, from the references'
    rho, plus between markers). With a few dozen blanks the estimate is noisy, and a
    spurious tau^2 would let one blank's chance reads set a marker's rate; so shrinkage
    uses the estimate less one jackknife standard error (over markers; 0 when negative),
    while tests against background use it plus one (a test must not be fooled by the
    spread it underrates).
    """
    num = (x - n * pooled) ** 2 - n * pooled * (1 + n * inflation)  # pooled: each blank's centre
    den = n**2
    groups = np.unique(marker, return_inverse=True)[1]
    k = int(groups.max()) + 1 if len(groups) else 0
    if k < 3 or den.sum() <= 0:
        return 0.0, 0.0
    g_num = np.bincount(groups, num, k)
    g_den = np.bincount(groups, den, k)
    estimate = num.sum() / den.sum()
    leave_out = (num.sum() - g_num) / np.maximum(den.sum() - g_den, 1e-300)
    se = math.sqrt((k - 1) / k * float(((leave_out - leave_out.mean()) ** 2).sum()))
    return max(estimate - se, 0.0), max(estimate + se, 0.0)


def reference_log_rho(
    tables: Sequence[tuple[pd.DataFrame, pd.DataFrame]], errors: pd.Series
) -> float | None:
    """log10 of the beta-binomial rho of the references at their called genotypes.

    ``tables`` pairs each reference's counts with its calls; None when no marker is called.
    Heterozygous calls are used when there are at least 5: at an allele fraction of one
    half the background hardly matters, so a marker whose background differs from its
    neighbours' is not mistaken for read-level overdispersion.
    """
    het = sum(int((calls["genotype"] == 1).sum()) for _, calls in tables)
    k, n, g, e = [], [], [], []
    for counts, calls in tables:
        called = calls["genotype"].notna().to_numpy() & (calls["depth"].to_numpy(float) > 0)
        if het >= 5:
            called &= calls["genotype"].to_numpy() == 1
        k.append(counts["alt_count"].to_numpy(float)[called])
        n.append(calls["depth"].to_numpy(float)[called])
        g.append(calls["genotype"].to_numpy(float)[called])
        e.append(
            calls["marker"]
            .astype(str)
            .map(errors)
            .fillna(float(errors.median()))
            .to_numpy(float)[called]
        )
    if not sum(len(x) for x in k):
        return None
    dose = np.concatenate(g)
    lik = BetaBinomialLikelihood(
        np.concatenate(k), np.concatenate(n), dose, dose, np.concatenate(e)
    )
    prof = ProfileLikelihood(lik)
    prof.grid(np.array([0.0]))
    return prof.at(0.0)[1]


def sandwich_ratio(lik: BetaBinomialLikelihood, fraction: float, rho: float) -> float:
    """Robust over model-based variance of f at the estimate (1 when it cannot be judged).

    Per-marker scores and curvatures at fixed rho, by central differences a hundredth of
    the model's standard error wide: the model variance is ``1 / A`` (A the summed
    curvature), the sandwich ``B / A^2`` (B the summed squared scores), times
    ``m / (m - 1)`` for the m markers that carry f. Within two standard errors of 0 or 1
    the scores need not average zero (the estimate sits on an edge) and the ratio is not
    used.
    """
    carries = lik.g_d != lik.g_r
    m = int(carries.sum())
    if m < 3 or not 0 < fraction < 1:
        return 1.0
    sd = lik.sd(fraction, rho)
    if not math.isfinite(sd) or fraction < 2 * sd or 1 - fraction < 2 * sd:
        return 1.0
    h = 0.01 * sd
    ll = lik.per_marker(np.array([fraction - h, fraction, fraction + h]), np.array([rho]))[:, 0, :]
    score = (ll[2] - ll[0]) / (2 * h)
    curvature = -(ll[2] - 2 * ll[1] + ll[0]) / h**2
    a = float(curvature[carries].sum())
    if a <= 0:
        return 1.0
    b = float((score[carries] ** 2).sum())
    return b / a * m / (m - 1)
