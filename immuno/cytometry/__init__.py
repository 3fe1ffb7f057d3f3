"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots."""

from immuno.cytometry.fcs import (
    FCSData,
    format_spillover,
    parse_spillover,
    read_fcs,
    read_fcs_header,
    write_fcs,
)
from immuno.cytometry.transforms import (
    ArcsinhCofactor,
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
    estimate_logicle_w,
    transform_from_spec,
)

__all__ = [
    "FCSData",
    "format_spillover",
    "parse_spillover",
    "read_fcs",
    "read_fcs_header",
    "write_fcs",
    # transforms
    "ArcsinhCofactor",
    "AsinhTransform",
    "HyperlogTransform",
    "LinearTransform",
    "LogicleTransform",
    "LogTransform",
    "Transform",
    "estimate_logicle_w",
    "transform_from_spec",
]
