"""One biopsy's NGS result from the fit net of each marker's background.

The fit is :func:`immuno.chimerism.ngs.net.estimate_net`; this adds the checks every NGS
fit makes (reads of alleles no reference carries, a third contributor, a swap) and the
per-marker table, as :func:`immuno.chimerism.ngs.counts.estimate_counts` does for the
beta-binomial fit.
"""

from __future__ import annotations

import math

import numpy as np

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.result import ChimerismResult, Flag, swapped_flag
from immuno.chimerism.ngs.background import INTERVAL_METHOD
from immuno.chimerism.ngs.detection import third_contributor_llr
from immuno.chimerism.ngs.marker_checks import (
    LIK_COLUMNS,
    THIRD_CONTRIBUTOR_LLR,
    pooled_poisson,
    third_contributor_flag,
    unexplained_alleles,
    with_columns,
)
from immuno.chimerism.ngs.net import estimate_net, foreign
from immuno.chimerism.ngs.references import ReferencePair


def net_result(
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
        "poisson_p": pooled_poisson(cols, use),
        "markers_called": float(pair.markers_called),
        **pair.details,
    }
    detected = bool(fit.p_value < alpha and fit.fraction > fit.lob)
    flags.extend(unexplained_alleles(cols, companions, rho, details))
    if detected:
        hom = np.isin(g_r, (0, 2)) & (cols["depth"] > 0)
        llr = third_contributor_llr(
            *(cols[c][hom] for c in LIK_COLUMNS),
            fraction=fit.fraction,
            rho=rho,
            allele_frequency=allele_frequency,
        )
        details["third_contributor_llr"] = llr
        if llr > THIRD_CONTRIBUTOR_LLR:
            flags.append(third_contributor_flag(llr, details))
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
        markers=with_columns(table, out),
        details=details,
        interval_method=INTERVAL_METHOD,
    )
    return apply_input_limit(result, genome_equivalents, "given DNA input")
