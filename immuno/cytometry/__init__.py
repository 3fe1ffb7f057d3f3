"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots."""

from immuno.cytometry.acquisition_qc import (
    AcquisitionQC,
    acquisition_qc,
    keep_gates,
    qc_rows,
    qc_settings,
)
from immuno.cytometry.adaptive import (
    Placement,
    density_valley,
    fit_gaussian_mixture,
    lymphocyte_gmm,
    singlet_ratio,
    tail_threshold,
)
from immuno.cytometry.checks import check_inputs
from immuno.cytometry.cluster import Clustering, cluster_events, pool_events
from immuno.cytometry.compensation import (
    Spillover,
    compensate,
    read_spillover_file,
    spillover_from_control_files,
    spillover_from_keywords,
    spillover_from_single_stains,
    write_spillover_file,
)
from immuno.cytometry.engine import GateTree, gate_membership
from immuno.cytometry.event_pass import GatedEvents, compensate_columns, gate_events
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
from immuno.cytometry.gating import ControlGating, GatingResult, place_gates
from immuno.cytometry.gatingml import GatingDocument, read_gatingml, write_gatingml
from immuno.cytometry.ingest import (
    acquisition_qc_of,
    ingest_sample,
    resolve_spillover,
    shareable_keywords,
)
from immuno.cytometry.outputs import aggregate_batch, populations_anndata, write_sample_outputs
from immuno.cytometry.pipeline import (
    SampleInfo,
    SampleOutcome,
    batch_samples,
    batch_spillover,
    panel_populations,
    panel_problems,
    process_batch,
    process_sample,
    process_unit,
)
from immuno.cytometry.plots import plot_gating
from immuno.cytometry.populations import (
    Population,
    evaluate_population,
    parse_population,
    population_gates,
    population_specs,
)
from immuno.cytometry.statistics import (
    headline_features,
    marker_medians,
    population_masks,
    population_statistics,
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
    "keep_gates",
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
    "gate_membership",
    "compensate_columns",
    # GatingML and manual templates
    "GatingDocument",
    "read_gatingml",
    "write_gatingml",
    "read_template",
    "apply_template",
    # adaptive gates, gating from the panel, populations and statistics
    "Placement",
    "density_valley",
    "tail_threshold",
    "singlet_ratio",
    "lymphocyte_gmm",
    "fit_gaussian_mixture",
    "ControlGating",
    "GatingResult",
    "place_gates",
    "Population",
    "parse_population",
    "evaluate_population",
    "population_specs",
    "population_gates",
    "population_masks",
    "population_statistics",
    "marker_medians",
    "headline_features",
    # the per-sample and per-batch pipeline and its outputs
    "SampleInfo",
    "SampleOutcome",
    "process_sample",
    "process_batch",
    "process_unit",
    "panel_populations",
    "panel_problems",
    "batch_samples",
    "batch_spillover",
    "write_sample_outputs",
    "aggregate_batch",
    "populations_anndata",
    "plot_gating",
    # exploration
    "Clustering",
    "pool_events",
    "cluster_events",
]
