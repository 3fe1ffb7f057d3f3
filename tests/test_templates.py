"""Manual templates (FlowJo .wsp, GatingML) applied by our engine equal FlowKit's evaluation."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

from immuno.cytometry.io.templates import FlowJoTransform, apply_template, read_template
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

    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

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
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

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
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

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


WSP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "cytometry" / "workspaces"
#: the known answers of SOURCES.md (FlowKit's own tests) for each workspace and its FCS file
KNOWN = {
    "FlowKit_simple_diamond_example_quad_gate.wsp": ("test_data_diamond_01.fcs", {
        "Q1: channel_A- , channel_B+": 49671, "Q2: channel_A+ , channel_B+": 50596,
        "Q3: channel_A+ , channel_B-": 50330, "Q4: channel_A- , channel_B-": 49403}),
    "FlowKit_single_ellipse_51_events.wsp": ("data_set_simple_line_100.fcs", {"ellipse1": 51}),
    "FlowKit_test_data_diamond_biex_rect.wsp": ("test_data_diamond_01.fcs", {"upper_right": 50605}),
    "FlowKit_test_data_diamond_asinh_rect.wsp": ("test_data_diamond_01.fcs", {"upper_right": 50559}),
}


@pytest.mark.real
@pytest.mark.parametrize("name", sorted(KNOWN))
def test_real_workspaces_give_the_known_counts(real_data: Path, name: str) -> None:
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.template_files import stored_counts
    from immuno.cytometry.io.templates import template_counts

    fcs_name, expected = KNOWN[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(WSP / name), fcs_samples=str(WSP / fcs_name))
    ws.analyze_samples(use_mp=False)
    flowkit_counts = {r.gate_name: int(r.count) for r in ws.get_analysis_report().itertuples()}
    doc = read_template(WSP / name, group="All Samples")
    (stored,) = [s for s in stored_counts(WSP / name) if s.name == fcs_name]
    table = template_counts(doc, read_fcs(WSP / fcs_name), stored.counts).set_index("gate")
    ours = table["count"].to_dict()
    assert ours == expected == flowkit_counts
    assert table["equal"].all()  # and each equals the count FlowJo stored in the workspace


@pytest.mark.real
def test_workspace_without_its_fcs_files_lists_what_flowjo_stored(real_data: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The Sony ID7000 workspace: no FCS files, so its gates and FlowJo's counts are what can
    be checked: the gate tree read is the tree FlowJo counted."""
    from immuno.cli import main
    from immuno.cytometry.io.template_files import stored_counts

    path = WSP / "allotropy_flowjo_example_3_SonyID7000.wsp"
    doc = read_template(path, group="All Samples")
    tree = {g.gate_id: g.parent_id for g in doc.gates}
    assert tree == {"singlet": None, "live": "singlet", "cells": "live"}
    stored = stored_counts(path)
    assert len(stored) == 6 and stored[0].name == "A01.fcs" and stored[0].events == 50000
    assert stored[0].counts == {("singlet",): 44892, ("singlet", "live"): 26892, ("singlet", "live", "cells"): 26256}
    for s in stored:  # every sample's counts follow the gate tree and shrink down it
        assert set(s.counts) == {("singlet",), ("singlet", "live"), ("singlet", "live", "cells")}
        assert s.events >= s.counts[("singlet",)] >= s.counts[("singlet", "live")] >= s.counts[("singlet", "live", "cells")]
    assert main(["cytometry", "apply-template", str(path)]) == 0
    out = capsys.readouterr().out
    assert "live  (parent singlet; polygon on FSC-A, Zombie-Violet-A)" in out and "singlet/live/cells 26256" in out


@pytest.mark.real
def test_unsupported_templates_say_what_they_are(real_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from immuno.cli import main

    diva = WSP / "allotropy_facsdiva_example_1.xml"
    with pytest.raises(UserError) as err:
        read_template(diva)
    assert "BD FACSDiva experiment export" in err.value.problems[0].what
    flowjo9 = tmp_path / "old.wsp"
    flowjo9.write_text('<?xml version="1.0"?>\n<Workspace version="2.0" flowJoVersion="9.9.6"><SampleList/></Workspace>')
    gml15 = tmp_path / "old.xml"
    gml15.write_text('<?xml version="1.0"?><gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v1.5/gating"/>')
    for path, what in ((flowjo9, "FlowJo 9 or older workspace (FlowJo 9.9.6)"), (gml15, "not version 2.0"),
                       (diva, "BD FACSDiva")):
        assert main(["cytometry", "apply-template", str(path), str(WSP / "test_data_diamond_01.fcs")]) == 2
        err_text = capsys.readouterr().err
        assert what in err_text and "not supported" in err_text and "Traceback" not in err_text


@pytest.mark.real
def test_apply_template_command_reports_flowjo_agreement(real_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from immuno.cli import main

    out = tmp_path / "counts.csv"
    assert main(["cytometry", "apply-template", str(WSP / "FlowKit_simple_diamond_example_quad_gate.wsp"),
                 str(WSP / "test_data_diamond_01.fcs"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count(": equal") == 4 and "49671 events" in text
    table = pd.read_csv(out)
    assert table["count"].tolist() == [49671, 50596, 50330, 49403]


@pytest.mark.real
def test_a_panel_takes_its_gates_from_a_workspace(real_data: Path, tmp_path: Path) -> None:
    """``template:`` in a panel: the batch pipeline gates with the lab's FlowJo gates."""
    import shutil

    import pandas as pd

    from immuno.contract.batch import load_batch
    from immuno.contract.validate import validate_batch
    from immuno.cytometry import process_batch

    panels, batch = tmp_path / "panels", tmp_path / "batch"
    panels.mkdir()
    batch.mkdir()
    shutil.copy(WSP / "FlowKit_simple_diamond_example_quad_gate.wsp", panels / "quad.wsp")
    shutil.copy(WSP / "test_data_diamond_01.fcs", batch / "tube.fcs")
    panel = ("name: quad_template\nassay: cytometry\nversion: 1\n"
             "channels:\n  - {channel: channel_A, marker: null, transform: null}\n"
             "  - {channel: channel_B, marker: null, transform: null}\n"
             "transforms: {}\ncompensation: {source: none}\nqc: {margin: false, negative_scatter: false}\n"
             "template: {file: quad.wsp, group: All Samples}\n")
    (panels / "quad.yaml").write_text(panel)
    (batch / "samplesheet.csv").write_text("sample_id,patient_id,visit,assay,file,panel,tube\n"
                                           "S1,P01,D0,cytometry,tube.fcs,quad_template,stained\n")
    validate_batch(batch, panels_dir=panels)
    process_batch(load_batch(batch, panels_dir=panels), tmp_path / "out", plots=True, gatingml=True)
    metrics = pd.read_parquet(tmp_path / "out" / "qc_metrics.parquet")
    counts = metrics[metrics["check"] == "gate_events"].set_index("target")["value"].to_dict()
    assert counts == KNOWN["FlowKit_simple_diamond_example_quad_gate.wsp"][1]
    # a template whose gates read a channel the panel does not list is a validation error
    (panels / "quad.yaml").write_text(panel.replace("  - {channel: channel_B, marker: null, transform: null}\n", ""))
    with pytest.raises(UserError) as err:
        validate_batch(batch, panels_dir=panels)
    assert any("template" in p.where and "channel_B" in p.what for p in err.value.problems)
