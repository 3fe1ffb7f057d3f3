"""Numbers from plates: sample concentrations, qPCR expression and scores.

Sample values of one analyte (replicate means on net MFI, back-calculation, dilution,
censoring against LLOQ / ULOQ, replicate CV;
:mod:`~immuno.chemokines.quantify.sample_values`); the quantification of one multiplex
plate, which brings curves, integrity, well and control checks, background and vendor
agreement together (:mod:`~immuno.chemokines.quantify.multiplex`); qPCR arithmetic (efficiency
from standards, geNorm M, relative expression; :mod:`~immuno.chemokines.quantify.qpcr`)
and the quantification of a qPCR run (:mod:`~immuno.chemokines.quantify.qpcr_run`); and
the Th1/Th2 chemokine scores (:mod:`~immuno.chemokines.quantify.scores`). It stands on
:mod:`immuno.chemokines.io`, :mod:`immuno.chemokines.fit` and
:mod:`immuno.chemokines.qc`, and writes no files.

``immuno.chemokines.quantify`` was the plate quantification module before the room was
cut by stage; its names still resolve here, from
:mod:`~immuno.chemokines.quantify.multiplex`, with a :class:`DeprecationWarning`, until
immuno 0.3.
"""

#: names of the former ``immuno.chemokines.quantify`` module, now in ``multiplex``
_FORMER = ("QC_DEFAULTS", "PlateResult", "analyte_map", "quantify_plate")


def __getattr__(name: str) -> object:
    if name not in _FORMER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # deferred: the stage package itself imports nothing until an old name is asked for
    import warnings

    from immuno._moved import REMOVED_IN  # the stage package imports nothing until asked
    from immuno.chemokines.quantify import multiplex  # likewise: only for a former name

    warnings.warn(
        f"{__name__}.{name} has moved to {multiplex.__name__}.{name}; the old path will be "
        f"removed in immuno {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(multiplex, name)
