"""The study store (kept for ``from immuno.store import Study``); see :mod:`immuno.study`."""

from __future__ import annotations

from immuno.measurements import COLUMNS
from immuno.study import Study, batch_dirs
from immuno.study.load import READABLE_SCHEMAS

__all__ = ["Study", "batch_dirs", "COLUMNS", "READABLE_SCHEMAS"]
