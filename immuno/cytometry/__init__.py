"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots.

The room is organised by stage (docs/architecture.md, 2.1): :mod:`~immuno.cytometry.engine`
(gates, compensation, transforms and their evaluation), :mod:`~immuno.cytometry.io` (FCS,
spillover files, GatingML, FlowJo templates, per-event files),
:mod:`~immuno.cytometry.analysis` (acquisition QC, adaptive gates, populations,
statistics, clustering) and :mod:`~immuno.cytometry.pipeline` (tubes, ingest, the
per-sample and batch runs, outputs, figures); each imports only the stages before it.
The names below are this room's public interface, imported on first use (PEP 562), so
``import immuno.cytometry`` costs nothing until a function is called: a command that
reads one FCS header does not pay for AnnData, numba or Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from immuno._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from immuno.cytometry.analysis.acquisition_qc import AcquisitionQC as AcquisitionQC
    from immuno.cytometry.analysis.acquisition_qc import acquisition_qc as acquisition_qc
    from immuno.cytometry.analysis.acquisition_qc import keep_gates as keep_gates
    from immuno.cytometry.analysis.acquisition_qc import qc_rows as qc_rows
    from immuno.cytometry.analysis.acquisition_qc import qc_settings as qc_settings
    from immuno.cytometry.analysis.adaptive import Placement as Placement
    from immuno.cytometry.analysis.adaptive import density_valley as density_valley
    from immuno.cytometry.analysis.adaptive import fit_gaussian_mixture as fit_gaussian_mixture
    from immuno.cytometry.analysis.adaptive import lymphocyte_gmm as lymphocyte_gmm
    from immuno.cytometry.analysis.adaptive import singlet_ratio as singlet_ratio
    from immuno.cytometry.analysis.adaptive import tail_threshold as tail_threshold
    from immuno.cytometry.analysis.cluster import Clustering as Clustering
    from immuno.cytometry.analysis.cluster import cluster_events as cluster_events
    from immuno.cytometry.analysis.cluster import pool_events as pool_events
    from immuno.cytometry.analysis.gating import ControlGating as ControlGating
    from immuno.cytometry.analysis.gating import GatingResult as GatingResult
    from immuno.cytometry.analysis.gating import place_gates as place_gates
    from immuno.cytometry.analysis.populations import Population as Population
    from immuno.cytometry.analysis.populations import evaluate_population as evaluate_population
    from immuno.cytometry.analysis.populations import parse_population as parse_population
    from immuno.cytometry.analysis.populations import population_gates as population_gates
    from immuno.cytometry.analysis.populations import population_specs as population_specs
    from immuno.cytometry.analysis.statistics import headline_features as headline_features
    from immuno.cytometry.analysis.statistics import marker_medians as marker_medians
    from immuno.cytometry.analysis.statistics import population_masks as population_masks
    from immuno.cytometry.analysis.statistics import population_statistics as population_statistics
    from immuno.cytometry.checks import check_inputs as check_inputs
    from immuno.cytometry.engine.compensation import Spillover as Spillover
    from immuno.cytometry.engine.compensation import compensate as compensate
    from immuno.cytometry.engine.compensation import (
        spillover_from_single_stains as spillover_from_single_stains,
    )
    from immuno.cytometry.engine.event_pass import GatedEvents as GatedEvents
    from immuno.cytometry.engine.event_pass import compensate_columns as compensate_columns
    from immuno.cytometry.engine.event_pass import gate_events as gate_events
    from immuno.cytometry.engine.gate_tree import GateTree as GateTree
    from immuno.cytometry.engine.gate_tree import gate_membership as gate_membership
    from immuno.cytometry.engine.gates import BooleanGate as BooleanGate
    from immuno.cytometry.engine.gates import EllipseGate as EllipseGate
    from immuno.cytometry.engine.gates import PolygonGate as PolygonGate
    from immuno.cytometry.engine.gates import QuadrantGate as QuadrantGate
    from immuno.cytometry.engine.gates import RectangleGate as RectangleGate
    from immuno.cytometry.engine.logicle import LogicleTransform as LogicleTransform
    from immuno.cytometry.engine.logicle import estimate_logicle_w as estimate_logicle_w
    from immuno.cytometry.engine.transform_base import Transform as Transform
    from immuno.cytometry.engine.transforms import ArcsinhCofactor as ArcsinhCofactor
    from immuno.cytometry.engine.transforms import AsinhTransform as AsinhTransform
    from immuno.cytometry.engine.transforms import HyperlogTransform as HyperlogTransform
    from immuno.cytometry.engine.transforms import LinearTransform as LinearTransform
    from immuno.cytometry.engine.transforms import LogTransform as LogTransform
    from immuno.cytometry.engine.transforms import transform_from_spec as transform_from_spec
    from immuno.cytometry.io.fcs import FCSData as FCSData
    from immuno.cytometry.io.fcs import parse_spillover as parse_spillover
    from immuno.cytometry.io.fcs import read_fcs as read_fcs
    from immuno.cytometry.io.fcs import read_fcs_header as read_fcs_header
    from immuno.cytometry.io.fcs_text import DataSetInfo as DataSetInfo
    from immuno.cytometry.io.fcs_text import list_datasets as list_datasets
    from immuno.cytometry.io.fcs_write import format_spillover as format_spillover
    from immuno.cytometry.io.fcs_write import write_fcs as write_fcs
    from immuno.cytometry.io.gatingml import GatingDocument as GatingDocument
    from immuno.cytometry.io.gatingml import read_gatingml as read_gatingml
    from immuno.cytometry.io.gatingml_export import write_gatingml as write_gatingml
    from immuno.cytometry.io.inspect_fcs import describe_fcs as describe_fcs
    from immuno.cytometry.io.markers import check_markers as check_markers
    from immuno.cytometry.io.spillover import read_spillover_file as read_spillover_file
    from immuno.cytometry.io.spillover import (
        spillover_from_control_files as spillover_from_control_files,
    )
    from immuno.cytometry.io.spillover import spillover_from_keywords as spillover_from_keywords
    from immuno.cytometry.io.spillover import write_spillover_file as write_spillover_file
    from immuno.cytometry.io.templates import apply_template as apply_template
    from immuno.cytometry.io.templates import read_template as read_template
    from immuno.cytometry.io.templates import template_counts as template_counts
    from immuno.cytometry.pipeline.batch import process_batch as process_batch
    from immuno.cytometry.pipeline.ingest import acquisition_qc_of as acquisition_qc_of
    from immuno.cytometry.pipeline.ingest import ingest_sample as ingest_sample
    from immuno.cytometry.pipeline.ingest import resolve_spillover as resolve_spillover
    from immuno.cytometry.pipeline.ingest import shareable_keywords as shareable_keywords
    from immuno.cytometry.pipeline.outputs import aggregate_batch as aggregate_batch
    from immuno.cytometry.pipeline.outputs import populations_anndata as populations_anndata
    from immuno.cytometry.pipeline.outputs import write_sample_outputs as write_sample_outputs
    from immuno.cytometry.pipeline.panel_checks import panel_populations as panel_populations
    from immuno.cytometry.pipeline.panel_checks import panel_problems as panel_problems
    from immuno.cytometry.pipeline.plots import plot_gating as plot_gating
    from immuno.cytometry.pipeline.sample import SampleOutcome as SampleOutcome
    from immuno.cytometry.pipeline.sample import process_sample as process_sample
    from immuno.cytometry.pipeline.sample import process_unit as process_unit
    from immuno.cytometry.pipeline.tubes import SampleInfo as SampleInfo
    from immuno.cytometry.pipeline.tubes import batch_samples as batch_samples
    from immuno.cytometry.pipeline.tubes import batch_spillover as batch_spillover

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "DataSetInfo": "immuno.cytometry.io.fcs_text",
    "list_datasets": "immuno.cytometry.io.fcs_text",
    "describe_fcs": "immuno.cytometry.io.inspect_fcs",
    "check_markers": "immuno.cytometry.io.markers",
    "template_counts": "immuno.cytometry.io.templates",
    "FCSData": "immuno.cytometry.io.fcs",
    "format_spillover": "immuno.cytometry.io.fcs_write",
    "parse_spillover": "immuno.cytometry.io.fcs",
    "read_fcs": "immuno.cytometry.io.fcs",
    "read_fcs_header": "immuno.cytometry.io.fcs",
    "write_fcs": "immuno.cytometry.io.fcs_write",
    "AcquisitionQC": "immuno.cytometry.analysis.acquisition_qc",
    "acquisition_qc": "immuno.cytometry.analysis.acquisition_qc",
    "keep_gates": "immuno.cytometry.analysis.acquisition_qc",
    "qc_rows": "immuno.cytometry.analysis.acquisition_qc",
    "qc_settings": "immuno.cytometry.analysis.acquisition_qc",
    "check_inputs": "immuno.cytometry.checks",
    "acquisition_qc_of": "immuno.cytometry.pipeline.ingest",
    "ingest_sample": "immuno.cytometry.pipeline.ingest",
    "resolve_spillover": "immuno.cytometry.pipeline.ingest",
    "shareable_keywords": "immuno.cytometry.pipeline.ingest",
    "Spillover": "immuno.cytometry.engine.compensation",
    "compensate": "immuno.cytometry.engine.compensation",
    "read_spillover_file": "immuno.cytometry.io.spillover",
    "spillover_from_control_files": "immuno.cytometry.io.spillover",
    "spillover_from_keywords": "immuno.cytometry.io.spillover",
    "spillover_from_single_stains": "immuno.cytometry.engine.compensation",
    "write_spillover_file": "immuno.cytometry.io.spillover",
    "ArcsinhCofactor": "immuno.cytometry.engine.transforms",
    "AsinhTransform": "immuno.cytometry.engine.transforms",
    "HyperlogTransform": "immuno.cytometry.engine.transforms",
    "LinearTransform": "immuno.cytometry.engine.transforms",
    "LogicleTransform": "immuno.cytometry.engine.logicle",
    "LogTransform": "immuno.cytometry.engine.transforms",
    "Transform": "immuno.cytometry.engine.transform_base",
    "estimate_logicle_w": "immuno.cytometry.engine.logicle",
    "transform_from_spec": "immuno.cytometry.engine.transforms",
    "BooleanGate": "immuno.cytometry.engine.gates",
    "EllipseGate": "immuno.cytometry.engine.gates",
    "PolygonGate": "immuno.cytometry.engine.gates",
    "QuadrantGate": "immuno.cytometry.engine.gates",
    "RectangleGate": "immuno.cytometry.engine.gates",
    "GateTree": "immuno.cytometry.engine.gate_tree",
    "GatedEvents": "immuno.cytometry.engine.event_pass",
    "gate_events": "immuno.cytometry.engine.event_pass",
    "gate_membership": "immuno.cytometry.engine.gate_tree",
    "compensate_columns": "immuno.cytometry.engine.event_pass",
    "GatingDocument": "immuno.cytometry.io.gatingml",
    "read_gatingml": "immuno.cytometry.io.gatingml",
    "write_gatingml": "immuno.cytometry.io.gatingml_export",
    "read_template": "immuno.cytometry.io.templates",
    "apply_template": "immuno.cytometry.io.templates",
    "Placement": "immuno.cytometry.analysis.adaptive",
    "density_valley": "immuno.cytometry.analysis.adaptive",
    "tail_threshold": "immuno.cytometry.analysis.adaptive",
    "singlet_ratio": "immuno.cytometry.analysis.adaptive",
    "lymphocyte_gmm": "immuno.cytometry.analysis.adaptive",
    "fit_gaussian_mixture": "immuno.cytometry.analysis.adaptive",
    "ControlGating": "immuno.cytometry.analysis.gating",
    "GatingResult": "immuno.cytometry.analysis.gating",
    "place_gates": "immuno.cytometry.analysis.gating",
    "Population": "immuno.cytometry.analysis.populations",
    "parse_population": "immuno.cytometry.analysis.populations",
    "evaluate_population": "immuno.cytometry.analysis.populations",
    "population_specs": "immuno.cytometry.analysis.populations",
    "population_gates": "immuno.cytometry.analysis.populations",
    "population_masks": "immuno.cytometry.analysis.statistics",
    "population_statistics": "immuno.cytometry.analysis.statistics",
    "marker_medians": "immuno.cytometry.analysis.statistics",
    "headline_features": "immuno.cytometry.analysis.statistics",
    "SampleInfo": "immuno.cytometry.pipeline.tubes",
    "SampleOutcome": "immuno.cytometry.pipeline.sample",
    "process_sample": "immuno.cytometry.pipeline.sample",
    "process_batch": "immuno.cytometry.pipeline.batch",
    "process_unit": "immuno.cytometry.pipeline.sample",
    "panel_populations": "immuno.cytometry.pipeline.panel_checks",
    "panel_problems": "immuno.cytometry.pipeline.panel_checks",
    "batch_samples": "immuno.cytometry.pipeline.tubes",
    "batch_spillover": "immuno.cytometry.pipeline.tubes",
    "write_sample_outputs": "immuno.cytometry.pipeline.outputs",
    "aggregate_batch": "immuno.cytometry.pipeline.outputs",
    "populations_anndata": "immuno.cytometry.pipeline.outputs",
    "plot_gating": "immuno.cytometry.pipeline.plots",
    "Clustering": "immuno.cytometry.analysis.cluster",
    "pool_events": "immuno.cytometry.analysis.cluster",
    "cluster_events": "immuno.cytometry.analysis.cluster",
}

__all__ = [
    "DataSetInfo",
    "FCSData",
    "list_datasets",
    "describe_fcs",
    "check_markers",
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
    "template_counts",
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
