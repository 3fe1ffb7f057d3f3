"""XY-FISH chimerism: donor-sex nuclei among the nuclei scored in a sex-mismatched graft.

One module (:mod:`~immuno.chimerism.fish.nuclei`): the reader of a nucleus count table
(sample, donor nuclei, nuclei scored) and the estimate, a proportion with its
Clopper-Pearson interval, the background of false donor-pattern signals as its limit of
blank and the upper bound of zero donor nuclei as its limit of detection. It stands on
:mod:`immuno.chimerism.common` only and imports no other method.
"""
