"""Epidermal chimerism: the donor fraction of a skin biopsy, with its uncertainty and LoD.

The room is cut by method (docs/architecture.md, 2): what every method shares at the
bottom, one subpackage per method above it (methods never import each other), and the
batch and single-biopsy runs on top, which alone bring the methods together.

================  ==========================================================================
subpackage        owns
================  ==========================================================================
``common/``       the result type and its flags, intervals (censored Tobit mean,
                  Clopper-Pearson), DNA-input confounders, delimited-text helpers, what STR
                  and NGS genotypes share (allele labels, informative markers)
``str/``          GeneMapper reader, peak classification and STR settings, STR genotype
                  calls, the locus model and per-locus table, the loci combined into one
                  donor's fraction, the estimate, several donors
``ngs/``          count and VCF readers, NGS genotype calls, the beta-binomial likelihood,
                  calibration, references, detection and LoB / LoD (they need the
                  likelihood), the estimate, the fit net of each marker's background,
                  several donors (their likelihood and fit), the estimate without
                  references
``dpcr/``         digital PCR vendor exports, the droplet estimate and its vendor check
``qpcr/``         the Ct table reader and the delta-delta-Ct estimate
``fish/``         the nucleus count reader and the XY-FISH estimate
``pipeline/``     the reader registry by content, batch inputs, the batch estimate, the
                  result files and figures, one biopsy from its exports
``checks.py``     the room's entry for ``immuno validate`` (``check_inputs``)
================  ==========================================================================

The names below are this room's public interface, imported on first use (PEP 562), so
``import immuno.chimerism`` loads none of the room until a function is called. The flat
layout's module paths (``immuno.chimerism.fragments``, ``.pcr``, ``.readers`` ...) still
import until immuno 0.3, with a :class:`DeprecationWarning`: a module that moved whole is
the moved module itself, a module split among several gives their names.

>>> from immuno.chimerism import read_vcf, estimate_counts
>>> r = estimate_counts(read_vcf("biopsy.vcf"), read_vcf("recipient.vcf"), read_vcf("donor.vcf"))  # doctest: +SKIP
>>> r.summary()  # doctest: +SKIP
'donor 0.42 % [0.21, 0.77], detected; LoD 0.06 %'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from immuno._lazy import lazy_exports
from immuno._moved import register_moves, register_splits

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from immuno.chimerism.checks import check_inputs as check_inputs
    from immuno.chimerism.common.confounders import apply_input_limit as apply_input_limit
    from immuno.chimerism.common.confounders import genome_equivalents as genome_equivalents
    from immuno.chimerism.common.genotypes import informative_markers as informative_markers
    from immuno.chimerism.common.result import ChimerismResult as ChimerismResult
    from immuno.chimerism.common.result import Flag as Flag
    from immuno.chimerism.dpcr.droplets import estimate_ddpcr as estimate_ddpcr
    from immuno.chimerism.dpcr.droplets import poisson_copies as poisson_copies
    from immuno.chimerism.dpcr.exports import read_ddpcr as read_ddpcr
    from immuno.chimerism.fish.nuclei import estimate_fish as estimate_fish
    from immuno.chimerism.fish.nuclei import read_fish as read_fish
    from immuno.chimerism.ngs.counts import estimate_counts as estimate_counts
    from immuno.chimerism.ngs.exports import read_marker_counts as read_marker_counts
    from immuno.chimerism.ngs.exports import read_vcf as read_vcf
    from immuno.chimerism.ngs.genotype_free import estimate_genotype_free as estimate_genotype_free
    from immuno.chimerism.ngs.genotypes import call_ngs_genotype as call_ngs_genotype
    from immuno.chimerism.ngs.mixture import estimate_counts_donors as estimate_counts_donors
    from immuno.chimerism.ngs.references import background_error as background_error
    from immuno.chimerism.ngs.references import reference_pair as reference_pair
    from immuno.chimerism.pipeline.outputs import process_batch as process_batch
    from immuno.chimerism.pipeline.outputs import to_anndata as to_anndata
    from immuno.chimerism.pipeline.single import Exports as Exports
    from immuno.chimerism.pipeline.single import estimate_exports as estimate_exports
    from immuno.chimerism.qpcr.ct import estimate_qpcr as estimate_qpcr
    from immuno.chimerism.qpcr.ct import read_qpcr_ct as read_qpcr_ct
    from immuno.chimerism.str.fragments import estimate_str as estimate_str
    from immuno.chimerism.str.genemapper import read_genemapper as read_genemapper
    from immuno.chimerism.str.genotypes import call_str_genotype as call_str_genotype

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "check_inputs": "immuno.chimerism.checks",
    # common
    "apply_input_limit": "immuno.chimerism.common.confounders",
    "genome_equivalents": "immuno.chimerism.common.confounders",
    "informative_markers": "immuno.chimerism.common.genotypes",
    "ChimerismResult": "immuno.chimerism.common.result",
    "Flag": "immuno.chimerism.common.result",
    # str
    "estimate_str": "immuno.chimerism.str.fragments",
    "read_genemapper": "immuno.chimerism.str.genemapper",
    "call_str_genotype": "immuno.chimerism.str.genotypes",
    # ngs
    "estimate_counts": "immuno.chimerism.ngs.counts",
    "read_marker_counts": "immuno.chimerism.ngs.exports",
    "read_vcf": "immuno.chimerism.ngs.exports",
    "estimate_genotype_free": "immuno.chimerism.ngs.genotype_free",
    "call_ngs_genotype": "immuno.chimerism.ngs.genotypes",
    "estimate_counts_donors": "immuno.chimerism.ngs.mixture",
    "background_error": "immuno.chimerism.ngs.references",
    "reference_pair": "immuno.chimerism.ngs.references",
    # dpcr
    "estimate_ddpcr": "immuno.chimerism.dpcr.droplets",
    "poisson_copies": "immuno.chimerism.dpcr.droplets",
    "read_ddpcr": "immuno.chimerism.dpcr.exports",
    # qpcr
    "estimate_qpcr": "immuno.chimerism.qpcr.ct",
    "read_qpcr_ct": "immuno.chimerism.qpcr.ct",
    # fish
    "estimate_fish": "immuno.chimerism.fish.nuclei",
    "read_fish": "immuno.chimerism.fish.nuclei",
    # pipeline
    "process_batch": "immuno.chimerism.pipeline.outputs",
    "to_anndata": "immuno.chimerism.pipeline.outputs",
    "Exports": "immuno.chimerism.pipeline.single",
    "estimate_exports": "immuno.chimerism.pipeline.single",
}

__all__ = sorted(_EXPORTS)

# The flat layout's module paths, kept for one release. ``dpcr`` is not among them: its old
# path is now the method package, which forwards the old module's names itself.
register_moves(
    "immuno.chimerism",
    {
        "censored": "common.intervals",
        "confounders": "common.confounders",
        "result": "common.result",
        "tables": "common.tables",
        "genemapper": "str.genemapper",
        "str_loci": "str.loci",
        "str_mixture": "str.mixture",
        "str_peaks": "str.peaks",
        "calibration": "ngs.calibration",
        "counts": "ngs.counts",
        "detection": "ngs.detection",
        "genotype_free": "ngs.genotype_free",
        "likelihood": "ngs.likelihood",
        "ngs_references": "ngs.references",
        "inputs": "pipeline.inputs",
        "outputs": "pipeline.outputs",
        "plots": "pipeline.plots",
        "process": "pipeline.process",
    },
)
# modules whose names went to several new ones (a name is looked up in this order)
register_splits(
    "immuno.chimerism",
    {
        "fragments": ["str.fragments", "str.combine", "str.loci"],
        "ngs_mixture": ["ngs.mixture", "ngs.mixture_likelihood"],
        "genotypes": ["common.genotypes", "str.genotypes", "ngs.genotypes"],
        "pcr": ["dpcr.droplets", "qpcr.ct", "fish.nuclei", "common.intervals"],
        "readers": [
            "pipeline.readers",
            "ngs.exports",
            "str.genemapper",
            "dpcr.exports",
            "qpcr.ct",
            "fish.nuclei",
            "ngs.genotype_free",
        ],
        "single": ["pipeline.single", "pipeline.readers", "dpcr.droplets"],
    },
)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
