"""Digital PCR chimerism: droplet and partition counts of a donor-specific assay.

The vendor exports read by content (:mod:`~immuno.chimerism.dpcr.exports`: QuantaSoft,
QX Manager, QIAcuity, Absolute Q, droplet amplitudes, plain tables, with partition
volumes and the concentrations recomputed from the counts) and the estimate from the
counts (:mod:`~immuno.chimerism.dpcr.droplets`: Poisson copies per partition, the donor
fraction with its interval, the limit of blank from the recipient's wells, a sample's
wells summed per assay and the vendor's concentrations cross-checked). It stands on
:mod:`immuno.chimerism.common` only and imports no other method.

``immuno.chimerism.dpcr`` was the module of the digital PCR exports before the room was cut
by method; its names still resolve here, from :mod:`~immuno.chimerism.dpcr.exports`, with
a :class:`DeprecationWarning`, until immuno 0.3.
"""

#: public names of the former ``immuno.chimerism.dpcr`` module, now in ``exports``
_FORMER = ("DDPCR_COLUMNS", "PARTITION_NL", "QIACUITY_PARTITIONS", "read_ddpcr")


def __getattr__(name: str) -> object:
    if name not in _FORMER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # deferred, the three of them: the method package imports nothing until an old name is asked for
    import warnings  # deferred: see above

    from immuno._moved import REMOVED_IN  # deferred: see above
    from immuno.chimerism.dpcr import exports  # deferred: see above

    warnings.warn(
        f"{__name__}.{name} has moved to {exports.__name__}.{name}; the old path will be "
        f"removed in immuno {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(exports, name)
