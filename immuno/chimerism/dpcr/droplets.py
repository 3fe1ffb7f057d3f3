"""Donor fraction from digital PCR droplets (or partitions) of a donor-specific assay.

Copies per droplet ``lambda = -ln(1 - k/N)`` (Poisson: a positive droplet may hold several
copies), ``f = (lambda_D / m_D) / (lambda_ref / m_ref)``. Raw droplet ratios skip the
Poisson step and overestimate at high occupancy; they are reported in ``details`` for
comparison only. A sample's wells are summed per assay, the blank's wells of the target
assay give the limit of blank, and the vendor's concentrations are checked against the
ones recomputed from the counts.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import optimize, stats

from immuno.chimerism.common.confounders import apply_input_limit
from immuno.chimerism.common.intervals import clopper_pearson
from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable

Z975 = 1.959963984540054
MIN_POSITIVE_DROPLETS = 3


def poisson_copies(positive: float, total: float) -> float:
    """Mean copies per droplet from positive and accepted droplets, ``-ln(1 - k/N)``."""
    if total <= 0 or positive >= total:
        return math.inf
    return 0.0 - math.log1p(-positive / total)  # 0.0 - : no negative zero


def estimate_ddpcr(
    target_positive: float,
    target_total: float,
    reference_positive: float,
    reference_total: float,
    target_copies: float = 1.0,
    reference_copies: float = 2.0,
    blank_positive: float | None = None,
    blank_total: float | None = None,
) -> ChimerismResult:
    """Donor fraction from droplet counts of a donor-specific and a reference assay.

    Parameters
    ----------
    target_positive, target_total
        Positive and accepted droplets of the donor-specific assay (wells summed).
    reference_positive, reference_total
        The same for the reference assay (e.g. RPP30, two copies per genome).
    target_copies
        Donor-marker copies per donor genome ``m_D`` (1 for a Y marker or a heterozygous
        donor allele, 2 for a homozygous one).
    reference_copies
        Reference copies per genome (2 for an autosomal gene).
    blank_positive, blank_total
        Droplets of the donor assay in recipient-only wells: the limit of blank. Without
        them a call needs at least 3 positive droplets.

    Returns
    -------
    ChimerismResult
        The interval combines the exact (Clopper-Pearson) interval of the donor droplets
        with the reference's uncertainty on the log scale. Detected when the positive
        droplets exceed the 95th percentile of the blank's expected count (2 droplets
        without blanks). LoD is the fraction giving positives above that limit 95 % of the time.
        ``details`` holds ``raw_fraction`` (droplet ratio without Poisson correction),
        ``lambda_target``, ``lambda_reference`` and ``genome_equivalents_analysed``; the
        LoD is at least 3 / genomes analysed (``low_dna_input`` warning when that binds).
    """
    lam_t = poisson_copies(target_positive, target_total)
    lam_r = poisson_copies(reference_positive, reference_total)
    if reference_positive <= 0 or not math.isfinite(lam_r) or not math.isfinite(lam_t):
        what = (
            "no reference-assay droplet is positive"
            if reference_positive <= 0
            else "every droplet is positive (saturated)"
        )
        return not_estimable(
            "ddpcr", [Flag("ddpcr_unusable", "fail", f"{what}; the well cannot be quantified")]
        )
    genomes = lam_r / reference_copies

    def to_fraction(lam: float) -> float:
        return (lam / target_copies) / genomes

    fraction = to_fraction(lam_t)
    p_lo, p_hi = clopper_pearson(target_positive, target_total)
    p_r = reference_positive / reference_total
    se_log_ref = math.sqrt(p_r / (reference_total * (1 - p_r))) / lam_r
    lower = to_fraction(poisson_copies(p_lo, 1.0)) * math.exp(-Z975 * se_log_ref)
    upper = to_fraction(poisson_copies(min(p_hi, 1 - 1e-12), 1.0)) * math.exp(Z975 * se_log_ref)
    if blank_positive is not None and blank_total:
        background = target_total * blank_positive / blank_total
        limit = float(stats.poisson.ppf(0.95, background)) if background > 0 else 0.0
    else:
        # without recipient-only wells, the usual rule: at least 3 positive droplets
        limit = float(MIN_POSITIVE_DROPLETS - 1)
    # the mean droplet count that exceeds the limit 95 % of the time
    mean_lod = optimize.brentq(lambda m: stats.poisson.sf(limit, m) - 0.95, 1e-9, 1e6)
    lod = to_fraction(poisson_copies(min(mean_lod, 0.999999 * target_total), target_total))
    lob = to_fraction(poisson_copies(limit, target_total))
    detected = target_positive > limit
    raw = (target_positive / target_copies) / (reference_positive / reference_copies)
    # the reference droplets count the genomes analysed: fewer than 3 / LoD cannot back the LoD
    analysed = genomes * reference_total
    result = ChimerismResult(
        method="ddpcr",
        fraction=fraction,
        lower=lower,
        upper=upper,
        detected=bool(detected),
        lod=lod,
        lob=lob,
        n_informative=1,
        details={
            "raw_fraction": raw,
            "lambda_target": lam_t,
            "lambda_reference": lam_r,
            "genome_equivalents_per_droplet": genomes,
            "genome_equivalents_analysed": analysed,
        },
    )
    return apply_input_limit(result, analysed, "counted by the reference assay")


#: a vendor's concentration further than this from the one recomputed from its counts is flagged
VENDOR_TOLERANCE = 0.02


def ddpcr_wells(
    sample: pd.DataFrame,
    blank: pd.DataFrame | None,
    target: str,
    reference: str,
    target_copies: float,
    reference_copies: float,
) -> ChimerismResult:
    """The digital PCR estimate from one sample's wells (summed per assay), with the blank's
    wells of the target assay as its limit of blank, and the vendor's concentrations
    cross-checked against the counts."""
    wells = sample.groupby("assay")[["positive", "total"]].sum()
    extra: dict[str, float] = {}
    if blank is not None:
        bw = blank.groupby("assay")[["positive", "total"]].sum()
        if target in bw.index:
            extra = {
                "blank_positive": float(bw.loc[target, "positive"]),
                "blank_total": float(bw.loc[target, "total"]),
            }
    result = estimate_ddpcr(
        wells.loc[target, "positive"],
        wells.loc[target, "total"],
        wells.loc[reference, "positive"],
        wells.loc[reference, "total"],
        target_copies=target_copies,
        reference_copies=reference_copies,
        **extra,
    )
    return vendor_check(result, sample[sample["assay"].isin((target, reference))])


def vendor_check(result: ChimerismResult, wells: pd.DataFrame) -> ChimerismResult:
    """Compare the vendor's concentrations with those recomputed from the counts; flag a gap."""
    if "vendor_concentration" not in wells or "concentration" not in wells:
        return result
    both = wells[
        wells["vendor_concentration"].notna()
        & wells["concentration"].notna()
        & (wells["vendor_concentration"] >= 1.0)
    ]
    if both.empty:
        return result
    gap = (both["concentration"] / both["vendor_concentration"] - 1).abs()
    result.details["vendor_concentration_max_gap"] = float(gap.max())
    if gap.max() > VENDOR_TOLERANCE:
        w = both.loc[gap.idxmax()]
        result.flags.append(
            Flag(
                "vendor_concentration_mismatch",
                "warning",
                f"well {w['well'] or '?'} {w['assay']}: the export states {w['vendor_concentration']:.4g} "
                f"copies/uL, its counts give {w['concentration']:.4g} ({w['instrument']}, "
                f"{w['partition_volume_nl']:.3g} nL partitions); check the export and the partition "
                "volume",
            )
        )
    return result
