"""STR chimerism from capillary electrophoresis: GeneMapper-style peak tables to a fraction.

The reader of GeneMapper, GeneMapper ID-X and GeneMarker exports
(:mod:`~immuno.chimerism.str.genemapper`); peak classification and the settings of an
STR run, artefacts (pull-up, spikes, plus-A) and stutter
(:mod:`~immuno.chimerism.str.peaks`); the reference genotype calls of recipient and
donor (:mod:`~immuno.chimerism.str.genotypes`); one locus analysed against its references
and the per-locus table (:mod:`~immuno.chimerism.str.loci`); the loci of one donor
combined into its fraction, with outliers and the reasons loci were left out
(:mod:`~immuno.chimerism.str.combine`); the estimate of a biopsy from its peaks and
references (:mod:`~immuno.chimerism.str.fragments`) and the several-donor mixture fit
(:mod:`~immuno.chimerism.str.mixture`). The per-locus table lives with the locus model so
that the one-donor combination and the mixture both read it without importing each other.
It stands on :mod:`immuno.chimerism.common` only and imports no other method.
"""
