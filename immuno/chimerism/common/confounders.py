"""Confounders a chimerism result must name when the data show them.

* Low DNA input: a claimed LoD needs at least ``3 / LoD`` genome equivalents in the
  reaction (fewer donor genomes cannot be sampled, whatever the assay's own noise), so
  with a known input the LoD is raised to ``3 / GE`` and the result says so.
* A non-recipient signal that fits an unknown third person better than the MSC donor
  (contamination, sample swap): :func:`immuno.chimerism.ngs.detection.third_contributor_llr`.
* Donor-allele reads in the recipient's own reference above its limit of blank
  (transfusion or pregnancy microchimerism, contamination of the reference, or a
  background higher than modelled): checked in :func:`immuno.chimerism.ngs.counts.estimate_counts`.

Blood or dermal contamination of the epidermal fraction carries the same donor alleles
and cannot be told apart from the genotypes; it is a matter of the biopsy's processing.
"""

from __future__ import annotations

import dataclasses
import math

from immuno.chimerism.common.result import ChimerismResult, Flag

#: mass of one diploid human genome (pg): 1 ng of DNA holds ~152 genome equivalents
PG_PER_GENOME = 6.6
#: donor genomes needed in the reaction for a fraction to be seen 95 % of the time
MIN_DONOR_GENOMES = 3.0


def genome_equivalents(dna_ng: float) -> float:
    """Genome equivalents in ``dna_ng`` nanograms of human DNA (6.6 pg per diploid genome)."""
    return 1000.0 * dna_ng / PG_PER_GENOME


def apply_input_limit(
    result: ChimerismResult, genomes: float | None, source: str = ""
) -> ChimerismResult:
    """Raise the LoD to ``3 / GE`` when the DNA input, not the assay, limits it, and say so.

    Parameters
    ----------
    result
        An estimate.
    genomes
        Genome equivalents in the reaction (None or NaN: unknown, the result is unchanged).
    source
        Where the input comes from (e.g. ``20 ng`` or ``reference-assay droplets``), for the
        flag's reason.

    Returns
    -------
    ChimerismResult
        The same result, with ``details['genome_equivalents']`` and, when ``3 / GE`` exceeds
        the assay's LoD, that LoD, the assay's own in ``details['assay_lod']`` and a
        ``low_dna_input`` warning. A result without an estimate is returned as is.
    """
    if genomes is None or not math.isfinite(genomes) or result.failed:
        return result
    details = {**result.details, "genome_equivalents": float(genomes)}
    floor = min(MIN_DONOR_GENOMES / genomes, 1.0) if genomes > 0 else 1.0
    if math.isnan(result.lod) or floor <= result.lod:
        return dataclasses.replace(result, details=details)
    where = f" ({source})" if source else ""
    flag = Flag(
        "low_dna_input",
        "warning",
        f"{genomes:.0f} genome equivalents{where} cannot show a donor fraction below "
        f"{100 * floor:.3g} % (3 donor genomes); the assay alone would reach {100 * result.lod:.3g} %",
    )
    details["assay_lod"] = result.lod
    upper = (
        result.upper if result.detected or math.isnan(result.upper) else max(result.upper, floor)
    )
    return dataclasses.replace(
        result, lod=floor, upper=upper, flags=[*result.flags, flag], details=details
    )
