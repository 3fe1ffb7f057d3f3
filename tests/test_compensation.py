"""Compensation: keyword, matrix file and single-stain matrices; equality with FlowKit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from immuno.cytometry.engine.compensation import Spillover, compensate, spillover_from_single_stains
from immuno.cytometry.io.fcs import format_spillover, read_fcs, write_fcs
from immuno.cytometry.io.spillover import (
    read_spillover_file,
    spillover_from_control_files,
    spillover_from_keywords,
    write_spillover_file,
)
from immuno.demo import cytometry as demo
from immuno.errors import UserError


@pytest.fixture(scope="module")
def controls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("comp")
    demo.simulate(out, 5, ["P01"], ["D0"], 20_000)
    return out / "cytometry"


def test_keyword_matrix_is_the_simulated_one(controls: Path) -> None:
    fcs = read_fcs(controls / "P01-D0-SURF.fcs")
    spill = spillover_from_keywords(fcs)
    assert spill is not None and "P01-D0-SURF.fcs" in spill.source
    channels, truth = demo.true_spillover()
    assert spill.channels == channels
    np.testing.assert_array_equal(spill.matrix, truth)


def test_compensation_equals_flowkit(controls: Path) -> None:
    import flowkit

    path = controls / "P01-D0-ICS-STIM.fcs"
    sample = flowkit.Sample(str(path))
    sample.apply_compensation(sample.metadata["spillover"])
    theirs = sample.get_events(source="comp")
    fcs = read_fcs(path, dtype=np.float64)
    ours = compensate(fcs.events, fcs.channels, spillover_from_keywords(fcs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)
    # float32 storage keeps float32 precision of the same numbers
    f32 = read_fcs(path)
    np.testing.assert_allclose(compensate(f32.events, f32.channels, spillover_from_keywords(f32)),
                               theirs, rtol=2e-6, atol=2e-3)


def test_partial_matrix_leaves_other_channels() -> None:
    rng = np.random.default_rng(1)
    true = rng.lognormal(6, 1, (1000, 4))
    s = np.array([[1.0, 0.3], [0.1, 1.0]])
    observed = true.copy()
    observed[:, [1, 3]] = true[:, [1, 3]] @ s
    spill = Spillover(["B", "D"], s)
    out = compensate(observed, ["A", "B", "C", "D"], spill)
    np.testing.assert_allclose(out, true, rtol=1e-12)
    np.testing.assert_array_equal(out[:, [0, 2]], observed[:, [0, 2]])
    assert not np.shares_memory(out, observed)
    same = compensate(observed, ["A", "B", "C", "D"], spill, inplace=True)
    assert same is observed
    np.testing.assert_allclose(observed, true, rtol=1e-12)


def test_unknown_channel_and_singular_matrix() -> None:
    events = np.ones((10, 2))
    with pytest.raises(UserError) as err:
        compensate(events, ["A", "B"], Spillover(["A", "X"], np.eye(2), source="file m.csv"), where="s.fcs")
    assert err.value.problems[0].where == "s.fcs" and "X" in err.value.problems[0].what
    with pytest.raises(UserError, match="singular"):
        compensate(events, ["A", "B"], Spillover(["A", "B"], np.array([[1.0, 1.0], [1.0, 1.0]])))


def test_keyword_naming_unknown_channel(tmp_path: Path) -> None:
    path = write_fcs(tmp_path / "k.fcs", np.ones((5, 2), np.float32), ["A", "B"], [None, None],
                     keywords={"$SPILL": format_spillover(["A", "Q"], np.eye(2))})
    with pytest.raises(UserError) as err:
        spillover_from_keywords(read_fcs(path))
    assert "k.fcs" in err.value.problems[0].where and "Q" in err.value.problems[0].what
    plain = write_fcs(tmp_path / "p.fcs", np.ones((5, 2), np.float32), ["A", "B"], [None, None])
    assert spillover_from_keywords(read_fcs(plain)) is None


def test_matrix_file_roundtrip_and_errors(tmp_path: Path) -> None:
    channels, s = demo.true_spillover()
    spill = Spillover(channels, s)
    path = write_spillover_file(spill, tmp_path / "m.csv")
    back = read_spillover_file(path)
    assert back.channels == channels
    np.testing.assert_array_equal(back.matrix, s)
    # rows in another order, semicolons, trailing delimiters: same matrix
    (tmp_path / "r.csv").write_text(";A;B;\nB;0.1;1;\nA;1;0.25;\n")
    r = read_spillover_file(tmp_path / "r.csv")
    assert r.channels == ["A", "B"]
    np.testing.assert_array_equal(r.matrix, [[1, 0.25], [0.1, 1]])
    (tmp_path / "bad.csv").write_text(",A,B\nA,1,x\nC,0,1\n")
    with pytest.raises(UserError) as err:
        read_spillover_file(tmp_path / "bad.csv")
    assert any("line 2" in p.where for p in err.value.problems)
    (tmp_path / "names.csv").write_text(",A,B\nA,1,0\nC,0,1\n")
    with pytest.raises(UserError, match="header's"):
        read_spillover_file(tmp_path / "names.csv")


def test_single_stains_recover_the_simulated_matrix(controls: Path) -> None:
    spill = spillover_from_control_files(sorted(controls.glob("SS-*.fcs")), controls / "UNSTAINED.fcs",
                                         demo.FLUORS)
    channels, truth = demo.true_spillover()
    assert spill.channels == channels
    assert np.abs(spill.matrix - truth).max() <= 0.005
    assert spill.source == "single-stain controls"
    # a matrix written with the batch results reads back identically
    np.testing.assert_array_equal(read_spillover_file(write_spillover_file(spill, controls.parent / "s.csv")).matrix,
                                  spill.matrix)


def test_single_stains_robust_to_outliers_and_missing_negatives(controls: Path) -> None:
    channels, truth = demo.true_spillover()
    loaded = {c: read_fcs(controls / f"SS-{c[:-2]}.fcs", dtype=np.float64) for c in channels}
    blank = read_fcs(controls / "UNSTAINED.fcs", dtype=np.float64)
    # 1 % of FITC-control events hit by a spike in PE-A: medians do not move
    fitc = loaded["FITC-A"]
    ev = fitc.events.copy()
    hit = np.random.default_rng(0).random(len(ev)) < 0.01
    ev[hit, fitc.channel_index("PE-A")] += 100_000
    loaded["FITC-A"] = dataclasses.replace(fitc, events=ev)
    # the APC control holds only positive beads: the unstained tube is the negative
    apc = loaded["APC-A"]
    x = apc.events[:, apc.channel_index("APC-A")]
    loaded["APC-A"] = dataclasses.replace(apc, events=apc.events[x > 5000])
    spill = spillover_from_single_stains(loaded, blank, scatter_gate={"fsc": [50_000, 90_000]})
    assert np.abs(spill.matrix - truth).max() <= 0.005
    with pytest.raises(UserError) as err:
        spillover_from_single_stains({"APC-A": loaded["APC-A"]}, None)
    assert "SS-APC.fcs" in err.value.problems[0].where and "unstained" in err.value.problems[0].what


def test_duplicate_or_missing_single_stain(controls: Path) -> None:
    files = sorted(controls.glob("SS-*.fcs"))
    fitc = controls / "SS-FITC.fcs"
    with pytest.raises(UserError) as err:
        spillover_from_control_files([*files, fitc], None, demo.FLUORS)
    assert "FITC-A" in err.value.problems[0].what
    with pytest.raises(UserError, match="no control is brightest in FITC-A"):
        spillover_from_control_files([f for f in files if f != fitc], None, demo.FLUORS)
    # controls for detectors the panels do not read are recognised and left out
    some = ["BV421-A", "BV510-A", "FITC-A", "PE-A"]
    part = spillover_from_control_files(files, controls / "UNSTAINED.fcs", some)
    _, truth = demo.true_spillover()
    idx = [demo.FLUORS.index(c) for c in some]
    assert part.channels == some
    assert np.abs(part.matrix - truth[np.ix_(idx, idx)]).max() <= 0.005


@pytest.mark.real
def test_partial_keyword_of_a_real_file() -> None:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "chemokines" / "legendplex" / "K2-C07-A7.fcs"
    if not path.exists():
        pytest.skip("real test files absent")
    fcs = read_fcs(path)
    spill = spillover_from_keywords(fcs)
    assert spill is not None
    assert spill.channels == ["FL1-H", "FL2-H", "FL6-H", "FL1-A", "FL2-A", "FL6-A"]  # 6 of 12 channels
    np.testing.assert_array_equal(spill.matrix, np.eye(6))
    np.testing.assert_array_equal(compensate(fcs.events, fcs.channels, spill), fcs.events)
