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
    top = {a[0]: a[3] for a in demo.ANALYTES}
    expected = std.index.get_level_values("analyte").map(top) / 4.0 ** (std["standard_level"] - 1)
    assert np.allclose(std["expected_conc"], expected)
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
    assert (tmp_path / "a" / rows[0]["file"]).read_bytes() == (tmp_path / "b" / rows[0]["file"]).read_bytes()
    assert len(rows) == 12 and {r["sample_id"] for r in rows} == {f"{p}-{v}-PLASMA" for p in patients for v in VISITS}
    assert all(r["assay"] == "chemokine" and r["panel"] == demo.PANEL and r["sample_name"] == r["sample_id"] for r in rows)
    t = pd.DataFrame(truth)
    assert set(t["feature"]) == {"CXCL9", "CXCL10", "CXCL11", "CCL17", "CCL22", "CCL11", "IL10", "IL1RN",
                                 "Th1_chemokine_score", "Th2_chemokine_score", "Th1_Th2_chemokine_ratio"}
    assert (t["flag"] == "<LLOQ").any() and (t["flag"] == ">ULOQ").any()
    # truth flags follow the standard range of each analyte (in-well = plasma / dilution)
    spec = {a[1]: a[3] for a in demo.ANALYTES}
    an = t[t["feature"].isin(spec)]
    x = an["value"] / demo.SAMPLE_DILUTION
    top = an["feature"].map(spec)
    want = np.where(x < top / 4.0 ** 7, "<LLOQ", np.where(x > top, ">ULOQ", ""))
    assert (an["flag"].to_numpy() == want).all()
    one = t[t["sample_id"] == "P01-D0-PLASMA"].set_index("feature")["value"]
    th1 = np.exp(np.log(one[["CXCL9", "CXCL10", "CXCL11"]]).mean())
    th2 = np.exp(np.log(one[["CCL17", "CCL22", "CCL11"]]).mean())
    assert np.isclose(one["Th1_chemokine_score"], th1) and np.isclose(one["Th1_Th2_chemokine_ratio"], th1 / th2)


def test_patients_stay_on_one_plate_and_second_plate_only_when_full(tmp_path: Path) -> None:
    rows, _ = demo.simulate(tmp_path, 1, [f"P{i:02d}" for i in range(1, 14)], VISITS, 1000)
    sheet = pd.DataFrame(rows)
    assert sheet["plate"].nunique() == 2  # 39 samples > 37 places
    assert (sheet.groupby("patient_id")["plate"].nunique() == 1).all()
    small, _ = demo.simulate(tmp_path / "s", 1, [f"P{i:02d}" for i in range(1, 13)], VISITS, 1000)
    assert len({r["plate"] for r in small}) == 1
