"""QC tables shared by every assay: ``qc/metrics.parquet`` and ``qc/flags.parquet``.

A *metric* is one check with its value, its limits and whether it passed (events kept,
curve R^2, bead counts, control recovery ...). A *flag* is one thing a reader must know
about a sample or a feature (a failed sample and its reason, a fallback gate, a low
bead count). Dashboards read these two tables only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

METRIC_COLUMNS: list[str] = [
    "batch_id", "sample_id", "assay", "panel", "check", "target", "value",
    "lower_limit", "upper_limit", "passed", "detail",
]
FLAG_COLUMNS: list[str] = [
    "batch_id", "sample_id", "assay", "panel", "target", "flag", "severity", "reason",
]
#: flag severities, from informative to blocking
SEVERITIES = ("info", "warning", "fail")

_METRIC_FLOATS = ["value", "lower_limit", "upper_limit"]


def metrics_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise QC metric rows (see :data:`METRIC_COLUMNS`).

    ``target`` names what was checked inside the sample (a gate, an analyte, a locus);
    ``passed`` is True/False, or missing when the check has no limits.
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in METRIC_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in _METRIC_FLOATS else None
    df = df[METRIC_COLUMNS].copy()
    for col in _METRIC_FLOATS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in set(METRIC_COLUMNS) - set(_METRIC_FLOATS) - {"passed"}:
        df[col] = df[col].astype("string")
    df["passed"] = df["passed"].astype("boolean")
    return df.sort_values(["batch_id", "assay", "sample_id", "check", "target"],
                          kind="stable", na_position="first").reset_index(drop=True)


def flags_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise QC flag rows (see :data:`FLAG_COLUMNS`); severity is one of
    :data:`SEVERITIES`."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in FLAG_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[FLAG_COLUMNS].copy()
    bad = set(df["severity"].dropna()) - set(SEVERITIES)
    if bad:
        raise ValueError(f"unknown flag severity {sorted(bad)}; expected one of {SEVERITIES}")
    for col in FLAG_COLUMNS:
        df[col] = df[col].astype("string")
    return df.sort_values(["batch_id", "assay", "sample_id", "flag", "target"],
                          kind="stable", na_position="first").reset_index(drop=True)
