"""What every chimerism method shares: the result type, intervals, confounders, tables.

The result of an estimate and its flags (:mod:`~immuno.chimerism.common.result`:
``ChimerismResult``, ``Flag``, ``not_estimable``, ``swapped_flag``); the interval
arithmetic that is not tied to one likelihood (:mod:`~immuno.chimerism.common.intervals`:
the censored Tobit mean of per-locus STR values and the Clopper-Pearson binomial interval
used by digital PCR and XY-FISH); the DNA-input confounders that cap any method's limit of
detection (:mod:`~immuno.chimerism.common.confounders`); the delimited-text helpers every
reader uses (:mod:`~immuno.chimerism.common.tables`); and what STR and NGS genotypes share
(:mod:`~immuno.chimerism.common.genotypes`: allele labels, the STR informative pattern,
informative markers). The limits of blank and detection of NGS counts stay in
:mod:`immuno.chimerism.ngs.detection`: they are computed from the beta-binomial
likelihood's standard error at the sample's own depths and rho, so they cannot be
separated from that likelihood; the other methods compute their LoB / LoD from their own
counting model. This package is the bottom of the room: it imports no method and no
pipeline module.
"""
