"""Acquisition QC finds the simulated clogs and margin events, and little else."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.contract.panels import load_panel
from immuno.contract.qc import flags_table, metrics_table
from immuno.cytometry.analysis.acquisition_qc import (
    _gate_limit,
    acquisition_qc,
    keep_gates,
    qc_rows,
    qc_settings,
)
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.io.fcs import read_fcs
from immuno.demo import cytometry as demo

PANELS = Path(__file__).resolve().parents[1] / "panels"


@pytest.fixture(scope="module")
def tubes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("qc_demo")
    rows, _ = demo.simulate(out, 21, ["P01", "P02", "P03"], ["D0", "D10", "M1"], 20_000)
    return out / "cytometry", pd.DataFrame(rows)


def _run(path: Path) -> tuple[object, dict[str, np.ndarray]]:
    panel = load_panel(PANELS / ("cytometry_surface_demo.yaml" if "SURF" in path.stem else "cytometry_ics_demo.yaml"))
    fcs = read_fcs(path)
    settings = qc_settings(panel["qc"], [c["channel"] for c in panel["channels"]])
    with np.load(path.parent / "truth_events" / f"{path.stem}.npz") as z:
        labels = {k: z[k] for k in z.files}
    return acquisition_qc(fcs.events, fcs.channels, fcs.ranges, **settings), labels


def test_clogs_flagged_and_stable_flow_kept(tubes: tuple[Path, pd.DataFrame]) -> None:
    folder, rows = tubes
    n_clogged = 0
    disturbed_total = flagged_disturbed = other_total = flagged_other = 0
    for sid in rows.loc[rows["patient_id"] != "", "sample_id"]:
        result, labels = _run(folder / f"{sid}.fcs")
        flow = result.flags["qc_flow"].to_numpy()
        dist = labels["disturbed"]
        assert len(flow) == len(dist)  # flagged, never deleted
        if dist.any():
            n_clogged += 1
            assert flow[dist].mean() >= 0.90, sid
        assert flow[~dist].mean() <= 0.01, sid
        disturbed_total += dist.sum()
        flagged_disturbed += flow[dist].sum()
        other_total += (~dist).sum()
        flagged_other += flow[~dist].sum()
    assert n_clogged >= 3
    assert flagged_disturbed / disturbed_total >= 0.95
    assert flagged_other / other_total <= 0.005


def test_margin_events_equal_truth(tubes: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = tubes
    result, labels = _run(folder / "P01-D0-SURF.fcs")
    assert labels["margin"].sum() > 10
    np.testing.assert_array_equal(result.flags["qc_margin"].to_numpy(), labels["margin"])
    passed = result.flags["qc_pass"].to_numpy()
    assert not passed[labels["margin"]].any()


def test_negative_scatter_and_no_time_channel() -> None:
    rng = np.random.default_rng(2)
    events = np.column_stack([rng.normal(50_000, 5000, 1000), rng.normal(20_000, 3000, 1000)])
    events[[3, 10], 0] = -5.0
    events[7, 1] = -1.0
    result = acquisition_qc(events, ["FSC-A", "SSC-A"], [262144, 262144], time_channel="Time")
    assert list(np.flatnonzero(result.flags["qc_negative_scatter"])) == [3, 7, 10]
    assert not result.flags["qc_flow"].any() and result.params["time_channel"] is None
    assert result.flags["qc_pass"].sum() == 997
    off = acquisition_qc(events, ["FSC-A", "SSC-A"], [262144, 262144], negative_scatter=False)
    assert off.flags["qc_pass"].all()


def test_two_population_channel_is_not_mistaken_for_drift() -> None:
    """Half the cells bright, half dim, in random order: no bin stands out."""
    rng = np.random.default_rng(4)
    n = 40_000
    bright = rng.random(n) < 0.5
    marker = np.where(bright, rng.lognormal(np.log(5000), 0.3, n), rng.normal(50, 40, n))
    fsc = rng.normal(60_000, 6000, n)
    t = np.sort(rng.uniform(0, 100, n))
    events = np.column_stack([fsc, marker, t])
    result = acquisition_qc(events, ["FSC-A", "CD4-A", "Time"], [262144, 262144, 0])
    assert result.flags["qc_flow"].mean() < 0.005
    # the same run with all light dimmed by 40 % for 5 seconds (a partial clog, steady rate)
    drift = (t > 40) & (t < 45)
    events[drift, :2] *= 0.6
    caught = acquisition_qc(events, ["FSC-A", "CD4-A", "Time"], [262144, 262144, 0])
    assert caught.flags["qc_flow"].to_numpy()[drift].mean() > 0.9
    assert caught.flags["qc_flow"].to_numpy()[~drift].mean() < 0.01


def test_keep_gates_on_raw_events_are_the_keep_mask(tubes: tuple[Path, pd.DataFrame]) -> None:
    folder, rows = tubes
    n_clogged = 0
    for sid in rows.loc[rows["patient_id"] != "", "sample_id"]:
        result, labels = _run(folder / f"{sid}.fcs")
        fcs = read_fcs(folder / f"{sid}.fcs")
        gates, root = keep_gates(result.params)
        assert root is not None
        kept = GateTree(gates).evaluate(fcs.events, fcs.channels)[root]
        assert np.array_equal(kept, result.flags["qc_pass"].to_numpy()), sid
        n_clogged += bool(labels["disturbed"].any())
        if labels["disturbed"].any():
            assert any(g.gate_id.startswith("acq_unstable_flow") for g in gates), sid
    assert n_clogged >= 3


def test_time_limit_splits_float64_times_as_their_float32_rounding() -> None:
    # float64 Times (stored x $TIMESTEP, as other software computes them) against the
    # limit drawn from their float32 rounding: the same events fall on each side
    rng = np.random.default_rng(5)
    t64 = np.sort(rng.uniform(0, 3000, 200_000))
    t64 = np.concatenate([t64, np.nextafter(t64[:1000], np.inf)])  # near-ties
    t32 = t64.astype(np.float32)
    for v in t32[rng.integers(0, t32.size, 300)]:
        limit = _gate_limit(v)
        assert np.array_equal(t64 >= limit, t32 >= v)
        assert np.array_equal(t32 >= limit, t32 >= v)


def test_qc_rows_summarise_the_sample(tubes: tuple[Path, pd.DataFrame]) -> None:
    folder, rows = tubes
    truth_clog = {}
    for sid in rows.loc[rows["tube"].isin(["stimulated", "stained"]), "sample_id"]:
        with np.load(folder / "truth_events" / f"{sid}.npz") as z:
            truth_clog[sid] = bool(z["disturbed"].any())
    clogged = next(s for s, c in truth_clog.items() if c)
    clean = next(s for s, c in truth_clog.items() if not c)
    for sid, expect_flag in ((clogged, True), (clean, False)):
        result, labels = _run(folder / f"{sid}.fcs")
        metrics, flags = qc_rows(result, "B1", sid, "cytometry_ics_demo")
        m = metrics_table(metrics).set_index("check")
        assert m.loc["acquisition_events", "value"] == 20_000
        assert m.loc["acquisition_kept", "value"] == pytest.approx(result.flags["qc_pass"].mean())
        assert bool(m.loc["acquisition_flow", "passed"])
        f = flags_table(flags)
        assert (f["flag"] == "unstable_flow").any() == expect_flag
        if expect_flag:
            assert f.loc[0, "severity"] == "warning" and "excluded from gating" in f.loc[0, "reason"]


def test_deterministic(tubes: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = tubes
    a, _ = _run(folder / "P01-D0-ICS-STIM.fcs")
    b, _ = _run(folder / "P01-D0-ICS-STIM.fcs")
    pd.testing.assert_frame_equal(a.flags, b.flags)


@pytest.mark.slow
def test_one_million_events(tmp_path: Path) -> None:
    labels = demo.simulate_tube(tmp_path / "big.fcs", events=1_000_000, clog=True, seed=5)
    fcs = read_fcs(tmp_path / "big.fcs")
    start = time.perf_counter()
    result = acquisition_qc(fcs.events, fcs.channels, fcs.ranges)
    elapsed = time.perf_counter() - start
    flow = result.flags["qc_flow"].to_numpy()
    assert flow[labels["disturbed"]].mean() >= 0.9
    assert flow[~labels["disturbed"]].mean() <= 0.01
    assert elapsed < 2.0


@pytest.mark.real
def test_margin_on_log_amplified_real_file() -> None:
    """data1.fcs stores 10-bit log values; saturated events decode to 10**(4 * 1023/1024)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "cytometry" / "flowkit_gate_ref" / "data1.fcs"
    if not path.exists():
        pytest.skip("real test files absent")
    decoded = read_fcs(path)
    stored = read_fcs(path, preprocess=False)
    assert decoded.top_values()[2] == pytest.approx(10 ** (4 * 1023 / 1024))
    result = acquisition_qc(decoded.events, decoded.channels, decoded.top_values() + 1)
    signal = [j for j, c in enumerate(stored.channels) if c != "Time"]
    expected = (stored.events[:, signal] >= stored.ranges[signal] - 1).any(axis=1)
    assert expected.sum() > 0
    np.testing.assert_array_equal(result.flags["qc_margin"].to_numpy(), expected)
