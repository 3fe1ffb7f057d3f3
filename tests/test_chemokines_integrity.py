"""Plate integrity on broken copies of the demo plate: every bad input flagged with its
well and reason, kept out of fits and means, refused with its line when it cannot be
read, and never the end of a batch."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import process_batch, quantify_plate, read_plate
from immuno.chemokines.checks import check_inputs
from immuno.chemokines.qc.integrity import all_issues
from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.panels import find_panel
from immuno.demo import chemokines as demo
from immuno.demo import make_demo_batch
from immuno.errors import UserError

SAMPLES = ["P01-D0-PLASMA", "P01-D10-PLASMA", "P01-M1-PLASMA"]


def _plate_text(quirks: bool = True, seed: int = 3) -> str:
    rng = np.random.default_rng(seed)
    conc = {(s, a[1]): 200.0 for s in SAMPLES for a in demo.ANALYTES}
    return demo.simulate_plate(rng, "PLATE_X", SAMPLES, conc, quirks=quirks).text


def _blocks(lines: list[str], well_block: str) -> list[int]:
    """Line indexes of the data rows of every per-well block (Location rows)."""
    out, inside = [], False
    for i, line in enumerate(lines):
        if line.startswith('"DataType:"'):
            inside = well_block in ("*", line.split('","')[1].rstrip('"'))
            continue
        if inside and re.match(r'^"\d+\(1,[A-Z]+\d+\)"', line):
            out.append(i)
    return out


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_duplicate_well_is_flagged_never_another_sample(tmp_path: Path) -> None:
    lines = _plate_text().splitlines()
    # a second reading claims well A4 (held by P01-D10-PLASMA) for a new name, in every block
    for i in reversed(_blocks(lines, "*")):
        if lines[i].startswith('"25(1,A4)"'):
            assert '"P01-D10-PLASMA"' in lines[i]
            lines.insert(
                i + 1,
                lines[i]
                .replace('"25(1,A4)"', '"97(1,A4)"')
                .replace("P01-D10-PLASMA", "P09-D0-PLASMA"),
            )
    plate = read_plate(_write(tmp_path, "dup.csv", lines))
    dup = [i for i in all_issues(plate) if i.kind == "duplicate_well"]
    assert {(i.well, i.blocking) for i in dup} == {("A4", True)} and len(
        dup
    ) == 8  # one per analyte
    res = quantify_plate(plate, find_panel("chemokine_demo"))
    # the invented sample gets no number, and the real one rests on its other well, saying so
    fake = res.samples[res.samples["sample_name"] == "P09-D0-PLASMA"]
    assert len(fake) == 8 and (fake["flag"] == "no_wells").all() and not fake["qc_pass"].any()
    assert fake["value"].isna().all()
    real = res.samples[res.samples["sample_name"] == "P01-D10-PLASMA"]
    assert (
        (real["n_wells"] == 2).all() and (real["n_used"] <= 1).all() and not real["qc_pass"].any()
    )
    assert real["note"].str.contains("well A4 left out (well A4 appears 2 times", regex=False).all()
    assert not res.wells.loc[res.wells["well"] == "A4", "used"].any()
    assert (
        sum(f["flag"] == "well_excluded" and f["target"].endswith("@A4") for f in res.flags) == 16
    )


def test_non_numeric_mfi_is_flagged_and_kept_out(tmp_path: Path) -> None:
    lines = _plate_text().splitlines()
    hit = []
    for block in ("Median", "Net MFI"):
        for i in _blocks(lines, block):
            if lines[i].startswith('"26(1,B4)"'):
                cells = lines[i].split('","')
                cells[3] = "1O5"  # CXCL10, a letter O typed for a zero
                lines[i] = '","'.join(cells)
                hit.append(i + 1)
    plate = read_plate(_write(tmp_path, "nan.csv", lines))
    bad = [i for i in plate.issues if i.kind == "non_numeric"]
    assert [i.where.rsplit(": ", 1)[1] for i in bad] == [f"line {n}" for n in hit]
    assert (
        "block 'Median', well B4, CXCL10/IP-10: MFI '1O5' is not a number; expected a number"
        in bad[0].what
    )
    res = quantify_plate(plate, find_panel("chemokine_demo"))
    s = res.samples.set_index(["sample_name", "feature"]).loc[
        ("P01-D10-PLASMA", "CXCL10")
    ]  # wells A4, B4
    assert s["n_wells"] == 2 and s["n_used"] == 1 and not s["qc_pass"]
    assert f"line {hit[1]}: net MFI '1O5' is not a number" in s["note"]
    w = res.wells.set_index(["well", "analyte"]).loc[("A4", "CXCL10/IP-10")]
    assert s["mean_net_mfi"] == pytest.approx(
        w["net_mfi"]
    )  # the other replicate alone, not averaged with a guess
    assert any(f["flag"] == "well_excluded" and f["target"] == "CXCL10@B4" for f in res.flags)


def test_quoted_decimal_commas_read_correctly(tmp_path: Path) -> None:
    text = _plate_text()
    plain = read_plate(_write(tmp_path, "plain.csv", text.splitlines()))
    comma = re.sub(
        r'"(-?\d+)\.(\d+)"', r'"\1,\2"', text
    )  # every quoted decimal number, commas inside quotes
    assert '"78,125"' in comma or "," in comma
    plate = read_plate(_write(tmp_path, "comma.csv", comma.splitlines()))
    assert any(i.kind == "decimal_comma" and not i.blocking for i in plate.issues)
    pd.testing.assert_frame_equal(
        plate.wells.drop(columns=["net_mfi_ulp", "vendor_result_ulp", "problem"]),
        plain.wells.drop(columns=["net_mfi_ulp", "vendor_result_ulp", "problem"]),
    )
    exp = plate.wells[plate.wells["role"] == "standard"]["expected_conc"]
    assert exp.min() == pytest.approx(10000 / 4**7 / 4) or exp.min() > 0  # never 78125 for 78.125
    assert not (exp == 78125).any()
    assert (quantify_plate(plate).curves["status"] == "ok").all()


def test_unquoted_or_mixed_decimal_commas_are_refused_with_the_line(tmp_path: Path) -> None:
    lines = _plate_text().splitlines()
    i = _blocks(lines, "Median")[3]
    broken = lines.copy()
    broken[i] = (
        broken[i].replace('"', "").replace(".", ",")
    )  # unquoted: numbers split across fields
    with pytest.raises(
        UserError,
        match=rf"line {i + 1}: block 'Median' row has \d+ fields where its header \(line "
        rf"{i - 3}\) has 11; a decimal comma in a comma-delimited file",
    ):
        read_plate(_write(tmp_path, "unquoted.csv", broken))
    mixed = lines.copy()
    mixed[i] = re.sub(
        r'"(\d+)\.(\d+)"', r'"\1,\2"', mixed[i]
    )  # one row with decimal commas among points
    with pytest.raises(
        UserError,
        match=rf"line {i + 1}: numbers with a decimal comma and numbers with a decimal point",
    ):
        read_plate(_write(tmp_path, "mixed.csv", mixed))


def test_kit_protocol_quirks_read_like_the_plain_export(tmp_path: Path) -> None:
    """Standards numbered from the lowest, expected concentrations and control ranges per
    reagent, 'Coefficient A..E' rows: the same plate, the same numbers."""
    quirky = read_plate(_write(tmp_path, "q.csv", _plate_text(quirks=True).splitlines()))
    plain = read_plate(_write(tmp_path, "p.csv", _plate_text(quirks=False).splitlines()))
    assert '"Reagent","CXCL9/MIG"' in _plate_text(True) and '"Coefficient E"' in _plate_text(True)
    top = quirky.wells[
        (quirky.wells["well"] == "A1") & (quirky.wells["analyte"] == "CXCL9/MIG")
    ].iloc[0]
    assert (top["sample_name"], top["standard_level"], top["expected_conc"]) == (
        "Standard8",
        8.0,
        10000.0,
    )
    a, b = quantify_plate(quirky), quantify_plate(plain)
    pd.testing.assert_frame_equal(a.samples.drop(columns="note"), b.samples.drop(columns="note"))
    pd.testing.assert_frame_equal(quirky.vendor_curves, plain.vendor_curves)
    pd.testing.assert_frame_equal(quirky.control_ranges, plain.control_ranges)
    assert (a.curves["status"] == "ok").all() and (
        a.curves["vendor_reproduced_fraction"] == 1.0
    ).all()


def test_unrecognised_coefficient_rows_are_said_not_skipped(tmp_path: Path) -> None:
    text = _plate_text().replace('"Coefficient A"', '"Param 1"')
    plate = read_plate(_write(tmp_path, "coef.csv", text.splitlines()))
    assert plate.vendor_curves.empty
    note = next(i for i in plate.issues if i.kind == "coefficients_not_understood")
    assert "'Param 1'" in note.what and "expected A, B, C, D and E or F" in note.what


def test_wells_outside_the_plate_and_windows_paths(tmp_path: Path) -> None:
    text = (
        _plate_text()
        .replace("(1,H3)", "(1,J14)")
        .replace('"Batch","PLATE_X"', '"Batch","C:\\\\Lab\\\\run 7\\\\plate 7.csv"')
    )
    plate = read_plate(_write(tmp_path, "odd.csv", text.splitlines()))
    assert plate.plate_id == "plate_7"
    out = [i for i in all_issues(plate) if i.kind == "outside_plate"]
    assert [i.well for i in out] == [
        "J14"
    ] and "outside a 96-well plate (rows A-H, columns 1-12)" in out[0].what
    res = quantify_plate(plate)
    assert not res.wells.loc[res.wells["well"] == "J14", "used"].any()
    from immuno.chemokines.pipeline.outputs import write_curve_plots

    write_curve_plots(res, plate, tmp_path / "plots")
    names = sorted(f.name for f in (tmp_path / "plots").iterdir())
    assert (
        len(names) == 8 and names[0] == "plate_7_CCL11_Eotaxin.png"
    )  # no path, no '/' from 'CCL11/Eotaxin'
    assert list((tmp_path / "plots").iterdir())[0].parent == tmp_path / "plots"


def test_all_curves_failed_exits_3_after_writing_what_it_could(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _plate_text().splitlines()
    start = lines.index('"DataType:","Standard Expected Concentration"')
    end = lines.index("", start)
    path = _write(tmp_path, "nostd.csv", lines[:start] + lines[end + 1 :])
    rc = main(["chemokines", "quantify", str(path), "--out", str(tmp_path / "q"), "--no-plots"])
    captured = capsys.readouterr()
    assert rc == 3
    assert (
        "read, but nothing could be quantified: no analyte has an accepted standard curve"
        in captured.err
    )
    assert "no expected concentration" in captured.out
    curves = pd.read_parquet(tmp_path / "q" / "curves.parquet")
    assert (curves["status"] == "failed").all() and (tmp_path / "q" / "wells.parquet").is_file()


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad") / "batch"
    make_demo_batch(folder, seed=3, patients=3, events=1000, assays=("chemokine",))
    return folder


def _break(folder: Path, tmp_path: Path, edit) -> Path:
    dest = tmp_path / "batch"
    shutil.copytree(folder, dest)
    plate = dest / "chemokine" / "CHEMO_PLATE_01.csv"
    plate.write_text("\n".join(edit(plate.read_text().splitlines())) + "\n")
    return dest


def test_validate_lists_every_integrity_problem(
    batch_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(lines: list[str]) -> list[str]:
        for i in _blocks(lines, "Median")[:1]:
            cells = lines[i].split('","')
            cells[3] = "abc"
            lines[i] = '","'.join(cells)
        i = _blocks(lines, "Count")[5]
        lines.insert(i + 1, lines[i])  # the same location twice
        return lines

    folder = _break(batch_folder, tmp_path, edit)
    batch = load_batch(folder)
    problems = check_inputs(batch.rows("chemokine"), batch.root, batch.panels)
    text = "\n".join(str(p) for p in problems)
    assert "MFI 'abc' is not a number" in text and "appears 2 times" in text
    assert all(
        p.where.startswith("samplesheet.csv: row 2, column file (chemokine/CHEMO_PLATE_01.csv)")
        for p in problems
    )
    rc = main(["validate", str(folder)])
    assert rc == 2 and "is not a number" in capsys.readouterr().err


def test_one_bad_plate_never_stops_the_batch(batch_folder: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        i = _blocks(lines, "Median")[20]
        lines[i] = (
            lines[i].replace('"', "").replace(".", ",")
        )  # refused: decimal commas split the row
        return lines

    folder = _break(batch_folder, tmp_path, edit)
    good = folder / "chemokine" / "CHEMO_PLATE_02.csv"
    shutil.copy(batch_folder / "chemokine" / "CHEMO_PLATE_01.csv", good)
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    moved = sheet["patient_id"] == "P03"
    sheet.loc[moved, "file"] = "chemokine/CHEMO_PLATE_02.csv"
    sheet.to_csv(folder / "samplesheet.csv", index=False)
    table = process_batch(load_batch(folder), tmp_path / "out", plots=False)
    flags = pd.read_parquet(tmp_path / "out" / "qc_flags.parquet")
    failed = flags[flags["flag"] == "file_failed"]
    assert set(failed["sample_id"]) == set(sheet.loc[~moved, "sample_id"])
    assert failed["reason"].str.contains("a decimal comma in a comma-delimited file").all()
    p3 = table[table["patient_id"] == "P03"]
    assert p3["value"].notna().sum() > 20 and not math.isnan(
        p3.loc[p3["feature"] == "CXCL10", "value"].iloc[0]
    )
