"""Manual templates (FlowJo .wsp, GatingML) applied by our engine equal FlowKit's evaluation."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

from immuno.cytometry.templates import FlowJoTransform, apply_template, read_template
from immuno.errors import UserError

fk = pytest.importorskip("flowkit")


@pytest.fixture(scope="module")
def tubes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    demo = pytest.importorskip("immuno.demo.cytometry")
    folder = tmp_path_factory.mktemp("tpl")
    paths = [folder / "P01-D0-ICS-STIM.fcs", folder / "P01-D10-ICS-STIM.fcs"]
    for seed, path in enumerate(paths):
        demo.simulate_tube(path, tube="stimulated", events=25_000, seed=20 + seed)
    return paths


def _strategy(spill_channels: list[str], spill_matrix: np.ndarray, pos: str = "+") -> object:
    """A lab's manual template: scatter polygon, then CD3, CD4 (not CD8), IFN-gamma, IL-4.

    FlowJo names gates freely (``CD3+``); GatingML ids must be XML names (``CD3_pos``).
    """
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("Acquisition", fk.Matrix(spill_matrix, spill_channels, spill_channels))
    for c in spill_channels:
        gs.add_transform(c, fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0))
    # FlowJo's own biexponential table on the IL-4 channel
    gs.transformations["PE-A"] = fk.transforms.WSPBiexTransform(negative=0.0, width=-100,
                                                                 positive=4.418540)
    for c in ("FSC-A", "SSC-A"):
        gs.add_transform(c, fk.transforms.LinearTransform(262144, 0))

    def dim(c: str, lo: float | None = None, hi: float | None = None) -> object:
        comp = "Acquisition" if c in spill_channels else "uncompensated"
        return fk.Dimension(c, comp, c, range_min=lo, range_max=hi)

    gs.add_gate(fk.gates.PolygonGate("Lymphocytes", [dim("FSC-A"), dim("SSC-A")],
                                     [[0.12, 0.01], [0.40, 0.01], [0.42, 0.14], [0.12, 0.14]]),
                ("root",))
    cd3, cd4 = f"CD3{pos}", f"CD4{pos}"
    gs.add_gate(fk.gates.RectangleGate(cd3, [dim("BUV395-A", 0.42)]), ("root", "Lymphocytes"))
    gs.add_gate(fk.gates.RectangleGate(cd4, [dim("BV605-A", 0.42), dim("APC-R700-A", None, 0.45)]),
                ("root", "Lymphocytes", cd3))
    gs.add_gate(fk.gates.RectangleGate(f"IFNg{pos}", [dim("FITC-A", 0.42)]),
                ("root", "Lymphocytes", cd3, cd4))
    gs.add_gate(fk.gates.RectangleGate(f"IL4{pos}", [dim("PE-A", 0.5)]),
                ("root", "Lymphocytes", cd3, cd4))
    return gs


@pytest.fixture(scope="module")
def workspace(tubes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lxml import etree

    from immuno.cytometry.compensation import spillover_from_keywords
    from immuno.cytometry.fcs import read_fcs

    spill = spillover_from_keywords(read_fcs(tubes[0]))
    assert spill is not None
    session = fk.Session(gating_strategy=_strategy(spill.channels, spill.matrix),
                         fcs_samples=[str(tubes[0])])
    path = tmp_path_factory.mktemp("wsp") / "template.wsp"
    with open(path, "wb") as fh:
        session.export_wsp(fh, "All Samples")
    # FlowJo keeps each sample's spillover matrix inside its <Sample> element (that is where
    # FlowKit reads it from); FlowKit's export lists it only under <Matrices>
    tree = etree.parse(str(path))
    root = tree.getroot()
    root.find("SampleList").find("Sample").insert(0, copy.deepcopy(root.find("Matrices")[0]))
    tree.write(str(path))
    return path


def _ours(template: object, tube: Path) -> dict[str, int]:
    from immuno.cytometry.compensation import spillover_from_keywords
    from immuno.cytometry.fcs import read_fcs

    fcs = read_fcs(tube)
    masks = apply_template(template, fcs.events, fcs.channels,
                           spillover_from_keywords(fcs), fcs.markers)
    return {k: int(v.sum()) for k, v in masks.items()}


def test_workspace_template_equals_flowkit(workspace: Path, tubes: list[Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(workspace), fcs_samples=[str(tubes[0])])
    ws.analyze_samples(use_mp=False)
    report = ws.get_analysis_report()
    flowkit_counts = {r.gate_name: int(r.count) for r in report.itertuples()}

    doc = read_template(workspace)
    assert any(isinstance(t, FlowJoTransform) for t in doc.transforms.values())
    assert _ours(doc, tubes[0]) == flowkit_counts
    assert flowkit_counts["IFNg+"] > 100 and flowkit_counts["IL4+"] > 5


def test_workspace_template_applies_to_a_new_file(workspace: Path, tubes: list[Path]) -> None:
    # the batch's other files: FlowKit's own evaluation of the same template gates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(workspace), load_missing_file_data=True)
    sample = ws.get_sample_ids(loaded_only=False)[0]
    strategy = ws.get_gating_strategy(sample)
    result = strategy.gate_sample(fk.Sample(str(tubes[1])))
    flowkit_counts = {r.gate_name: int(r.count) for r in result.report.itertuples()}
    ours = _ours(workspace, tubes[1])
    assert ours == flowkit_counts
    assert ours != _ours(workspace, tubes[0])  # a different file, different counts


def test_gatingml_template_equals_flowkit(tubes: list[Path], tmp_path: Path) -> None:
    from immuno.cytometry.compensation import spillover_from_keywords
    from immuno.cytometry.fcs import read_fcs

    spill = spillover_from_keywords(read_fcs(tubes[0]))
    assert spill is not None
    gs = _strategy(spill.channels, spill.matrix, pos="_pos")
    del gs.transformations["PE-A"]  # GatingML has no FlowJo table: IL-4 on logicle too
    gs.add_transform("PE-A", fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0))
    path = tmp_path / "template.xml"
    with open(path, "wb") as fh:
        fk.export_gatingml(gs, fh)
    result = fk.parse_gating_xml(str(path)).gate_sample(fk.Sample(str(tubes[1])))
    flowkit_counts = {r.gate_name: int(r.count) for r in result.report.itertuples()}
    assert _ours(path, tubes[1]) == flowkit_counts
    assert flowkit_counts["IFNg_pos"] > 100


def test_template_errors(tmp_path: Path, workspace: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_template(tmp_path / "missing.wsp")
    other = tmp_path / "gates.csv"
    other.write_text("x")
    with pytest.raises(UserError, match=r"\.wsp"):
        read_template(other)
    with pytest.raises(UserError, match="is not in the workspace"):
        read_template(workspace, sample_id="nope.fcs")
    broken = tmp_path / "broken.wsp"
    broken.write_text("<Workspace><SampleList>")
    with pytest.raises(UserError, match="broken.wsp"):
        read_template(broken)
