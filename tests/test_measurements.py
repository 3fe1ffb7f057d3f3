"""The measurement and QC tables and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.contract.measurements import COLUMNS, concat_measurements, measurement_table
from immuno.contract.qc import flags_table
from immuno.io import atomic_path, write_parquet


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


def _row(**kw: object) -> dict:
    base = {"batch_id": "b", "sample_id": "S1", "patient_id": "P01", "visit": "D0", "assay": "chemokine",
            "panel": "p", "feature": "CXCL9", "value": 1.0, "unit": "pg/mL"}
    return base | kw


def test_one_spelling_of_no_flag_and_qc_pass_from_flags() -> None:
    m = measurement_table([
        _row(sample_id="S1", flag=None),
        _row(sample_id="S2", flag=""),
        _row(sample_id="S3", flag=pd.NA),
        _row(sample_id="S4", value=np.nan, flag="<LLOQ", upper=2.0, qc_pass=True),
        _row(sample_id="S5", value=np.nan, flag="<LLOQ", upper=2.0, qc_pass=False),  # room failed it (e.g. CV)
        _row(sample_id="S6", value=np.nan, flag="failed", qc_pass=True),              # failing word wins
        _row(sample_id="S7", value=np.nan),                                            # NaN with no reason
    ])
    assert m.flag.tolist() == ["", "", "", "<LLOQ", "<LLOQ;qc_failed", "failed", "no_value"]
    assert m.qc_pass.tolist() == [True, True, True, True, False, False, False]
    assert m.flag.isna().sum() == 0 and m.visit.isna().sum() == 0


def test_controls_are_the_rows_without_a_visit() -> None:
    m = measurement_table([_row(sample_id="REF", patient_id="REFCTRL", visit=""), _row()])
    assert m.set_index("sample_id").control.to_dict() == {"REF": True, "S1": False}


@pytest.mark.parametrize(("bad", "words"), [
    ({"flag": "LLOQ"}, "vocabulary"),
    ({"unit": ""}, "unit must not be empty"),
    ({"visit": "", "control": False}, "need a patient_id and a visit"),
    ({"lower": 5.0, "upper": 1.0}, "lower must not exceed upper"),
])
def test_schema_refuses_bad_rows(bad: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        measurement_table([_row(**bad)])


def test_one_feature_one_unit() -> None:
    with pytest.raises(ValueError, match="one unit"):
        measurement_table([_row(), _row(sample_id="S2", unit="ng/mL")])


def test_flag_detail_after_colon_is_allowed() -> None:
    m = measurement_table([_row(feature="Th1_chemokine_score", flag="censored_inputs:CXCL9+CXCL11")])
    assert m.qc_pass.all() and m.flag[0] == "censored_inputs:CXCL9+CXCL11"


def test_schema_1_0_tables_are_converted_by_the_stated_rule() -> None:
    from immuno.contract.measurements import upgrade_measurements

    old = pd.DataFrame([_row(sample_id="S1", flag=None), _row(sample_id="S2", flag=""),
                        _row(sample_id="S3", value=np.nan, flag="<LLOQ", upper=2.0, qc_pass=False),
                        _row(sample_id="R", patient_id="REFCTRL", visit=None)])
    new = upgrade_measurements(old, "1.0")
    assert list(new.columns) == COLUMNS and new.sample_id.tolist() == ["R", "S1", "S2", "S3"]
    assert new.flag.tolist() == ["", "", "", "<LLOQ;qc_failed"]
    assert new.qc_pass.tolist() == [True, True, True, False]
    assert new.control.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="no conversion"):
        upgrade_measurements(old, "0.3")


def test_censored_substitute_rule() -> None:
    from immuno.contract.measurements import censored_substitute

    m = measurement_table([_row(sample_id="S1", value=np.nan, flag="<LLOQ", upper=3.0),
                           _row(sample_id="S2", value=np.nan, flag=">ULOQ", lower=900.0),
                           _row(sample_id="S3", value=7.0),
                           _row(sample_id="S4", value=np.nan, flag="failed")])
    out = censored_substitute(m.value, m.flag, m.lower, m.upper)
    assert out.tolist()[:3] == [1.5, 900.0, 7.0] and np.isnan(out[3])
