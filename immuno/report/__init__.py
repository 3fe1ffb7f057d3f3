"""The batch QC report and the study dashboard: self-contained HTML files.

``report.html`` (one per batch) reads only the batch's result files (measurements, QC
tables, provenance and the plots the assay rooms wrote), never the assay rooms
themselves; ``results/study/dashboard.html`` reads the study. Both embed every image, so
each file can be mailed or archived on its own and opens without a network.
"""

from __future__ import annotations

from immuno.report.build import build_report

__all__ = ["build_report"]
