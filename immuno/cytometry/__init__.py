"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots."""

from immuno.cytometry.acquisition_qc import (
    AcquisitionQC,
    acquisition_qc,
    qc_rows,
    qc_settings,
)
from immuno.cytometry.checks import check_inputs
from immuno.cytometry.compensation import (
    Spillover,
    compensate,
    read_spillover_file,
    spillover_from_control_files,
    spillover_from_keywords,
    spillover_from_single_stains,
    write_spillover_file,
)
from immuno.cytometry.engine import GatedEvents, GateTree, gate_events
from immuno.cytometry.fcs import (
    FCSData,
    format_spillover,
    parse_spillover,
    read_fcs,
    read_fcs_header,
    write_fcs,
)
from immuno.cytometry.gates import (
    BooleanGate,
    EllipseGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from immuno.cytometry.gatingml import GatingDocument, read_gatingml, write_gatingml
from immuno.cytometry.ingest import (
    acquisition_qc_of,
    ingest_sample,
    resolve_spillover,
    shareable_keywords,
)
from immuno.cytometry.templates import apply_template, read_template
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
    # acquisition QC
    "AcquisitionQC",
    "acquisition_qc",
    "qc_rows",
    "qc_settings",
    # pre-run checks
    "check_inputs",
    # ingest
    "acquisition_qc_of",
    "ingest_sample",
    "resolve_spillover",
    "shareable_keywords",
    # compensation
    "Spillover",
    "compensate",
    "read_spillover_file",
    "spillover_from_control_files",
    "spillover_from_keywords",
    "spillover_from_single_stains",
    "write_spillover_file",
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
    # gates and the gate engine
    "BooleanGate",
    "EllipseGate",
    "PolygonGate",
    "QuadrantGate",
    "RectangleGate",
    "GateTree",
    "GatedEvents",
    "gate_events",
    # GatingML and manual templates
    "GatingDocument",
    "read_gatingml",
    "write_gatingml",
    "read_template",
    "apply_template",
]
