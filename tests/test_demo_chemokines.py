"""The demo chemokine plates: layout, determinism, truth, and exports that read back."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.chemokines import read_plate
from immuno.demo import chemokines as demo

VISITS = ["D0", "D10", "M1"]


def test_plate_parses_back_to_simulated_values() -> None:
    rng = np.random.default_rng(11)
    samples = [f"P0{i}-{v}-PLASMA" for i in (1, 2) for v in VISITS]
    conc = {(s, a[1]): 100.0 * (k + 1) for k, s in enumerate(samples) for a in demo.ANALYTES}
    sim = demo.simulate_plate(rng, "PLATE_T", samples, conc)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "plate.csv"
        f.write_text(sim.text)
        plate = read_plate(f)
    got = plate.wells.set_index(["well", "analyte"]).sort_index()
    want = sim.wells.set_index(["well", "analyte"]).sort_index()
    assert got.index.equals(want.index)
    assert np.allclose(got["mfi"], want["mfi"]) and np.allclose(got["net_mfi"], want["net_mfi"])
    assert np.array_equal(got["bead_count"], want["bead_count"])
    assert (got["role"] == want["role"]).all() and (got["sample_name"] == want["sample_name"]).all()
    std = got[got["role"] == "standard"]
    # the export numbers its standards from the lowest (Standard1 = top / 4^7) and lists
    # their concentrations per reagent: every well gets its own back
    top = {a[0]: a[3] for a in demo.ANALYTES}
    expected = std.index.get_level_values("analyte").map(top) / 4.0 ** (8 - std["standard_level"])
    assert np.allclose(std["expected_conc"], expected)
    assert np.allclose(std["expected_conc"], want.loc[std.index, "x_in_well"])
    assert set(std["sample_name"]) == {f"Standard{k}" for k in range(1, 9)}
    assert set(plate.control_ranges["sample_name"]) == {"Control1", "Control2"}
    assert plate.units["IL-10"] == "pg/mL"
    # 8 levels in duplicate, 2 blanks, 2 controls in duplicate, samples in duplicate
    roles = plate.wells.drop_duplicates("well")["role"].value_counts().to_dict()
    assert roles == {"standard": 16, "blank": 2, "control": 4, "unknown": 2 * len(samples)}


def test_simulate_sheet_truth_and_determinism(tmp_path: Path) -> None:
    patients = [f"P{i:02d}" for i in range(1, 5)]
    rows, truth = demo.simulate(tmp_path / "a", 5, patients, VISITS, 1000)
    rows2, truth2 = demo.simulate(tmp_path / "b", 5, patients, VISITS, 1000)
    assert rows == rows2 and truth == truth2
    assert (tmp_path / "a" / rows[0]["file"]).read_bytes() == (
        tmp_path / "b" / rows[0]["file"]
    ).read_bytes()
    assert len(rows) == 12 and {r["sample_id"] for r in rows} == {
        f"{p}-{v}-PLASMA" for p in patients for v in VISITS
    }
    assert all(
        r["assay"] == "chemokine"
        and r["panel"] == demo.PANEL
        and r["sample_name"] == r["sample_id"]
        for r in rows
    )
    t = pd.DataFrame(truth)
    scores = {"Th1_chemokine_score", "Th2_chemokine_score", "Th1_Th2_chemokine_ratio"}
    assert set(t["feature"]) == {
        "CXCL9",
        "CXCL10",
        "CXCL11",
        "CCL17",
        "CCL22",
        "CCL11",
        "IL10",
        "IL1RN",
        *scores,
        *(f"{s}_strict" for s in scores),
    }
    assert (t["flag"] == "<LLOQ").any() and (t["flag"] == ">ULOQ").any()
    # truth flags follow the standard range of each analyte (in-well = plasma / dilution)
    spec = {a[1]: a[3] for a in demo.ANALYTES}
    an = t[t["feature"].isin(spec)]
    x = an["value"] / demo.SAMPLE_DILUTION
    top = an["feature"].map(spec)
    want = np.where(x < top / 4.0**7, "<LLOQ", np.where(x > top, ">ULOQ", ""))
    assert (an["flag"].to_numpy() == want).all()
    # the true scores follow the documented rule: censored analytes at LLOQ/2 or ULOQ,
    # named in the flag; the strict scores only where nothing is censored
    lloq = an["feature"].map(spec) / 4.0**7 * demo.SAMPLE_DILUTION
    uloq = an["feature"].map(spec) * demo.SAMPLE_DILUTION
    subst = an["value"].where(an["flag"] == "", np.where(an["flag"] == "<LLOQ", lloq / 2, uloq))
    cls = {a[1]: a[2] for a in demo.ANALYTES}
    for s_id, g in an.assign(subst=subst, cls=an["feature"].map(cls)).groupby("sample_id"):
        one = t[t["sample_id"] == s_id].set_index("feature")
        gm = {
            c: float(np.exp(np.log(g.loc[g["cls"] == c, "subst"]).mean())) for c in ("Th1", "Th2")
        }
        assert np.isclose(one.loc["Th1_chemokine_score", "value"], gm["Th1"])
        assert np.isclose(one.loc["Th1_Th2_chemokine_ratio", "value"], gm["Th1"] / gm["Th2"])
        censored = g.loc[(g["cls"] == "Th1") & (g["flag"] != ""), "feature"].tolist()
        strict = one.loc["Th1_chemokine_score_strict", "value"]
        if censored:
            assert np.isnan(strict)
        else:
            assert np.isclose(strict, np.exp(np.log(g.loc[g["cls"] == "Th1", "value"]).mean()))
        assert all(f in one.loc["Th1_chemokine_score", "flag"] for f in censored)


def test_patients_stay_on_one_plate_and_second_plate_only_when_full(tmp_path: Path) -> None:
    rows, _ = demo.simulate(tmp_path, 1, [f"P{i:02d}" for i in range(1, 14)], VISITS, 1000)
    sheet = pd.DataFrame(rows)
    assert sheet["plate"].nunique() == 2  # 39 samples > 37 places
    assert (sheet.groupby("patient_id")["plate"].nunique() == 1).all()
    small, _ = demo.simulate(tmp_path / "s", 1, [f"P{i:02d}" for i in range(1, 13)], VISITS, 1000)
    assert len({r["plate"] for r in small}) == 1
