"""Batch validation: each class of mistake gets its own clear message (file, row, column)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.validate import validate_batch
from immuno.errors import UserError

PANELS = Path(__file__).resolve().parents[1] / "panels"


def _edit_sheet(batch: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = batch / "samplesheet.csv"
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(sheet).to_csv(path, index=False)


def _problems(batch: Path, panels: Path = PANELS) -> list[str]:
    with pytest.raises(UserError) as err:
        validate_batch(batch, panels_dir=panels)
    return [str(p) for p in err.value.problems]


def test_clean_demo_batch_passes(small_demo: Path) -> None:
    batch = validate_batch(small_demo, panels_dir=PANELS)
    assert batch.batch_id == "demo"
    assert set(batch.sheet["assay"]) == {"cytometry", "chemokine", "chimerism"}
    assert batch.sheet["sample_id"].is_unique


def _set(row: int, column: str, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df
    return change


def _first(df: pd.DataFrame, assay: str) -> int:
    return int(df.index[df["assay"] == assay][0])


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("visit", "d10", "'d10' is not an allowed visit (D0, D10, M1); did you mean 'D10'?"),
        ("assay", "cytometyr", "did you mean 'cytometry'?"),
        ("patient_id", "Jean Dupont", "is not a pseudonymous code"),
        ("file", "../outside.fcs", "points outside the batch folder"),
        ("file", "/etc/passwd", "is absolute"),
        ("file", "cytometry/missing.fcs", "file 'cytometry/missing.fcs' not found"),
        ("panel", "no_such_panel", "no panel named 'no_such_panel'"),
        ("sample_id", "", "empty; every row needs a sample_id"),
    ],
)
def test_each_sheet_mistake_has_its_message(demo_copy: Path, column: str, value: str, expected: str) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    row = _first(sheet, "cytometry") + 1  # not the first row, so row numbers are checked
    _edit_sheet(demo_copy, _set(row, column, value))
    problems = _problems(demo_copy)
    line = row + 2  # header is line 1
    assert any(f"row {line}, column {column}" in p and expected in p for p in problems), problems


def test_duplicate_sample_id_names_both_rows(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    _edit_sheet(demo_copy, _set(3, "sample_id", sheet.loc[1, "sample_id"]))
    problems = _problems(demo_copy)
    assert any("row 5, column sample_id" in p and "already used on row 3" in p for p in problems), problems


def test_missing_and_misspelt_columns(demo_copy: Path) -> None:
    _edit_sheet(demo_copy, lambda df: df.drop(columns="visit").rename(columns={"control_of": "contol_of"}))
    problems = _problems(demo_copy)
    assert any("missing required column 'visit'" in p for p in problems)
    assert any("unknown column 'contol_of'; did you mean 'control_of'?" in p for p in problems)


def test_panel_of_another_assay(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    chem_panel = sheet.loc[_first(sheet, "chemokine"), "panel"]
    row = _first(sheet, "cytometry")
    _edit_sheet(demo_copy, _set(row, "panel", chem_panel))
    problems = _problems(demo_copy)
    assert any(f"row {row + 2}, column panel" in p and "is a chemokine panel" in p for p in problems), problems


def test_unstimulated_tube_needs_its_stimulated_sample(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    row = int(sheet.index[sheet["tube"] == "unstimulated"][0])
    _edit_sheet(demo_copy, _set(row, "control_of", "NOPE"))
    problems = _problems(demo_copy)
    assert any(f"row {row + 2}, column control_of" in p and "'NOPE' is not a sample_id" in p for p in problems)


def test_chimerism_role_is_checked(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    row = _first(sheet, "chimerism")
    _edit_sheet(demo_copy, _set(row, "role", "biopsie"))
    problems = _problems(demo_copy)
    assert any(f"row {row + 2}, column role" in p and "'biopsie' is not a chimerism role" in p for p in problems)


def test_all_problems_are_reported_at_once(demo_copy: Path) -> None:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[1, "visit"] = "D7"
        df.loc[2, "file"] = "nothing.csv"
        df.loc[3, "panel"] = "nope"
        return df
    _edit_sheet(demo_copy, change)
    problems = _problems(demo_copy)
    assert len(problems) >= 3
    assert {"column visit", "column file", "column panel"} <= {p.split(", ")[1].split(":")[0] for p in problems if ", column" in p}


def test_semicolon_sheet_is_read(demo_copy: Path) -> None:
    path = demo_copy / "samplesheet.csv"
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet.to_csv(path, index=False, sep=";")
    assert len(load_batch(demo_copy, panels_dir=PANELS).sheet) == len(sheet)


def test_renamed_channel_in_panel_is_named_with_the_file(demo_copy: Path, tmp_path: Path) -> None:
    panels = tmp_path / "panels"
    shutil.copytree(PANELS, panels)
    ics = next(p for p in panels.glob("cytometry*ics*.yaml"))
    text = ics.read_text()
    assert "FITC-A" in text or "PE-A" in text
    channel = "FITC-A" if "FITC-A" in text else "PE-A"
    ics.write_text(text.replace(f"channel: {channel}", "channel: FITC-X", 1))
    problems = _problems(demo_copy, panels)
    assert any("FITC-X" in p and ".fcs" in p for p in problems), problems


def test_unreadable_plate_is_named(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    plate = demo_copy / sheet.loc[_first(sheet, "chemokine"), "file"]
    plate.write_text("this is not a plate export\n")
    problems = _problems(demo_copy)
    assert any(plate.name in p for p in problems), problems


def test_genotyping_export_without_expected_columns_is_named(demo_copy: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    export = demo_copy / sheet.loc[_first(sheet, "chimerism"), "file"]
    export.write_text("Foo\tBar\n1\t2\n")
    problems = _problems(demo_copy)
    assert any(export.name in p for p in problems), problems


def test_cli_validate_exits_2_without_traceback(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_sheet(demo_copy, _set(0, "visit", "M3"))
    status = main(["validate", str(demo_copy), "--panels", str(PANELS)])
    err = capsys.readouterr().err
    assert status == 2
    assert "'M3' is not an allowed visit" in err
    assert "Traceback" not in err


def test_cli_validate_clean(small_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(small_demo), "--panels", str(PANELS)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_missing_sheet_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="batch folder not found"):
        load_batch(tmp_path / "nope")
    with pytest.raises(UserError, match="no sample sheet"):
        load_batch(tmp_path)


def test_visits_sort_in_time() -> None:
    from immuno.contract.batch import visit_sort_key

    assert sorted(["M1", "D10", "X", "D0", "W2", "Y1"], key=visit_sort_key) == ["D0", "D10", "W2", "M1", "Y1", "X"]
