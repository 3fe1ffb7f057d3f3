"""The study store on hand-made batch results with known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.contract.measurements import measurement_table
from immuno.errors import UserError
from immuno.io import write_parquet
from immuno.run.provenance import SCHEMA_VERSION
from immuno.study import Study


def _batch(results: Path, batch: str, started: str, th1: float, patient_values: dict[str, float],
           supersedes: dict[str, str] | None = None, version: str = SCHEMA_VERSION) -> None:
    rows = [{"batch_id": batch, "sample_id": "REFCTRL-ICS-STIM", "patient_id": "REFCTRL", "visit": "",
             "assay": "cytometry", "panel": "ics", "feature": "Th1", "value": th1, "unit": "% of CD4+"}]
    for key, value in patient_values.items():
        patient, visit = key.split(":")
        rows.append({"batch_id": batch, "sample_id": f"{patient}-{visit}", "patient_id": patient, "visit": visit,
                     "assay": "cytometry", "panel": "ics", "feature": "Th1", "value": value, "unit": "% of CD4+"})
    write_parquet(measurement_table(rows), results / batch / "measurements.parquet")
    (results / batch / "provenance.json").write_text(json.dumps({"schema_version": version, "started": started}))
    if supersedes:
        sheet = pd.DataFrame({"sample_id": list(supersedes), "supersedes": list(supersedes.values())})
        (results / batch / "validation").mkdir(parents=True, exist_ok=True)
        sheet.to_csv(results / batch / "validation" / "samplesheet.csv", index=False)


def test_control_chart_flags_a_drifting_batch(tmp_path: Path) -> None:
    guide = [10.0, 10.4, 9.6, 10.2, 9.8]  # mean 10, sd 0.316
    # batch names sort opposite to run order: the chart must follow the start times
    for i, value in enumerate([*guide, 10.3, 11.5]):
        _batch(tmp_path, f"B{9 - i}", f"2026-0{i + 1}-01T00:00:00+00:00", value, {})
    chart = Study(tmp_path).control_chart("cytometry")
    table = chart.table
    assert table.batch_id.tolist() == [f"B{9 - i}" for i in range(7)]
    sd = float(np.std(guide, ddof=1))
    assert np.isclose(table["mean"].iloc[0], 10.0) and np.isclose(table["sd"].iloc[0], sd)
    assert table.status.tolist() == ["in_control"] * 6 + ["reject"]
    assert table.rules.iloc[-1] == "1-3s"
    assert np.isclose(table.z.iloc[-1], 1.5 / sd)
    # the figure is a real chart: one axes per series, the rejected point annotated with its rule
    ax = chart.figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1-3s"]
    assert chart._repr_png_()[:4] == b"\x89PNG"


def test_no_limits_without_a_guide_set(tmp_path: Path) -> None:
    for i in range(3):
        _batch(tmp_path, f"B{i}", f"2026-0{i + 1}-01", 10.0 + i, {})
    table = Study(tmp_path).control_chart("cytometry").table
    assert (table.status == "no_guide_set").all() and table["mean"].isna().all()


def test_change_from_baseline_and_wide(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0, "P01:D10": 15.0})
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {"P01:M1": 10.0})
    study = Study(tmp_path)
    change = study.change_from_baseline("cytometry").set_index("visit")
    assert change.loc["D10", "change"] == -5.0 and change.loc["M1", "change"] == -10.0
    assert change.loc["M1", "fold_change"] == 0.5
    wide = study.wide("cytometry", unit=True)
    assert list(wide.columns) == ["Th1 [% of CD4+]"] and len(wide) == 3  # controls left out
    assert len(study.wide("cytometry", controls=True)) == 5
    assert study.sql("select count(distinct batch_id) as n from measurements").n[0] == 2
    assert study.sql("select count(*) as n from measurements where control").n[0] == 2


def test_bad_results_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="results folder not found"):
        Study(tmp_path / "nonexistent")
    (tmp_path / "half").mkdir()
    with pytest.raises(UserError, match="no complete batch results.*half"):
        Study(tmp_path)
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0})
    study = Study(tmp_path)
    with pytest.raises(UserError, match="no assay 'cytokine'; assays present: cytometry"):
        study.measurements("cytokine")
    with pytest.raises(UserError, match=r"no feature 'Th9'.*Th1 \(ics\)"):
        study.measurements("cytometry", feature="Th9")
    with pytest.raises(UserError, match="no panel 'surface'; panels present: ics"):
        study.to_anndata("cytometry", panel="surface")


def test_older_schema_is_converted_and_unknown_refused(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0}, version="1.0")
    # an old file: "no flag" as missing, no control column
    old = pd.read_parquet(tmp_path / "B1" / "measurements.parquet").drop(columns="control")
    old["flag"] = None
    old.to_parquet(tmp_path / "B1" / "measurements.parquet")
    study = Study(tmp_path)
    assert study.batch_table().converted_from.tolist() == ["1.0"]
    m = study.measurements()
    assert m.flag.tolist() == ["", ""] and m.control.tolist() == [False, True]
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {}, version="9.0")
    with pytest.raises(UserError, match="B2.*schema version '9.0'"):
        Study(tmp_path)


def test_a_file_breaking_the_schema_is_refused_on_reading(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0})
    bad = pd.read_parquet(tmp_path / "B1" / "measurements.parquet")
    bad.loc[1, "qc_pass"] = False  # a failed value with no failing flag word
    bad.to_parquet(tmp_path / "B1" / "measurements.parquet")
    with pytest.raises(UserError, match="B1/measurements.parquet: table: qc_pass must be False exactly"):
        Study(tmp_path)


def test_duplicates_are_listed_and_statistics_refuse_them(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0, "P01:D10": 15.0})
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {"P01:D0": 30.0})
    study = Study(tmp_path)
    dup = study.duplicates()
    assert dup[["patient_id", "visit", "feature", "batches"]].values.tolist() == [["P01", "D0", "Th1", "B1, B2"]]
    with pytest.raises(UserError, match="P01 D0 cytometry/ics/Th1: batches B1, B2"):
        study.change_from_baseline("cytometry")
    with pytest.raises(UserError, match="supersedes"):
        study.compare_visits("Th1")
    adata = study.to_anndata("cytometry")
    assert adata.obs.loc[["B1/P01-D0", "B2/P01-D0"], "duplicate"].tolist() == [True, True]


def test_a_marked_rerun_supersedes_the_earlier_batch(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0, "P01:D10": 15.0})
    _batch(tmp_path, "B2", "2026-02-01", 10.0, {"P01:D0": 30.0}, supersedes={"P01-D0": "B1"})
    study = Study(tmp_path)
    assert study.duplicates().empty
    gone = study.superseded()
    assert gone[["batch_id", "sample_id", "superseded_by"]].values.tolist() == [["B1", "P01-D0", "B2"]]
    change = study.change_from_baseline("cytometry").set_index("visit")
    assert change.loc["D10", "baseline"] == 30.0  # the re-run's value, not the first batch's
    _batch(tmp_path, "B3", "2026-03-01", 10.0, {"P02:D0": 1.0}, supersedes={"P02-D0": "B0"})
    with pytest.raises(UserError, match="supersedes batch 'B0', which is not in these results"):
        Study(tmp_path)


def test_sql_keeps_one_connection_over_tables_read_once(tmp_path: Path) -> None:
    _batch(tmp_path, "B1", "2026-01-01", 10.0, {"P01:D0": 20.0})
    study = Study(tmp_path)
    assert study.sql("select count(*) as n from measurements").n[0] == 2
    con = study._con
    (tmp_path / "B1" / "measurements.parquet").unlink()  # a view over what was read, not a re-read
    assert study.sql("select count(*) as n from measurements").n[0] == 2 and study._con is con
    study.close()
    assert study._con is None


def _chemokine(results: Path) -> Study:
    rows = []
    for i, (patient, visit) in enumerate([("P01", "D0"), ("P01", "D10"), ("P02", "D0"), ("P02", "D10")]):
        s = f"{patient}-{visit}"
        base = {"batch_id": "B1", "sample_id": s, "patient_id": patient, "visit": visit, "assay": "chemokine",
                "panel": "lum", "unit": "pg/mL"}
        rows.append(base | {"feature": "CXCL10", "value": 100.0 + i})
        rows.append(base | ({"feature": "CCL17", "value": np.nan, "flag": "<LLOQ", "upper": 4.0} if i == 1
                            else {"feature": "CCL17", "value": np.nan, "flag": ">ULOQ", "lower": 500.0} if i == 2
                            else {"feature": "CCL17", "value": 50.0 + i}))
        rows.append(base | {"feature": "Th2_score", "value": np.nan if i == 0 else 7.0,
                            "flag": "incomplete" if i == 0 else ""})
    write_parquet(measurement_table(rows), results / "B1" / "measurements.parquet")
    (results / "B1" / "provenance.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    return Study(results)


def test_to_anndata_substitutes_censored_values_and_keeps_the_raw_ones(tmp_path: Path) -> None:
    import warnings

    study = _chemokine(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning or implicit-modification warning on every call
        adata = study.to_anndata("chemokine")
    assert list(adata.var_names) == ["CCL17", "CXCL10"]
    assert adata.uns["missing_features"] == ["Th2_score"]
    assert np.isnan(adata.obsm["missing_features"].loc["B1/P01-D0", "Th2_score"])
    ccl17 = adata[:, "CCL17"]
    assert ccl17.X.ravel().tolist() == [50.0, 2.0, 500.0, 53.0]           # LLOQ/2 and ULOQ
    assert np.isnan(ccl17.layers["value_raw"][1:3]).all()
    assert ccl17.layers["censored"].ravel().tolist() == [False, True, True, False]
    assert adata.var.loc["CCL17", "unit"] == "pg/mL" and adata.var.loc["CCL17", "n_censored"] == 2
    assert adata.obs.visit.cat.ordered and list(adata.obs.visit.cat.categories) == ["D0", "D10"]
    assert isinstance(adata.obs.patient_id.dtype, pd.CategoricalDtype)
    kept = study.to_anndata("chemokine", missing="keep")
    assert "Th2_score" in kept.var_names and np.isnan(kept[:, "Th2_score"].X).sum() == 1


def test_wide_never_pools_two_panels_under_one_name(tmp_path: Path) -> None:
    rows = []
    for panel, unit, value in (("ics", "% of CD4+", 12.0), ("surface", "% of memory CD4+", 30.0)):
        rows.append({"batch_id": "B1", "sample_id": f"P01-D0-{panel}", "patient_id": "P01", "visit": "D0",
                     "assay": "cytometry", "panel": panel, "feature": "Th1", "value": value, "unit": unit})
    write_parquet(measurement_table(rows), tmp_path / "B1" / "measurements.parquet")
    (tmp_path / "B1" / "provenance.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    study = Study(tmp_path)
    assert sorted(study.wide("cytometry", unit=True).columns) == ["ics/Th1 [% of CD4+]",
                                                                   "surface/Th1 [% of memory CD4+]"]
    with pytest.raises(UserError, match="2 panels"):
        study.to_anndata("cytometry")
    stats = study.compare_visits("Th1", visits=[])
    assert stats.empty
    features = study.features("cytometry")
    assert features[["panel", "unit"]].values.tolist() == [["ics", "% of CD4+"], ["surface", "% of memory CD4+"]]


def test_sheet_supersedes_column_is_checked_and_kept(demo_copy: Path, tmp_path: Path) -> None:
    from immuno.contract.batch import load_batch, write_sheet

    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet["supersedes"] = ""
    sheet.loc[0, "supersedes"] = "run 1!"
    sheet.to_csv(demo_copy / "samplesheet.csv", index=False)
    with pytest.raises(UserError, match="row 2, column supersedes: 'run 1!' is not a batch id"):
        load_batch(demo_copy)
    sheet.loc[0, "supersedes"] = "B0"
    sheet.to_csv(demo_copy / "samplesheet.csv", index=False)
    batch = load_batch(demo_copy)
    out = write_sheet(batch.sheet.drop(columns="row").to_dict("records"), tmp_path / "sheet.csv")
    assert out.loc[0, "supersedes"] == "B0"
