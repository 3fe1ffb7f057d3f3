"""Donor fraction from digital PCR droplets, qPCR Ct values and XY-FISH nucleus counts.

* Digital PCR: copies per droplet ``lambda = -ln(1 - k/N)`` (Poisson: a positive droplet
  may hold several copies), ``f = (lambda_D / m_D) / (lambda_ref / m_ref)``. Raw droplet
  ratios skip the Poisson step and overestimate at high occupancy; they are reported in
  ``details`` for comparison only.
* qPCR of a donor-specific marker: ``%D = 100 (1 + E)^-(dCt_sample - dCt_calibrator)``,
  ``dCt = Ct(donor marker) - Ct(reference gene)``, the MSC product DNA being the 100 %
  calibrator.
* XY-FISH: donor nuclei / nuclei scored with a Clopper-Pearson interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from immuno.chimerism.confounders import apply_input_limit
from immuno.chimerism.result import ChimerismResult, Flag, not_estimable

Z975 = 1.959963984540054
QPCR_LOD = 0.001
MAX_CT = 40.0
FISH_MIN_NUCLEI = 300
MIN_POSITIVE_DROPLETS = 3


def poisson_copies(positive: float, total: float) -> float:
    """Mean copies per droplet from positive and accepted droplets, ``-ln(1 - k/N)``."""
    if total <= 0 or positive >= total:
        return math.inf
    return 0.0 - math.log1p(-positive / total)  # 0.0 - : no negative zero


def _clopper_pearson(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = float(stats.beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def estimate_ddpcr(target_positive: float, target_total: float, reference_positive: float,
                   reference_total: float, target_copies: float = 1.0, reference_copies: float = 2.0,
                   blank_positive: float | None = None, blank_total: float | None = None) -> ChimerismResult:
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
        what = "no reference-assay droplet is positive" if reference_positive <= 0 else "every droplet is positive (saturated)"
        return not_estimable("ddpcr", [Flag("ddpcr_unusable", "fail", f"{what}; the well cannot be quantified")])
    genomes = lam_r / reference_copies

    def to_fraction(lam: float) -> float:
        return (lam / target_copies) / genomes

    fraction = to_fraction(lam_t)
    p_lo, p_hi = _clopper_pearson(target_positive, target_total)
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
    result = ChimerismResult(method="ddpcr", fraction=fraction, lower=lower, upper=upper, detected=bool(detected),
                             lod=lod, lob=lob, n_informative=1,
                             details={"raw_fraction": raw, "lambda_target": lam_t, "lambda_reference": lam_r,
                                      "genome_equivalents_per_droplet": genomes,
                                      "genome_equivalents_analysed": analysed})
    return apply_input_limit(result, analysed, "counted by the reference assay")


def _mean_var(values: Sequence[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    return (float(v.mean()) if len(v) else math.nan, float(v.var(ddof=1)) if len(v) > 1 else math.nan, len(v))


def estimate_qpcr(sample_marker_ct: Sequence[float], sample_reference_ct: Sequence[float],
                  calibrator_marker_ct: Sequence[float], calibrator_reference_ct: Sequence[float],
                  efficiency: float = 1.0, lod: float = QPCR_LOD, max_ct: float = MAX_CT) -> ChimerismResult:
    """Donor fraction by delta-delta-Ct against a 100 % donor calibrator.

    Parameters
    ----------
    sample_marker_ct, sample_reference_ct
        Replicate Ct values of the donor-specific marker and the reference gene in the
        biopsy (NaN = no amplification).
    calibrator_marker_ct, calibrator_reference_ct
        The same in the MSC product DNA (100 % donor).
    efficiency
        Amplification efficiency E (1.0 = doubling per cycle).
    lod
        The assay's validated limit of detection (fraction; KMR-type assays ~0.1 %).
    max_ct
        Ct values above this count as no amplification.

    Returns
    -------
    ChimerismResult
        Interval from the replicate spread of the four Ct means (t quantile); a
        biopsy whose marker never amplifies is not detected and has no point estimate.
    """
    clean = [[c if np.isfinite(c) and c <= max_ct else math.nan for c in cts]
             for cts in (sample_marker_ct, sample_reference_ct, calibrator_marker_ct, calibrator_reference_ct)]
    stats4 = [_mean_var(c) for c in clean]
    if stats4[1][2] == 0 or stats4[2][2] == 0 or stats4[3][2] == 0:
        return not_estimable("qpcr", [Flag("qpcr_missing_ct", "fail",
                                           "the reference gene or the calibrator did not amplify")], lod=lod)
    if stats4[0][2] == 0:
        return ChimerismResult(method="qpcr", fraction=math.nan, lower=0.0, upper=lod, detected=False, lod=lod,
                               flags=[Flag("no_amplification", "info", "the donor marker did not amplify in the biopsy")])
    base = 1.0 + efficiency
    ddct = (stats4[0][0] - stats4[1][0]) - (stats4[2][0] - stats4[3][0])
    fraction = base ** -ddct
    variances = [v / n for _, v, n in stats4 if n > 1]
    flags: list[Flag] = []
    if len(variances) == 4:
        se = math.sqrt(sum(variances))
        df = min(n for _, _, n in stats4) - 1
        half = float(stats.t.ppf(0.975, df)) * se
        lower, upper = base ** -(ddct + half), base ** -(ddct - half)
    else:
        lower = upper = math.nan
        flags.append(Flag("no_replicates", "warning", "single Ct values: no interval"))
    return ChimerismResult(method="qpcr", fraction=fraction, lower=lower, upper=upper, detected=fraction >= lod,
                           lod=lod, flags=flags, n_informative=1, details={"ddct": ddct})


def estimate_fish(donor_nuclei: int, nuclei: int, background: float = 0.0) -> ChimerismResult:
    """Donor fraction from XY-FISH: donor-sex nuclei among nuclei scored.

    Parameters
    ----------
    donor_nuclei, nuclei
        Nuclei with the donor's sex-chromosome pattern, and nuclei scored.
    background
        Rate of donor-pattern nuclei in recipient-only tissue (false signals).

    Returns
    -------
    ChimerismResult
        Clopper-Pearson 95 % interval; detected when its lower end exceeds the background.
        LoD is the upper bound that 0 of N nuclei would give (~3.7 / N): claiming < 1 %
        needs >= 300 nuclei.
    """
    if nuclei <= 0:
        return not_estimable("fish", [Flag("no_nuclei", "fail", "no nuclei were scored")])
    lower, upper = _clopper_pearson(donor_nuclei, nuclei)
    lod = _clopper_pearson(0, nuclei)[1]
    flags = []
    if nuclei < FISH_MIN_NUCLEI:
        flags.append(Flag("few_nuclei", "warning", f"{nuclei} nuclei scored; < {FISH_MIN_NUCLEI} cannot support a claim below 1 %"))
    return ChimerismResult(method="fish", fraction=donor_nuclei / nuclei, lower=lower, upper=upper,
                           detected=lower > background, lod=lod, lob=background, flags=flags, n_informative=1)
