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

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable, swapped_flag
from immuno.chimerism.ngs.calibration import RHO_PRIOR_SD, sandwich_ratio
from immuno.chimerism.ngs.detection import (
    detection_test,
    limits,
    third_contributor_llr,
)
from immuno.chimerism.ngs.genotypes import MIN_DEPTH
from immuno.chimerism.ngs.likelihood import CHI2_95, BetaBinomialLikelihood, fit_fraction, interval
from immuno.chimerism.ngs.marker_checks import (
    LIK_COLUMNS,
    MIN_INFORMATIVE,
    THIRD_CONTRIBUTOR_LLR,
    aligned_reads,
    background_rel_se,
    pooled_poisson,
    third_contributor_flag,
    unexplained_alleles,
    with_columns,
)
from immuno.chimerism.ngs.net_estimate import net_result
from immuno.chimerism.ngs.references import ALPHA, ReferencePair, reference_pair

WARN_INFORMATIVE = 5
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
            with_columns(
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
    cols["depth"], cols["alt_count"] = aligned_reads(biopsy, table["marker"])
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
            with_columns(table, out),
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
            with_columns(table, out),
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
        return net_result(
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
    lik = BetaBinomialLikelihood(*(cols[c][fitted] for c in LIK_COLUMNS))
    prior = (pair.log_rho, RHO_PRIOR_SD) if pair.log_rho is not None else None
    fit, prof = fit_fraction(lik, rho_prior=prior)
    details: dict[str, float] = {
        "rho": fit.rho,
        "loglik": fit.loglik,
        "lr_statistic": fit.lr_statistic,
        "poisson_p": pooled_poisson(cols, rec_hom),
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
    rel_se = background_rel_se(cols, use)
    details["background_rel_se"] = rel_se
    lob, lod = limits(lik, fit.rho, None, rel_se)
    stat, p_value = detection_test(lik, fit, prof.rho_grid(math.log10(fit.rho)), rel_se)
    detected = bool(p_value < alpha and fit.fraction > lob)
    details["lr_statistic"] = stat
    flags.extend(unexplained_alleles(cols, companions, fit.rho, details))
    if detected:
        hom = ((cols["g_recipient"] == 0) | (cols["g_recipient"] == 2)) & has_reads
        llr = third_contributor_llr(
            *(cols[c][hom] for c in LIK_COLUMNS),
            fraction=fit.fraction,
            rho=fit.rho,
            allele_frequency=third_party_allele_frequency,
        )
        details["third_contributor_llr"] = llr
        if llr > THIRD_CONTRIBUTOR_LLR:
            flags.append(third_contributor_flag(llr, details))
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
        markers=with_columns(table, out),
        details=details,
        interval_method="profile_likelihood_sandwich",
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
