"""Recipient and donor references of NGS counts: genotypes, each marker's background, the
recipient reference as the blank of the donor's alleles.

Done once per patient (a :class:`ReferencePair`) and reused for every biopsy by
:func:`immuno.chimerism.ngs.counts.estimate_counts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from immuno.chimerism.common.genotypes import informative_markers
from immuno.chimerism.common.result import Flag
from immuno.chimerism.ngs.calibration import (
    ERROR_FLOOR,
    MarkerErrors,
    marker_errors,
    reference_log_rho,
)
from immuno.chimerism.ngs.detection import excess_reads
from immuno.chimerism.ngs.genotypes import HET_RANGE, HOM_VAF, MIN_DEPTH, call_ngs_genotype
from immuno.chimerism.ngs.net import BackgroundPrior, background_prior, foreign_reads

ALPHA = 0.01
#: donor alleles in the recipient reference at or above this fraction are reported as a warning
REPORTABLE_BACKGROUND = 0.001


def background_error(
    recipient: pd.DataFrame,
    donor: pd.DataFrame,
    replicates: Sequence[pd.DataFrame] = (),
    floor: float = ERROR_FLOOR,
    min_depth: int = MIN_DEPTH,
) -> pd.Series:
    """Background error rate per marker (see :func:`immuno.chimerism.ngs.calibration.marker_errors`).

    Parameters
    ----------
    recipient, donor
        Reference counts (``marker``, ``depth``, ``alt_count``).
    replicates
        Count tables of pure-recipient samples: their reads add to the recipient's at its
        homozygous markers.
    floor
        Smallest rate used.
    min_depth
        Depth below which a reference call is not used.

    Returns
    -------
    pandas.Series
        Error rate indexed by marker.
    """
    calls = (call_ngs_genotype(recipient, min_depth), call_ngs_genotype(donor, min_depth))
    return _run_errors(recipient, donor, calls, replicates, floor)[0].rate


def _run_errors(
    recipient: pd.DataFrame,
    donor: pd.DataFrame,
    calls: tuple[pd.DataFrame, pd.DataFrame],
    replicates: Sequence[pd.DataFrame],
    floor: float = ERROR_FLOOR,
) -> tuple[MarkerErrors, float | None]:
    """Per-marker background and the references' log10 rho (which sets how much of one
    blank's excess reads is read-level noise rather than the marker's own rate)."""
    pooled = marker_errors(recipient, calls[0], donor, calls[1], replicates, floor)
    log_rho = reference_log_rho(
        [(recipient, calls[0]), (donor, calls[1])], pooled.rate * 0 + pooled.pooled
    )
    return marker_errors(recipient, calls[0], donor, calls[1], replicates, floor, log_rho), log_rho


@dataclass
class ReferencePair:
    """Recipient and donor genotypes at the markers both were called at.

    Attributes
    ----------
    table
        ``marker``, ``g_recipient``, ``g_donor``, ``pattern``, ``informative``,
        ``error_rate``, ``error_var`` and the references' reads of the allele the
        recipient lacks (:data:`immuno.chimerism.ngs.net.FOREIGN_COLUMNS`).
    markers_called
        Markers called in both references.
    errors
        The run's background per marker.
    log_rho
        log10 of the references' beta-binomial overdispersion (None when unknown).
    flags
        Findings about the references themselves (``recipient_background``).
    details
        Numbers behind those findings.
    background_prior
        The run's prior of the markers' background rates (from the recipient's reads at
        its homozygous markers).
    """

    table: pd.DataFrame
    markers_called: int
    errors: MarkerErrors | None = None
    log_rho: float | None = None
    flags: list[Flag] = field(default_factory=list)
    details: dict[str, float] = field(default_factory=dict)
    background_prior: BackgroundPrior | None = None


def reference_pair(
    recipient: pd.DataFrame,
    donor: pd.DataFrame,
    replicates: Sequence[pd.DataFrame] = (),
    min_depth: int = MIN_DEPTH,
    hom_vaf: float = HOM_VAF,
    het_range: tuple[float, float] = HET_RANGE,
    alpha: float = ALPHA,
) -> ReferencePair:
    """Call both references and pair them (done once per patient, reused for every biopsy).

    Parameters
    ----------
    recipient, donor
        Reference count tables.
    replicates
        Optional pure-recipient replicates for per-marker background error.
    min_depth, hom_vaf, het_range
        Genotype calling thresholds (see :func:`immuno.chimerism.ngs.genotypes.call_ngs_genotype`).
    alpha
        Level of the test for donor alleles in the recipient reference.
    """
    calls = (
        call_ngs_genotype(recipient, min_depth, hom_vaf, het_range),
        call_ngs_genotype(donor, min_depth, hom_vaf, het_range),
    )
    pairs = informative_markers(*calls)
    errors, log_rho = _run_errors(recipient, donor, calls, replicates)
    ref = ReferencePair(pairs, len(pairs), errors, log_rho)
    if _recipient_background(ref, recipient, alpha):
        # the recipient's donor-allele reads stand out: they are the blank of those markers
        ref.errors = marker_errors(
            recipient,
            calls[0],
            donor,
            calls[1],
            replicates,
            log_rho=log_rho,
            donor_allele_centre=True,
        )
        ref.details["donor_allele_background"] = ref.errors.donor_allele_rate
    _error_columns(ref.table, ref.errors)
    # the references' own reads of the allele the recipient lacks, for the fit net of
    # each marker's background (immuno.chimerism.ngs.background)
    foreign_reads(ref.table, recipient, donor, replicates)
    ref.background_prior = background_prior(ref.table)
    return ref


def _error_columns(table: pd.DataFrame, errors: MarkerErrors) -> None:
    """Each marker's background rate and its variances, in the reference table."""
    table["error_rate"] = table["marker"].map(errors.rate).fillna(errors.pooled).to_numpy(float)
    table["error_var"] = (
        table["marker"].map(errors.variance).fillna(errors.between_sd**2).to_numpy(float)
    )
    table["error_shared_var"] = (
        table["marker"].map(errors.shared_variance).fillna(errors.pooled_variance).to_numpy(float)
    )


def _recipient_background(ref: ReferencePair, recipient: pd.DataFrame, alpha: float) -> bool:
    """The recipient reference as the blank of the donor's alleles.

    The reference was taken before the infusion, and it is sequenced in the same run as
    the donor reference and the biopsies, so its reads of donor-only alleles are the
    run's background for those alleles: sequencing error plus whatever reaches every
    sample of the run (index hopping from the donor reference, carry-over), and, rarely,
    earlier microchimerism or a contaminated tube. They are tested against the clean
    background: the homozygous calls at markers where every person is homozygous for
    the same allele (pooled rate and between-marker spread, negative-binomial tail).
    When they stand out they become the blank of the donor-allele markers
    (:func:`immuno.chimerism.ngs.calibration.marker_errors`), so a biopsy is called detected
    only above what the recipient's own reference shows. An excess that is reportable
    (>= 0.1 % donor) and stands out even against a high reading of the background's
    spread raises ``recipient_background``; any other an ``info`` note. Returns whether
    they stood out.
    """
    t = ref.table
    hom = (t["pattern"] == "recipient_hom").to_numpy()
    if not hom.any() or ref.errors is None:
        return False
    reads = recipient.astype({"marker": str}).groupby("marker")[["depth", "alt_count"]].sum()
    sub = t[hom]
    n = sub["marker"].map(reads["depth"]).fillna(0).to_numpy(float)
    alt = sub["marker"].map(reads["alt_count"]).fillna(0).to_numpy(float)
    g_r, g_d = sub["g_recipient"].to_numpy(float), sub["g_donor"].to_numpy(float)
    x = np.where(g_r == 0, alt, n - alt)
    e = np.full(len(x), ref.errors.other_rate)
    rho = 10.0**ref.log_rho if ref.log_rho is not None else math.inf
    dq = np.abs(g_d - g_r) / 2
    # against the clean blanks' spread as estimated (decides whether the reads become the
    # blank) and against a high reading of it (decides whether to warn)
    z, p, fraction = excess_reads(
        x, n, e, np.full(len(x), ref.errors.between_sd_clean**2), dq, rho, ref.errors.other_variance
    )
    _, p_high, _ = excess_reads(
        x, n, e, np.full(len(x), ref.errors.between_sd_high**2), dq, rho, ref.errors.other_variance
    )
    ref.details.update(
        {
            "recipient_background_z": z,
            "recipient_background_p": p,
            "recipient_reference_fraction": fraction,
        }
    )
    if p >= alpha or n.sum() <= 0:
        return False
    reportable = fraction >= REPORTABLE_BACKGROUND and p_high < alpha
    ref.flags.append(
        Flag(
            "recipient_background" if reportable else "donor_allele_background",
            "warning" if reportable else "info",
            f"the recipient reference itself reads {100 * fraction:.3g} % donor alleles (p = {p:.2g} against the "
            "run's other homozygous markers): index hopping or carry-over from the donor reference, earlier "
            "microchimerism (transfusion, pregnancy) or a contaminated reference; it is the blank of those "
            "alleles, so the biopsy is judged above it"
            + (
                " (if only the reference tube was contaminated, the biopsy may be under-estimated by as much)"
                if reportable
                else ""
            ),
        )
    )
    return True
