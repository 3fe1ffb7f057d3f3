"""Epidermal chimerism: the donor fraction of a skin biopsy, with its uncertainty and LoD.

Readers for genotyping exports (GeneMapper, NGS marker counts and VCF, digital PCR,
qPCR, XY-FISH), reference genotypes and informative markers, and one estimator per
method, each returning a :class:`ChimerismResult`.
"""

from immuno.chimerism.counts import background_error, estimate_counts, reference_pair
from immuno.chimerism.fragments import estimate_str
from immuno.chimerism.genotypes import call_ngs_genotype, call_str_genotype, informative_markers
from immuno.chimerism.readers import (
    read_ddpcr,
    read_fish,
    read_genemapper,
    read_marker_counts,
    read_qpcr_ct,
    read_vcf,
)
from immuno.chimerism.result import ChimerismResult, Flag

__all__ = [
    "ChimerismResult", "Flag",
    "read_genemapper", "read_marker_counts", "read_vcf", "read_ddpcr", "read_qpcr_ct", "read_fish",
    "call_str_genotype", "call_ngs_genotype", "informative_markers",
    "estimate_str", "estimate_counts", "reference_pair", "background_error",
]
