"""Plate export readers on the real public files, on export variants and on bad input."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import detect_format, read_layout, read_plate
from immuno.chemokines.io.plate import parse_cell
from immuno.demo.chemokines import simulate_plate
from immuno.errors import UserError


def _well(plate, well: str, analyte: str) -> pd.Series:
    w = plate.wells
    rows = w[(w["well"] == well) & (w["analyte"] == analyte)]
    assert len(rows) == 1, (well, analyte)
    return rows.iloc[0]


@pytest.fixture(scope="module")
def chem(real_data: Path) -> Path:
    return real_data / "chemokines"


# --- xPONENT -------------------------------------------------------------------------


@pytest.mark.real
def test_xponent_magpix_quoted_with_standards(chem: Path) -> None:
    p = read_plate(chem / "xponent" / "Chul_IgG3_1.csv")
    assert p.format == "xponent" and p.kind == "multiplex"
    assert p.analytes == [
        "AMA1",
        "PP28",
        "Schisto",
        "PP65",
        "BSA",
        "MSP1",
        "HRPII",
        "CelTos",
        "CSP",
        "PfGarp",
    ]
    # 96 acquisitions minus well B8, which the export skips (order 58 is absent)
    assert p.wells["well"].nunique() == 95 and "B8" not in set(p.wells["well"])
    assert _well(p, "A1", "AMA1")["mfi"] == 4 and _well(p, "A1", "AMA1")["role"] == "blank"
    b1 = _well(p, "B1", "HRPII")
    assert (b1["mfi"], b1["role"], b1["standard_level"], b1["dilution"]) == (
        1939.5,
        "standard",
        1.0,
        100.0,
    )
    assert _well(p, "B1", "AMA1")["bead_count"] > 0
    assert p.meta["date_iso"] == "2024-03-23"
    assert set(p.wells.loc[p.wells["role"] == "standard", "standard_level"]) == set(
        map(float, range(1, 8))
    )


@pytest.mark.real
def test_xponent_30plex_with_layout(chem: Path) -> None:
    folder = chem / "xponent"
    p = read_plate(folder / "CovidOISExPONTENT.csv")
    assert len(p.analytes) == 30 and p.wells["well"].nunique() == 96
    assert p.analytes[:3] == ["Spike_6P", "ME", "HKU1_S"]
    assert _well(p, "A1", "Spike_6P")["mfi"] == 24 and _well(p, "A2", "Spike_6P")["mfi"] == 14256
    lay = read_plate(
        folder / "CovidOISExPONTENT.csv", layout=folder / "CovidOISExPONTENT_layout.csv"
    )
    a2 = _well(lay, "A2", "Spike_6P")
    assert (a2["sample_name"], a2["role"], a2["standard_level"]) == ("1/50", "standard", 1.0)
    assert math.isclose(a2["expected_conc"], 1 / 50)
    assert _well(lay, "A12", "Spike_6P")["standard_level"] == 11
    assert _well(lay, "B1", "ME")["sample_name"] == "CO-F-226-01-CF"
    assert _well(lay, "A1", "ME")["role"] == "blank"


@pytest.mark.real
def test_xponent_lx200_and_repeated_header(chem: Path) -> None:
    p = read_plate(chem / "xponent" / "New_Batch_14_20140513_082522.csv")
    assert len(p.analytes) == 22 and p.wells["well"].nunique() == 75
    assert _well(p, "A1", "T33")["mfi"] == 5365
    # the Dilution Factor block repeats its header row; dilution still read per well
    assert set(p.wells["dilution"].dropna()) == {1.0}


@pytest.mark.real
@pytest.mark.parametrize(
    "name",
    [
        "allotropy_intelliflex_example_01.csv",
        "allotropy_luminex_xPONENT_missing_optional_fields.csv",
    ],
)
def test_xponent_intelliflex(chem: Path, name: str) -> None:
    p = read_plate(chem / "xponent" / name)
    assert p.meta["Program"].endswith("Intelliflex") and p.meta["date_iso"] == "2024-10-19"
    assert len(p.analytes) == 5 and p.wells["well"].nunique() == 12
    a1 = _well(p, "A1", "6P_PBS_3_day2")
    assert (a1["mfi"], a1["net_mfi"], a1["sample_name"]) == (2616118.5, 2614633.5, "Donor14_1")
    assert _well(p, "A10", "Monitoring")["role"] == "blank"


@pytest.mark.real
def test_xponent_nan_and_not_reported(chem: Path) -> None:
    p = read_plate(chem / "xponent" / "allotropy_luminex_xPONENT_NaN_and_not_reported_values.csv")
    assert p.analytes == ["analyte1", "analyte2", "analyte3"] and p.wells["well"].nunique() == 96
    a1 = _well(p, "A1", "analyte3")
    assert math.isnan(a1["mfi"]) and a1["net_mfi"] == 2 and a1["bead_count"] == 0
    assert math.isnan(_well(p, "A1", "analyte1")["net_mfi"])


@pytest.mark.real
def test_xponent_excel_resave_reads_like_the_original(chem: Path) -> None:
    orig = read_plate(chem / "xponent" / "allotropy_luminex_xPONENT_example02.csv")
    saved = read_plate(chem / "xponent" / "allotropy_luminex_xPONENT_example02_saved.csv")
    pd.testing.assert_frame_equal(orig.wells, saved.wells)
    a1 = _well(orig, "A1", "alpha")
    assert (a1["mfi"], a1["bead_count"]) == (10921.5, 30)
    p3 = read_plate(chem / "xponent" / "allotropy_luminex_xPONENT_example03.csv")
    assert (_well(p3, "A1", "alpha")["mfi"], _well(p3, "A1", "bravo")["bead_count"]) == (11510, 36)


def _demo_text(seed: int = 3) -> tuple[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    samples = ["P01-D0-PLASMA", "P01-D10-PLASMA", "P01-M1-PLASMA"]
    conc = {
        (s, f): 200.0
        for s in samples
        for f in ("CXCL9", "CXCL10", "CXCL11", "CCL17", "CCL22", "CCL11", "IL10", "IL1RN")
    }
    sim = simulate_plate(rng, "PLATE_X", samples, conc)
    return sim.text, sim.wells


def test_xponent_semicolon_decimal_comma_day_first(tmp_path: Path) -> None:
    text, wells = _demo_text()
    # a European export: ';' delimiters, decimal commas, day-first dates
    euro = "\n".join(line.replace('","', '";"').replace(".", ",") for line in text.splitlines())
    euro = euro.replace('"Date";"11/26/2026"', '"Date";"26/11/2026"')
    (tmp_path / "euro.csv").write_text(euro)
    p = read_plate(tmp_path / "euro.csv")
    assert p.meta["date_iso"] == "2026-11-26" and p.meta["day_first_dates"] == "True"
    got = p.wells.set_index(["well", "analyte"])["mfi"]
    want = wells.set_index(["well", "analyte"])["mfi"]
    assert np.allclose(got.loc[want.index].to_numpy(), want.to_numpy())


def test_xponent_optional_blocks_absent(tmp_path: Path) -> None:
    text, _ = _demo_text()
    keep, skip = [], False
    for line in text.splitlines():
        if line.startswith('"DataType:"'):
            skip = any(
                b in line
                for b in ("Net MFI", "Result", "Analysis Coefficients", "Control Range", "Units")
            )
        if not skip:
            keep.append(line)
        if line == "":
            skip = False
    (tmp_path / "lean.csv").write_text("\n".join(keep) + "\n")
    p = read_plate(tmp_path / "lean.csv")
    assert p.vendor_curves.empty and p.control_ranges.empty and p.units == {}
    # net MFI falls back to MFI minus the blank mean
    blank = p.wells[p.wells["role"] == "blank"].groupby("analyte")["mfi"].mean()
    w = _well(p, "A1", "IL-10")
    assert math.isclose(w["net_mfi"], w["mfi"] - blank["IL-10"])


def test_xponent_empty_block_is_a_clear_error(tmp_path: Path) -> None:
    text, _ = _demo_text()
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:
        if line == '"DataType:","Median"':
            out += [line, lines[lines.index(line) + 1]]
            skipping = True
            continue
        if skipping:
            if line == "":
                skipping = False
            else:
                continue
        out.append(line)
    (tmp_path / "empty.csv").write_text("\n".join(out))
    with pytest.raises(UserError, match="Median.*empty"):
        read_plate(tmp_path / "empty.csv")


def test_unknown_format_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("name,value\nfoo,1\n")
    with pytest.raises(UserError, match="unknown plate export format; supported: Luminex xPONENT"):
        read_plate(tmp_path / "notes.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="empty"):
        detect_format(tmp_path / "empty.csv")


def test_format_is_read_from_content_not_name(tmp_path: Path) -> None:
    text, _ = _demo_text()
    (tmp_path / "plate.txt").write_text(text)
    assert detect_format(tmp_path / "plate.txt") == "xponent"


def test_parse_cell_vendor_flags() -> None:
    assert parse_cell("< 0.105") == (0.105, "<")
    assert parse_cell("> 3450") == (3450.0, ">")
    assert math.isnan(parse_cell("OOR <")[0]) and parse_cell("OOR <")[1] == "OOR <"
    assert parse_cell("*12.3") == (12.3, "extrapolated")
    assert parse_cell("***")[1] == "not_available"
    assert parse_cell("Control Failed.")[1] == "Control Failed."
    assert math.isnan(parse_cell("N/A")[0]) and parse_cell("N/A")[1] == ""
    assert parse_cell("1,5", decimal_comma=True) == (1.5, "")


def test_layout_long_table(tmp_path: Path) -> None:
    (tmp_path / "layout.csv").write_text(
        "well,sample_name,role,standard_level,expected_conc\n"
        "A1,Cal top,standard,1,5000\nA2,Cal low,standard,2,1250\n"
        "B1,P01-D0-PLASMA,,,\nC1,Buffer,blank,,\n"
    )
    lay = read_layout(tmp_path / "layout.csv")
    assert lay.set_index("well").loc["A2", "expected_conc"] == 1250
    assert list(lay["role"]) == ["standard", "standard", "unknown", "blank"]


def test_crc_line_written_by_demo_is_correct() -> None:
    text, _ = _demo_text()
    body, crc = text.split("-- CRC --\n")
    assert crc.strip() == f"CRC32: {zlib.crc32(body.encode()):08X}"


# --- Bio-Plex, MSD -------------------------------------------------------------------


@pytest.mark.real
def test_bioplex_with_blank_bead(chem: Path) -> None:
    p = read_plate(chem / "bioplex" / "with_blank_bead.xls")
    assert p.format == "bioplex" and p.analytes == ["MyAnalyte (1)", "MyAnalyte (2)", "Blank (3)"]
    assert p.wells["well"].nunique() == 40
    c4 = _well(p, "C4", "MyAnalyte (1)")
    assert (c4["mfi"], c4["net_mfi"], c4["role"], c4["standard_level"]) == (
        20652,
        20559,
        "standard",
        4.0,
    )
    assert math.isclose(c4["expected_conc"], 2.31481) and math.isclose(c4["vendor_result"], 2.37705)
    assert _well(p, "C1", "MyAnalyte (1)")["vendor_flag"] == "OOR >"
    assert _well(p, "C11", "MyAnalyte (1)")["role"] == "control"
    x1 = _well(p, "A1", "MyAnalyte (1)")
    assert (x1["sample_name"], x1["dilution"], x1["bead_count"]) == ("Sample 1", 20, 160)
    v = p.vendor_curves.set_index("analyte").loc["MyAnalyte (1)"]
    assert (v["d"], v["a"], v["c"], v["b"], v["g"]) == (3.45399, 29496.2, 3.18194, -12.285, 0.1)


@pytest.mark.real
@pytest.mark.parametrize("n,unknowns", [(1, 10), (2, 0), (3, 0), (4, 0), (5, 2)])
def test_bioplex_guide_set_plates(chem: Path, n: int, unknowns: int) -> None:
    p = read_plate(chem / "bioplex" / f"guide_set_plate_{n}.xls")
    assert p.analytes == ["GS Analyte A (1)", "GS Analyte B (2)"]
    assert (p.wells["role"] == "unknown").sum() == unknowns
    assert (p.wells["role"] == "standard").sum() == 20
    if n == 1:
        assert _well(p, "A1,B1", "GS Analyte A (1)")["mfi"] == 11086


@pytest.mark.real
def test_msd_workbench(chem: Path) -> None:
    p = read_plate(chem / "msd" / "msd_workbench_test_2.csv")
    assert p.format == "msd" and p.plate_id == "Plate_TEST001" and p.analytes == ["Test Assay 1.0"]
    assert len(p.wells) == 48
    a1 = _well(p, "A1", "Test Assay 1.0")
    assert (a1["role"], a1["standard_level"], a1["expected_conc"], a1["mfi"]) == (
        "standard",
        1.0,
        100.0,
        1000.0,
    )
    assert _well(p, "H1", "Test Assay 1.0")["role"] == "blank"  # S008 at concentration 0
    assert _well(p, "A3", "Test Assay 1.0")["vendor_result"] == 200.0
    p1 = read_plate(chem / "msd" / "msd_workbench_test_1.csv")
    assert p1.plate_id == "Plate_2BO40AW287" and p1.analytes == [
        "Spike (FL.1.5.1)",
        "Spike (Wuhan)",
    ]
    assert _well(p1, "A2", "Spike (FL.1.5.1)")["vendor_flag"] == "Above Detection Range"


# --- qPCR ---------------------------------------------------------------------------


@pytest.mark.real
def test_qpcr_exports(chem: Path) -> None:
    cfx = read_plate(chem / "qpcr" / "cfx_maestro_example01.csv")
    assert cfx.kind == "qpcr" and cfx.format == "cfx" and len(cfx.wells) == 48
    a1 = cfx.wells[(cfx.wells["well"] == "A1") & (cfx.wells["target"] == "FAM")].iloc[0]
    assert a1["cq"] == pytest.approx(21.1877528266099) and a1["sample_name"] == "M3905 R Ctx"
    qs = read_plate(chem / "qpcr" / "quantstudio_example04.txt")
    assert qs.format == "quantstudio" and len(qs.wells) == 95 and qs.analytes == ["RNase P"]
    assert (
        qs.wells.iloc[0]["cq"] == pytest.approx(27.102)
        and (qs.wells["role"] == "standard").sum() == 20
    )
    qs5 = read_plate(chem / "qpcr" / "quantstudio_example05.txt")
    assert qs5.wells["cq"].isna().sum() == 6  # the six NTC wells are Undetermined
    lung = qs5.wells[qs5.wells["well"] == "D1"].iloc[0]
    assert (lung["sample_name"], lung["target"], lung["cq"]) == ("Lung", "TGF-B", 30.155)
    qs7 = read_plate(chem / "qpcr" / "quantstudio_example07.txt")
    assert len(qs7.wells) == 16 and qs7.analytes == ["RNaseP", "IPC"]
    a2 = qs7.wells[qs7.wells["well"] == "A2"].iloc[0]
    assert (a2["role"], a2["quantity"], a2["cq"]) == ("standard", 312.5, 31.404)
    assert qs7.wells.loc[qs7.wells["role"] == "ntc", "cq"].isna().all()
    rd = read_plate(chem / "qpcr" / "stepone_std.rdml")
    assert rd.format == "rdml" and len(rd.wells) == 24
    assert sorted(rd.wells["quantity"].dropna().unique()) == [
        625.0,
        1250.0,
        2500.0,
        5000.0,
        10000.0,
    ]
    bio = read_plate(chem / "qpcr" / "BioRad_qPCR_melt.rdml")
    assert len(bio.wells) == 60 and bio.analytes == ["EvaGreen", "Cy5", "Cy5-2", "Cy5-2_rr"]
    first = bio.wells.iloc[0]
    assert (first["well"], first["sample_name"], first["cq"]) == (
        "A1",
        "Alm12",
        pytest.approx(27.7514537682101),
    )


@pytest.mark.real
def test_legendplex_fcs_is_not_a_plate_export(chem: Path) -> None:
    with pytest.raises(
        UserError,
        match=r"a flow cytometry \(FCS\) file, e.g. LEGENDplex beads.*expected a plate export",
    ):
        read_plate(chem / "legendplex" / "K2-C07-A7.fcs")


@pytest.mark.real
def test_msd_row_without_signal_is_located(chem: Path, tmp_path: Path) -> None:
    lines = (chem / "msd" / "msd_workbench_test_2.csv").read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",Test Assay 1.0"  # a row cut short after the assay
    (tmp_path / "cut.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"line 6: empty or missing Well, Signal"):
        read_plate(tmp_path / "cut.csv")
