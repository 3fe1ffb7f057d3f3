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

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.ngs.calibration import RHO_PRIOR_SD, marker_errors, reference_log_rho
from immuno.chimerism.ngs.detection import limits
from immuno.chimerism.ngs.genotypes import MIN_DEPTH, call_ngs_genotype
from immuno.chimerism.ngs.likelihood import (
    CHI2_95,
    BetaBinomialLikelihood,
    boundary_p,
)
from immuno.chimerism.ngs.marker_checks import (
    MIN_INFORMATIVE,
    aligned_reads,
    background_rel_se,
    unexplained_alleles,
)
from immuno.chimerism.ngs.mixture_likelihood import MixtureLikelihood, maximise, profile_interval
from immuno.chimerism.ngs.references import ALPHA


def estimate_counts_donors(
    biopsy: pd.DataFrame,
    recipient: pd.DataFrame,
    donors: Mapping[str, pd.DataFrame],
    replicates: Sequence[pd.DataFrame] = (),
    alpha: float = ALPHA,
    min_depth: int = MIN_DEPTH,
    genome_equivalents: float | None = None,
) -> ChimerismResult:
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
    g = np.vstack(
        [
            pd.Series(c["genotype"].to_numpy(float), index=c["marker"].astype(str))
            .reindex(names)
            .to_numpy()
            for c in don_calls.values()
        ]
    )
    called = ~np.isnan(g_r) & ~np.isnan(g).any(axis=0)
    people = [("recipient", g_r), *((f"donor {d}", g[k]) for k, d in enumerate(ids))]
    for (a_name, a), (b_name, b) in itertools.combinations(people, 2):
        if called.any() and np.array_equal(a[called], b[called]):
            flag = "donor_identical_to_recipient" if a_name == "recipient" else "identical_donors"
            return not_estimable(
                "ngs",
                [
                    Flag(
                        flag,
                        "fail",
                        f"the {a_name} and {b_name} references agree at all "
                        f"{int(called.sum())} called markers; check the reference files",
                    )
                ],
            )
    others = [(donors[d], don_calls[d]) for d in ids[1:]]
    pooled = marker_errors(
        recipient, rec_calls, donors[ids[0]], don_calls[ids[0]], replicates, other_donors=others
    )
    log_rho = reference_log_rho(
        [(recipient, rec_calls), *((donors[d], don_calls[d]) for d in ids)],
        pooled.rate * 0 + pooled.pooled,
    )
    errors = marker_errors(
        recipient,
        rec_calls,
        donors[ids[0]],
        don_calls[ids[0]],
        replicates,
        log_rho=log_rho,
        other_donors=others,
    )
    table = pd.DataFrame(
        {
            "marker": names[called],
            "g_recipient": g_r[called],
            **{f"g_donor_{d}": g[k][called] for k, d in enumerate(ids)},
        }
    )
    for col, series in (
        ("error_rate", errors.rate),
        ("error_var", errors.variance),
        ("error_shared_var", errors.shared_variance),
    ):
        table[col] = (
            table["marker"]
            .map(series)
            .fillna(errors.pooled if col == "error_rate" else 0.0)
            .to_numpy(float)
        )
    gd = g[:, called]
    hom = np.isin(table["g_recipient"].to_numpy(), (0, 2))
    differs = (gd != table["g_recipient"].to_numpy()[None, :]).any(axis=0)
    depth, alt = aligned_reads(biopsy, table["marker"])
    reads = depth > 0
    use = hom & differs & reads
    companions = hom & ~differs & reads
    table["depth"], table["alt_count"] = depth, alt
    table["status"] = np.where(use, "used", np.where(companions, "background", "set_aside"))
    table["reason"] = np.where(
        use,
        "a donor carries an allele the recipient lacks",
        np.where(
            companions,
            "every person homozygous for the same allele: background",
            np.where(
                ~reads,
                "no reads in the biopsy",
                "recipient heterozygous: left out at low fractions",
            ),
        ),
    )
    if use.sum() < MIN_INFORMATIVE:
        return not_estimable(
            "ngs",
            [
                Flag(
                    "too_few_informative_markers",
                    "fail",
                    f"{int(use.sum())} donor-specific marker(s) with reads; at least "
                    f"{MIN_INFORMATIVE} are needed",
                )
            ],
            table,
            n_informative=int(use.sum()),
        )
    fitted = use | companions
    e = table["error_rate"].to_numpy(float)
    lik = MixtureLikelihood(
        alt[fitted],
        depth[fitted],
        table["g_recipient"].to_numpy(float)[fitted],
        gd[:, fitted],
        e[fitted],
        (log_rho, RHO_PRIOR_SD) if log_rho is not None else None,
    )
    f_hat, l_max = maximise(lik)
    rho = 10.0**lik._log_rho
    with np.errstate(invalid="ignore", divide="ignore"):
        table["vaf"] = alt / depth
    table["informative"] = differs
    p_fit = (lik.g_r + f_hat @ (lik.g_d - lik.g_r[None, :])) / 2
    table["expected_vaf"] = np.nan
    table.loc[fitted, "expected_vaf"] = p_fit * (1 - lik.e) + (1 - p_fit) * lik.e
    cols = {
        "depth": depth,
        "alt_count": alt,
        "g_recipient": table["g_recipient"].to_numpy(float),
        "error_rate": e,
        "error_var": table["error_var"].to_numpy(float),
        "error_shared_var": table["error_shared_var"].to_numpy(float),
    }
    details: dict[str, float] = {"rho": rho, "loglik": l_max, "donors": float(len(ids))}
    flags = unexplained_alleles(cols, companions, rho, details)
    if f_hat.sum() > 0.5:
        flags.append(
            Flag(
                "swapped_references",
                "warning",
                f"the biopsy is {100 * f_hat.sum():.3g} % donor in all: check that the recipient and donor "
                "references were not swapped",
            )
        )
    rel_se = background_rel_se(cols, use)
    components = [
        _component(
            lik,
            f_hat,
            l_max,
            k,
            d,
            rho,
            alpha,
            rel_se,
            fitted,
            use,
            table,
            cols,
            genome_equivalents,
        )
        for k, d in enumerate(ids)
    ]
    return ChimerismResult(
        method="ngs",
        fraction=float(f_hat.sum()),
        lower=math.nan,
        upper=math.nan,
        detected=any(c.detected for c in components),
        lod=min(c.lod for c in components),
        n_informative=int(use.sum()),
        flags=flags,
        markers=table,
        details=details,
        components=components,
    )


def _component(
    lik: MixtureLikelihood,
    f_hat: np.ndarray,
    l_max: float,
    k: int,
    donor_id: str,
    rho: float,
    alpha: float,
    rel_se: float,
    fitted: np.ndarray,
    use: np.ndarray,
    table: pd.DataFrame,
    cols: dict[str, np.ndarray],
    genome_equivalents: float | None,
) -> ChimerismResult:
    """One donor's fraction, interval, detection and limits."""
    lik.profile(f_hat)
    widening = max(lik.sandwich_ratio(f_hat, k), 1.0)
    lower, upper = profile_interval(lik, f_hat, l_max, k, widening * CHI2_95 / 2)
    _, l_zero = maximise(
        lik, f_hat * np.where(np.arange(len(f_hat)) == k, 0.0, 1.0), fixed=(k, 0.0), rounds=10
    )
    stat = max(2 * (l_max - l_zero), 0.0)
    p_value = boundary_p(stat) if f_hat[k] > 0 else 1.0
    g_j = table[f"g_donor_{donor_id}"].to_numpy(float)
    own = fitted & (g_j != cols["g_recipient"])
    single = BetaBinomialLikelihood(
        cols["alt_count"][own],
        cols["depth"][own],
        cols["g_recipient"][own],
        g_j[own],
        cols["error_rate"][own],
    )
    lob, lod = limits(single, rho, None, rel_se) if own.any() else (math.nan, 1.0)
    detected = bool(p_value < alpha and f_hat[k] > lob)
    flags: list[Flag] = []
    if int((use & (g_j != cols["g_recipient"])).sum()) < MIN_INFORMATIVE:
        flags.append(
            Flag(
                "few_informative_markers",
                "warning",
                f"only {int((use & (g_j != cols['g_recipient'])).sum())} markers carry an allele of donor "
                f"{donor_id} that the recipient lacks",
            )
        )
    result = ChimerismResult(
        method="ngs",
        fraction=float(f_hat[k]),
        lower=lower,
        upper=upper,
        detected=detected,
        lod=lod,
        lob=lob,
        p_value=p_value,
        n_informative=int(own.sum()),
        flags=flags,
        markers=table,
        donor_id=donor_id,
        details={"lr_statistic": stat, "interval_widening": widening},
    )
    return apply_input_limit(result, genome_equivalents, "given DNA input")
