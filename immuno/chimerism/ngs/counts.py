"""Donor fraction from NGS allele counts (SNP/indel panels, VCF ``AD``).

The recipient and donor references give each marker's alternate-allele dose; the
biopsy's reads at the informative markers are fitted with the beta-binomial model of
:mod:`immuno.chimerism.ngs.likelihood`, with each marker's background learnt from the
recipient reference and rho tied loosely to the references' own overdispersion
(:mod:`immuno.chimerism.ngs.calibration`). Where the markers scatter more than the read model
allows, the interval is widened (sandwich variance). Detection needs the boundary
likelihood-ratio test at alpha 0.01 *and* an estimate above the sample's limit of blank.
At least 3 informative markers are required (a warning under 5). Reads of alleles no
reference carries are tested against background (an unknown third contributor), and a
detected signal is checked against an unknown person as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable, swapped_flag
from immuno.chimerism.ngs.background import INTERVAL_METHOD
from immuno.chimerism.ngs.calibration import RHO_PRIOR_SD, sandwich_ratio
from immuno.chimerism.ngs.detection import (
    detection_test,
    excess_reads,
    limits,
    third_contributor_llr,
)
from immuno.chimerism.ngs.genotypes import MIN_DEPTH
from immuno.chimerism.ngs.likelihood import CHI2_95, BetaBinomialLikelihood, fit_fraction, interval
from immuno.chimerism.ngs.net import estimate_net, foreign
from immuno.chimerism.ngs.references import ALPHA, ReferencePair, reference_pair

MIN_INFORMATIVE = 3
WARN_INFORMATIVE = 5
#: log-likelihood advantage of an unknown contributor over the donor that raises the flag
THIRD_CONTRIBUTOR_LLR = math.log(100.0)
#: one-sided level of the test for reads of alleles that no reference carries
UNEXPLAINED_ALPHA = 0.001
#: level at which those reads confirm a third contributor suggested by the likelihood ratio
CORROBORATION_ALPHA = 0.05
#: sandwich variance ratio above which the widening is reported as a flag
WIDENING_NOTE = 1.2


def estimate_counts(
    biopsy: pd.DataFrame,
    recipient: pd.DataFrame | None = None,
    donor: pd.DataFrame | None = None,
    *,
    pair: ReferencePair | None = None,
    replicates: Sequence[pd.DataFrame] = (),
    markers: str = "auto",
    alpha: float = ALPHA,
    min_depth: int = MIN_DEPTH,
    genome_equivalents: float | None = None,
    third_party_allele_frequency: float = 0.5,
    model: str = "beta_binomial",
) -> ChimerismResult:
    """Estimate the donor fraction of a biopsy from NGS allele counts.

    Parameters
    ----------
    biopsy
        The biopsy's counts (``marker``, ``depth``, ``alt_count``; see
        :func:`immuno.chimerism.ngs.exports.read_marker_counts`).
    recipient, donor
        Reference counts; or give ``pair`` from :func:`reference_pair` instead.
    pair
        Pre-computed reference genotypes (faster for many biopsies of one patient).
    replicates
        Pure-recipient replicates for per-marker background error (ignored with ``pair``).
    markers
        ``recipient_hom`` (markers where the donor carries an allele the recipient lacks),
        ``all`` (every informative marker) or ``auto`` (recipient_hom when >= 3 have
        reads, else all). Recipient-heterozygous markers only shift a dose and are
        exposed to allelic imbalance, so low-level calls rest on recipient-homozygous ones.
    alpha
        Level of the boundary likelihood-ratio detection test.
    min_depth
        Reference markers with fewer reads get no genotype (ignored with ``pair``).
    genome_equivalents
        Input DNA in genome equivalents, when known (the LoD is then at least 3 / GE, with
        a ``low_dna_input`` warning when that is what limits it).
    third_party_allele_frequency
        Allele frequency assumed for an unknown contributor in the third-contributor check.
    model
        ``beta_binomial`` (default): the beta-binomial fit with per-marker error rates
        and a sandwich-widened profile interval (interval method
        ``profile_likelihood_sandwich``); ``net``: at the recipient-homozygous markers,
        the fraction net of each marker's own background with the references' reads in
        the fit (:mod:`immuno.chimerism.ngs.background`; interval method
        ``profile_likelihood_net_background``), calibrated on mixtures of real reads
        (``benchmarks/ngs_calibration.py``); with ``markers="all"`` the beta-binomial
        fit is used whatever the model.

    Returns
    -------
    ChimerismResult
        ``markers`` holds one row per marker called in both references (genotypes,
        depth, reads, VAF, error rate, ``status`` and ``reason``, expected VAF at the
        estimate and the marker's own donor-fraction estimate); ``details`` holds
        ``rho``, ``loglik``, ``lr_statistic``, ``poisson_p``, ``interval_widening`` (the
        sandwich ratio, >= 1), ``profile_lower``/``profile_upper`` (before widening),
        ``unexplained_z`` and ``third_contributor_llr`` when detected.
    """
    if pair is None:
        if recipient is None or donor is None:
            raise ValueError("give recipient and donor counts, or a reference pair")
        pair = reference_pair(recipient, donor, replicates, min_depth=min_depth, alpha=alpha)
    table = pair.table
    if len(table) and not table["informative"].any():
        return not_estimable(
            "ngs",
            [
                Flag(
                    "donor_identical_to_recipient",
                    "fail",
                    f"recipient and donor references agree at all {len(table)} called markers; "
                    "check that the donor reference is the MSC product, not the patient",
                )
            ],
            _with(
                table,
                {
                    "status": np.full(len(table), "set_aside"),
                    "reason": np.full(len(table), "identical genotypes"),
                },
            ),
        )
    if len(table) == 0:
        return not_estimable(
            "ngs",
            [
                Flag(
                    "no_reference_calls",
                    "fail",
                    "no marker was called in both references (depth >= 100 and a clear VAF)",
                )
            ],
        )
    cols = {
        c: table[c].to_numpy(float)
        for c in ("g_recipient", "g_donor", "error_rate", "error_var", "error_shared_var")
    }
    cols["depth"], cols["alt_count"] = _aligned_reads(biopsy, table["marker"])
    has_reads = cols["depth"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        vaf = cols["alt_count"] / cols["depth"]
    out: dict[str, np.ndarray] = {
        "depth": cols["depth"],
        "alt_count": cols["alt_count"],
        "vaf": vaf,
    }
    if not has_reads.any():
        out.update(
            _status(
                table, has_reads, np.zeros(len(table), bool), np.zeros(len(table), bool), "none"
            )
        )
        return not_estimable(
            "ngs",
            [Flag("zero_depth", "fail", "the biopsy has no reads at any marker")],
            _with(table, out),
        )
    rec_hom = (table["pattern"] == "recipient_hom").to_numpy() & has_reads
    if markers == "auto":
        markers = "recipient_hom" if rec_hom.sum() >= MIN_INFORMATIVE else "all"
    use = rec_hom if markers == "recipient_hom" else table["informative"].to_numpy() & has_reads
    n_used = int(use.sum())
    # recipient-homozygous markers where the donor matches carry no f but show the
    # sample's own background and overdispersion at the same low allele fractions
    companions = (
        (table["pattern"] == "identical").to_numpy()
        & np.isin(cols["g_recipient"], (0, 2))
        & has_reads
    )
    out.update(_status(table, has_reads, use, companions, markers))
    if n_used < MIN_INFORMATIVE:
        return not_estimable(
            "ngs",
            [
                Flag(
                    "too_few_informative_markers",
                    "fail",
                    f"{n_used} informative marker(s) with reads; at least {MIN_INFORMATIVE} are needed",
                )
            ],
            _with(table, out),
            n_informative=n_used,
        )
    flags: list[Flag] = list(pair.flags)
    if n_used < WARN_INFORMATIVE:
        flags.append(
            Flag(
                "few_informative_markers",
                "warning",
                f"only {n_used} informative markers (< {WARN_INFORMATIVE})",
            )
        )
    if model not in ("net", "beta_binomial"):
        raise ValueError(f"model must be 'net' or 'beta_binomial', not {model!r}")
    if model == "net" and markers == "recipient_hom" and pair.background_prior is not None:
        return _net_result(
            pair,
            cols,
            out,
            use,
            companions,
            flags,
            alpha,
            genome_equivalents,
            third_party_allele_frequency,
        )
    fitted = use | companions
    lik = BetaBinomialLikelihood(*(cols[c][fitted] for c in _LIK_COLUMNS))
    prior = (pair.log_rho, RHO_PRIOR_SD) if pair.log_rho is not None else None
    fit, prof = fit_fraction(lik, rho_prior=prior)
    details: dict[str, float] = {
        "rho": fit.rho,
        "loglik": fit.loglik,
        "lr_statistic": fit.lr_statistic,
        "poisson_p": _pooled_poisson(cols, rec_hom),
        "markers_called": float(pair.markers_called),
        "profile_lower": fit.lower,
        "profile_upper": fit.upper,
        **pair.details,
    }
    lower, upper, widening = fit.lower, fit.upper, sandwich_ratio(lik, fit.fraction, fit.rho)
    details["interval_widening"] = max(widening, 1.0)
    if widening > 1.0:
        lower, upper = interval(prof, fit.fraction, fit.loglik, widening * CHI2_95 / 2)
        if widening > WIDENING_NOTE:
            flags.append(
                Flag(
                    "interval_widened",
                    "info",
                    f"the markers scatter {widening:.2f} times more than the read model allows "
                    "(sandwich variance): the interval is widened by that much",
                )
            )
    rel_se = _background_rel_se(cols, use)
    details["background_rel_se"] = rel_se
    lob, lod = limits(lik, fit.rho, None, rel_se)
    stat, p_value = detection_test(lik, fit, prof.rho_grid(math.log10(fit.rho)), rel_se)
    detected = bool(p_value < alpha and fit.fraction > lob)
    details["lr_statistic"] = stat
    flags.extend(_unexplained(cols, companions, fit.rho, details))
    if detected:
        hom = ((cols["g_recipient"] == 0) | (cols["g_recipient"] == 2)) & has_reads
        llr = third_contributor_llr(
            *(cols[c][hom] for c in _LIK_COLUMNS),
            fraction=fit.fraction,
            rho=fit.rho,
            allele_frequency=third_party_allele_frequency,
        )
        details["third_contributor_llr"] = llr
        if llr > THIRD_CONTRIBUTOR_LLR:
            # an unknown person also carries alleles where recipient and donor agree: reads
            # there confirm it; without them (at low levels the unknown-person model's
            # freedom fits noise now and then) it is a warning
            p_companions = details.get("unexplained_p", 0.0)
            confirmed = p_companions < CORROBORATION_ALPHA
            flags.append(
                Flag(
                    "third_contributor",
                    "fail" if confirmed else "warning",
                    f"the non-recipient reads fit an unknown third person better than the MSC donor "
                    f"(log-likelihood ratio {llr:.1f}"
                    + (
                        ""
                        if confirmed
                        else "; not confirmed by reads where recipient and donor agree"
                    )
                    + "); suspect contamination or a sample swap",
                )
            )
    if fit.fraction > 0.5:
        flags.append(swapped_flag(fit.fraction))
    e = cols["error_rate"]
    q0 = cols["g_recipient"] / 2 * (1 - 2 * e) + e
    q1 = cols["g_donor"] / 2 * (1 - 2 * e) + e
    out["expected_vaf"] = np.full(len(table), np.nan)
    out["expected_vaf"][fitted] = lik.q(np.array([fit.fraction]))[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["marker_fraction"] = np.where(table["informative"], (vaf - q0) / (q1 - q0), np.nan)
    result = ChimerismResult(
        method="ngs",
        fraction=fit.fraction,
        lower=lower,
        upper=upper,
        detected=detected,
        lod=lod,
        lob=lob,
        p_value=p_value,
        n_informative=n_used,
        flags=flags,
        markers=_with(table, out),
        details=details,
        interval_method="profile_likelihood_sandwich",
    )
    return apply_input_limit(result, genome_equivalents, "given DNA input")


def _net_result(
    pair: ReferencePair,
    cols: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    use: np.ndarray,
    companions: np.ndarray,
    flags: list[Flag],
    alpha: float,
    genome_equivalents: float | None,
    allele_frequency: float,
) -> ChimerismResult:
    """The estimate net of each marker's background, from the recipient-homozygous markers
    (:mod:`immuno.chimerism.ngs.background`), with the same checks as the beta-binomial fit."""
    table = pair.table
    g_r = cols["g_recipient"]
    k = foreign(cols["depth"], cols["alt_count"], g_r)
    assert pair.background_prior is not None
    net = estimate_net(table, k, cols["depth"], use, companions, pair.background_prior)
    fit = net.fit
    flags = [*flags, *net.flags]
    # the reads' overdispersion for the checks on other alleles: the sample's own (phi
    # read as a beta-binomial rho at its mean depth) where it shows one, else the
    # references'
    phi = net.details["phi"]
    if phi > 1.0:
        rho = float(cols["depth"][use].mean()) / (phi - 1.0)
    else:
        rho = 10.0**pair.log_rho if pair.log_rho is not None else math.inf
    details: dict[str, float] = {
        **net.details,
        "rho": rho,
        "p_value": fit.p_value,
        "poisson_p": _pooled_poisson(cols, use),
        "markers_called": float(pair.markers_called),
        **pair.details,
    }
    detected = bool(fit.p_value < alpha and fit.fraction > fit.lob)
    flags.extend(_unexplained(cols, companions, rho, details))
    if detected:
        hom = np.isin(g_r, (0, 2)) & (cols["depth"] > 0)
        llr = third_contributor_llr(
            *(cols[c][hom] for c in _LIK_COLUMNS),
            fraction=fit.fraction,
            rho=rho,
            allele_frequency=allele_frequency,
        )
        details["third_contributor_llr"] = llr
        if llr > THIRD_CONTRIBUTOR_LLR:
            confirmed = details.get("unexplained_p", 0.0) < CORROBORATION_ALPHA
            flags.append(
                Flag(
                    "third_contributor",
                    "fail" if confirmed else "warning",
                    f"the non-recipient reads fit an unknown third person better than the "
                    f"MSC donor (log-likelihood ratio {llr:.1f}"
                    + (
                        ""
                        if confirmed
                        else "; not confirmed by reads where recipient and donor agree"
                    )
                    + "); suspect contamination or a sample swap",
                )
            )
    if fit.fraction > 0.5:
        flags.append(swapped_flag(fit.fraction))
    out["expected_vaf"] = np.where(g_r == 0, net.expected_foreign, 1 - net.expected_foreign)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(
            use,
            (
                k / cols["depth"]
                - table["recipient_foreign"].to_numpy(float)
                / table["recipient_depth"].to_numpy(float)
            )
            / (table["donor_foreign"].to_numpy(float) / table["donor_depth"].to_numpy(float)),
            np.nan,
        )
    out["marker_fraction"] = share
    result = ChimerismResult(
        method="ngs",
        fraction=fit.fraction,
        lower=fit.lower,
        upper=fit.upper,
        detected=detected,
        lod=fit.lod,
        lob=fit.lob,
        p_value=fit.p_value,
        n_informative=int(use.sum()),
        flags=flags,
        markers=_with(table, out),
        details=details,
        interval_method=INTERVAL_METHOD,
    )
    return apply_input_limit(result, genome_equivalents, "given DNA input")


def _status(
    table: pd.DataFrame,
    has_reads: np.ndarray,
    use: np.ndarray,
    companions: np.ndarray,
    selection: str,
) -> dict[str, np.ndarray]:
    """Each marker's status (used / background / set_aside) and the reason."""
    status = np.where(use, "used", np.where(companions, "background", "set_aside")).astype(object)
    reason = np.full(len(table), "", dtype=object)
    pattern = table["pattern"].to_numpy()
    reason[use] = "donor-specific allele" if selection == "recipient_hom" else "informative"
    reason[companions] = "identical homozygous genotypes: shows the background, no donor signal"
    rest = ~use & ~companions
    reason[rest & (pattern == "identical")] = "identical heterozygous genotypes: not informative"
    reason[rest & (pattern == "recipient_het")] = (
        "recipient heterozygous: only a dose shift, left out at low fractions"
    )
    reason[rest & ~has_reads] = "no reads in the biopsy"
    return {"status": status, "reason": reason}


def _background_rel_se(cols: dict[str, np.ndarray], use: np.ndarray) -> float:
    """Relative standard error of the biopsy's expected background reads at the used markers."""
    n, e, v = cols["depth"][use], cols["error_rate"][use], cols["error_var"][use]
    shared = float(cols["error_shared_var"][use].max()) if use.any() else 0.0
    expected = float((n * e).sum())
    return (
        math.sqrt(float((n**2 * v).sum()) + float(n.sum()) ** 2 * shared) / expected
        if expected > 0
        else 0.0
    )


def _unexplained(
    cols: dict[str, np.ndarray], companions: np.ndarray, rho: float, details: dict[str, float]
) -> list[Flag]:
    """Reads of alleles no reference carries, at markers where recipient and donor agree."""
    if companions.sum() < MIN_INFORMATIVE:
        return []
    n, alt = cols["depth"][companions], cols["alt_count"][companions]
    x = np.where(cols["g_recipient"][companions] == 0, alt, n - alt)
    # an unknown person carries the other allele at half the markers on average
    z, p, fraction = excess_reads(
        x,
        n,
        cols["error_rate"][companions],
        cols["error_var"][companions],
        np.full(len(x), 0.5),
        rho,
        float(cols["error_shared_var"][companions].max()),
    )
    details["unexplained_z"], details["unexplained_p"] = z, p
    if p >= UNEXPLAINED_ALPHA:
        return []
    return [
        Flag(
            "unexplained_alleles",
            "warning",
            f"{int(x.sum())} reads of alleles that neither the recipient nor the donor carries at "
            f"{len(x)} markers (background predicts {float((n * cols['error_rate'][companions]).sum()):.0f}; "
            f"z = {z:.1f}): a third contributor (contamination, another donor) or a sample mix-up, "
            f"about {100 * fraction:.2g} % of the DNA",
        )
    ]


def _with(table: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The reference table with the biopsy's columns added (one concat: assign is slow)."""
    return pd.DataFrame({**{c: table[c].to_numpy() for c in table.columns}, **columns})


_LIK_COLUMNS = ("alt_count", "depth", "g_recipient", "g_donor", "error_rate")


def _aligned_reads(biopsy: pd.DataFrame, markers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The biopsy's depth and alternate reads at ``markers`` (0 where the marker is absent)."""
    names = pd.Index(biopsy["marker"].astype(str))
    depth, alt = biopsy["depth"].to_numpy(float), biopsy["alt_count"].to_numpy(float)
    if not names.is_unique:
        summed = pd.DataFrame({"depth": depth, "alt": alt}, index=names).groupby(level=0).sum()
        names, depth, alt = summed.index, summed["depth"].to_numpy(), summed["alt"].to_numpy()
    idx = names.get_indexer(markers.astype(str))
    found = idx >= 0
    return np.where(found, depth[idx], 0.0), np.where(found, alt[idx], 0.0)


def _pooled_poisson(cols: dict[str, np.ndarray], rec_hom: np.ndarray) -> float:
    """p-value of the donor-allele reads at recipient-homozygous markers against background."""
    if not rec_hom.any():
        return math.nan
    alt, depth = cols["alt_count"][rec_hom], cols["depth"][rec_hom]
    donor_reads = np.where(cols["g_recipient"][rec_hom] == 0, alt, depth - alt).sum()
    expected = float((depth * cols["error_rate"][rec_hom]).sum())
    return float(special.pdtrc(donor_reads - 1, expected)) if donor_reads > 0 else 1.0
