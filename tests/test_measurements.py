"""The measurement and QC tables and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.io import atomic_path, write_parquet
from immuno.measurements import COLUMNS, concat_measurements, measurement_table
from immuno.qc import flags_table


def test_measurement_table_normalises_and_sorts() -> None:
    rows = [
        {"batch_id": "b", "sample_id": "S2", "assay": "chemokine", "panel": "p", "feature": "CXCL10",
         "value": 12.5, "unit": "pg/mL"},
        {"batch_id": "b", "sample_id": "S1", "assay": "chemokine", "panel": "p", "feature": "CXCL9",
         "value": np.nan, "unit": "pg/mL", "flag": "<LLOQ"},
    ]
    m = measurement_table(rows)
    assert list(m.columns) == COLUMNS
    assert m.sample_id.tolist() == ["S1", "S2"]
    assert m.qc_pass.tolist() == [True, True]
    assert m.value.dtype == np.float64
    assert m.flag.tolist()[0] == "<LLOQ"


def test_duplicate_key_is_refused() -> None:
    row = {"batch_id": "b", "sample_id": "S1", "assay": "chimerism", "panel": "p",
           "feature": "donor_fraction", "value": 0.4, "unit": "%"}
    with pytest.raises(ValueError, match="share a key"):
        measurement_table([row, row])


def test_concat_of_nothing_is_an_empty_table() -> None:
    assert list(concat_measurements([]).columns) == COLUMNS


def test_unknown_flag_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        flags_table([{"sample_id": "S1", "flag": "x", "severity": "bad"}])


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), dest)
    before = dest.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_atomic_write_gives_ordinary_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        dest = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    finally:
        os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o644
