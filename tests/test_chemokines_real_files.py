"""Every chemokine / qPCR file under ../shared/data/real/chemokines/, read.

For each: the format chosen from its content, the plate's geometry and number of wells,
its analytes (targets) and a few values read by eye from the file itself. Files that
are not plate exports (a LEGENDplex FCS file, bead maps, a raw .eds run, a layout) give
one clear line saying what they are. A file added to the folder without an entry here
fails the last test, so no export goes unchecked.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from immuno.chemokines import read_plate
from immuno.chemokines.qc.integrity import all_issues
from immuno.errors import UserError

pytestmark = pytest.mark.real

#: file -> (format, rows x columns, distinct wells, first analytes, {(well, analyte, column): value})
EXPECTED: dict[
    str, tuple[str, tuple[int, int], int, list[str], dict[tuple[str, str, str], object]]
] = {
    "xponent/Chul_IgG3_1.csv": (
        "xponent",
        (8, 12),
        95,
        ["AMA1", "PP28", "Schisto"],
        {
            ("A1", "AMA1", "mfi"): 4.0,
            ("B1", "HRPII", "mfi"): 1939.5,
            ("B1", "HRPII", "dilution"): 100.0,
        },
    ),
    "xponent/CovidOISExPONTENT.csv": (
        "xponent",
        (8, 12),
        96,
        ["Spike_6P", "ME", "HKU1_S"],
        {("A1", "Spike_6P", "mfi"): 24.0, ("A2", "Spike_6P", "mfi"): 14256.0},
    ),
    "xponent/New_Batch_14_20140513_082522.csv": (
        "xponent",
        (8, 12),
        75,
        ["T1215", "T315", "T33"],
        {("A1", "T33", "mfi"): 5365.0, ("A1", "T33", "bead_count"): 118.0},
    ),
    # xPONENT 4.2 MAGPIX: no Net MFI block, net MFI from the single blank well
    "xponent/SerolyzeR_IGG_CO_1_xponent42_MAGPIX.csv": (
        "xponent",
        (8, 12),
        96,
        ["Spike_6P", "ME", "HKU1_S"],
        {
            ("A1", "Spike_6P", "mfi"): 27.0,
            ("A2", "Spike_6P", "mfi"): 11893.5,
            ("A2", "Spike_6P", "net_mfi"): 11866.5,
            ("A1", "Spike_6P", "bead_count"): 63.0,
            ("A1", "Spike_6P", "role"): "blank",
        },
    ),
    # Intelliflex in xPONENT style: UTF-8 BOM, empty Build, ISO date, extra data types
    "xponent/SerolyzeR_P3_rerun_SEROPED_Intelliflex.csv": (
        "xponent",
        (8, 12),
        37,
        ["Adenovirus T3", "Adenovirus T5", "Bordetella p. Toxin"],
        {
            ("A1", "Adenovirus T3", "mfi"): 27.86328,
            ("A2", "Adenovirus T3", "mfi"): 4816.87695,
            ("A2", "Adenovirus T3", "role"): "standard",
        },
    ),
    "xponent/allotropy_intelliflex_example_01.csv": (
        "xponent",
        (8, 12),
        12,
        ["6P_PBS_3_day2", "6P_PBS_1_day1"],
        {("A1", "6P_PBS_3_day2", "mfi"): 2616118.5, ("A1", "6P_PBS_3_day2", "net_mfi"): 2614633.5},
    ),
    # native Intelliflex DR-SE wide export; 'Dry' wells carry no values, said per row
    "xponent/allotropy_luminex_intelliflex_v2_2.csv": (
        "intelliflex",
        (8, 12),
        10,
        ["HPV6", "HPV11", "HPV16"],
        {
            ("B1", "HPV6", "mfi"): 6.05021,
            ("B1", "HPV6", "net_mfi"): 10.27147,
            ("B1", "HPV6", "dilution"): 15.0,
            (
                "A1",
                "HPV6",
                "problem",
            ): "line 2: well status 'Dry': no net MFI in the export ('NaN')",
        },
    ),
    "xponent/allotropy_luminex_xPONENT_NaN_and_not_reported_values.csv": (
        "xponent",
        (8, 12),
        96,
        ["analyte1", "analyte2", "analyte3"],
        {("A1", "analyte3", "net_mfi"): 2.0, ("A1", "analyte3", "bead_count"): 0.0},
    ),
    "xponent/allotropy_luminex_xPONENT_example02.csv": (
        "xponent",
        (8, 12),
        4,
        ["alpha", "bravo"],
        {("A1", "alpha", "mfi"): 10921.5, ("A1", "alpha", "bead_count"): 30.0},
    ),
    "xponent/allotropy_luminex_xPONENT_example02_saved.csv": (
        "xponent",
        (8, 12),
        4,
        ["alpha", "bravo"],
        {("A1", "alpha", "mfi"): 10921.5, ("A1", "bravo", "mfi"): 37214.0},
    ),
    "xponent/allotropy_luminex_xPONENT_example03.csv": (
        "xponent",
        (8, 12),
        4,
        ["alpha", "bravo"],
        {("A1", "alpha", "mfi"): 11510.0, ("A1", "bravo", "bead_count"): 36.0},
    ),
    "xponent/allotropy_luminex_xPONENT_missing_optional_fields.csv": (
        "xponent",
        (8, 12),
        12,
        ["6P_PBS_3_day2"],
        {("A1", "6P_PBS_3_day2", "sample_name"): "Donor14_1"},
    ),
    "bioplex/LabKey_03-31A82-IgA-Biotin.xls": (
        "bioplex",
        (8, 12),
        24,
        ["ENV1 (31)", "ENV2 (41)", "ENV3 (59)"],
        {
            ("A1", "ENV1 (31)", "mfi"): 31924.0,
            ("A1", "ENV1 (31)", "net_mfi"): 31909.0,
            ("A1", "ENV1 (31)", "vendor_result"): 40.1545,
            ("A12", "ENV1 (31)", "mfi"): 16.0,
            ("A11", "ENV1 (31)", "role"): "control",
        },
    ),
    # raw and summary sections on each sheet: the per-well table is read
    "bioplex/LabKey_RawAndSummary.xlsx": (
        "bioplex",
        (8, 12),
        24,
        ["Analyte3", "Analyte2", "Analyte1 (1)"],
        {
            ("G1", "Analyte3", "net_mfi"): 27643.5,
            ("G1", "Analyte3", "vendor_result"): 463.70947,
            ("H1", "Analyte3", "vendor_flag"): "extrapolated",
            ("G12", "Analyte3", "mfi"): 10.0,
        },
    ),
    "bioplex/LabKey_WithAltNegativeBead.xls": (
        "bioplex",
        (8, 12),
        40,
        ["MyAnalyte (1)", "MyAnalyte B (2)"],
        {
            ("C1", "MyNegative (4)", "mfi"): 697.5,
            ("C1", "MyNegative (4)", "vendor_result"): 397.3463,
            ("A1", "MyNegative (4)", "vendor_flag"): "extrapolated",
        },
    ),
    # summary rows (replicate groups), standards numbered from the lowest, an outlier
    "bioplex/LabKey_WithIndices.xls": (
        "bioplex",
        (8, 12),
        47,
        ["IL-1b (1)", "IL-4 (9)"],
        {
            ("C1,D1", "IL-1b (1)", "mfi"): 43.3,
            ("C1,D1", "IL-1b (1)", "expected_conc"): 0.13,
            ("C1,D1", "IL-1b (1)", "vendor_result"): 0.15,
            ("G2,H2", "IL-1b (1)", "expected_conc"): 2000.0,
            (
                "C2,D2",
                "IL-4 (9)",
                "problem",
            ): "sheet 'IL-4 (9)', row 14: designated an outlier in Bio-Plex Manager",
        },
    ),
    "bioplex/LabKey_plate3_IgA-Biot_Standard1.xlsx": (
        "bioplex",
        (8, 12),
        24,
        ["ENV6 (97)", "ENV7 (93)"],
        {
            ("E1", "ENV6 (97)", "mfi"): 19482.0,
            ("E1", "ENV6 (97)", "vendor_result"): 545.33376,
            ("E1", "ENV6 (97)", "vendor_flag"): "extrapolated",
        },
    ),
    "bioplex/allotropy_bio-rad_bio-plex_manager_example_01.xml": (
        "bioplex_xml",
        (8, 12),
        96,
        ["alpha", "bravo", "charlie"],
        {
            ("A12", "alpha", "mfi"): 62.0,
            ("A12", "alpha", "role"): "blank",
            ("C1", "alpha", "mfi"): 291.0,
            ("A12", "bravo", "vendor_flag"): "sampling error 1 (low bead count)",
        },
    ),
    "bioplex/guide_set_plate_1.xls": (
        "bioplex",
        (8, 12),
        21,
        ["GS Analyte A (1)", "GS Analyte B (2)"],
        {
            ("A1,B1", "GS Analyte A (1)", "mfi"): 11086.0,
            ("A1,B1", "GS Analyte A (1)", "net_mfi"): 11068.8,
        },
    ),
    "bioplex/guide_set_plate_2.xls": (
        "bioplex",
        (8, 12),
        11,
        ["GS Analyte A (1)"],
        {("A1,B1", "GS Analyte A (1)", "mfi"): 11860.0},
    ),
    "bioplex/guide_set_plate_3.xls": (
        "bioplex",
        (8, 12),
        11,
        ["GS Analyte A (1)"],
        {("A1,B1", "GS Analyte A (1)", "mfi"): 9736.5},
    ),
    "bioplex/guide_set_plate_4.xls": (
        "bioplex",
        (8, 12),
        11,
        ["GS Analyte A (1)"],
        {("A1,B1", "GS Analyte A (1)", "mfi"): 9189.8},
    ),
    "bioplex/guide_set_plate_5.xls": (
        "bioplex",
        (8, 12),
        12,
        ["GS Analyte A (1)"],
        {("A1,B1", "GS Analyte A (1)", "mfi"): 8638.3},
    ),
    "bioplex/with_blank_bead.xls": (
        "bioplex",
        (8, 12),
        40,
        ["MyAnalyte (1)", "MyAnalyte (2)", "Blank (3)"],
        {
            ("C4", "MyAnalyte (1)", "net_mfi"): 20559.0,
            ("C4", "MyAnalyte (1)", "vendor_result"): 2.37705,
            ("C11", "MyAnalyte (1)", "role"): "control",
            ("A1", "MyAnalyte (1)", "dilution"): 20.0,
        },
    ),
    "msd/msd_workbench_test_1.csv": (
        "msd",
        (8, 12),
        2,
        ["Spike (FL.1.5.1)", "Spike (Wuhan)"],
        {
            ("A2", "Spike (FL.1.5.1)", "mfi"): 3513.0,
            ("A2", "Spike (FL.1.5.1)", "vendor_flag"): "Above Detection Range",
        },
    ),
    "msd/msd_workbench_test_2.csv": (
        "msd",
        (8, 12),
        48,
        ["Test Assay 1.0"],
        {
            ("A1", "Test Assay 1.0", "expected_conc"): 100.0,
            ("A3", "Test Assay 1.0", "vendor_result"): 200.0,
            ("H1", "Test Assay 1.0", "role"): "blank",
        },
    ),
    # the Workbench table on a sheet of a workbook; the other sheets left aside
    "msd/allotropy_test_msd_workbench.xlsx": (
        "msd",
        (8, 12),
        24,
        ["TEST_ASSAY"],
        {
            ("A1", "TEST_ASSAY", "mfi"): 18789.0,
            ("A1", "TEST_ASSAY", "expected_conc"): 2000.0,
            ("A1", "TEST_ASSAY", "role"): "standard",
            ("A1", "TEST_ASSAY", "vendor_result"): 2038.74,
            ("C3", "TEST_ASSAY", "role"): "unknown",
        },
    ),
    # Methodical Mind: four spot tables of one plate
    "msd/allotropy_methodical_mind_multiple_spot_tables.txt": (
        "methodical_mind",
        (8, 12),
        96,
        ["spot 1", "spot 3", "spot 8", "spot 10"],
        {
            ("A1", "spot 1", "mfi"): 489674.0,
            ("A2", "spot 1", "mfi"): 97.0,
            ("A1", "spot 3", "mfi"): 628082.0,
            ("B2", "spot 3", "mfi"): 55202.0,
        },
    ),
}
QPCR: dict[str, tuple[str, tuple[int, int], int, list[str], dict[tuple[str, str, str], object]]] = {
    "qpcr/cfx_maestro_example01.csv": (
        "cfx",
        (8, 12),
        24,
        ["FAM", "VIC"],
        {("A1", "FAM", "cq"): 21.1877528266099, ("A1", "FAM", "sample_name"): "M3905 R Ctx"},
    ),
    # the CFX table workbook: wells, targets and quantities, but no Cq (curves only)
    "qpcr/RDML_BioRad_CFX_tables.xlsx": (
        "cfx",
        (8, 12),
        16,
        ["Taq"],
        {
            ("C3", "Taq", "quantity"): 5.39369579627763,
            ("E3", "Taq", "role"): "standard",
            ("E3", "Taq", "quantity"): 5.0,
            ("C3", "Taq", "problem"): "row 2: no Cq in the export",
        },
    ),
    "qpcr/quantstudio_example04.txt": (
        "quantstudio",
        (8, 12),
        95,
        ["RNase P"],
        {("A1", "RNase P", "cq"): 27.102, ("A1", "RNase P", "quantity"): 5720.562},
    ),
    "qpcr/quantstudio_example05.txt": (
        "quantstudio",
        (8, 12),
        16,
        ["TGF-B", "GAPDH"],
        {
            ("D1", "TGF-B", "cq"): 30.155,
            ("D1", "TGF-B", "vendor_rq"): 0.8,
            ("D1", "TGF-B", "vendor_dcq"): -2.647,
            ("D1", "TGF-B", "vendor_ddcq"): 0.323,
        },
    ),
    "qpcr/quantstudio_example07.txt": (
        "quantstudio",
        (8, 12),
        16,
        ["RNaseP", "IPC"],
        {("A2", "RNaseP", "quantity"): 312.5, ("A2", "RNaseP", "cq"): 31.404},
    ),
    # ViiA 7, 384-well block, 'Cт' columns, a comparative-Ct run without its ddCt values
    "qpcr/allotropy_quantstudio_example01_ViiA7_ddCt.txt": (
        "quantstudio",
        (16, 24),
        16,
        ["TARGET_1"],
        {("A1", "TARGET_1", "cq"): 18.717, ("A18", "TARGET_1", "sample_name"): "16SAMPLE_6.1"},
    ),
    # SNP genotyping: one target per allele
    "qpcr/allotropy_quantstudio_example03_QS7_genotyping.txt": (
        "quantstudio",
        (8, 12),
        96,
        ["CYP19_2 allele 1", "CYP19_2 allele 2"],
        {
            ("A2", "CYP19_2 allele 1", "cq"): 27.546,
            ("A2", "CYP19_2 allele 2", "cq"): 29.013,
            ("A1", "CYP19_2 allele 1", "role"): "ntc",
        },
    ),
    # QS12K xlsx: 8 wells; the Endogenous Control / Reference Sample rows are not wells
    "qpcr/allotropy_quantstudio_example10_QS12K.xlsx": (
        "quantstudio",
        (16, 24),
        8,
        ["GeneA", "RefGene"],
        {
            ("A1", "GeneA", "cq"): 25.5,
            ("B1", "RefGene", "cq"): 20.0,
            ("A3", "GeneA", "vendor_rq"): 0.8,
        },
    ),
    # Design & Analysis: quantities from the 'Standard Curve Result' sheet
    "qpcr/allotropy_quantstudio_DA_quantity_test.xlsx": (
        "quantstudio",
        (16, 24),
        12,
        ["ABC", "DEF"],
        {
            ("K3", "ABC", "cq"): 31.707809438603107,
            ("K3", "ABC", "quantity"): 5.0,
            ("M3", "DEF", "quantity"): 2.5,
        },
    ),
    "qpcr/stepone_std.rdml": ("rdml", (8, 12), 24, ["RNase P"], {("A1", "RNase P", "role"): "ntc"}),
    "qpcr/BioRad_qPCR_melt.rdml": (
        "rdml",
        (8, 12),
        60,
        ["EvaGreen", "Cy5"],
        {("A1", "EvaGreen", "cq"): 27.7514537682101, ("A1", "EvaGreen", "sample_name"): "Alm12"},
    ),
    # LightCycler 96 RDML in a zip: GUID sample ids named by their description, dye@gene targets
    "qpcr/RDML_lc96_bACTXY.rdml": (
        "rdml",
        (8, 12),
        96,
        ["FAM@30116ec1-44f6-4c9c-9c69-5d6f00226d4e"],
        {
            ("A1", "FAM@30116ec1-44f6-4c9c-9c69-5d6f00226d4e", "cq"): 33.56,
            ("D3", "bACT", "cq"): 22.15,
            ("D3", "bACT", "sample_name"): "Sample 39",
        },
    ),
}
#: not plate exports: the start of the one line each gives
NOT_EXPORTS = {
    "legendplex/K2-C07-A7.fcs": "a flow cytometry (FCS) file, e.g. LEGENDplex beads",
    "legendplex/legendplex_human_proinflammatory_chemokine_panel_13-plex.yml": "a bead-map or panel description",
    "legendplex/legendplex_human_th_cytokine_panel_13-plex.yml": "a bead-map or panel description",
    "qpcr/RDML_abi7500_sce.eds": "an Applied Biosystems run file (.eds) holds the raw run without its analysis",
    "xponent/CovidOISExPONTENT_layout.csv": "unknown plate export format",
}


def _check(path: Path, spec: tuple) -> None:
    fmt, shape, n_wells, first, values = spec
    plate = read_plate(path)
    assert plate.format == fmt
    assert (plate.rows, plate.columns) == shape
    assert plate.wells["well"].nunique() == n_wells
    assert plate.analytes[: len(first)] == first
    key = "analyte" if plate.kind == "multiplex" else "target"
    for (well, analyte, column), want in values.items():
        rows = plate.wells[(plate.wells["well"] == well) & (plate.wells[key] == analyte)]
        assert len(rows) == 1, (well, analyte)
        got = rows.iloc[0][column]
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9), (well, analyte, column)
        else:
            assert got == want, (well, analyte, column)
    assert "\\" not in plate.plate_id and "/" not in plate.plate_id


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_multiplex_export(real_data: Path, name: str) -> None:
    _check(real_data / "chemokines" / name, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(QPCR))
def test_qpcr_export(real_data: Path, name: str) -> None:
    _check(real_data / "chemokines" / name, QPCR[name])


@pytest.mark.parametrize("name", sorted(NOT_EXPORTS))
def test_not_an_export_is_one_clear_line(real_data: Path, name: str) -> None:
    with pytest.raises(UserError) as err:
        read_plate(real_data / "chemokines" / name)
    assert len(err.value.problems) == 1 and NOT_EXPORTS[name] in err.value.problems[0].what


def test_every_file_is_covered(real_data: Path) -> None:
    folder = real_data / "chemokines"
    present = {str(p.relative_to(folder)) for p in folder.glob("*/*") if p.is_file()}
    assert present == set(EXPECTED) | set(QPCR) | set(NOT_EXPORTS)


def test_plate_ids_never_carry_a_path(real_data: Path) -> None:
    chem = real_data / "chemokines"
    # 'File Name: C:\LabKeyTest\RawAndSummary.srbx' and an empty Plate ID
    assert read_plate(chem / "bioplex" / "LabKey_RawAndSummary.xlsx").plate_id == "RawAndSummary"
    assert (
        read_plate(chem / "bioplex" / "with_blank_bead.xls").plate_id
        == "Test_Plate_with_Blank_Bead"
    )
    assert (
        read_plate(chem / "qpcr" / "allotropy_quantstudio_DA_quantity_test.xlsx").plate_id
        == "my_experiment"
    )


def test_negative_beads_and_facts_the_files_state(real_data: Path) -> None:
    chem = real_data / "chemokines"
    assert read_plate(chem / "bioplex" / "LabKey_WithAltNegativeBead.xls").negative_beads == [
        "Blank (3)",
        "MyNegative (4)",
    ]
    assert read_plate(chem / "bioplex" / "LabKey_03-31A82-IgA-Biotin.xls").negative_beads == [
        "Blank (53)"
    ]
    qs = read_plate(chem / "qpcr" / "allotropy_quantstudio_example10_QS12K.xlsx")
    assert (qs.meta["endogenous_control"], qs.meta["reference_sample"]) == ("RefGene", "Sample_1")
    lc = read_plate(chem / "qpcr" / "RDML_lc96_bACTXY.rdml")
    # a 50-cycle run: LightCycler writes Cq 100 (58 reactions) and six Cqs between 50.67
    # and 72.55 for what never crossed its threshold within the run
    assert any(i.kind == "cq_beyond_cycles" and "64 reactions" in i.what for i in lc.issues)
    assert lc.wells["cq"].max() <= 50
    rs = read_plate(chem / "bioplex" / "LabKey_RawAndSummary.xlsx")
    assert sum(i.kind == "summary_ignored" for i in rs.issues) == 3


def test_guide_set_plate_wells_outside_and_twice(real_data: Path) -> None:
    """LabKey's guide-set plate 1 lists 'A21,B21', 'A21,B22' ...: wells of a 96-well
    plate cannot be in column 21, and A21 is named by five samples."""
    plate = read_plate(real_data / "chemokines" / "bioplex" / "guide_set_plate_1.xls")
    issues = all_issues(plate)
    outside = {i.well for i in issues if i.kind == "outside_plate"}
    assert outside == {"A21", "A22", "B21", "B22", "B23", "B24", "B25"}
    dup = [i for i in issues if i.kind == "duplicate_well"]
    assert {(i.well, i.analyte) for i in dup} == {
        ("A21", "GS Analyte A (1)"),
        ("A22", "GS Analyte B (2)"),
    }
    assert "appears 5 times" in dup[0].what
    # the guide sets carry no expected concentration: no curve can be fitted, and it says so
    assert any(
        i.kind == "missing_standards" and "no expected concentration" in i.what for i in issues
    )


def test_values_the_export_does_not_give_are_said(real_data: Path) -> None:
    p = read_plate(
        real_data
        / "chemokines"
        / "xponent"
        / "allotropy_luminex_xPONENT_NaN_and_not_reported_values.csv"
    )
    nan = p.wells[(p.wells["well"] == "A1") & (p.wells["analyte"] == "analyte1")].iloc[0]
    assert math.isnan(nan["net_mfi"]) and "no net MFI in the export ('NaN')" in nan["problem"]
