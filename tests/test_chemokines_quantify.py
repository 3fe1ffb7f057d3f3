"""Quantification against the demo truth, plate QC, vendor agreement, batch outputs, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import (
    levey_jennings,
    process_batch,
    quantify_plate,
    read_plate,
    westgard,
)
from immuno.chemokines.checks import check_inputs
from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.panels import find_panel
from immuno.demo import chemokines as demo
from immuno.demo import make_demo_batch

VISITS = ["D0", "D10", "M1"]


@pytest.fixture(scope="module")
def plate_and_truth(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("chem")
    rows, truth = demo.simulate(out, 20261126, [f"P{i:02d}" for i in range(1, 13)], VISITS, 1000)
    return out / rows[0]["file"], pd.DataFrame(truth)


@pytest.fixture(scope="module")
def result(plate_and_truth):
    path, _ = plate_and_truth
    plate = read_plate(path)
    return plate, quantify_plate(plate, find_panel("chemokine_demo"))


def test_demo_accuracy_and_censoring(result, plate_and_truth) -> None:
    _, res = result
    _, truth = plate_and_truth
    s = res.samples[res.samples["role"] == "unknown"].merge(
        truth,
        left_on=["sample_name", "feature"],
        right_on=["sample_id", "feature"],
        suffixes=("", "_true"),
    )
    assert len(s) == 36 * 8
    agree = (s["flag"] == s["flag_true"].fillna("")).mean()
    assert agree >= 0.95, agree
    inr = s[(s["flag"] == "") & (s["flag_true"].fillna("") == "")]
    mdare = float(np.median(np.abs(inr["value"] / inr["value_true"] - 1)))
    assert mdare <= 0.10, mdare
    # censored values carry no number, only the extrapolated one in its own column
    cens = s[s["flag"].isin(["<LLOQ", ">ULOQ"])]
    assert cens["value"].isna().all() and len(cens) > 0
    assert (res.curves["status"] == "ok").all() and (res.curves["r2"] > 0.99).all()


def test_vendor_coefficients_reproduce_vendor_results(result) -> None:
    _, res = result
    # the demo writes xPONENT's Result from its (Coefficient A..E) curve independently:
    # every printed result is reproduced from the printed coefficients to print precision
    assert (res.curves["vendor_reproduced_fraction"] == 1.0).all()
    assert (
        res.curves["vendor_checked_n"] >= 90
    ).all()  # standards, controls and 36 samples in duplicate
    v = res.vendor
    assert (
        v["reproduced"].notna().sum() == res.curves["vendor_checked_n"].sum()
        and v["reproduced"].all()
    )
    # our refit against the software's own fit of the same standards: within 2 % median
    assert (res.curves["vendor_curve_status"] == "ok").all()
    assert (res.curves["vendor_agreement_median_rel_diff"] <= 0.02).all()
    m = pd.DataFrame(res.metrics)
    rep = m[m["check"] == "vendor_reproduction"]
    assert len(rep) == 8 and rep["passed"].all()
    agree = m[m["check"] == "vendor_agreement"]
    assert len(agree) == 8 and agree["passed"].all() and (agree["upper_limit"] == 0.02).all()


def test_bead_counts_controls_and_flags(result) -> None:
    plate, res = result
    w = plate.wells
    excluded = w[(w["bead_count"] < 35) & (w["role"] == "unknown")]
    assert len(excluded) > 0
    flags = pd.DataFrame(res.flags)
    assert (flags["flag"] == "bead_count_excluded").sum() == len(excluded)
    assert (flags["flag"] == "bead_count_low").sum() == int(
        ((w["bead_count"] >= 35) & (w["bead_count"] < 50)).sum()
    )
    first = excluded.iloc[0]
    row = res.samples[
        (res.samples["sample_name"] == first["sample_name"])
        & (res.samples["analyte"] == first["analyte"])
    ].iloc[0]
    assert row["n_used"] == 1 and row["n_wells"] == 2
    m = pd.DataFrame(res.metrics)
    ctrl = m[m["check"] == "control_range"]
    assert (
        len(ctrl) == 16 and ctrl["passed"].all()
    )  # 2 kit controls x 8 analytes, inside their lot range
    assert (m[m["check"] == "standard_recovery"]["passed"]).mean() >= 0.75


def test_failed_analyte_leaves_the_rest_of_the_plate(plate_and_truth, tmp_path: Path) -> None:
    path, _ = plate_and_truth
    text = path.read_text()
    # locale corruption: CXCL9's second-highest standard "2500" read as "2.5" (the demo
    # lists expected concentrations per reagent, numbered from the lowest: Standard7)
    lines = text.splitlines()
    start = lines.index('"DataType:","Standard Expected Concentration"')
    for i in range(start, len(lines)):
        if lines[i].startswith('"Standard7"'):
            cells = lines[i].split('","')
            assert cells[1] == "2500"
            cells[1] = "2.5"
            lines[i] = '","'.join(cells)
            break
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    res = quantify_plate(read_plate(tmp_path / "bad.csv"), find_panel("chemokine_demo"))
    c = res.curves.set_index("feature")
    assert c.loc["CXCL9", "status"] == "failed" and "do not decrease" in c.loc["CXCL9", "reason"]
    assert (c.drop(index="CXCL9")["status"] == "ok").all()
    cx = res.samples[res.samples["feature"] == "CXCL9"]
    assert (cx["flag"] == "curve_failed").all() and cx["value"].isna().all()
    assert any(f["flag"] == "curve_failed" and f["target"] == "CXCL9" for f in res.flags)


def test_westgard_rules() -> None:
    seq = [0.0, 2.5, 3.5, -2.5, 2.2, 2.3]
    rules = westgard(seq, 0.0, 1.0)
    # -2.5 then +2.2 spans 4.7 SD across the mean: R-4s; +2.2 then +2.3: 2-2s
    assert rules == [[], ["1-2s"], ["1-3s", "2-2s"], ["R-4s"], ["R-4s"], ["2-2s"]]
    assert westgard([0.5, 1.9, -1.5], 0.0, 1.0) == [[], [], []]
    cur = pd.DataFrame(
        {
            "plate_id": [f"P{i}" for i in range(6)],
            "check": "curve_ec50",
            "target": "CXCL10",
            "value": [100, 102, 98, 101, 99, 130],
        }
    )
    m, f = levey_jennings(cur)
    assert len(m) == 6 and m[-1]["passed"] is False and f[-1]["severity"] == "fail"
    few, _ = levey_jennings(cur.head(3))
    assert all(x["passed"] is None for x in few)


@pytest.fixture(scope="module")
def chem_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cb") / "chembatch"
    make_demo_batch(folder, seed=3, patients=3, events=1000, assays=("chemokine",))
    return folder


def test_process_batch_outputs(chem_batch: Path, tmp_path: Path) -> None:
    batch = load_batch(chem_batch)
    assert check_inputs(batch.rows("chemokine"), batch.root, batch.panels) == []
    out = tmp_path / "chemokines"
    table = process_batch(batch, out, plots=False)
    for name in (
        "chemokines_measurements",
        "qc_metrics",
        "qc_flags",
        "wells",
        "curves",
        "standards",
        "samples",
    ):
        assert (out / f"{name}.parquet").is_file()
    assert not (out / "measurements.parquet").exists()
    assert set(table["assay"]) == {"chemokine"} and table["sample_id"].nunique() == 9
    feats = set(table["feature"])
    assert {
        "CXCL10",
        "IL10",
        "IL1RN",
        "Th1_chemokine_score",
        "Th2_chemokine_score",
        "Th1_Th2_chemokine_ratio",
    } <= feats
    truth = pd.read_csv(chem_batch / "truth.csv")
    j = table.merge(truth, on=["sample_id", "feature"], suffixes=("", "_t"))
    num = j[j["value"].notna() & j["value_t"].notna()]
    assert np.median(np.abs(num["value"] / num["value_t"] - 1)) <= 0.10
    cens = table[table["flag"] == "<LLOQ"]
    assert cens["value"].isna().all() and cens["upper"].notna().all()
    adata = ad.read_h5ad(out / "concentrations.h5ad")
    assert adata.shape == (9, 8) and {"mean_net_mfi", "extrapolated", "flag"} <= set(adata.layers)
    assert adata.uns["provenance"]["input_files"] == ["chemokine/CHEMO_PLATE_01.csv"]
    # X holds the in-range values only; the flag layer codes the censoring
    low = table[table["flag"] == "<LLOQ"].iloc[0]
    i, j = adata.obs_names.get_loc(low["sample_id"]), adata.var_names.get_loc(low["feature"])
    assert (
        np.isnan(adata.X[i, j]) and adata.layers["flag"][i, j] == adata.uns["flag_codes"]["<LLOQ"]
    )
    ok = table[(table["flag"] == "") & table["feature"].isin(adata.var_names)].iloc[0]
    i, j = adata.obs_names.get_loc(ok["sample_id"]), adata.var_names.get_loc(ok["feature"])
    assert adata.X[i, j] == pytest.approx(ok["value"]) and adata.layers["flag"][i, j] == 0
    again = process_batch(batch, tmp_path / "again", plots=False)
    pd.testing.assert_frame_equal(table, again)


def test_bad_plate_fails_its_own_samples(chem_batch: Path, tmp_path: Path) -> None:
    folder = tmp_path / "chembatch"
    shutil.copytree(chem_batch, folder)
    (folder / "chemokine" / "broken.csv").write_text("this is not a plate export\n")
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    extra = sheet.iloc[[0]].assign(
        sample_id="P09-D0-PLASMA",
        patient_id="P09",
        file="chemokine/broken.csv",
        sample_name="P09-D0-PLASMA",
        plate="BROKEN",
    )
    pd.concat([sheet, extra]).to_csv(folder / "samplesheet.csv", index=False)
    batch = load_batch(folder)
    problems = check_inputs(batch.rows("chemokine"), batch.root, batch.panels)
    assert len(problems) == 1 and "unknown plate export format" in problems[0].what
    table = process_batch(batch, tmp_path / "out", plots=False)
    bad = table[table["sample_id"] == "P09-D0-PLASMA"]
    assert len(bad) > 0 and (~bad["qc_pass"]).all() and bad["value"].isna().all()
    assert table[table["sample_id"] != "P09-D0-PLASMA"]["value"].notna().sum() > 50
    flags = pd.read_parquet(tmp_path / "out" / "qc_flags.parquet")
    assert (
        (flags["sample_id"] == "P09-D0-PLASMA")
        & (flags["flag"] == "file_failed")
        & (flags["severity"] == "fail")
    ).any()


def test_check_inputs_reports_missing_sample_name(chem_batch: Path) -> None:
    batch = load_batch(chem_batch)
    rows = batch.rows("chemokine").copy()
    rows.loc[0, "sample_name"] = "P01-D0-SERUM"
    problems = check_inputs(rows, batch.root, batch.panels)
    assert (
        len(problems) == 1
        and "P01-D0-SERUM" in problems[0].what
        and "sample_name" in problems[0].where
    )


def test_cli_quantify(plate_and_truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = plate_and_truth
    rc = main(
        [
            "chemokines",
            "quantify",
            str(path),
            "--panel",
            "chemokine_demo",
            "--out",
            str(tmp_path / "q"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "xponent export" in text and "CXCL10" in text and "5PL" in text
    assert (tmp_path / "q" / "curves.parquet").is_file() and any(
        (tmp_path / "q" / "plots").glob("*.png")
    )
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    rc = main(["chemokines", "quantify", str(tmp_path / "x.csv"), "--out", str(tmp_path / "x")])
    assert rc == 2 and "unknown plate export format" in capsys.readouterr().err


def test_unlisted_samples_do_not_leave_the_batch(chem_batch: Path, tmp_path: Path) -> None:
    folder = tmp_path / "chembatch"
    shutil.copytree(chem_batch, folder)
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet[sheet["sample_id"] != "P01-D0-PLASMA"].to_csv(folder / "samplesheet.csv", index=False)
    process_batch(load_batch(folder), tmp_path / "out", plots=False)
    for name in ("wells", "qc_flags", "qc_metrics", "samples", "chemokines_measurements"):
        df = pd.read_parquet(tmp_path / "out" / f"{name}.parquet")
        text = df.astype(str).to_csv()
        assert "P01-D0-PLASMA" not in text, name
    wells = pd.read_parquet(tmp_path / "out" / "wells.parquet")
    assert (wells["sample_name"] == "unlisted").sum() == 2 * 8  # two replicate wells x 8 analytes
    assert set(wells.loc[wells["role"] == "standard", "sample_name"]) == {
        f"Standard{i}" for i in range(1, 9)
    }


def test_qpcr_rows_in_a_batch(tmp_path: Path) -> None:
    folder = tmp_path / "qbatch"
    (folder / "qpcr").mkdir(parents=True)
    lines = [",Well,Fluor,Target,Content,Sample,Cq"]
    cq = {
        "P01-D0-BLOOD": {"CXCL10": 28.0, "GAPDH": 18.0, "ACTB": 20.0},
        "P01-D10-BLOOD": {"CXCL10": 25.0, "GAPDH": 18.2, "ACTB": 19.8},
    }
    n = 0
    for sample, targets in cq.items():
        for target, value in targets.items():
            for rep in (-0.02, 0.02):
                n += 1
                lines.append(f",A{n:02d},FAM,{target},Unkn,{sample},{value + rep}")
    lines.append(",H12,FAM,CXCL10,NTC,,NaN")
    (folder / "qpcr" / "run1.csv").write_text("\n".join(lines) + "\n")
    sheet = pd.DataFrame(
        [
            {
                "sample_id": s,
                "patient_id": "P01",
                "visit": s.split("-")[1],
                "assay": "chemokine",
                "file": "qpcr/run1.csv",
                "panel": "chemokine_qpcr_demo",
                "sample_name": s,
            }
            for s in cq
        ]
    )
    sheet.to_csv(folder / "samplesheet.csv", index=False)
    batch = load_batch(folder)
    assert check_inputs(batch.rows("chemokine"), batch.root, batch.panels) == []
    table = process_batch(batch, tmp_path / "out", plots=False)
    row = table[(table["feature"] == "CXCL10")].set_index("sample_id")
    # 2^-dCq against the geometric mean of GAPDH and ACTB (B2M is not on the run)
    assert row.loc["P01-D0-BLOOD", "value"] == pytest.approx(2.0 ** -(28.0 - 19.0))
    assert row.loc["P01-D10-BLOOD", "value"] == pytest.approx(2.0 ** -(25.0 - 19.0))
    assert set(row["unit"]) == {"relative expression"}
    flags = pd.read_parquet(tmp_path / "out" / "qc_flags.parquet")
    assert "reference_gene_missing" in set(flags["flag"])


@pytest.mark.real
def test_msd_plate_quantified_like_workbench(real_data: Path) -> None:
    plate = read_plate(real_data / "chemokines" / "msd" / "msd_workbench_test_2.csv")
    res = quantify_plate(plate)
    curve = res.curves.iloc[0]
    assert curve["status"] == "ok" and curve["lloq"] == 1.5625 and curve["uloq"] == 100.0
    s = res.samples.set_index("sample_name")
    # U004 and U005 give the very signals of standards S002 (50) and S003 (25): mean 510 and 255
    assert s.loc["U004", "value"] == pytest.approx(50.0, rel=0.02)
    assert s.loc["U005", "value"] == pytest.approx(25.0, rel=0.02)
    # this test file's Calc. Concentration is signal / 10 (51.0, 25.5, 12.75): close, not a fit
    for name in ("U004", "U005", "U006"):
        assert s.loc[name, "value"] == pytest.approx(s.loc[name, "vendor_result"], rel=0.05)
    # U001 (signal 2010) lies above the top standard (100): censored, extrapolated kept apart
    assert s.loc["U001", "flag"] == ">ULOQ" and np.isnan(s.loc["U001", "value"])
    assert s.loc["U001", "extrapolated"] > 100


def test_levey_jennings_with_a_history_table(chem_batch: Path, tmp_path: Path) -> None:
    batch = load_batch(chem_batch)
    first = process_batch(batch, tmp_path / "first", plots=False)
    assert len(first)
    curves = pd.read_parquet(tmp_path / "first" / "curves.parquet").set_index("feature")
    ec50 = float(curves.loc["CXCL10", "ec50"])
    # five earlier plates: CXCL10's EC50 steady near today's, IL10's far below today's
    il10 = float(curves.loc["IL10", "ec50"])
    hist = pd.DataFrame(
        [
            {"plate_id": f"OLD{i}", "check": "curve_ec50", "target": t, "value": v * f}
            for i, f in enumerate([0.98, 1.01, 1.0, 0.99, 1.02])
            for t, v in (("CXCL10", ec50), ("IL10", il10 / 3))
        ]
    )
    hist.to_parquet(tmp_path / "history.parquet")
    process_batch(batch, tmp_path / "second", history=tmp_path / "history.parquet", plots=False)
    m = pd.read_parquet(tmp_path / "second" / "qc_metrics.parquet")
    lj = m[m["check"] == "levey_jennings_curve_ec50"].set_index("target")
    assert (
        bool(lj.loc["CXCL10", "passed"])
        and lj.loc["CXCL10", "lower_limit"] < ec50 < lj.loc["CXCL10", "upper_limit"]
    )
    assert not bool(lj.loc["IL10", "passed"]) and "1-3s" in lj.loc["IL10", "detail"]
    f = pd.read_parquet(tmp_path / "second" / "qc_flags.parquet")
    assert (
        (f["flag"] == "westgard_curve_ec50") & (f["target"] == "IL10") & (f["severity"] == "fail")
    ).any()
    # without a history of 5 plates the batch's single plate is recorded without limits
    m1 = pd.read_parquet(tmp_path / "first" / "qc_metrics.parquet")
    lj1 = m1[m1["check"] == "levey_jennings_curve_ec50"]
    assert len(lj1) == 8 and lj1["passed"].isna().all() and lj1["lower_limit"].isna().all()


def test_bead_regions_outside_the_panel_are_not_measurements(
    plate_and_truth, tmp_path: Path
) -> None:
    path, _ = plate_and_truth
    text = path.read_text().replace("CXCL11/I-TAC", "Monitoring")
    (tmp_path / "mon.csv").write_text(text)
    res = quantify_plate(read_plate(tmp_path / "mon.csv"), find_panel("chemokine_demo"))
    mon = res.curves.set_index("analyte").loc["Monitoring"]
    assert not mon["in_panel"] and mon["feature"] == "Monitoring"
    assert not res.samples.loc[res.samples["analyte"] == "Monitoring", "in_panel"].any()
    assert any(f["flag"] == "analyte_not_in_panel" for f in res.flags)
