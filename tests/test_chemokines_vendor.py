"""Agreement with the vendor software, value by value: the vendor's printed curve against
its printed results (to print precision), and our refit against the vendor's results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import CurveParams, predict, quantify_plate, quantify_run, read_plate
from immuno.chemokines.io.xponent_blocks import coefficient_letter
from immuno.chemokines.qc.vendor import print_tolerance

BIOPLEX_WITH_EQUATION = [
    "LabKey_03-31A82-IgA-Biotin.xls",
    "LabKey_RawAndSummary.xlsx",
    "LabKey_WithAltNegativeBead.xls",
    "LabKey_WithIndices.xls",
    "LabKey_plate3_IgA-Biot_Standard1.xlsx",
    "with_blank_bead.xls",
]


def test_print_tolerance_follows_the_printed_digits() -> None:
    p = CurveParams(a=3.45399, b=-1.2285, c=3.18194, d=29496.2, g=0.8)
    y = np.array([150.0, 2000.0, 20000.0])
    x, tol = print_tolerance(
        p,
        {"a": 5e-6, "b": 5e-5, "c": 5e-6, "d": 0.05, "g": 0.05},
        y,
        np.full(3, 0.5),
        np.ones(3),
        np.full(3, 5e-6),
    )
    assert np.allclose(predict(p, x), y)
    assert np.all(np.isfinite(tol)) and np.all(tol > 5e-6)
    # exact printing (no rounding anywhere) leaves no tolerance
    _, zero = print_tolerance(p, {}, y, np.zeros(3), np.ones(3), np.zeros(3))
    assert np.all(zero == 0)
    # half a unit of FI across the lower asymptote: the value cannot be checked
    _, inf = print_tolerance(p, {}, np.array([3.5]), np.array([0.5]), np.ones(1), np.zeros(1))
    assert np.isinf(inf[0])


@pytest.mark.parametrize(
    "label,letter",
    [
        ("A", "a"),
        ("B:", "b"),
        ("Coefficient C", "c"),
        ("Coeff. D", "d"),
        ("coef_e", "e"),
        ("F", "f"),
        ("R^2", ""),
        ("Analyte:", ""),
    ],
)
def test_coefficient_row_labels_in_every_spelling(label: str, letter: str) -> None:
    assert coefficient_letter(label) == letter


@pytest.mark.real
@pytest.mark.parametrize("name", BIOPLEX_WITH_EQUATION)
def test_bioplex_obs_conc_reproduced_from_the_printed_equation(real_data: Path, name: str) -> None:
    plate = read_plate(real_data / "chemokines" / "bioplex" / name)
    res = quantify_plate(plate)
    v = res.vendor
    checked = v["reproduced"].notna()
    assert checked.sum() >= 0.9 * v["vendor_result"].notna().sum()  # the rest sit at an asymptote
    assert v.loc[checked, "reproduced"].mean() >= 0.99
    # the tolerance is the printed precision: half of the values are held to < 5 % of themselves
    assert (v.loc[checked, "tolerance"] / v.loc[checked, "vendor_result"]).median() < 0.05
    m = pd.DataFrame(res.metrics)
    rep = m[m["check"] == "vendor_reproduction"]
    assert len(rep) and rep["passed"].all()
    # and the check can fail: results 10 % off are not reproduced
    plate.wells["vendor_result"] *= 1.1
    off = quantify_plate(plate).vendor
    assert off.loc[off["reproduced"].notna(), "reproduced"].mean() < 0.5


@pytest.mark.real
def test_refit_agrees_with_the_vendor_where_its_curve_passes_recovery(real_data: Path) -> None:
    """Our refit is within 2 % (median, in range for both) of every Bio-Plex result whose
    vendor curve passes recovery by our own rules; the other analytes are reported, not judged."""
    passing, reasons = {}, {}
    for name in BIOPLEX_WITH_EQUATION:
        res = quantify_plate(read_plate(real_data / "chemokines" / "bioplex" / name))
        for c in res.curves[res.curves["status"] != "negative_control"].itertuples():
            if c.vendor_curve_status == "ok":
                passing[(name, c.analyte)] = (
                    c.vendor_agreement_median_rel_diff,
                    c.vendor_agreement_n,
                )
            else:
                reasons[(name, c.analyte)] = c.vendor_curve_reason
    assert set(passing) == {
        ("LabKey_03-31A82-IgA-Biotin.xls", "ENV3 (59)"),
        ("LabKey_WithIndices.xls", "IL-1b (1)"),
        ("LabKey_plate3_IgA-Biot_Standard1.xlsx", "ENV6 (97)"),
    }
    for key, (median, n) in passing.items():
        assert n >= 10 and median <= 0.02, key
    assert all(r for r in reasons.values())
    assert "only 5 levels pass" in reasons[("LabKey_WithIndices.xls", "IL-4 (9)")]


@pytest.mark.real
def test_standards_numbered_from_the_lowest_and_a_4pl_vendor_curve(real_data: Path) -> None:
    """WithIndices numbers its standards from the lowest (S1 = 0.13 ... S7 = 2000) and
    Bio-Plex fitted a 4PL: the levels are ordered by concentration and the curve is fitted."""
    res = quantify_plate(
        read_plate(real_data / "chemokines" / "bioplex" / "LabKey_WithIndices.xls")
    )
    c = res.curves.set_index("analyte")
    assert c.loc["IL-1b (1)", "status"] == "ok" and c.loc["IL-1b (1)", "lloq"] == 0.13
    assert c.loc["IL-1b (1)", "uloq"] == 2000.0
    std = res.standards[res.standards["analyte"] == "IL-1b (1)"]
    assert list(std["expected_conc"]) == [2000.0, 400.0, 80.0, 16.0, 3.2, 0.64, 0.13]
    assert list(std["standard_level"]) == [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    # IL-4's S5 is a Bio-Plex outlier: out of the fit, flagged with its reason
    assert any(
        f["flag"] == "well_excluded" and "designated an outlier" in f["reason"] for f in res.flags
    )


@pytest.mark.real
def test_blank_beads_are_background_not_analytes(real_data: Path) -> None:
    res = quantify_plate(
        read_plate(real_data / "chemokines" / "bioplex" / "LabKey_WithAltNegativeBead.xls")
    )
    c = res.curves.set_index("analyte")
    assert list(c.index[c["status"] == "negative_control"]) == ["Blank (3)", "MyNegative (4)"]
    assert not res.samples["analyte"].isin(["Blank (3)", "MyNegative (4)"]).any()
    m = pd.DataFrame(res.metrics)
    assert set(m.loc[m["check"] == "negative_bead_signal", "target"]) == {
        "Blank (3)",
        "MyNegative (4)",
    }
    # the bead's signal per well is kept beside every analyte; a panel may subtract it
    w = res.wells.set_index(["well", "analyte"])
    assert w.loc[("A1", "MyAnalyte (1)"), "negative_bead_net_mfi"] == pytest.approx(
        (866.5 + w.loc[("A1", "Blank (3)"), "net_mfi"]) / 2
    )
    sub = quantify_plate(
        read_plate(real_data / "chemokines" / "bioplex" / "LabKey_WithAltNegativeBead.xls"),
        qc_rules={"background": "negative_bead"},
    )
    ws = sub.wells.set_index(["well", "analyte"])
    assert ws.loc[("A1", "MyAnalyte (1)"), "net_mfi"] == pytest.approx(
        w.loc[("A1", "MyAnalyte (1)"), "net_mfi"]
        - w.loc[("A1", "MyAnalyte (1)"), "negative_bead_net_mfi"]
    )


@pytest.mark.real
def test_bioplex_xlsx_resave_reads_the_same(real_data: Path, tmp_path: Path) -> None:
    src = real_data / "chemokines" / "bioplex" / "with_blank_bead.xls"
    plate = read_plate(src)
    sheets = pd.read_excel(src, sheet_name=None, header=None)
    with pd.ExcelWriter(tmp_path / "copy.xlsx") as xw:
        for name, df in sheets.items():
            df.to_excel(xw, sheet_name=name, header=False, index=False)
        pd.DataFrame([["a project template"]]).to_excel(
            xw, sheet_name="Project Template", header=False, index=False
        )
    again = read_plate(tmp_path / "copy.xlsx")
    pd.testing.assert_frame_equal(plate.wells, again.wells)
    # a sheet without an analyte table is left aside with a note, never a failure
    assert [i.where.split(": ")[-1] for i in again.issues if i.kind == "sheet_ignored"] == [
        "sheet 'Project Template'"
    ]


@pytest.mark.real
def test_quantstudio_ddct_and_rq_equal_the_files_own(real_data: Path) -> None:
    qpcr = real_data / "chemokines" / "qpcr"
    run = quantify_run(read_plate(qpcr / "quantstudio_example05.txt"))
    v = run.vendor.set_index("sample_name")
    # the file names no reference sample; its own ddCt of 0 (Liver) does
    assert any(f["flag"] == "qpcr_vendor_reference" and "Liver" in f["reason"] for f in run.flags)
    assert set(v.index) == {"Lung", "Heart", "Brain", "Liver"}
    assert v["ddcq_ok"].all() and v["rq_ok"].all()
    assert v.loc["Heart", "ours_ddcq"] == pytest.approx(-3.806 + 2.969)
    assert v.loc["Lung", "ours_rq"] == pytest.approx(2.0 ** -(-2.647 + 2.969))
    # QS12K: ddCt and RQ follow from the file's dCt, but its dCt contradicts its own Cts
    run12 = quantify_run(read_plate(qpcr / "allotropy_quantstudio_example10_QS12K.xlsx"))
    v12 = run12.vendor.set_index("sample_name")
    assert v12["ddcq_ok"].all() and v12["rq_ok"].all()
    assert not v12["dcq_ok"].any() and v12.loc["Sample_1", "ours_dcq"] == pytest.approx(
        25.65 - 20.1
    )
    m = pd.DataFrame(run12.metrics).set_index("check")
    assert m.loc["vendor_dcq", "passed"] == False and m.loc["vendor_rq", "passed"] == True  # noqa: E712
    assert sum(f["flag"] == "vendor_dcq_differs" for f in run12.flags) == 2


@pytest.mark.real
def test_quantstudio_standard_curve_slope_equals_the_files(real_data: Path) -> None:
    run = quantify_run(
        read_plate(real_data / "chemokines" / "qpcr" / "quantstudio_example04.txt"),
        reference_genes=["RNase P"],
    )
    slope = next(m for m in run.metrics if m["check"] == "vendor_slope")
    assert slope["passed"] and abs(slope["value"]) <= 0.001 and "-3.383" in slope["detail"]
    assert not run.quantified and "no target other than the reference genes" in run.reason


def test_demo_vendor_results_reproduce_and_agree(tmp_path: Path) -> None:
    from immuno.demo import chemokines as demo

    rng = np.random.default_rng(4)
    samples = [f"P0{i}-{v}-PLASMA" for i in (1, 2) for v in ("D0", "D10", "M1")]
    conc = {(s, a[1]): 50.0 * (k + 1) for k, s in enumerate(samples) for a in demo.ANALYTES}
    sim = demo.simulate_plate(rng, "PLATE_V", samples, conc)
    (tmp_path / "p.csv").write_text(sim.text)
    res = quantify_plate(read_plate(tmp_path / "p.csv"))
    assert (res.curves["vendor_reproduced_fraction"] == 1.0).all()
    assert (res.curves["vendor_agreement_median_rel_diff"] <= 0.02).all()
    assert not math.isnan(res.curves["vendor_agreement_max_rel_diff"].max())
