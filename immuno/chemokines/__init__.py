"""The chemokine room: multiplex bead assay and RT-qPCR exports to concentrations.

Readers (chosen from the file's content): Luminex xPONENT CSV and Intelliflex CSV,
Bio-Plex Manager Excel and XML, MSD Discovery Workbench (CSV/xlsx) and Methodical Mind,
Bio-Rad CFX, QuantStudio / ViiA 7 (text, Excel, Design & Analysis), RDML. Then plate
integrity checks, weighted 5PL/4PL standard curves with acceptance rules and anchor
points, back-calculation with LLOQ/ULOQ censoring, plate QC (bead counts, replicates,
kit controls, Levey-Jennings / Westgard), value-by-value agreement with the vendor
software, qPCR relative expression, Th1/Th2 chemokine scores, and the batch outputs.
"""

from immuno.chemokines.checks import check_inputs
from immuno.chemokines.curves import (
    CurveFit,
    CurveParams,
    back_calculate,
    fit_curve,
    precision_profile,
    predict,
)
from immuno.chemokines.layout import read_layout
from immuno.chemokines.outputs import concentrations_anndata
from immuno.chemokines.plate import QPCR_COLUMNS, WELL_COLUMNS, PlateData, PlateIssue, parse_cell
from immuno.chemokines.process import process_batch, quantify_file
from immuno.chemokines.qpcr import efficiency_from_standards, genorm_m, relative_expression
from immuno.chemokines.qpcr_run import RunResult, quantify_run
from immuno.chemokines.quantify import PlateResult, quantify_plate
from immuno.chemokines.readers import detect_format, read_plate
from immuno.chemokines.scores import derived_scores
from immuno.chemokines.standards import (
    CURVE_DEFAULTS,
    StandardCurve,
    fit_standard_curves,
    fit_standards,
    judge_curve,
)
from immuno.chemokines.westgard import levey_jennings, westgard

__all__ = [
    "CURVE_DEFAULTS", "CurveFit", "CurveParams", "PlateData", "PlateIssue", "PlateResult", "QPCR_COLUMNS", "RunResult",
    "StandardCurve", "WELL_COLUMNS", "back_calculate", "check_inputs", "concentrations_anndata", "derived_scores",
    "detect_format", "efficiency_from_standards", "fit_curve", "fit_standard_curves", "fit_standards", "genorm_m",
    "judge_curve", "levey_jennings", "parse_cell", "precision_profile", "predict", "process_batch", "quantify_file",
    "quantify_plate", "quantify_run", "read_layout", "read_plate", "relative_expression", "westgard",
]
