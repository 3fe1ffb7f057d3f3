"""Per-sample ingest to event AnnData, and the pre-run checks of a batch's FCS files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from immuno.contract.batch import load_batch
from immuno.contract.panels import load_panel
from immuno.cytometry.checks import check_inputs
from immuno.cytometry.engine.compensation import Spillover, compensate
from immuno.cytometry.io.fcs import read_fcs, write_fcs
from immuno.cytometry.io.spillover import spillover_from_control_files, spillover_from_keywords
from immuno.cytometry.pipeline.ingest import ingest_sample
from immuno.demo import cytometry as demo
from immuno.demo import make_demo_batch
from immuno.errors import UserError
from immuno.io import sha256_file, write_h5ad

PANELS = Path(__file__).resolve().parents[1] / "panels"
ICS = PANELS / "cytometry_ics_demo.yaml"
SURFACE = PANELS / "cytometry_surface_demo.yaml"


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_batch(tmp_path_factory.mktemp("ingest") / "B01", seed=13, patients=2,
                           events=6000, assays=("cytometry",))


def _panel_variant(tmp_path: Path, source: Path, **changes: Any) -> Path:
    spec = yaml.safe_load(source.read_text())
    spec.update(changes)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_ingest_ics_sample(batch_dir: Path) -> None:
    import flowkit

    path = batch_dir / "cytometry" / "P01-D0-ICS-STIM.fcs"
    panel = load_panel(ICS)
    adata = ingest_sample(path, panel, sample_id="P01-D0-ICS-STIM")
    names = [c["channel"] for c in panel["channels"]]
    assert list(adata.var_names) == names and adata.n_obs == 6000
    assert adata.X.dtype == np.float32 and adata.layers["raw"].dtype == np.float32
    assert adata.var.loc["FITC-A", "marker"] == "IFNg" and adata.var.loc["FITC-A", "pns"] == "IFNg"
    assert adata.var.loc["FITC-A", "transform"] == "logicle" and adata.var.loc["FSC-A", "transform"] == "linear"
    assert adata.var.loc["Time", "transform"] == "none"
    fcs = read_fcs(path)
    cols = [fcs.channel_index(c) for c in names]
    np.testing.assert_array_equal(adata.layers["raw"], fcs.events[:, cols])
    expected = compensate(fcs.events, fcs.channels, spillover_from_keywords(fcs))[:, cols]
    np.testing.assert_array_equal(adata.layers["compensated"], expected)
    # transformed values equal FlowKit's logicle of the same compensated numbers
    logicle = flowkit.transforms.LogicleTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0)
    j = names.index("FITC-A")
    theirs = logicle.apply(adata.layers["compensated"][:, [j]].astype(np.float64))[:, 0]
    np.testing.assert_allclose(adata.X[:, j], theirs, atol=1e-6)
    np.testing.assert_allclose(adata.X[:, names.index("FSC-A")], adata.layers["compensated"][:, 0] / 262144, rtol=1e-6)
    prov = adata.uns["provenance"]
    assert prov["file_sha256"] == sha256_file(path) and prov["panel_sha256"] == panel.sha256
    assert prov["spillover_source"] == "$SPILLOVER of P01-D0-ICS-STIM.fcs"
    assert adata.uns["sample_id"] == "P01-D0-ICS-STIM"


def test_qc_flags_in_obs_and_privacy(batch_dir: Path, tmp_path: Path) -> None:
    truth = pd.read_csv(batch_dir / "truth.csv")
    clogged = truth[(truth["feature"] == "clog_events") & (truth["value"] > 0)]["sample_id"].iloc[0]
    path = batch_dir / "cytometry" / f"{clogged}.fcs"
    panel = ICS if "ICS" in clogged else SURFACE
    spill = None if "ICS" in clogged else Spillover(*demo.true_spillover(), source="test")
    adata = ingest_sample(path, panel, spill=spill)
    with np.load(batch_dir / "cytometry" / "truth_events" / f"{clogged}.npz") as z:
        disturbed, margin = z["disturbed"], z["margin"]
    assert adata.obs["qc_flow"].to_numpy()[disturbed].mean() >= 0.9
    np.testing.assert_array_equal(adata.obs["qc_margin"].to_numpy(), margin)
    assert (adata.obs["qc_pass"] == ~(adata.obs["qc_flow"] | adata.obs["qc_margin"] | adata.obs["qc_negative_scatter"])).all()
    kw = adata.uns["keywords"]
    # free text ($CYT holds nicknames and serial numbers in real files) needs the allow-list
    for secret in ("$SRC", "$FIL", "$CYT", "TUBE NAME", "EXPERIMENT NAME", "CREATOR"):
        assert secret not in kw
    assert "$SPILLOVER" in kw and kw["$P5N"] == "BUV395-A" and kw["$P5S"] == "CD3"
    allowed = _panel_variant(tmp_path, ICS, keywords_allow=["TUBE NAME", "$src", "$CYT"])
    kw2 = ingest_sample(batch_dir / "cytometry" / "P01-D0-ICS-UNSTIM.fcs", allowed).uns["keywords"]
    assert kw2["TUBE NAME"] == "unstimulated" and kw2["$SRC"] == "P01-D0-ICS-UNSTIM" and "$FIL" not in kw2
    assert kw2["$CYT"] == "FACSymphony A5"
    # the file round-trips through h5ad with its QC bins
    write_h5ad(adata, tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    np.testing.assert_array_equal(back.X, adata.X)
    assert back.uns["acquisition_qc"]["bins"]["flagged"].sum() == adata.uns["acquisition_qc"]["bins"]["flagged"].sum()


def test_single_stain_compensation_needs_the_batch_matrix(batch_dir: Path) -> None:
    folder = batch_dir / "cytometry"
    path = folder / "P02-M1-SURF.fcs"
    with pytest.raises(UserError, match="single-stain"):
        ingest_sample(path, SURFACE)
    spill = spillover_from_control_files(sorted(folder.glob("SS-*.fcs")), folder / "UNSTAINED.fcs", demo.FLUORS)
    adata = ingest_sample(path, SURFACE, spill=spill)
    assert adata.uns["provenance"]["spillover_source"] == "single-stain controls"
    np.testing.assert_allclose(np.array(adata.uns["provenance"]["spillover_matrix"]), spill.matrix)
    # against the true matrix the compensated values differ by the estimation error only
    exact = ingest_sample(path, SURFACE, spill=Spillover(*demo.true_spillover()))
    j = list(adata.var_names).index("BV786-A")  # receives 0.28 of BV711
    diff = np.abs(adata.layers["compensated"][:, j] - exact.layers["compensated"][:, j])
    assert np.median(diff) < 10.0


def test_estimated_logicle_width(batch_dir: Path, tmp_path: Path) -> None:
    from immuno.cytometry.engine.transforms import estimate_logicle_w

    spec = yaml.safe_load(ICS.read_text())
    spec["transforms"]["fluor"]["w"] = "estimate"
    panel = tmp_path / "est.yaml"
    panel.write_text(yaml.safe_dump(spec, sort_keys=False))
    adata = ingest_sample(batch_dir / "cytometry" / "P01-D10-ICS-STIM.fcs", panel)
    import json

    w = json.loads(adata.var.loc["PE-A", "transform_params"])["w"]
    keep = adata.obs["qc_pass"].to_numpy()
    j = list(adata.var_names).index("PE-A")
    assert w == pytest.approx(estimate_logicle_w(adata.layers["compensated"][keep, j], 262144, 4.5))
    assert 0.3 < w < 0.8


def test_bad_inputs_name_the_file_and_thing(batch_dir: Path, tmp_path: Path) -> None:
    path = batch_dir / "cytometry" / "P01-D0-ICS-STIM.fcs"
    renamed = _panel_variant(tmp_path, ICS, channels=[*yaml.safe_load(ICS.read_text())["channels"],
                                                      {"channel": "BV999-A", "marker": "CD57", "transform": "fluor"}])
    with pytest.raises(UserError) as err:
        ingest_sample(path, renamed)
    p = err.value.problems[0]
    assert str(path) == p.where and "BV999-A" in p.what and "BUV395-A" in p.what
    with pytest.raises(UserError) as err:
        ingest_sample(path, ICS, spill=Spillover(["FITC-A", "BV999-A"], np.eye(2), source="file m.csv"))
    assert "BV999-A" in err.value.problems[0].what
    with pytest.raises(UserError, match="singular"):
        ingest_sample(path, ICS, spill=Spillover(["FITC-A", "PE-A"], np.ones((2, 2))))
    cut = tmp_path / "cut.fcs"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        ingest_sample(cut, ICS)
    bare = write_fcs(tmp_path / "bare.fcs", read_fcs(path).events, demo.CHANNELS, [None] * 17)
    with pytest.raises(UserError, match=r"no \$SPILLOVER"):
        ingest_sample(bare, ICS)


def test_checks_pass_on_the_demo_batch(batch_dir: Path) -> None:
    batch = load_batch(batch_dir)
    assert check_inputs(batch.rows("cytometry"), batch.root, batch.panels) == []


def test_checks_report_every_problem(batch_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "B02"
    shutil.copytree(batch_dir, broken)
    folder = broken / "cytometry"
    # a renamed detector in one file
    fcs = read_fcs(folder / "P01-D10-SURF.fcs")
    channels = ["BV421" if c == "BV421-A" else c for c in fcs.channels]
    write_fcs(folder / "P01-D10-SURF.fcs", fcs.events, channels, fcs.markers, keywords={"$SPILLOVER": fcs.keywords["$SPILLOVER"]})
    # a truncated file
    stim = folder / "P02-D0-ICS-STIM.fcs"
    stim.write_bytes(stim.read_bytes()[:-5000])
    sheet = pd.read_csv(broken / "samplesheet.csv", dtype=str, keep_default_na=False)
    # an unstimulated tube pointing at a surface tube, and no BV421 single stain
    sheet.loc[sheet["sample_id"] == "P02-M1-ICS-UNSTIM", "control_of"] = "P02-M1-SURF"
    sheet = sheet[sheet["sample_id"] != "SS-BV421"]
    sheet.to_csv(broken / "samplesheet.csv", index=False)
    batch = load_batch(broken)
    problems = check_inputs(batch.rows("cytometry"), batch.root, batch.panels)
    text = [str(p) for p in problems]
    rows = {sid: int(r) for sid, r in zip(batch.sheet["sample_id"], batch.sheet["row"], strict=True)}
    assert any(f"row {rows['P01-D10-SURF']}" in t and "BV421-A" in t and "the file has:" in t for t in text)
    assert any(f"row {rows['P02-D0-ICS-STIM']}" in t and "truncated" in t for t in text)
    assert any(f"row {rows['P02-M1-ICS-UNSTIM']}, column control_of" in t and "stained" in t for t in text)
    assert any("no single-stain control for BV421-A" in t for t in text)
    assert len(problems) == 4


def test_matrix_file_named_by_the_panel(batch_dir: Path, tmp_path: Path) -> None:
    from immuno.cytometry.io.spillover import write_spillover_file

    channels, matrix = demo.true_spillover()
    write_spillover_file(Spillover(channels, matrix), tmp_path / "symphony.csv")
    panel = _panel_variant(tmp_path, ICS, compensation={"source": "file", "file": "symphony.csv"})
    adata = ingest_sample(batch_dir / "cytometry" / "P01-M1-ICS-STIM.fcs", panel)
    assert adata.uns["provenance"]["spillover_source"] == "file symphony.csv"
    keyword = ingest_sample(batch_dir / "cytometry" / "P01-M1-ICS-STIM.fcs", ICS)
    np.testing.assert_array_equal(adata.layers["compensated"], keyword.layers["compensated"])
    # a matrix naming a detector the files lack is reported for every file before the run
    renamed = ["BV999-A" if c == "BV786-A" else c for c in channels]
    write_spillover_file(Spillover(renamed, matrix), tmp_path / "symphony.csv")
    batch = load_batch(batch_dir)
    rows = batch.rows("cytometry")
    problems = check_inputs(rows, batch.root, {**batch.panels, "cytometry_ics_demo": load_panel(panel)})
    ics_rows = rows[rows["panel"] == "cytometry_ics_demo"]
    assert len(problems) == len(ics_rows)
    assert all("BV999-A" in p.what and "symphony.csv" in p.what for p in problems)


def test_checks_report_panel_logic_with_its_line(batch_dir: Path, tmp_path: Path) -> None:
    text = ICS.read_text()
    edits = {"- id: IFNg\n    parent: CD4\n": "- id: IFNg\n    parent: CD44\n",
             '"CD4 & IFNg & !IL4"': '"CD4 & IFNg & !IL5"',
             "IL17A_CD4: {population: IL17A_CD4, of: CD4,": "IL17A_CD4: {population: IL17A_CD4, of: CD4T,"}
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    broken = tmp_path / ICS.name
    broken.write_text(text)
    lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if fragment in line)

    batch = load_batch(batch_dir)
    problems = check_inputs(batch.rows("cytometry"), batch.root,
                            {**batch.panels, "cytometry_ics_demo": load_panel(broken)})
    text_of = [str(p) for p in problems]
    expected = [(line_of("- id: IFNg"), "CD44"), (line_of("!IL5"), "IL5"), (line_of("of: CD4T"), "CD4T")]
    for line, name in expected:
        assert any(f"{broken}: line {line}" in t and repr(name) in t for t in text_of), (line, name, text_of)
    assert len(problems) == 3


def test_names_of_export_qc_gates_are_reserved(tmp_path: Path) -> None:
    from immuno.cytometry import panel_problems

    text = ICS.read_text().replace("populations:\n", "populations:\n  acq_cd4: {expr: CD4, parent: CD4}\n", 1)
    broken = tmp_path / ICS.name
    broken.write_text(text)
    problems = panel_problems(load_panel(broken))
    assert len(problems) == 1 and "'acq_cd4'" in str(problems[0]) and str(broken) in str(problems[0])
    assert panel_problems(load_panel(ICS)) == []
