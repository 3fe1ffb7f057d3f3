"""The batch QC report: one self-contained HTML file per batch (``report.html``).

It reads only the batch's result files (measurements, QC tables, provenance and the
plots the assay rooms wrote), never the assay rooms themselves, and embeds every image,
so the file can be mailed or archived on its own.
"""

from __future__ import annotations

from immuno.report.build import build_report

__all__ = ["build_report"]
