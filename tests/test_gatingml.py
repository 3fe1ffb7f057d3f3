"""GatingML 2.0: the FlowKit compliance suite, and exports FlowKit reproduces exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from immuno.cytometry.engine.event_pass import gate_events
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.engine.gates import (
    BooleanGate,
    EllipseGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from immuno.cytometry.engine.transforms import ArcsinhCofactor, AsinhTransform, LogicleTransform
from immuno.cytometry.io.gatingml import INSIDE_SUFFIX, read_gatingml, write_gatingml
from immuno.errors import UserError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
GATE_REF = REAL / "cytometry" / "flowkit_gate_ref"
# gates whose truth file is named differently from the gate
TRUTH_NAME = {"ParRectangle1": "ParQuadRect"}
# gates the suite ships without an expected membership
NO_TRUTH = {"myEllipse2"}


@pytest.mark.real
def test_compliance_suite_reproduced_exactly() -> None:
    if not GATE_REF.is_dir():
        pytest.skip(f"real test files not present at {GATE_REF}")
    from immuno.cytometry.io.fcs import read_fcs

    # float64 + preprocessing ($PnE log decoding, $PnG gain) is how FlowKit reads data1.fcs
    fcs = read_fcs(GATE_REF / "data1.fcs", dtype=np.float64)
    compared = 0
    files = sorted((GATE_REF / "gml").glob("*.xml"))
    for path in files:
        if path.name == "gml_range_gate_attr_testing.xml":
            continue  # malformed on purpose, see the next test
        memberships = read_gatingml(path).evaluate(fcs.events, fcs.channels, fcs.markers)
        assert memberships, path.name
        for gate_id, mask in memberships.items():
            if gate_id in NO_TRUTH:
                continue
            truth_file = GATE_REF / "truth" / f"Results_{TRUTH_NAME.get(gate_id, gate_id)}.txt"
            truth = np.loadtxt(truth_file).astype(bool)
            mismatched = int((truth != mask).sum())
            assert mismatched == 0, f"{path.name} gate {gate_id}: {mismatched} events differ"
            compared += 1
    # 46 readable files, most with one gate, gml_all_gates with every one of them
    assert len(files) == 47 and compared >= 130


@pytest.mark.real
def test_malformed_document_is_a_user_error() -> None:
    bad = GATE_REF / "gml" / "gml_range_gate_attr_testing.xml"
    if not bad.is_file():
        pytest.skip(f"real test files not present at {GATE_REF}")
    with pytest.raises(UserError, match="gml_range_gate_attr_testing.xml"):
        read_gatingml(bad)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_gatingml(tmp_path / "nope.xml")


def placed_gates() -> list:
    """One gate of every kind, with a quadrant as parent and a boolean on a quadrant."""
    return [
        RectangleGate("cells", None, ("FSC-A", "SSC-A"), (0.05, 0.005), (0.9, None)),
        PolygonGate("lymphocytes", "cells", ("FSC-A", "SSC-A"),
                    ((0.12, 0.01), (0.40, 0.01), (0.42, 0.14), (0.12, 0.14))),
        RectangleGate("not_dead", "lymphocytes", ("BV510-A",), (0.45,), (None,), complement=True),
        QuadrantGate("T", "not_dead", ("BUV395-A", "BV605-A"),
                     {"BUV395-A": (0.42,), "BV605-A": (0.3, 0.42)},
                     {"CD3pos_CD4pos": {"BUV395-A": 1, "BV605-A": 2},
                      "CD3pos_CD4dim": {"BUV395-A": 1, "BV605-A": 1},
                      "CD3pos_CD4neg": {"BUV395-A": 1, "BV605-A": 0},
                      "CD3neg": {"BUV395-A": 0}}),
        RectangleGate("IFNg", "CD3pos_CD4pos", ("FITC-A",), (0.42,), (None,)),
        EllipseGate("CD8_blob", "CD3pos_CD4neg", ("APC-R700-A", "BUV395-A"), (0.7, 0.6),
                    ((0.004, 0.001), (0.001, 0.003)), 4.0),
        BooleanGate("not_CD3neg", "not_dead", "or",
                    (("CD3neg", True), ("IFNg", False))),
        BooleanGate("IFNg_neg", "CD3pos_CD4pos", "not", (("IFNg", False),)),
    ]


@pytest.fixture(scope="module")
def tube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = pytest.importorskip("immuno.demo.cytometry")
    path = tmp_path_factory.mktemp("gml") / "P02-M1-ICS-STIM.fcs"
    demo.simulate_tube(path, tube="stimulated", events=30_000, seed=11)
    return path


def _ours(tube: Path, transforms: dict) -> tuple[dict[str, int], object, GateTree]:
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

    fcs = read_fcs(tube)
    spill = spillover_from_keywords(fcs)
    tree = GateTree(placed_gates())
    return gate_events(fcs.events, fcs.channels, tree, transforms, spill).counts(), spill, tree


@pytest.mark.parametrize("fluor", [LogicleTransform(262144, 0.7, 4.5, 0),
                                   AsinhTransform(262144, 4.5, 0.3), ArcsinhCofactor(1500.0)])
def test_export_is_reproduced_by_flowkit(tube: Path, tmp_path: Path, fluor) -> None:
    import flowkit as fk

    from immuno.cytometry.engine.transforms import LinearTransform

    transforms = {c: fluor for c in ("BUV395-A", "BV510-A", "BV605-A", "FITC-A", "APC-R700-A")}
    transforms.update({"FSC-A": LinearTransform(262144, 0), "SSC-A": LinearTransform(262144, 0)})
    counts, spill, tree = _ours(tube, transforms)
    out = write_gatingml(list(tree.gates.values()), transforms, spill, tmp_path / "placed.xml")
    assert out.read_text().startswith("<?xml")

    strategy = fk.parse_gating_xml(str(out))
    report = strategy.gate_sample(fk.Sample(str(tube))).report
    flowkit_counts = {r.gate_name: int(r.count) for r in report.itertuples()}
    # the complemented rectangle travels as NOT of the plain shape written beside it
    inside = flowkit_counts.pop("not_dead" + INSIDE_SUFFIX)
    assert flowkit_counts == counts
    assert inside + counts["not_dead"] == counts["lymphocytes"]
    # not a trivial agreement: the populations hold events on every scale tried
    assert counts["IFNg"] > 50 and sum(v > 0 for v in counts.values()) >= 9

    # and our own reader gives back the same gates and memberships
    from immuno.cytometry.io.fcs import read_fcs

    fcs = read_fcs(tube)
    back = read_gatingml(out).evaluate(fcs.events.astype(np.float64), fcs.channels, fcs.markers)
    back_counts = {k: int(v.sum()) for k, v in back.items()}
    back_counts.pop("not_dead" + INSIDE_SUFFIX)
    assert back_counts == counts


def test_export_refuses_transform_without_gatingml_form(tmp_path: Path) -> None:
    from immuno.cytometry.io.templates import FlowJoTransform

    class Table:  # stands for a FlowJo lookup-table transform
        width = -10.0

    gates = [RectangleGate("a", None, ("FITC-A",), (1.0,), (None,))]
    with pytest.raises(UserError, match="no GatingML 2.0 equivalent"):
        write_gatingml(gates, {"FITC-A": FlowJoTransform(Table())}, None, tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()


def test_export_refuses_ids_gatingml_cannot_hold(tmp_path: Path) -> None:
    gates = [RectangleGate("CD3+", None, ("BUV395-A",), (0.42,), (None,))]
    with pytest.raises(UserError, match="'CD3\\+' are not valid GatingML ids"):
        write_gatingml(gates, {"BUV395-A": LogicleTransform()}, None, tmp_path / "x.xml")


def test_document_errors_name_the_dimension() -> None:
    from immuno.cytometry.io.gatingml import DimensionSpec, GatingDocument

    gate = RectangleGate("a", None, ("FL1|uncompensated|nope",), (0.1,), (None,))
    doc = GatingDocument([gate], {"FL1|uncompensated|nope": DimensionSpec(
        "FL1|uncompensated|nope", "FL1-H", "uncompensated", "nope")}, source="t.xml")
    with pytest.raises(UserError, match="unknown transform 'nope'"):
        doc.evaluate(np.ones((3, 1)), ["FL1-H"])
    with pytest.raises(UserError, match="'FL1-H' is not a channel of the file"):
        doc.evaluate(np.ones((3, 1)), ["FL2-H"])
