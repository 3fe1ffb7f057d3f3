"""The gate engine: GatingML boundary rules, parent-only evaluation, equality with FlowKit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flowutils import gating as fu_gating

from immuno.cytometry.engine.event_pass import gate_events
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.engine.gates import (
    BooleanGate,
    EllipseGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from immuno.cytometry.engine.transforms import LinearTransform, LogicleTransform
from immuno.errors import UserError

CH = ["x", "y"]


def test_rectangle_bounds_follow_gatingml() -> None:
    ev = np.array([[0.0, 0], [1, 0], [2, 0], [np.nan, 0], [-5, 0], [1.999999, 9]])
    tree = GateTree([
        RectangleGate("r", None, ("x",), (1.0,), (2.0,)),
        RectangleGate("open_low", None, ("x",), (None,), (1.0,)),
        RectangleGate("out", None, ("x",), (1.0,), (2.0,), complement=True),
    ])
    m = tree.evaluate(ev, CH)
    # min inclusive, max exclusive; NaN is in no range
    assert m["r"].tolist() == [False, True, False, False, False, True]
    assert m["open_low"].tolist() == [True, False, False, False, True, False]
    assert m["out"].tolist() == [True, False, True, True, True, False]


def test_polygon_and_ellipse_match_flowutils() -> None:
    rng = np.random.default_rng(4)
    verts = ((0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (2.0, 1.0), (0.0, 4.0), (3.0, 2.0))  # self-crossing
    pts = np.concatenate([rng.uniform(-1, 5, (50_000, 2)), np.array(verts),
                          rng.integers(0, 5, (500, 2)).astype(float)])
    cov = ((2.0, 0.5), (0.5, 1.0))
    tree = GateTree([PolygonGate("p", None, ("x", "y"), verts),
                     EllipseGate("e", None, ("x", "y"), (1.0, 2.0), cov, 3.0)])
    m = tree.evaluate(pts, CH)
    ref_p = fu_gating.points_in_polygon(np.array(verts), pts)
    ref_e = fu_gating.points_in_ellipsoid(np.array(cov), np.array([1.0, 2.0]), 3.0, pts)
    assert (m["p"] == ref_p).all() and 10_000 < ref_p.sum() < 40_000
    assert (m["e"] == ref_e).all() and ref_e.sum() > 5_000


def test_quadrants_bins_and_parent() -> None:
    ev = np.array([[0.1, 0.1], [0.6, 0.1], [0.1, 0.6], [0.6, 0.6], [0.5, 0.5], [0.9, 0.9]])
    parent = RectangleGate("all_but_last", None, ("x",), (None,), (0.8,))
    quad = QuadrantGate("q", "all_but_last", ("x", "y"), {"x": (0.5,), "y": (0.5,)},
                        {"NN": {"x": 0, "y": 0}, "PN": {"x": 1, "y": 0}, "NP": {"x": 0, "y": 1},
                         "PP": {"x": 1, "y": 1}, "Xpos": {"x": 1}})
    m = GateTree([quad, parent]).evaluate(ev, CH)
    assert "q" not in m
    assert m["NN"].tolist() == [True, False, False, False, False, False]
    assert m["PN"].tolist() == [False, True, False, False, False, False]
    assert m["NP"].tolist() == [False, False, True, False, False, False]
    # the divider value itself falls in the upper bin; the last event is outside the parent
    assert m["PP"].tolist() == [False, False, False, True, True, False]
    assert m["Xpos"].tolist() == [False, True, False, True, True, False]


def test_boolean_gates_use_absolute_memberships() -> None:
    rng = np.random.default_rng(1)
    ev = rng.uniform(0, 1, (10_000, 2))
    gates = [
        RectangleGate("A", None, ("x",), (0.2,), (0.8,)),
        RectangleGate("B", None, ("y",), (0.5,), (1.1,)),
        RectangleGate("C", "A", ("y",), (None,), (0.3,)),
        BooleanGate("A_and_notB", None, "and", (("A", False), ("B", True))),
        BooleanGate("C_or_B", "A", "or", (("C", False), ("B", False))),
        BooleanGate("notA", None, "not", (("A", False),)),
    ]
    m = GateTree(gates).evaluate(ev, CH)
    x, y = ev[:, 0], ev[:, 1]
    a = (x >= 0.2) & (x < 0.8)
    b = (y >= 0.5) & (y < 1.1)
    c = a & (y < 0.3)
    assert (m["A_and_notB"] == (a & ~b)).all()
    assert (m["C_or_B"] == ((c | b) & a)).all()  # restricted to its own parent
    assert (m["notA"] == ~a).all()
    assert (m["C"] == c).all() and not (m["C"] & ~m["A"]).any()


def test_root_mask_and_counts() -> None:
    ev = np.array([[0.5, 0.0], [0.5, 0.0], [0.5, 0.0]], dtype=np.float32)
    tree = GateTree([RectangleGate("r", None, ("x",), (0.0,), (1.0,)),
                     BooleanGate("n", None, "not", (("r", False),))])
    root = np.array([True, False, True])
    assert tree.counts(ev, CH, root) == {"r": 2, "n": 0}
    assert tree.counts(ev, CH) == {"r": 3, "n": 0}


@pytest.mark.parametrize(
    "gates,fragment",
    [
        ([RectangleGate("a", None, ("x",), (0.0,), (1.0,))] * 2, "used twice"),
        ([RectangleGate("a", "nope", ("x",), (0.0,), (1.0,))], "unknown parent"),
        ([RectangleGate("a", "b", ("x",), (0.0,), (1.0,)),
          RectangleGate("b", "a", ("x",), (0.0,), (1.0,))], "cycle"),
        ([QuadrantGate("q", None, ("x",), {"x": (0.5,)}, {"lo": {"x": 0}}),
          RectangleGate("a", "q", ("x",), (0.0,), (1.0,))], "quadrant gate"),
        ([BooleanGate("b", None, "and", (("a", False), ("zz", False))),
          RectangleGate("a", None, ("x",), (0.0,), (1.0,))], "unknown operand"),
    ],
)
def test_tree_validation(gates: list, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        GateTree(gates)


def test_missing_dimension_is_a_user_error() -> None:
    tree = GateTree([RectangleGate("a", None, ("CD3",), (0.0,), (1.0,))])
    with pytest.raises(UserError, match="CD3"):
        tree.evaluate(np.zeros((3, 2)), CH)


# ---------------------------------------------------------------- demo gates vs FlowKit


def demo_like_gates() -> list:
    """The ICS panel's hierarchy as it is placed on a sample (static coordinates)."""
    from immuno.demo.cytometry_gates import placed_ics_gates

    return placed_ics_gates()


@pytest.fixture(scope="module")
def demo_tube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = pytest.importorskip("immuno.demo.cytometry")
    path = tmp_path_factory.mktemp("demo") / "P01-D0-ICS-STIM.fcs"
    demo.simulate_tube(path, tube="stimulated", events=40_000, seed=3)
    return path


def test_demo_gates_equal_flowkit(demo_tube: Path, tmp_path: Path) -> None:
    import flowkit as fk

    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.gatingml import write_gatingml
    from immuno.cytometry.io.spillover import spillover_from_keywords

    fcs = read_fcs(demo_tube)
    spill = spillover_from_keywords(fcs)
    assert spill is not None
    transforms = {c: LogicleTransform(262144, 0.5, 4.5, 0) for c in spill.channels}
    transforms.update({c: LinearTransform(262144, 0) for c in ("FSC-A", "FSC-H", "SSC-A")})
    tree = GateTree(demo_like_gates())
    # small chunks so that the chunk seams are exercised too
    ours = gate_events(fcs.events, fcs.channels, tree, transforms, spill, chunk_size=7000)
    counts = ours.counts()

    gml = write_gatingml(tree.gates.values(), transforms, spill, tmp_path / "gates.xml")
    strategy = fk.parse_gating_xml(str(gml))
    result = strategy.gate_sample(fk.Sample(str(demo_tube)))
    report = result.report.set_index("gate_name")["count"].to_dict()
    assert set(report) == set(counts)
    assert counts == {k: int(v) for k, v in report.items()}
    # the hierarchy is not trivial: every population holds events, most of them many
    assert counts["Th1"] > 100 and counts["CD8_bright"] > 10 and counts["DP"] >= 1
    # float32 transformed events are kept for storage, compensated and transformed
    assert ours.transformed is not None and ours.transformed.dtype == np.float32
    ref = fk.Sample(str(demo_tube))
    ref.apply_compensation(fk.Matrix(spill.matrix, spill.channels, spill.channels))
    ref.apply_transform({c: fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
                         for c in spill.channels})
    j = fcs.channels.index("FITC-A")
    np.testing.assert_allclose(ours.transformed[:, j], ref.get_events("xform")[:, j],
                               rtol=0, atol=1e-6)


def test_nan_leaves_only_unconstrained_quadrants() -> None:
    ev = np.array([[np.nan, 0.9], [0.9, 0.9]])
    quad = QuadrantGate("q", None, ("x", "y"), {"x": (0.5,), "y": (0.5,)},
                        {"Ypos": {"y": 1}, "XposYpos": {"x": 1, "y": 1}, "Xneg": {"x": 0}})
    m = GateTree([quad]).evaluate(ev, CH)
    assert m["Ypos"].tolist() == [True, True]
    assert m["XposYpos"].tolist() == [False, True]
    assert m["Xneg"].tolist() == [False, False]


def test_gate_events_options_and_errors() -> None:
    rng = np.random.default_rng(2)
    raw = rng.normal(1000, 300, (5000, 3)).astype(np.float32)
    channels = ["A", "B", "C"]

    class Spill:
        channels = ["A", "B"]
        matrix = np.array([[1.0, 0.1], [0.05, 1.0]])

    tree = GateTree([RectangleGate("hiA", None, ("A",), (1000.0,), (None,)),
                     RectangleGate("hiB", "hiA", ("B",), (900.0,), (None,))])
    full = gate_events(raw, channels, tree, {}, Spill(), chunk_size=999)
    lean = gate_events(raw, channels, tree, {}, Spill(), keep_transformed=False)
    assert lean.transformed is None
    assert full.counts() == lean.counts()
    # compensation is observed x inverse(S) on the spillover's channels only
    comp = raw.astype(np.float64)
    comp[:, :2] = comp[:, :2] @ np.linalg.inv(Spill.matrix)
    assert full.counts()["hiA"] == int((comp[:, 0] >= 1000).sum())
    assert full.counts()["hiB"] == int(((comp[:, 0] >= 1000) & (comp[:, 1] >= 900)).sum())
    np.testing.assert_allclose(full.transformed, comp.astype(np.float32), rtol=1e-6)
    root = np.zeros(5000, dtype=bool)
    root[:100] = True
    rooted = gate_events(raw, channels, tree, {}, Spill(), root_mask=root)
    assert not rooted.masks["hiA"][100:].any()

    class Bad:
        channels = ["A", "Z"]
        matrix = np.eye(2)

    with pytest.raises(UserError, match="Z"):
        gate_events(raw, channels, tree, {}, Bad(), where="P01-D0.fcs")

    class Singular:
        channels = ["A", "B"]
        matrix = np.ones((2, 2))

    with pytest.raises(UserError, match="singular"):
        gate_events(raw, channels, tree, {}, Singular())


def test_one_gate_on_its_parent_equals_the_tree() -> None:
    from immuno.cytometry.engine.gate_tree import gate_membership

    rng = np.random.default_rng(9)
    ev = rng.uniform(0, 1, (20_000, 2)).astype(np.float32)
    parent = RectangleGate("left", None, ("x",), (None,), (0.6,))
    child = PolygonGate("tri", "left", ("x", "y"), ((0.0, 0.0), (0.8, 0.0), (0.0, 0.8)))
    quad = QuadrantGate("q", "left", ("x", "y"), {"x": (0.3,), "y": (0.5,)},
                        {"lo": {"x": 0, "y": 0}, "hi": {"x": 1, "y": 1}})
    root = rng.random(20_000) < 0.9
    tree = GateTree([parent, child, quad]).evaluate(ev, CH, root_mask=root)
    left = gate_membership(parent, ev, CH, root)["left"]
    assert np.array_equal(left, tree["left"])
    assert np.array_equal(gate_membership(child, ev, CH, left)["tri"], tree["tri"])
    quads = gate_membership(quad, ev, CH, left)
    assert np.array_equal(quads["lo"], tree["lo"]) and np.array_equal(quads["hi"], tree["hi"])
    assert 3_000 < tree["tri"].sum() < tree["left"].sum() < root.sum()
    with pytest.raises(TypeError):
        gate_membership(BooleanGate("b", None, "not", (("left", False),)), ev, CH, root)


def test_compensated_columns_equal_the_linear_solve() -> None:
    from immuno.cytometry.engine.compensation import Spillover, compensate_solve
    from immuno.cytometry.engine.event_pass import compensate_columns

    rng = np.random.default_rng(10)
    channels = ["FSC-A", "A", "B", "C", "Time"]
    raw = rng.uniform(-100, 50_000, (70_000, 5)).astype(np.float32)  # more than one chunk
    matrix = np.array([[1.0, 0.2, 0.05], [0.1, 1.0, 0.3], [0.0, 0.15, 1.0]])
    out = compensate_columns(raw, channels, Spillover(["A", "B", "C"], matrix), ["C", "FSC-A", "A"])
    ref = compensate_solve(raw[:, 1:4], matrix)
    assert out.dtype == np.float32 and out.shape == (70_000, 3)
    np.testing.assert_allclose(out[:, 0], ref[:, 2], rtol=1e-6, atol=1e-2)
    np.testing.assert_allclose(out[:, 2], ref[:, 0], rtol=1e-6, atol=1e-2)
    assert np.array_equal(out[:, 1], raw[:, 0])  # not in the matrix: unchanged
    with pytest.raises(UserError, match="singular"):
        compensate_columns(raw, channels, Spillover(["A", "B"], np.ones((2, 2))), ["A"])
    with pytest.raises(UserError, match="Z"):
        compensate_columns(raw, channels, Spillover(["A", "Z"], np.eye(2)), ["A"])


def test_one_pass_compensates_and_transforms_as_float64_then_rounds() -> None:
    """Each stored value is the float32 rounding of the float64 value FlowKit computes
    (compensation by the same sums as ``compensate``, then the transform), whatever the
    chunking and memory order; the compensated copy equals ``compensate`` exactly."""
    from immuno.cytometry.engine.compensation import Spillover, compensate
    from immuno.cytometry.engine.event_pass import compensate_transform

    rng = np.random.default_rng(11)
    channels = ["FSC-A", "A", "B", "C", "Time"]
    raw = rng.uniform(-300, 100_000, (40_000, 5)).astype(np.float32)
    spill = Spillover(["A", "B", "C"], np.array([[1.0, 0.2, 0.05], [0.1, 1.0, 0.3], [0.0, 0.15, 1.0]]))
    logicle, linear = LogicleTransform(262144, 0.5, 4.5, 0), LinearTransform(262144, 0)
    columns = ["C", "FSC-A", "A", "Time"]
    comp = np.empty((40_000, 4), dtype=np.float32)
    out = compensate_transform(raw, channels, spill, columns, [logicle, linear, logicle, None],
                               compensated=comp, chunk_size=7_000)
    assert out.flags.f_contiguous and out.dtype == np.float32
    exact = compensate(raw.astype(np.float64), channels, spill)
    np.testing.assert_array_equal(comp, compensate(raw, channels, spill)[:, [3, 0, 1, 4]])
    np.testing.assert_array_equal(out[:, 0], logicle.apply(exact[:, 3]).astype(np.float32))
    np.testing.assert_array_equal(out[:, 1], (raw[:, 0] / 262144).astype(np.float32))
    np.testing.assert_array_equal(out[:, 2], logicle.apply(exact[:, 1]).astype(np.float32))
    np.testing.assert_array_equal(out[:, 3], raw[:, 4])
    same = compensate_transform(raw, channels, spill, columns, [logicle, linear, logicle, None],
                                out=np.empty((40_000, 4), dtype=np.float32), chunk_size=65_536)
    np.testing.assert_array_equal(same, out)


def test_exported_limits_split_float64_values_as_ours_split_float32() -> None:
    """A range gate we test on float32 events, exported with float32_limit, holds exactly
    the same events when another program tests the float64 values they round from."""
    from immuno.cytometry.engine.gates import float32_limit
    from immuno.cytometry.pipeline.outputs import exported_gate

    rng = np.random.default_rng(12)
    for cut in [0.0, 0.45, -0.25, 1 / 3, *rng.uniform(0.2, 0.6, 200)]:
        limit = float32_limit(cut)
        assert abs(limit - cut) <= abs(np.spacing(np.float32(cut)))
        below, at = np.nextafter(np.float32(cut), np.float32(-1)), np.float32(cut)
        # float64 values all around the float32 neighbours of the cut, and their roundings
        probe = np.concatenate([np.linspace(float(below) - 1e-9, float(at) + 1e-9, 2001),
                                [limit, np.nextafter(limit, -1), np.nextafter(limit, 2), cut]])
        # (the engine compares a float32 value with the float64 cut, in float64)
        assert np.array_equal(probe >= limit, probe.astype(np.float32).astype(np.float64) >= cut)
    values64 = rng.uniform(0.3, 0.5, (200_000, 2))
    # and events within a float32 step of each cut, where rounding decides the side
    near = np.concatenate([c + rng.uniform(-6e-8, 6e-8, 2_000) for c in (0.4, 0.45, 0.41, 0.39)])
    values64 = np.vstack([values64, np.column_stack([near, near])])
    values32 = values64.astype(np.float32)
    gates = [RectangleGate("r", None, ("x",), (0.4,), (0.45,)),
             QuadrantGate("q", None, ("x", "y"), {"x": (0.41,), "y": (0.39,)},
                          {"pp": {"x": 1, "y": 1}, "mm": {"x": 0, "y": 0}})]
    ours = GateTree(gates).evaluate(values32, CH)
    theirs = GateTree([exported_gate(g) for g in gates]).evaluate(values64, CH)
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    # without the exact limits some events near a cut would change sides
    plain = GateTree(gates).evaluate(values64, CH)
    assert any(not np.array_equal(ours[k], plain[k]) for k in ours)
