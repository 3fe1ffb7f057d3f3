"""The measurement table: the one tidy table every assay writes (DESIGN §3).

One row per (batch, sample, assay, panel, feature). ``value`` is numeric (NaN where no
number exists, e.g. a censored concentration); ``flag`` carries censoring or detection
words (``<LLOQ``, ``>ULOQ``, ``detected``, ``not_detected``); ``lower``/``upper`` hold an
interval where one exists. Values are stored unrounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

#: the columns of measurements.parquet, in order
COLUMNS: list[str] = [
    "batch_id", "sample_id", "patient_id", "visit", "assay", "panel", "feature",
    "value", "unit", "lower", "upper", "flag", "qc_pass",
]
#: the columns that identify a row
KEY: list[str] = ["batch_id", "sample_id", "assay", "panel", "feature"]

_STRING_COLUMNS = ["batch_id", "sample_id", "patient_id", "visit", "assay", "panel",
                   "feature", "unit", "flag"]
_FLOAT_COLUMNS = ["value", "lower", "upper"]


def measurement_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise rows into the measurement table's columns, dtypes and order.

    Missing optional columns (``lower``, ``upper``, ``flag``, ``unit``, ``panel``) are
    added empty; ``qc_pass`` defaults to True. Rows are sorted by the key so that the
    same inputs always give byte-identical files.

    Parameters
    ----------
    rows
        A DataFrame or an iterable of dicts with at least ``sample_id``, ``assay``,
        ``feature`` and ``value``.

    Returns
    -------
    pandas.DataFrame
        The table with exactly :data:`COLUMNS`.

    Raises
    ------
    ValueError
        If a required column is missing or the key is duplicated (a programming error,
        not a user error).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("sample_id", "assay", "feature", "value"):
        if col not in df.columns and len(df):
            raise ValueError(f"measurement rows need a {col!r} column")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = True if col == "qc_pass" else (np.nan if col in _FLOAT_COLUMNS else None)
    df = df[COLUMNS].copy()
    for col in _FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
    for col in _STRING_COLUMNS:
        df[col] = df[col].astype("string")
    df["qc_pass"] = df["qc_pass"].fillna(False).astype(bool)
    dup = df.duplicated(KEY, keep=False)
    if dup.any():
        first = df.loc[dup, KEY].iloc[0].tolist()
        raise ValueError(f"{int(dup.sum())} measurement rows share a key, e.g. {first}")
    return df.sort_values(KEY, kind="stable").reset_index(drop=True)


def empty_measurements() -> pd.DataFrame:
    """An empty table with the measurement columns and dtypes."""
    return measurement_table(pd.DataFrame(columns=COLUMNS))


def concat_measurements(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-assay tables into one normalised measurement table."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return empty_measurements()
    return measurement_table(pd.concat(parts, ignore_index=True))
