"""NGS chimerism from marker read counts: Devyser-style count tables and VCF to a fraction.

The count readers (:mod:`~immuno.chimerism.ngs.exports`: count tables and VCF, a wide
allele matrix recognised by content); the alternate-dose calls of the references
(:mod:`~immuno.chimerism.ngs.genotypes`); the beta-binomial likelihood, its profile over
the overdispersion rho and the fit of the donor fraction
(:mod:`~immuno.chimerism.ngs.likelihood`); the run's error and overdispersion calibration
(:mod:`~immuno.chimerism.ngs.calibration`); the reference pair of recipient and donor
(:mod:`~immuno.chimerism.ngs.references`); the detection test, limits of blank and
detection, and the third-contributor test (:mod:`~immuno.chimerism.ngs.detection`); the
one-donor estimate (:mod:`~immuno.chimerism.ngs.counts`) and the checks it shares with
the others (:mod:`~immuno.chimerism.ngs.marker_checks`); the fit net of each marker's
background (:mod:`~immuno.chimerism.ngs.background`, with the references' reads from
:mod:`~immuno.chimerism.ngs.net` and its result from
:mod:`~immuno.chimerism.ngs.net_estimate`); the several-donor estimate
(:mod:`~immuno.chimerism.ngs.mixture`) on its likelihood and joint fit
(:mod:`~immuno.chimerism.ngs.mixture_likelihood`) and the estimate without references
(:mod:`~immuno.chimerism.ngs.genotype_free`). It stands on :mod:`immuno.chimerism.common`
only and imports no other method.
"""
