"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots."""

from immuno.cytometry.fcs import (
    FCSData,
    format_spillover,
    parse_spillover,
    read_fcs,
    read_fcs_header,
    write_fcs,
)

__all__ = [
    "FCSData",
    "format_spillover",
    "parse_spillover",
    "read_fcs",
    "read_fcs_header",
    "write_fcs",
]
