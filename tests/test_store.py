"""The study store on hand-made batch results with known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.io import write_parquet
from immuno.measurements import measurement_table
from immuno.provenance import SCHEMA_VERSION
from immuno.store import Study


def _batch(results: Path, batch: str, started: str, th1: float, patient_values: dict[str, float]) -> None:
    rows = [{"batch_id": batch, "sample_id": "REFCTRL-ICS-STIM", "patient_id": "REFCTRL", "visit": "",
             "assay": "cytometry", "panel": "ics", "feature": "Th1", "value": th1, "unit": "% of CD4+"}]
    for key, value in patient_values.items():
        patient, visit = key.split(":")
        rows.append({"batch_id": batch, "sample_id": f"{patient}-{visit}", "patient_id": patient, "visit": visit,
                     "assay": "cytometry", "panel": "ics", "feature": "Th1", "value": value, "unit": "% of CD4+"})
    write_parquet(measurement_table(rows), results / batch / "measurements.parquet")
    (results / batch / "provenance.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                                                                 "started": started}))


def test_control_chart_flags_a_drifting_batch(tmp_path: Path) -> None:
    guide = [10.0, 10.4, 9.6, 10.2, 9.8]  # mean 10, sd 0.316
    # batch names sort opposite to run order: the chart must follow the start times
    for i, value in enumerate([*guide, 10.3, 11.5]):
        _batch(tmp_path, f"B{9 - i}", f"2026-0{i + 1}-01T00:00:00+00:00", value, {})
    chart = Study(tmp_path).control_chart("cytometry")
    assert chart.batch_id.tolist() == [f"B{9 - i}" for i in range(7)]
    sd = float(np.std(guide, ddof=1))
    assert np.isclose(chart["mean"].iloc[0], 10.0) and np.isclose(chart["sd"].iloc[0], sd)
    assert chart.status.tolist() == ["in_control"] * 6 + ["reject"]
    assert chart.rules.iloc[-1] == "1-3s"
    assert np.isclose(chart.z.iloc[-1], 1.5 / sd)


def test_no_limits_without_a_guide_set(tmp_path: Path) -> None:
    for i in range(3):
        _batch(tmp_path, f"B{i}", f"2026-0{i + 1}-01", 10.0 + i, {})
    chart = Study(tmp_path).control_chart("cytometry")
    assert (chart.status == "no_guide_set").all() and chart["mean"].isna().all()


def test_change_from_baseline_and_wide(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0, "P01:D10": 15.0})
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {"P01:M1": 10.0})
    study = Study(tmp_path)
    change = study.change_from_baseline("cytometry").set_index("visit")
    assert change.loc["D10", "change"] == -5.0 and change.loc["M1", "change"] == -10.0
    assert change.loc["M1", "fold_change"] == 0.5
    wide = study.wide("cytometry", unit=True)
    assert list(wide.columns) == ["Th1 [% of CD4+]"] and len(wide) == 5
    assert study.sql("select count(distinct batch_id) as n from measurements").n[0] == 2
    assert isinstance(study.measurements(), pd.DataFrame)
