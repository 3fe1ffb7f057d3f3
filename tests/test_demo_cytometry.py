"""The demo cytometry generator: its files carry the populations its truth says."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.cytometry.io.fcs import parse_spillover, read_fcs
from immuno.demo import cytometry as demo

N_EVENTS = 20_000


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("cyto_demo")
    rows, truth = demo.simulate(out, 11, ["P01", "P02"], ["D0", "D10", "M1"], N_EVENTS)
    return out, pd.DataFrame(rows), pd.DataFrame(truth)


def _labels(out: Path, sid: str) -> dict[str, np.ndarray]:
    with np.load(out / "cytometry" / "truth_events" / f"{sid}.npz") as z:
        return {k: z[k] for k in z.files}


def _compensated(out: Path, sid: str) -> tuple[np.ndarray, list[str]]:
    fcs = read_fcs(out / "cytometry" / f"{sid}.fcs", dtype=np.float64)
    channels, spill = parse_spillover(fcs.keywords["$SPILLOVER"])
    idx = [fcs.channel_index(c) for c in channels]
    events = fcs.events.copy()
    events[:, idx] = events[:, idx] @ np.linalg.inv(spill)
    return events, fcs.channels


def test_sheet_rows(batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    out, rows, _ = batch
    assert set(rows["assay"]) == {"cytometry"}
    for p in ("P01", "P02"):
        for v in ("D0", "D10", "M1"):
            stim = rows.set_index("sample_id").loc[f"{p}-{v}-ICS-STIM"]
            unstim = rows.set_index("sample_id").loc[f"{p}-{v}-ICS-UNSTIM"]
            surf = rows.set_index("sample_id").loc[f"{p}-{v}-SURF"]
            assert (stim.tube, unstim.tube, surf.tube) == ("stimulated", "unstimulated", "stained")
            assert unstim.control_of == f"{p}-{v}-ICS-STIM"
            assert stim.panel == demo.ICS_PANEL and surf.panel == demo.SURFACE_PANEL
    assert (rows["tube"] == "single_stain").sum() == len(demo.FLUORS) == 12
    assert (rows["tube"] == "unstained").sum() == 1
    ref = rows[rows["tube"] == "reference_control"]
    assert set(ref["sample_id"]) == {"REFCTRL-ICS-STIM", "REFCTRL-ICS-UNSTIM", "REFCTRL-SURF"}
    assert set(ref["patient_id"]) == {"REFCTRL"} and set(ref["visit"]) == {""}
    for f in rows["file"]:
        assert (out / f).is_file()


def test_file_keywords_and_spillover(batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    out, _, truth = batch
    fcs = read_fcs(out / "cytometry" / "P01-D10-SURF.fcs")
    assert fcs.channels == demo.CHANNELS and len(fcs.channels) == 17
    assert fcs.markers[fcs.channels.index("BV421-A")] == "CXCR3"
    assert fcs.markers[fcs.channels.index("PE-A")] is None  # a detector nothing is stained in
    # the first surface tube labels every channel, as MACSQuant or Accuri software does
    every = read_fcs(out / "cytometry" / "P01-D0-SURF.fcs")
    assert all(every.markers)
    assert every.markers[every.channels.index("FSC-A")] == "FSC-A"
    assert every.markers[every.channels.index("PE-A")] == "PE-A"
    assert every.markers[every.channels.index("BV421-A")] == "CXCR3 BV421"
    assert fcs.keywords["$TIMESTEP"] == "0.01" and fcs.keywords["$BTIM"] < fcs.keywords["$ETIM"]
    assert all(fcs.ranges == 262144)
    channels, spill = parse_spillover(fcs.keywords["$SPILLOVER"])
    true_channels, true_spill = demo.true_spillover()
    assert channels == true_channels
    np.testing.assert_array_equal(spill, true_spill)
    rows = truth[truth["sample_id"] == "SPILLOVER"].set_index("feature")["value"]
    assert len(rows) == 144
    for a, src in enumerate(channels):
        for b, dst in enumerate(channels):
            assert rows[f"spillover:{src}->{dst}"] == spill[a, b]
    assert spill[channels.index("APC-A"), channels.index("APC-R700-A")] == 0.31


def test_deterministic(tmp_path: Path) -> None:
    a = demo.simulate(tmp_path / "a", 3, ["P01"], ["D0"], 2000)
    b = demo.simulate(tmp_path / "b", 3, ["P01"], ["D0"], 2000)
    assert a == b
    for f in (tmp_path / "a" / "cytometry").glob("*.fcs"):
        assert f.read_bytes() == (tmp_path / "b" / "cytometry" / f.name).read_bytes()
    c = demo.simulate(tmp_path / "c", 4, ["P01"], ["D0"], 2000)
    assert c[1] != a[1]


def _binomial_ok(pct: float, intended: float, n: int) -> bool:
    p = intended
    return abs(pct / 100 - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_truth_is_what_the_labels_realise(batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    out, _, truth = batch
    t = truth.set_index(["sample_id", "feature"])["value"]
    for sid, tube in (("P02-M1-SURF", "surface"), ("P01-D10-ICS-STIM", "stimulated")):
        labels = _labels(out, sid)
        realised = demo.realised_truth(tube, labels)
        feature, key = ("IFNG_CD4_stimulated", "IFNG_CD4") if tube == "stimulated" else ("Th1", "Th1")
        assert t[sid, feature] == pytest.approx(realised[key][0], rel=1e-12)
        assert t[sid, "clog_events"] == labels["disturbed"].sum()
        assert t[sid, "margin_events"] == labels["margin"].sum()
    # ICS headline = stimulated - unstimulated, floored at 0
    for sid in ("P01-D0-ICS-STIM", "P02-M1-ICS-STIM"):
        for f in ("IFNG_CD4", "IL4_CD4", "IL17A_CD4"):
            diff = t[sid, f"{f}_stimulated"] - t[sid, f"{f}_unstimulated"]
            assert t[sid, f] == pytest.approx(max(diff, 0.0))
        assert t[sid, "IFNG_IL4_ratio"] == pytest.approx(t[sid, "IFNG_CD4"] / t[sid, "IL4_CD4"])


def test_realised_fractions_match_intended_within_sampling_error(
        batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    out, _, truth = batch
    params = demo._patient_params(np.random.default_rng([11, demo.K]), ["P01", "P02"], ["D0", "D10", "M1"])
    t = truth.set_index(["sample_id", "feature"])["value"]
    for (p, v), prm in params.items():
        labels = _labels(out, f"{p}-{v}-ICS-STIM")
        cd4 = ((labels["kind"] == demo.KINDS.index("CD4T")) & ~labels["doublet"]
               & ~labels["disturbed"] & ~labels["margin"]).sum()
        assert _binomial_ok(t[f"{p}-{v}-ICS-STIM", "IFNG_CD4_stimulated"], prm.th1, cd4)
        assert _binomial_ok(t[f"{p}-{v}-ICS-STIM", "IL4_CD4_stimulated"], prm.th2, cd4)
        assert _binomial_ok(t[f"{p}-{v}-ICS-STIM", "IL17A_CD4_stimulated"], prm.th17, cd4)
    # P01 responds to the infusion: Th1 falls and Treg rises from D0 to M1
    assert t["P01-M1-SURF", "Th1"] < 0.7 * t["P01-D0-SURF", "Th1"]
    assert t["P01-M1-SURF", "Treg"] > 1.3 * t["P01-D0-SURF", "Treg"]
    assert t["P01-M1-ICS-STIM", "IFNG_CD4"] < 0.7 * t["P01-D0-ICS-STIM", "IFNG_CD4"]


def test_labelled_cells_are_where_the_labels_say(batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    """Positive cells are bright in their compensated channel, doublets have FSC-H ~ FSC-A / 2."""
    out, _, _ = batch
    events, channels = _compensated(out, "P01-D0-ICS-STIM")
    lab = _labels(out, "P01-D0-ICS-STIM")
    clean = ~lab["doublet"] & ~lab["disturbed"] & ~lab["margin"]
    cd4 = clean & (lab["kind"] == demo.KINDS.index("CD4T"))
    for marker, channel in (("IFNg", "FITC-A"), ("IL4", "PE-A"), ("IL17A", "APC-A")):
        x = events[:, channels.index(channel)]
        pos, neg = cd4 & lab[f"pos_{marker}"], cd4 & ~lab[f"pos_{marker}"]
        assert pos.sum() > 20
        cut = 600.0
        assert (x[pos] > cut).mean() > 0.97
        assert (x[neg] > cut).mean() < 0.005
    # compensated negatives spread below zero
    assert (events[neg, channels.index("FITC-A")] < 0).mean() > 0.1
    ratio = events[:, channels.index("FSC-H")] / events[:, channels.index("FSC-A")]
    singlet = clean & (lab["kind"] != 0)
    assert np.median(ratio[singlet]) == pytest.approx(0.88, abs=0.02)
    assert np.median(ratio[lab["doublet"] & ~lab["disturbed"]]) < 0.6
    dead = clean & (lab["kind"] == demo.KINDS.index("dead"))
    live = clean & (lab["kind"] == demo.KINDS.index("CD4T"))
    via = events[:, channels.index("BV510-A")]
    assert np.median(via[dead]) > 20 * max(np.median(via[live]), 1.0)


def test_margin_and_clog_events(batch: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    out, _, truth = batch
    clogged = truth[(truth["feature"] == "clog_events") & (truth["value"] > 0)]["sample_id"]
    assert len(clogged) >= 1
    sid = clogged.iloc[0]
    fcs = read_fcs(out / "cytometry" / f"{sid}.fcs")
    lab = _labels(out, sid)
    at_top = (fcs.events[:, :-1] >= 262143).any(axis=1)
    np.testing.assert_array_equal(at_top, lab["margin"])
    time_s = fcs.events[:, -1]
    assert np.all(np.diff(time_s) >= 0)
    dist = lab["disturbed"]
    assert 0.03 < dist.mean() < 0.1
    # the clog window: events bunch up (burst) and scatter drops
    fsc = fcs.events[:, 0]
    assert np.median(fsc[dist]) < 0.85 * np.median(fsc[~dist])


@pytest.mark.slow
def test_one_million_events_in_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    labels = demo.simulate_tube(tmp_path / "big.fcs", events=1_000_000, clog=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0
    fcs = read_fcs(tmp_path / "big.fcs")
    assert fcs.events.shape == (1_000_000, 17)
    assert labels["disturbed"].sum() > 10_000


def test_stains_and_channel_names_of_another_panel(tmp_path: Path) -> None:
    stains = {"PE-Cy7-A": "CD4", "BV421-A": "CD3", "FITC-A": "CD127"}
    names = {"PE-Cy7-A": "YG9-A", "FITC-A": "B2-A", "Time": "TIME"}
    labels = demo.simulate_tube(tmp_path / "alt.fcs", "surface", events=4_000, seed=3,
                                stains=stains, channel_names=names)
    f = read_fcs(tmp_path / "alt.fcs")
    assert f.markers[f.channels.index("YG9-A")] == "CD4" and "PE-Cy7-A" not in f.channels
    assert f.markers[f.channels.index("BV605-A")] is None  # the default CD4 channel is unstained here
    spill_channels, _ = parse_spillover(f.keywords["$SPILLOVER"])
    assert "YG9-A" in spill_channels and "B2-A" in spill_channels and "FITC-A" not in spill_channels
    # CD4 T cells are bright where the stains put CD4, and only there
    cd4t = labels["kind"] == demo.KINDS.index("CD4T")
    moved = f.events[:, f.channels.index("YG9-A")]
    default = f.events[:, f.channels.index("BV605-A")]
    assert np.median(moved[cd4t]) > 10 * np.median(moved[~cd4t & (labels["kind"] > 1)])
    assert np.median(default[cd4t]) < 500
    with pytest.raises(ValueError, match="lacks"):
        demo.simulate_tube(tmp_path / "bad.fcs", "surface", events=100, stains={"XYZ-A": "CD4"})
