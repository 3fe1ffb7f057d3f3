"""Flow cytometry: read, compensate, transform, QC, gate, populations, cluster, plots.

The public names below are imported on first use (PEP 562), so ``import
immuno.cytometry`` costs nothing until a function is called: a command that reads one
FCS header does not pay for AnnData, numba or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from immuno.cytometry.acquisition_qc import AcquisitionQC as AcquisitionQC
    from immuno.cytometry.acquisition_qc import acquisition_qc as acquisition_qc
    from immuno.cytometry.acquisition_qc import keep_gates as keep_gates
    from immuno.cytometry.acquisition_qc import qc_rows as qc_rows
    from immuno.cytometry.acquisition_qc import qc_settings as qc_settings
    from immuno.cytometry.adaptive import Placement as Placement
    from immuno.cytometry.adaptive import density_valley as density_valley
    from immuno.cytometry.adaptive import fit_gaussian_mixture as fit_gaussian_mixture
    from immuno.cytometry.adaptive import lymphocyte_gmm as lymphocyte_gmm
    from immuno.cytometry.adaptive import singlet_ratio as singlet_ratio
    from immuno.cytometry.adaptive import tail_threshold as tail_threshold
    from immuno.cytometry.checks import check_inputs as check_inputs
    from immuno.cytometry.cluster import Clustering as Clustering
    from immuno.cytometry.cluster import cluster_events as cluster_events
    from immuno.cytometry.cluster import pool_events as pool_events
    from immuno.cytometry.compensation import Spillover as Spillover
    from immuno.cytometry.compensation import compensate as compensate
    from immuno.cytometry.compensation import read_spillover_file as read_spillover_file
    from immuno.cytometry.compensation import (
        spillover_from_control_files as spillover_from_control_files,
    )
    from immuno.cytometry.compensation import spillover_from_keywords as spillover_from_keywords
    from immuno.cytometry.compensation import (
        spillover_from_single_stains as spillover_from_single_stains,
    )
    from immuno.cytometry.compensation import write_spillover_file as write_spillover_file
    from immuno.cytometry.engine import GateTree as GateTree
    from immuno.cytometry.engine import gate_membership as gate_membership
    from immuno.cytometry.event_pass import GatedEvents as GatedEvents
    from immuno.cytometry.event_pass import compensate_columns as compensate_columns
    from immuno.cytometry.event_pass import gate_events as gate_events
    from immuno.cytometry.fcs import DataSetInfo as DataSetInfo
    from immuno.cytometry.fcs import FCSData as FCSData
    from immuno.cytometry.fcs import format_spillover as format_spillover
    from immuno.cytometry.fcs import list_datasets as list_datasets
    from immuno.cytometry.fcs import parse_spillover as parse_spillover
    from immuno.cytometry.fcs import read_fcs as read_fcs
    from immuno.cytometry.fcs import read_fcs_header as read_fcs_header
    from immuno.cytometry.fcs import write_fcs as write_fcs
    from immuno.cytometry.gates import BooleanGate as BooleanGate
    from immuno.cytometry.gates import EllipseGate as EllipseGate
    from immuno.cytometry.gates import PolygonGate as PolygonGate
    from immuno.cytometry.gates import QuadrantGate as QuadrantGate
    from immuno.cytometry.gates import RectangleGate as RectangleGate
    from immuno.cytometry.gating import ControlGating as ControlGating
    from immuno.cytometry.gating import GatingResult as GatingResult
    from immuno.cytometry.gating import place_gates as place_gates
    from immuno.cytometry.gatingml import GatingDocument as GatingDocument
    from immuno.cytometry.gatingml import read_gatingml as read_gatingml
    from immuno.cytometry.gatingml import write_gatingml as write_gatingml
    from immuno.cytometry.ingest import acquisition_qc_of as acquisition_qc_of
    from immuno.cytometry.ingest import ingest_sample as ingest_sample
    from immuno.cytometry.ingest import resolve_spillover as resolve_spillover
    from immuno.cytometry.ingest import shareable_keywords as shareable_keywords
    from immuno.cytometry.inspect_fcs import describe_fcs as describe_fcs
    from immuno.cytometry.markers import check_markers as check_markers
    from immuno.cytometry.outputs import aggregate_batch as aggregate_batch
    from immuno.cytometry.outputs import populations_anndata as populations_anndata
    from immuno.cytometry.outputs import write_sample_outputs as write_sample_outputs
    from immuno.cytometry.pipeline import SampleInfo as SampleInfo
    from immuno.cytometry.pipeline import SampleOutcome as SampleOutcome
    from immuno.cytometry.pipeline import batch_samples as batch_samples
    from immuno.cytometry.pipeline import batch_spillover as batch_spillover
    from immuno.cytometry.pipeline import panel_populations as panel_populations
    from immuno.cytometry.pipeline import panel_problems as panel_problems
    from immuno.cytometry.pipeline import process_batch as process_batch
    from immuno.cytometry.pipeline import process_sample as process_sample
    from immuno.cytometry.pipeline import process_unit as process_unit
    from immuno.cytometry.plots import plot_gating as plot_gating
    from immuno.cytometry.populations import Population as Population
    from immuno.cytometry.populations import evaluate_population as evaluate_population
    from immuno.cytometry.populations import parse_population as parse_population
    from immuno.cytometry.populations import population_gates as population_gates
    from immuno.cytometry.populations import population_specs as population_specs
    from immuno.cytometry.statistics import headline_features as headline_features
    from immuno.cytometry.statistics import marker_medians as marker_medians
    from immuno.cytometry.statistics import population_masks as population_masks
    from immuno.cytometry.statistics import population_statistics as population_statistics
    from immuno.cytometry.templates import apply_template as apply_template
    from immuno.cytometry.templates import read_template as read_template
    from immuno.cytometry.templates import template_counts as template_counts
    from immuno.cytometry.transforms import ArcsinhCofactor as ArcsinhCofactor
    from immuno.cytometry.transforms import AsinhTransform as AsinhTransform
    from immuno.cytometry.transforms import HyperlogTransform as HyperlogTransform
    from immuno.cytometry.transforms import LinearTransform as LinearTransform
    from immuno.cytometry.transforms import LogicleTransform as LogicleTransform
    from immuno.cytometry.transforms import LogTransform as LogTransform
    from immuno.cytometry.transforms import Transform as Transform
    from immuno.cytometry.transforms import estimate_logicle_w as estimate_logicle_w
    from immuno.cytometry.transforms import transform_from_spec as transform_from_spec

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "DataSetInfo": "immuno.cytometry.fcs",
    "list_datasets": "immuno.cytometry.fcs",
    "describe_fcs": "immuno.cytometry.inspect_fcs",
    "check_markers": "immuno.cytometry.markers",
    "template_counts": "immuno.cytometry.templates",
    "FCSData": "immuno.cytometry.fcs",
    "format_spillover": "immuno.cytometry.fcs",
    "parse_spillover": "immuno.cytometry.fcs",
    "read_fcs": "immuno.cytometry.fcs",
    "read_fcs_header": "immuno.cytometry.fcs",
    "write_fcs": "immuno.cytometry.fcs",
    "AcquisitionQC": "immuno.cytometry.acquisition_qc",
    "acquisition_qc": "immuno.cytometry.acquisition_qc",
    "keep_gates": "immuno.cytometry.acquisition_qc",
    "qc_rows": "immuno.cytometry.acquisition_qc",
    "qc_settings": "immuno.cytometry.acquisition_qc",
    "check_inputs": "immuno.cytometry.checks",
    "acquisition_qc_of": "immuno.cytometry.ingest",
    "ingest_sample": "immuno.cytometry.ingest",
    "resolve_spillover": "immuno.cytometry.ingest",
    "shareable_keywords": "immuno.cytometry.ingest",
    "Spillover": "immuno.cytometry.compensation",
    "compensate": "immuno.cytometry.compensation",
    "read_spillover_file": "immuno.cytometry.compensation",
    "spillover_from_control_files": "immuno.cytometry.compensation",
    "spillover_from_keywords": "immuno.cytometry.compensation",
    "spillover_from_single_stains": "immuno.cytometry.compensation",
    "write_spillover_file": "immuno.cytometry.compensation",
    "ArcsinhCofactor": "immuno.cytometry.transforms",
    "AsinhTransform": "immuno.cytometry.transforms",
    "HyperlogTransform": "immuno.cytometry.transforms",
    "LinearTransform": "immuno.cytometry.transforms",
    "LogicleTransform": "immuno.cytometry.transforms",
    "LogTransform": "immuno.cytometry.transforms",
    "Transform": "immuno.cytometry.transforms",
    "estimate_logicle_w": "immuno.cytometry.transforms",
    "transform_from_spec": "immuno.cytometry.transforms",
    "BooleanGate": "immuno.cytometry.gates",
    "EllipseGate": "immuno.cytometry.gates",
    "PolygonGate": "immuno.cytometry.gates",
    "QuadrantGate": "immuno.cytometry.gates",
    "RectangleGate": "immuno.cytometry.gates",
    "GateTree": "immuno.cytometry.engine",
    "GatedEvents": "immuno.cytometry.event_pass",
    "gate_events": "immuno.cytometry.event_pass",
    "gate_membership": "immuno.cytometry.engine",
    "compensate_columns": "immuno.cytometry.event_pass",
    "GatingDocument": "immuno.cytometry.gatingml",
    "read_gatingml": "immuno.cytometry.gatingml",
    "write_gatingml": "immuno.cytometry.gatingml",
    "read_template": "immuno.cytometry.templates",
    "apply_template": "immuno.cytometry.templates",
    "Placement": "immuno.cytometry.adaptive",
    "density_valley": "immuno.cytometry.adaptive",
    "tail_threshold": "immuno.cytometry.adaptive",
    "singlet_ratio": "immuno.cytometry.adaptive",
    "lymphocyte_gmm": "immuno.cytometry.adaptive",
    "fit_gaussian_mixture": "immuno.cytometry.adaptive",
    "ControlGating": "immuno.cytometry.gating",
    "GatingResult": "immuno.cytometry.gating",
    "place_gates": "immuno.cytometry.gating",
    "Population": "immuno.cytometry.populations",
    "parse_population": "immuno.cytometry.populations",
    "evaluate_population": "immuno.cytometry.populations",
    "population_specs": "immuno.cytometry.populations",
    "population_gates": "immuno.cytometry.populations",
    "population_masks": "immuno.cytometry.statistics",
    "population_statistics": "immuno.cytometry.statistics",
    "marker_medians": "immuno.cytometry.statistics",
    "headline_features": "immuno.cytometry.statistics",
    "SampleInfo": "immuno.cytometry.pipeline",
    "SampleOutcome": "immuno.cytometry.pipeline",
    "process_sample": "immuno.cytometry.pipeline",
    "process_batch": "immuno.cytometry.pipeline",
    "process_unit": "immuno.cytometry.pipeline",
    "panel_populations": "immuno.cytometry.pipeline",
    "panel_problems": "immuno.cytometry.pipeline",
    "batch_samples": "immuno.cytometry.pipeline",
    "batch_spillover": "immuno.cytometry.pipeline",
    "write_sample_outputs": "immuno.cytometry.outputs",
    "aggregate_batch": "immuno.cytometry.outputs",
    "populations_anndata": "immuno.cytometry.outputs",
    "plot_gating": "immuno.cytometry.plots",
    "Clustering": "immuno.cytometry.cluster",
    "pool_events": "immuno.cytometry.cluster",
    "cluster_events": "immuno.cytometry.cluster",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
