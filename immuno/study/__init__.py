"""The study: every batch's results as one set of checked tables for analysts.

Per-batch results are immutable; the study tables under ``results/study/`` are rebuilt
from them (adding batch B never rewrites batch A). In a notebook::

    from immuno.study import Study
    study = Study("results")
    study.measurements("cytometry", panel="cytometry_surface_demo")   # tidy table
    study.sql("select panel, feature, unit, visit, median(value) from measurements "
              "where assay = 'cytometry' and not control group by all")
    study.wide("chemokine")                    # samples x features
    study.to_anndata("chemokine")              # for scanpy (censored values substituted)
    study.compare_visits(assay="chemokine")    # D0->D10, D0->M1: Wilcoxon, HL CI, BH
    study.control_chart("cytometry").figure    # reference control across batches
"""

from immuno.contract.measurements import COLUMNS
from immuno.study.core import Study
from immuno.study.load import READABLE_SCHEMAS, batch_dirs, read_study
from immuno.study.stats import benjamini_hochberg, hodges_lehmann, paired_change

__all__ = [
    "Study",
    "batch_dirs",
    "read_study",
    "benjamini_hochberg",
    "hodges_lehmann",
    "paired_change",
    # the columns of the measurement table and the results schemas the study reads
    "COLUMNS",
    "READABLE_SCHEMAS",
]
