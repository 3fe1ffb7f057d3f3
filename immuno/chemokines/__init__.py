"""The chemokine room: multiplex bead assay and RT-qPCR exports to concentrations.

The room is organised by stage (docs/architecture.md, 2.2): :mod:`~immuno.chemokines.io`
(every export format, chosen from the file's content: Luminex xPONENT and Intelliflex CSV,
Bio-Plex Manager Excel and XML, MSD Discovery Workbench and Methodical Mind, Bio-Rad CFX,
QuantStudio / ViiA 7, RDML; the plate model, layouts), :mod:`~immuno.chemokines.fit`
(weighted 5PL/4PL standard curves, acceptance rules, anchor points, LLOQ / ULOQ),
:mod:`~immuno.chemokines.qc` (plate integrity, agreement with the vendor software,
Levey-Jennings / Westgard), :mod:`~immuno.chemokines.quantify` (sample values with
censoring, plate and qPCR-run quantification, qPCR relative expression, Th1/Th2
chemokine scores) and :mod:`~immuno.chemokines.pipeline` (the batch run, its outputs and
figures); each imports only the stages before it. The names below are this room's public
interface, imported on first use (PEP 562), so ``import immuno.chemokines`` costs nothing
until a function is called.

The modules' former flat paths (``immuno.chemokines.curves`` and so on) still import, as
the moved module itself with a :class:`DeprecationWarning`, until immuno 0.3; the former
``qpcr_readers``, split between the RDML and the CFX reader, gives the names of both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from immuno._lazy import lazy_exports
from immuno._moved import register_moves, register_splits

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from immuno.chemokines.checks import check_inputs as check_inputs
    from immuno.chemokines.fit.curves import CurveFit as CurveFit
    from immuno.chemokines.fit.curves import CurveParams as CurveParams
    from immuno.chemokines.fit.curves import back_calculate as back_calculate
    from immuno.chemokines.fit.curves import fit_curve as fit_curve
    from immuno.chemokines.fit.curves import precision_profile as precision_profile
    from immuno.chemokines.fit.curves import predict as predict
    from immuno.chemokines.fit.standards import CURVE_DEFAULTS as CURVE_DEFAULTS
    from immuno.chemokines.fit.standards import StandardCurve as StandardCurve
    from immuno.chemokines.fit.standards import fit_standard_curves as fit_standard_curves
    from immuno.chemokines.fit.standards import fit_standards as fit_standards
    from immuno.chemokines.fit.standards import judge_curve as judge_curve
    from immuno.chemokines.io.layout import read_layout as read_layout
    from immuno.chemokines.io.plate import QPCR_COLUMNS as QPCR_COLUMNS
    from immuno.chemokines.io.plate import WELL_COLUMNS as WELL_COLUMNS
    from immuno.chemokines.io.plate import PlateData as PlateData
    from immuno.chemokines.io.plate import PlateIssue as PlateIssue
    from immuno.chemokines.io.plate import parse_cell as parse_cell
    from immuno.chemokines.io.readers import detect_format as detect_format
    from immuno.chemokines.io.readers import read_plate as read_plate
    from immuno.chemokines.pipeline.batch import process_batch as process_batch
    from immuno.chemokines.pipeline.batch import quantify_file as quantify_file
    from immuno.chemokines.pipeline.outputs import concentrations_anndata as concentrations_anndata
    from immuno.chemokines.qc.westgard import levey_jennings as levey_jennings
    from immuno.chemokines.qc.westgard import westgard as westgard
    from immuno.chemokines.quantify.multiplex import PlateResult as PlateResult
    from immuno.chemokines.quantify.multiplex import quantify_plate as quantify_plate
    from immuno.chemokines.quantify.qpcr import (
        efficiency_from_standards as efficiency_from_standards,
    )
    from immuno.chemokines.quantify.qpcr import genorm_m as genorm_m
    from immuno.chemokines.quantify.qpcr import relative_expression as relative_expression
    from immuno.chemokines.quantify.qpcr_run import RunResult as RunResult
    from immuno.chemokines.quantify.qpcr_run import quantify_run as quantify_run
    from immuno.chemokines.quantify.scores import derived_scores as derived_scores

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "check_inputs": "immuno.chemokines.checks",
    # io
    "PlateData": "immuno.chemokines.io.plate",
    "PlateIssue": "immuno.chemokines.io.plate",
    "QPCR_COLUMNS": "immuno.chemokines.io.plate",
    "WELL_COLUMNS": "immuno.chemokines.io.plate",
    "parse_cell": "immuno.chemokines.io.plate",
    "read_layout": "immuno.chemokines.io.layout",
    "detect_format": "immuno.chemokines.io.readers",
    "read_plate": "immuno.chemokines.io.readers",
    # fit
    "CurveFit": "immuno.chemokines.fit.curves",
    "CurveParams": "immuno.chemokines.fit.curves",
    "back_calculate": "immuno.chemokines.fit.curves",
    "fit_curve": "immuno.chemokines.fit.curves",
    "precision_profile": "immuno.chemokines.fit.curves",
    "predict": "immuno.chemokines.fit.curves",
    "CURVE_DEFAULTS": "immuno.chemokines.fit.standards",
    "StandardCurve": "immuno.chemokines.fit.standards",
    "fit_standard_curves": "immuno.chemokines.fit.standards",
    "fit_standards": "immuno.chemokines.fit.standards",
    "judge_curve": "immuno.chemokines.fit.standards",
    # qc
    "levey_jennings": "immuno.chemokines.qc.westgard",
    "westgard": "immuno.chemokines.qc.westgard",
    # quantify
    "PlateResult": "immuno.chemokines.quantify.multiplex",
    "quantify_plate": "immuno.chemokines.quantify.multiplex",
    "efficiency_from_standards": "immuno.chemokines.quantify.qpcr",
    "genorm_m": "immuno.chemokines.quantify.qpcr",
    "relative_expression": "immuno.chemokines.quantify.qpcr",
    "RunResult": "immuno.chemokines.quantify.qpcr_run",
    "quantify_run": "immuno.chemokines.quantify.qpcr_run",
    "derived_scores": "immuno.chemokines.quantify.scores",
    # pipeline
    "process_batch": "immuno.chemokines.pipeline.batch",
    "quantify_file": "immuno.chemokines.pipeline.batch",
    "concentrations_anndata": "immuno.chemokines.pipeline.outputs",
}

__all__ = sorted(_EXPORTS)

# The flat layout's module paths, kept for one release. ``quantify`` is not among them: its
# old path is now the stage package, which forwards the old module's names itself.
register_moves(
    "immuno.chemokines",
    {
        "bioplex": "io.bioplex",
        "bioplex_xml": "io.bioplex_xml",
        "delimited": "io.delimited",
        "intelliflex": "io.intelliflex",
        "layout": "io.layout",
        "msd": "io.msd",
        "plate": "io.plate",
        "qpcr_quantstudio": "io.quantstudio",
        "readers": "io.readers",
        "xponent": "io.xponent",
        "xponent_blocks": "io.xponent_blocks",
        "curves": "fit.curves",
        "standards": "fit.standards",
        "integrity": "qc.integrity",
        "vendor": "qc.vendor",
        "westgard": "qc.westgard",
        "qpcr": "quantify.qpcr",
        "qpcr_run": "quantify.qpcr_run",
        "sample_values": "quantify.sample_values",
        "scores": "quantify.scores",
        "outputs": "pipeline.outputs",
        "plots": "pipeline.plots",
        "process": "pipeline.batch",
    },
)
# the former qPCR readers module held both the CFX and the RDML reader
register_splits("immuno.chemokines", {"qpcr_readers": ["io.rdml", "io.cfx"]})


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
