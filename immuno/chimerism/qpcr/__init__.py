"""qPCR chimerism: the donor fraction from the Ct values of a donor-specific marker.

One module (:mod:`~immuno.chimerism.qpcr.ct`): the reader of a Ct table (sample, target,
Ct or Cq, one row per replicate, ``Undetermined`` kept as no amplification) and the
delta-delta-Ct estimate against the MSC product as the 100 % calibrator, with its
interval from the replicates and its limit of detection. It stands on
:mod:`immuno.chimerism.common` only and imports no other method.
"""
