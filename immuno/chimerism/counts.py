"""Donor fraction from NGS allele counts (SNP/indel panels, VCF ``AD``).

The recipient and donor references give each marker's alternate-allele dose; the
biopsy's reads at the informative markers are fitted with the beta-binomial model of
:mod:`immuno.chimerism.likelihood`. Detection needs the boundary likelihood-ratio test at
alpha 0.01 *and* an estimate above the sample's limit of blank. At least 3 informative
markers are required (a warning under 5), and a detected signal is checked against an
unknown third contributor (contamination, sample swap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from immuno.chimerism.confounders import apply_input_limit
from immuno.chimerism.detection import detection_test, limits, third_contributor_llr
from immuno.chimerism.genotypes import (
    HET_RANGE,
    HOM_VAF,
    MIN_DEPTH,
    call_ngs_genotype,
    informative_markers,
)
from immuno.chimerism.likelihood import BetaBinomialLikelihood, fit_fraction
from immuno.chimerism.result import ChimerismResult, Flag, not_estimable

ALPHA = 0.01
ERROR_FLOOR = 1e-4
MIN_INFORMATIVE = 3
WARN_INFORMATIVE = 5
#: log-likelihood advantage of an unknown contributor over the donor that raises the flag
THIRD_CONTRIBUTOR_LLR = math.log(100.0)


def consensus_error(recipient: pd.DataFrame, donor: pd.DataFrame, floor: float = ERROR_FLOOR,
                    min_depth: int = MIN_DEPTH,
                    calls: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> tuple[float, float]:
    """Pooled background error of the homozygous reference calls, and its relative SE.

    The relative standard error uses the markers' own scatter (Pearson dispersion of the
    minority reads around the pooled rate), so overdispersion and marker-to-marker
    differences in error widen it. ``calls`` are the references' genotype calls when
    already made.
    """
    if calls is None:
        calls = (call_ngs_genotype(recipient, min_depth), call_ngs_genotype(donor, min_depth))
    minor, depth = [], []
    for ref, call in zip((recipient, donor), calls, strict=True):
        g, n = call["genotype"].to_numpy(), call["depth"].to_numpy()
        alt = ref["alt_count"].to_numpy(float)
        hom = (g == 0) | (g == 2)
        minor.append(np.where(g == 0, alt, n - alt)[hom])
        depth.append(n[hom])
    x, n = np.concatenate(minor), np.concatenate(depth)
    if n.sum() == 0:
        return floor, 1.0
    rate = x.sum() / n.sum()
    expected = np.maximum(n * rate, 1e-12)
    dispersion = max(float(((x - expected) ** 2 / expected).sum() / max(len(x) - 1, 1)), 1.0)
    rel_se = math.sqrt(dispersion / max(x.sum(), 1.0))
    return max(rate, floor), rel_se


def background_error(recipient: pd.DataFrame, donor: pd.DataFrame,
                     replicates: Sequence[pd.DataFrame] = (), floor: float = ERROR_FLOOR,
                     min_depth: int = MIN_DEPTH,
                     calls: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.Series:
    """Background error rate per marker.

    Parameters
    ----------
    recipient, donor
        Reference counts (``marker``, ``depth``, ``alt_count``).
    replicates
        Count tables of pure-recipient samples (>= 3 recommended): per-marker rates are
        learnt from reads of the allele the recipient lacks at its homozygous markers.
    floor
        Smallest rate used.
    min_depth
        Depth below which a reference call is not used.
    calls
        The references' genotype calls, when already made.

    Returns
    -------
    pandas.Series
        Error rate indexed by marker. Markers without replicate data get the consensus
        rate: the pooled minority-allele fraction of every homozygous reference call.
    """
    if calls is None:
        calls = (call_ngs_genotype(recipient, min_depth), call_ngs_genotype(donor, min_depth))
    consensus, _ = consensus_error(recipient, donor, floor, min_depth, calls)
    rates = pd.Series(consensus, index=pd.Index(recipient["marker"].astype(str), name="marker"), dtype=float)
    if replicates:
        g = calls[0].set_index("marker")["genotype"]
        reps = pd.concat(replicates).astype({"marker": str}).groupby("marker")[["alt_count", "depth"]].sum()
        reps = reps.join(g, how="inner")
        hom = reps[reps["genotype"].isin([0, 2])]
        minor = np.where(hom["genotype"] == 0, hom["alt_count"], hom["depth"] - hom["alt_count"])
        # +0.5/+1: a marker with no error read in the replicates is not error-free
        per_marker = np.maximum((minor + 0.5) / (hom["depth"] + 1.0), floor)
        rates.loc[hom.index.intersection(rates.index)] = pd.Series(per_marker, index=hom.index)
    return rates


@dataclass
class ReferencePair:
    """Recipient and donor genotypes at the markers both were called at.

    Attributes
    ----------
    table
        ``marker``, ``g_recipient``, ``g_donor``, ``pattern``, ``informative``, ``error_rate``.
    markers_called
        Markers called in both references.
    error_rel_se
        Relative standard error of the background error rates (widens the LoB).
    """

    table: pd.DataFrame
    markers_called: int
    error_rel_se: float = 0.0


def reference_pair(recipient: pd.DataFrame, donor: pd.DataFrame, replicates: Sequence[pd.DataFrame] = (),
                   min_depth: int = MIN_DEPTH, hom_vaf: float = HOM_VAF,
                   het_range: tuple[float, float] = HET_RANGE) -> ReferencePair:
    """Call both references and pair them (done once per patient, reused for every biopsy).

    Parameters
    ----------
    recipient, donor
        Reference count tables.
    replicates
        Optional pure-recipient replicates for per-marker background error.
    min_depth, hom_vaf, het_range
        Genotype calling thresholds (see :func:`immuno.chimerism.genotypes.call_ngs_genotype`).
    """
    calls = (call_ngs_genotype(recipient, min_depth, hom_vaf, het_range),
             call_ngs_genotype(donor, min_depth, hom_vaf, het_range))
    pairs = informative_markers(*calls)
    errors = background_error(recipient, donor, replicates, min_depth=min_depth, calls=calls)
    pairs["error_rate"] = pairs["marker"].map(errors).fillna(float(errors.median()) if len(errors) else ERROR_FLOOR)
    _, rel_se = consensus_error(recipient, donor, min_depth=min_depth, calls=calls)
    return ReferencePair(pairs, len(pairs), rel_se)


def estimate_counts(biopsy: pd.DataFrame, recipient: pd.DataFrame | None = None,
                    donor: pd.DataFrame | None = None, *, pair: ReferencePair | None = None,
                    replicates: Sequence[pd.DataFrame] = (), markers: str = "auto", alpha: float = ALPHA,
                    min_depth: int = MIN_DEPTH, genome_equivalents: float | None = None,
                    third_party_allele_frequency: float = 0.5) -> ChimerismResult:
    """Estimate the donor fraction of a biopsy from NGS allele counts.

    Parameters
    ----------
    biopsy
        The biopsy's counts (``marker``, ``depth``, ``alt_count``; see
        :func:`immuno.chimerism.readers.read_marker_counts`).
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

    Returns
    -------
    ChimerismResult
        ``markers`` holds one row per marker called in both references (genotypes,
        depth, reads, VAF, error rate, whether used, expected VAF at the estimate and the
        marker's own donor-fraction estimate); ``details`` holds ``rho``, ``loglik``,
        ``lr_statistic``, ``poisson_p`` (pooled donor-allele reads at recipient-homozygous
        markers against background) and ``third_contributor_llr`` when detected. Given
        the recipient's counts, its reference is also checked for donor alleles above its
        limit of blank (``recipient_background`` warning, ``recipient_reference_fraction``).
    """
    if pair is None:
        if recipient is None or donor is None:
            raise ValueError("give recipient and donor counts, or a reference pair")
        pair = reference_pair(recipient, donor, replicates, min_depth=min_depth)
    table = pair.table
    if len(table) and not table["informative"].any():
        return not_estimable("ngs", [Flag("donor_identical_to_recipient", "fail",
                                          f"recipient and donor references agree at all {len(table)} called markers; "
                                          "check that the donor reference is the MSC product, not the patient")], table)
    if len(table) == 0:
        return not_estimable("ngs", [Flag("no_reference_calls", "fail",
                                          "no marker was called in both references (depth >= 100 and a clear VAF)")])
    cols = {c: table[c].to_numpy(float) for c in ("g_recipient", "g_donor", "error_rate")}
    cols["depth"], cols["alt_count"] = _aligned_reads(biopsy, table["marker"])
    has_reads = cols["depth"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        vaf = cols["alt_count"] / cols["depth"]
    out = {"depth": cols["depth"], "alt_count": cols["alt_count"], "vaf": vaf}
    if not has_reads.any():
        return not_estimable("ngs", [Flag("zero_depth", "fail", "the biopsy has no reads at any marker")],
                             _with(table, out))
    rec_hom = (table["pattern"] == "recipient_hom").to_numpy() & has_reads
    if markers == "auto":
        markers = "recipient_hom" if rec_hom.sum() >= MIN_INFORMATIVE else "all"
    use = rec_hom if markers == "recipient_hom" else table["informative"].to_numpy() & has_reads
    out["used"] = use
    n_used = int(use.sum())
    if n_used < MIN_INFORMATIVE:
        return not_estimable("ngs", [Flag("too_few_informative_markers", "fail",
                                          f"{n_used} informative marker(s) with reads; at least {MIN_INFORMATIVE} are needed")],
                             _with(table, out), n_informative=n_used)
    flags: list[Flag] = []
    if n_used < WARN_INFORMATIVE:
        flags.append(Flag("few_informative_markers", "warning", f"only {n_used} informative markers (< {WARN_INFORMATIVE})"))
    # recipient-homozygous markers where the donor matches carry no f but show the
    # sample's own background and overdispersion at the same low allele fractions
    companions = (table["pattern"] == "identical").to_numpy() & np.isin(cols["g_recipient"], (0, 2)) & has_reads
    fitted = use | companions
    lik = BetaBinomialLikelihood(*(cols[c][fitted] for c in _LIK_COLUMNS))
    fit, prof = fit_fraction(lik)
    lob, lod = limits(lik, fit.rho, None, pair.error_rel_se)
    stat, p_value = detection_test(lik, fit, prof.rho_grid, pair.error_rel_se)
    detected = bool(p_value < alpha and fit.fraction > lob)
    details: dict[str, float] = {"rho": fit.rho, "loglik": fit.loglik, "lr_statistic": stat,
                                 "poisson_p": _pooled_poisson(cols, rec_hom), "markers_called": float(pair.markers_called)}
    if detected:
        hom = ((cols["g_recipient"] == 0) | (cols["g_recipient"] == 2)) & has_reads
        llr = third_contributor_llr(*(cols[c][hom] for c in _LIK_COLUMNS), fraction=fit.fraction, rho=fit.rho,
                                    allele_frequency=third_party_allele_frequency)
        details["third_contributor_llr"] = llr
        if llr > THIRD_CONTRIBUTOR_LLR:
            flags.append(Flag("third_contributor", "fail",
                              f"the non-recipient reads fit an unknown third person better than the MSC donor "
                              f"(log-likelihood ratio {llr:.1f}); suspect contamination or a sample swap"))
    e = cols["error_rate"]
    q0 = cols["g_recipient"] / 2 * (1 - 2 * e) + e
    q1 = cols["g_donor"] / 2 * (1 - 2 * e) + e
    out["expected_vaf"] = np.full(len(table), np.nan)
    out["expected_vaf"][fitted] = lik.q(np.array([fit.fraction]))[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["marker_fraction"] = np.where(table["informative"], (vaf - q0) / (q1 - q0), np.nan)
    if recipient is not None:
        flags.extend(_recipient_background(recipient, pair, markers, alpha, details))
    result = ChimerismResult(method="ngs", fraction=fit.fraction, lower=fit.lower, upper=fit.upper,
                             detected=detected, lod=lod, lob=lob, p_value=p_value, n_informative=n_used,
                             flags=flags, markers=_with(table, out), details=details)
    return apply_input_limit(result, genome_equivalents, "given DNA input")


def _recipient_background(recipient: pd.DataFrame, pair: ReferencePair, markers: str, alpha: float,
                          details: dict[str, float]) -> list[Flag]:
    """A warning when the recipient's own reference shows donor alleles above its limit of blank.

    The reference was taken before the infusion: donor-allele reads there come from
    earlier microchimerism (transfusion, pregnancy) sharing those alleles, contamination
    of the reference, or a background higher than modelled; each would inflate the
    biopsy's estimate too. The reference is fitted as if it were a biopsy (its minority
    reads also feed the consensus error, which makes the check conservative).
    """
    ref = estimate_counts(recipient, pair=pair, markers=markers, alpha=alpha)
    if ref.failed or not ref.detected:
        return []
    details["recipient_reference_fraction"] = ref.fraction
    return [Flag("recipient_background", "warning",
                 f"the recipient reference itself reads {100 * ref.fraction:.3g} % donor alleles "
                 f"[{100 * ref.lower:.3g}, {100 * ref.upper:.3g}], above its limit of blank "
                 f"({100 * ref.lob:.3g} %): earlier microchimerism (transfusion, pregnancy), a "
                 "contaminated reference or a higher background; the biopsy's estimate may be inflated by as much")]


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
