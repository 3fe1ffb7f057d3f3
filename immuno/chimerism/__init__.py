"""Epidermal chimerism: the donor fraction of a skin biopsy, with its uncertainty and LoD.

Readers for genotyping exports (GeneMapper, NGS marker counts and VCF, digital PCR,
qPCR, XY-FISH), reference genotypes and informative markers, one estimator per method
(each returning a :class:`ChimerismResult`), and the batch step that writes the room's
results.

>>> from immuno.chimerism import read_vcf, estimate_counts
>>> r = estimate_counts(read_vcf("biopsy.vcf"), read_vcf("recipient.vcf"), read_vcf("donor.vcf"))  # doctest: +SKIP
>>> r.summary()  # doctest: +SKIP
'donor 0.42 % [0.21, 0.77], detected; LoD 0.06 %'
"""

from immuno.chimerism.checks import check_inputs
from immuno.chimerism.confounders import apply_input_limit, genome_equivalents
from immuno.chimerism.counts import estimate_counts
from immuno.chimerism.fragments import estimate_str
from immuno.chimerism.genotype_free import estimate_genotype_free
from immuno.chimerism.genotypes import call_ngs_genotype, call_str_genotype, informative_markers
from immuno.chimerism.ngs_mixture import estimate_counts_donors
from immuno.chimerism.ngs_references import background_error, reference_pair
from immuno.chimerism.pcr import estimate_ddpcr, estimate_fish, estimate_qpcr, poisson_copies
from immuno.chimerism.readers import (
    read_ddpcr,
    read_fish,
    read_genemapper,
    read_marker_counts,
    read_qpcr_ct,
    read_vcf,
)
from immuno.chimerism.result import ChimerismResult, Flag
from immuno.chimerism.single import Exports, estimate_exports


def __getattr__(name: str) -> object:
    # the batch writers pull in anndata and matplotlib: loaded on first use only, so
    # sheet validation (which imports the checks) stays quick
    if name in ("process_batch", "to_anndata"):
        from immuno.chimerism import outputs

        return getattr(outputs, name)
    raise AttributeError(f"module 'immuno.chimerism' has no attribute {name!r}")


__all__ = [
    "ChimerismResult", "Flag",
    "read_genemapper", "read_marker_counts", "read_vcf", "read_ddpcr", "read_qpcr_ct", "read_fish",
    "call_str_genotype", "call_ngs_genotype", "informative_markers",
    "estimate_str", "estimate_counts", "estimate_counts_donors", "estimate_genotype_free", "reference_pair",
    "background_error",
    "estimate_ddpcr", "estimate_qpcr", "estimate_fish", "poisson_copies",
    "process_batch", "to_anndata", "check_inputs",
    "Exports", "estimate_exports", "apply_input_limit", "genome_equivalents",
]
