"""QC tables shared by every assay: ``qc/metrics.parquet`` and ``qc/flags.parquet``.

A *metric* is one check with its value, its limits and whether it passed (events kept,
curve R^2, bead counts, control recovery ...). A *flag* is one thing a reader must know
about a sample or a feature (a failed sample and its reason, a fallback gate, a low
bead count). Dashboards read these two tables only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

METRIC_COLUMNS: list[str] = [
    "batch_id",
    "sample_id",
    "assay",
    "panel",
    "check",
    "target",
    "value",
    "lower_limit",
    "upper_limit",
    "passed",
    "detail",
]
FLAG_COLUMNS: list[str] = [
    "batch_id",
    "sample_id",
    "assay",
    "panel",
    "target",
    "flag",
    "severity",
    "reason",
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
    return df.sort_values(
        ["batch_id", "assay", "sample_id", "check", "target"], kind="stable", na_position="first"
    ).reset_index(drop=True)


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
    return df.sort_values(
        ["batch_id", "assay", "sample_id", "flag", "target"], kind="stable", na_position="first"
    ).reset_index(drop=True)


#: Levey-Jennings guide sets need at least this many earlier runs
MIN_GUIDE_RUNS = 5


def westgard(values: Sequence[float], mean: float, sd: float) -> list[list[str]]:
    """Westgard rules violated by each value of a run sequence (in run order).

    1-2s is a warning; 1-3s, 2-2s (two consecutive beyond 2 SD on the same side) and
    R-4s (consecutive values more than 4 SD apart, across the mean) reject the run.

    Parameters
    ----------
    values
        One control's values, one per run (plate, batch), oldest first.
    mean, sd
        The guide set's mean and standard deviation.

    Returns
    -------
    list of list of str
        The rules each value violates (empty when in control).
    """
    z = [(v - mean) / sd if sd > 0 and math.isfinite(v) else math.nan for v in values]
    out: list[list[str]] = []
    for i, zi in enumerate(z):
        rules: list[str] = []
        if math.isfinite(zi):
            if abs(zi) > 3:
                rules.append("1-3s")
            prev = z[i - 1] if i > 0 else math.nan
            if math.isfinite(prev):
                if abs(zi) > 2 and abs(prev) > 2 and np.sign(zi) == np.sign(prev):
                    rules.append("2-2s")
                if abs(zi - prev) > 4 and max(zi, prev) > 2 and min(zi, prev) < -2:
                    rules.append("R-4s")
            if abs(zi) > 2 and not rules:
                rules.append("1-2s")
        out.append(rules)
    return out
