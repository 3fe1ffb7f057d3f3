"""The cytometry pipeline on demo batches, judged against the simulator's realised truth."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immuno.contract.batch import load_batch, write_sheet
from immuno.contract.measurements import COLUMNS
from immuno.cytometry import batch_samples, process_batch, process_sample

PROJECT = Path(__file__).resolve().parents[1]
#: per-event files index events by number; AnnData says so when it reads them
pytestmark = pytest.mark.filterwarnings("ignore:Transforming to str index")
HEADLINE = ["Th1", "Th2", "Th17", "Th1_17", "Treg"]
ICS = ["IFNG_CD4", "IL4_CD4", "IL17A_CD4"]
PATIENTS = ["P01", "P02", "P03", "P04"]  # the default demo's size
VISITS = ["D0", "D10", "M1"]


def _write_batch(folder: Path, patients: list[str], events: int, seed: int = 20261126) -> Path:
    """The cytometry part of the demo batch (sheet, FCS files, truth.csv)."""
    from immuno.demo import cytometry as demo

    folder.mkdir(parents=True)
    rows, truth = demo.simulate(folder, seed, patients, VISITS, events)
    write_sheet(rows, folder / "samplesheet.csv")
    pd.DataFrame(truth).to_csv(folder / "truth.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """The default-size demo (4 patients x 3 visits, 20 000 events per tube), processed once."""
    root = tmp_path_factory.mktemp("cyto")
    folder = _write_batch(root / "demo", PATIENTS, 20_000)
    out = root / "results" / "cytometry"
    m = process_batch(load_batch(folder), out, plots=False)
    return folder, out, m


def _compare(m: pd.DataFrame, truth: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    t = truth[truth["feature"].isin(features)]
    j = t.merge(m, on=["sample_id", "feature"], how="left", suffixes=("_true", ""))
    assert j["value"].notna().all(), j.loc[j["value"].isna(), ["sample_id", "feature"]]
    j["abs_err"] = (j["value"] - j["value_true"]).abs()
    return j


def test_demo_headlines_within_acceptance(demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    folder, _, m = demo_results
    truth = pd.read_csv(folder / "truth.csv")
    j = _compare(m, truth, HEADLINE + ICS + [f"{f}_{s}" for f in ICS for s in ("stimulated", "unstimulated")])
    # every ICS pair and surface tube of every patient visit, and the reference control
    assert len(j) == (len(PATIENTS) * len(VISITS) + 1) * (3 * 3 + 5)
    assert (j["abs_err"] <= 1.0).all(), j.nlargest(3, "abs_err")[["sample_id", "feature", "value", "value_true"]]
    big = j[j["value_true"] > 5]
    rel = big["abs_err"] / big["value_true"]
    assert (rel <= 0.10).all(), big.assign(rel=rel).nlargest(3, "rel")[["sample_id", "feature", "value", "value_true"]]
    # the units name the denominators, as the truth does
    assert (j["unit"] == j["unit_true"]).all()
    ratio = _compare(m, truth, ["Th1_Th2_ratio"])
    assert ((ratio["abs_err"] / ratio["value_true"]) <= 0.10).all()
    # the ICS ratio rests on small responses (IL-4+ is a few percent): 25 % is its honest bound
    ratio = _compare(m, truth, ["IFNG_IL4_ratio"])
    assert len(ratio) == len(PATIENTS) * len(VISITS) + 1
    assert ((ratio["abs_err"] / ratio["value_true"]) <= 0.25).all(), ratio[["sample_id", "value", "value_true"]]


def test_no_feature_name_means_two_things(demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    """docs/architecture.md: one (assay, feature) name is one measurement with one unit, across panels."""
    _, _, m = demo_results
    per_name = m.groupby(["assay", "feature"]).agg(panels=("panel", "nunique"), units=("unit", "nunique"))
    assert (per_name["units"] == 1).all(), per_name[per_name["units"] > 1]
    # a name both panels report must mean the same gate (the shared scatter/CD3/CD4 hierarchy)
    shared = set(per_name[per_name["panels"] > 1].index.get_level_values("feature"))
    assert shared <= {f"{g}:pct_parent" for g in ("lymphocytes", "singlets", "live", "CD3", "CD4")}, shared
    assert {"Th1", "Th2", "Th17", "Treg", "IFNG_CD4", "IL4_CD4", "IL17A_CD4"} <= set(m["feature"])
    assert not shared & {"Th1", "Th2", "Th17", "Th1_Th2_ratio"}


def test_demo_tables_follow_the_contract(demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    folder, out, m = demo_results
    assert list(m.columns) == COLUMNS
    for col in ("sample_id", "patient_id", "visit", "assay", "feature", "unit"):
        assert m[col].notna().all(), col
    assert set(m["assay"]) == {"cytometry"}
    assert m["qc_pass"].all()
    on_disk = pd.read_parquet(out / "cytometry_measurements.parquet")
    pd.testing.assert_frame_equal(on_disk, m)
    assert not (out / "measurements.parquet").exists()
    # ICS headlines live under the stimulated tube; the unstimulated tube has no headline
    ics = m[m["sample_id"] == "P01-D0-ICS-STIM"].set_index("feature")
    assert ics.loc["IFNG_CD4", "value"] == pytest.approx(
        max(ics.loc["IFNG_CD4_stimulated", "value"] - ics.loc["IFNG_CD4_unstimulated", "value"], 0.0))
    assert ics.loc["IFNG_IL4_ratio", "value"] == pytest.approx(
        ics.loc["IFNG_CD4", "value"] / ics.loc["IL4_CD4", "value"])
    assert "Th1" not in ics.index  # the cytokine tube does not report surface phenotypes
    assert not m[(m["sample_id"] == "P01-D0-ICS-UNSTIM") & (m["feature"] == "IFNG_CD4")].shape[0]
    # single stains and the unstained tube serve compensation only
    assert not m["sample_id"].str.startswith(("SS-", "UNSTAINED")).any()
    assert (out / "compensation.csv").is_file()


def test_demo_qc_flags_the_clogged_tubes(demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    folder, out, _ = demo_results
    truth = pd.read_csv(folder / "truth.csv")
    clogged = set(truth[(truth["feature"] == "clog_events") & (truth["value"] > 0)]["sample_id"])
    flags = pd.read_parquet(out / "qc_flags.parquet")
    flow = set(flags[flags["flag"] == "unstable_flow"]["sample_id"])
    assert clogged and clogged <= flow
    assert not (flags["severity"] == "fail").any()
    metrics = pd.read_parquet(out / "qc_metrics.parquet")
    fallback = metrics[metrics["check"] == "fallback_gate"]
    assert len(fallback) and fallback["passed"].all()
    ref = metrics[(metrics["check"] == "reference_control")]
    assert set(ref["sample_id"]) == {"REFCTRL-ICS-STIM", "REFCTRL-SURF"}
    assert set(ref["target"]) >= {"Th1", "Th2", "Th17", "Treg", "IFNG_CD4", "IL4_CD4", "IL17A_CD4"}


def test_demo_anndata_outputs(demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    _, out, m = demo_results
    pops = ad.read_h5ad(out / "populations.h5ad")
    assert pops.n_obs == m["sample_id"].nunique()
    assert "cytometry_surface_demo/Treg" in pops.var_names
    col = list(pops.var_names).index("cytometry_surface_demo/Treg")
    row = list(pops.obs_names).index("P02-M1-SURF")
    assert pops.layers["count"][row, col] > 0
    treg = m[(m["sample_id"] == "P02-M1-SURF") & (m["feature"] == "Treg")]["value"].iloc[0]
    assert pops.layers["pct_of_reference"][row, col] == pytest.approx(treg)
    events = ad.read_h5ad(out / "events" / "P02-M1-SURF.h5ad")
    assert events.obs["Treg"].dtype == bool
    assert events.obs["Treg"].sum() == pops.layers["count"][row, col]
    assert not (events.obs["Treg"] & ~events.obs["qc_pass"]).any()  # QC-flagged events never gated
    # X and the gate/QC columns only: the FCS file is the record of the raw values
    # (a panel's keep_layers adds copies, see test_keep_layers...)
    assert not set(events.layers) and list(events.obs_names[:3]) == ["0", "1", "2"]
    assert set(events.uns["gates"]["gate"]) >= {"lymphocytes", "singlets", "CD3", "CD4", "Treg"}
    # compensation controls are ingested (events and acquisition QC) but not gated
    stain = ad.read_h5ad(out / "events" / "SS-PE-Cy7.h5ad")
    assert "qc_pass" in stain.obs and "CD4" not in stain.obs
    assert (out / "events" / "UNSTAINED.h5ad").is_file()
    metrics = pd.read_parquet(out / "qc_metrics.parquet")
    assert "acquisition_kept" in set(metrics.loc[metrics["sample_id"] == "UNSTAINED", "check"])


@pytest.mark.slow
def test_gatingml_export_alone_reproduces_our_counts_in_flowkit(
        demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    """FlowKit, given only the exported file and the raw FCS, finds every count we report
    on tubes with a clog: acquisition QC's removals are gates in the file."""
    import flowkit as fk

    folder, out, _ = demo_results
    truth = pd.read_csv(folder / "truth.csv")
    clogged = truth[(truth["feature"] == "clog_events") & (truth["value"] > 0)]["sample_id"]
    gated = [s for s in clogged if (out / "gatingml" / f"{s}.xml").exists()]
    assert len(gated) >= 3, gated
    for sid in gated:
        strategy = fk.parse_gating_xml(str(out / "gatingml" / f"{sid}.xml"))
        result = strategy.gate_sample(fk.Sample(str(folder / "cytometry" / f"{sid}.fcs")))
        theirs = {r.gate_name: int(r.count) for r in result.report.itertuples()}
        stats = pd.read_parquet(out / "samples" / sid / "sample_populations.parquet")
        ours = dict(zip(stats["population"], stats["count"].astype(int), strict=True))
        assert set(ours) <= set(theirs), (sid, set(ours) - set(theirs))
        assert {k: theirs[k] for k in ours} == ours, sid
        events = ad.read_h5ad(out / "events" / f"{sid}.h5ad")
        kept = int(events.obs["qc_pass"].sum())
        assert kept < events.n_obs  # the clog was flagged, so the root gate matters
        assert theirs["acq_kept"] == kept, sid


def test_a_bad_file_and_a_missing_control_fail_alone(tmp_path: Path) -> None:
    from immuno.cytometry.io.fcs import read_fcs, write_fcs

    folder = _write_batch(tmp_path / "b", ["P01"], 6000)
    out = tmp_path / "out"
    process_batch(load_batch(folder), out, sample_ids=["P01-D10-SURF"], plots=False)
    assert (out / "events" / "P01-D10-SURF.h5ad").is_file()
    # a renamed detector in one tube (what an instrument change does)
    bad = folder / "cytometry" / "P01-D10-SURF.fcs"
    f = read_fcs(bad)
    channels = ["BV605-X" if c == "BV605-A" else c for c in f.channels]
    write_fcs(bad, f.events, channels, f.markers, ranges=f.ranges)
    # a truncated control tube (a copy interrupted)
    control = folder / "cytometry" / "P01-D10-ICS-UNSTIM.fcs"
    control.write_bytes(control.read_bytes()[:5000])
    # and an ICS pair whose unstimulated tube is missing from the sheet
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet = sheet[sheet["sample_id"] != "P01-M1-ICS-UNSTIM"]
    sheet.to_csv(folder / "samplesheet.csv", index=False)
    m = process_batch(load_batch(folder), out, plots=False, events=False, gatingml=False)
    flags = pd.read_parquet(out / "qc_flags.parquet")
    failed = flags[flags["severity"] == "fail"].set_index("sample_id")
    assert set(failed.index) == {"P01-D10-SURF", "P01-M1-ICS-STIM", "P01-D10-ICS-UNSTIM", "P01-D10-ICS-STIM"}
    assert "P01-D10-ICS-UNSTIM.fcs" in failed.loc["P01-D10-ICS-UNSTIM", "reason"]
    assert "its control tube P01-D10-ICS-UNSTIM failed" in failed.loc["P01-D10-ICS-STIM", "reason"]
    reason = failed.loc["P01-D10-SURF", "reason"]
    assert "P01-D10-SURF.fcs" in reason and "BV605-A" in reason
    assert "no control tube" in failed.loc["P01-M1-ICS-STIM", "reason"]
    assert "control_of" in failed.loc["P01-M1-ICS-STIM", "reason"]
    # the other tubes finished
    done = set(m.loc[m["feature"].isin(["Th1", "IFNG_CD4"]), "sample_id"])
    assert {"P01-D0-ICS-STIM", "P01-D0-SURF", "P01-M1-SURF"} <= done
    assert not set(failed.index) & set(m["sample_id"])
    # nothing of the earlier successful run of the failed tube is left behind
    assert not (out / "events" / "P01-D10-SURF.h5ad").exists()
    assert not (out / "gatingml" / "P01-D10-SURF.xml").exists()


def test_process_sample_is_deterministic_and_writes_a_plot(demo_results: tuple[Path, Path, pd.DataFrame],
                                                           tmp_path: Path) -> None:
    from immuno.cytometry.io.spillover import read_spillover_file
    from immuno.cytometry.pipeline.outputs import write_sample_outputs

    folder, out, m = demo_results
    info = batch_samples(load_batch(folder), ["P04-M1-SURF"])[0]
    spill = read_spillover_file(out / "compensation.csv")
    first = process_sample(info, spill)
    assert first.ok
    written = write_sample_outputs(first, tmp_path, events=False, gatingml=False)
    png = tmp_path / "plots" / "P04-M1-SURF.png"
    assert png in written and png.read_bytes()[:4] == b"\x89PNG"
    again = pd.read_parquet(tmp_path / "samples" / "P04-M1-SURF" / "sample_measurements.parquet")
    batch_rows = m[m["sample_id"] == "P04-M1-SURF"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, batch_rows)
    doc = json.loads((out / "samples" / "P04-M1-SURF" / "sample_gates.json").read_text())
    assert [g["gate_id"] for g in doc["gates"]][:2] == ["lymphocytes", "singlets"]


def _alt_instrument_tube(folder: Path, sid: str, seed: int, params: object) -> dict:
    """A surface tube stained with other fluorochromes, written with detector-style names."""
    from immuno.demo import cytometry as demo

    stains = {"BV421-A": "CD3", "BV510-A": "Viability", "PE-Cy7-A": "CD4", "BV786-A": "CD8",
              "BUV395-A": "CD45RA", "APC-A": "CXCR3", "BV711-A": "CCR4", "PE-A": "CCR6",
              "APC-R700-A": "CD25", "FITC-A": "CD127"}
    names = {"BUV395-A": "UV7-A", "BV421-A": "V1-A", "BV510-A": "V3-A", "BV605-A": "V7-A",
             "BV711-A": "V10-A", "BV786-A": "V13-A", "FITC-A": "B2-A", "PE-A": "YG1-A",
             "PE-Cy7-A": "YG9-A", "PerCP-Cy5.5-A": "B8-A", "APC-A": "R1-A", "APC-R700-A": "R4-A",
             "Time": "TIME"}
    labels = demo.simulate_tube(folder / f"{sid}.fcs", "surface", events=20_000, seed=seed, params=params,
                                stains=stains, channel_names=names)
    return demo.realised_truth("surface", labels)


def test_a_new_panel_needs_only_yaml(tmp_path: Path) -> None:
    from immuno.demo.cytometry import TubeParams

    folder = tmp_path / "alt"
    folder.mkdir()
    tubes = {"A01-D0-SURF": (11, TubeParams(th1=0.28, th2=0.12, th17=0.08, treg=0.04)),
             "A01-M1-SURF": (12, TubeParams(th1=0.15, th2=0.22, th17=0.12, treg=0.09))}
    truth, rows = {}, []
    for sid, (seed, params) in tubes.items():
        truth[sid] = _alt_instrument_tube(folder, sid, seed, params)
        rows.append({"sample_id": sid, "patient_id": "A01", "visit": sid.split("-")[1], "assay": "cytometry",
                     "file": f"{sid}.fcs", "panel": "cytometry_surface_alt", "tube": "stained"})
    write_sheet(rows, folder / "samplesheet.csv")
    batch = load_batch(folder, panels_dir=PROJECT / "tests" / "panels")
    m = process_batch(batch, tmp_path / "out", plots=False, events=False, gatingml=False)
    got = m.set_index(["sample_id", "feature"])["value"]
    for sid, features in truth.items():
        for feature in HEADLINE:
            value, unit = features[feature]
            assert abs(got[sid, feature] - value) <= 1.0, (sid, feature, got[sid, feature], value)
            if value > 5:
                assert abs(got[sid, feature] - value) / value <= 0.10, (sid, feature)
    flags = pd.read_parquet(tmp_path / "out" / "qc_flags.parquet")
    assert not (flags["severity"] == "fail").any()


def test_clusters_of_pooled_cd4_cells_follow_the_cytokine_gates(
        demo_results: tuple[Path, Path, pd.DataFrame]) -> None:
    from immuno.cytometry.analysis.cluster import cluster_events, pool_events

    _, out, _ = demo_results
    samples = {sid: out / "events" / f"{sid}.h5ad" for sid in ("P01-D0-ICS-STIM", "P01-M1-ICS-STIM")}
    pooled = pool_events(samples, population="CD4", n_per_sample=1500, seed=1)
    assert pooled.n_obs == 3000 and pooled.obs["CD4"].all()
    assert list(pooled.obs["sample_id"].value_counts()) == [1500, 1500]
    result = cluster_events(pooled, markers=["IFNg", "IL4", "IL17A"], resolution=0.3, seed=0, umap=False)
    share = result.crosstab["IFNg"]
    top = share.idxmax()
    # IFN-gamma producers form their own clusters: nearly pure, and bright in IFNg
    assert share[top] > 0.9
    ifng_clusters = share[share > 0.5].index
    inside = result.adata.obs["leiden"].isin(ifng_clusters)
    assert (result.adata.obs.loc[inside, "IFNg"]).mean() > 0.9
    assert (result.adata.obs.loc[~inside, "IFNg"]).mean() < 0.05
    assert result.annotation.loc[top, "IFNg"] > result.annotation["IFNg"].median()
    assert "IFNg+" in result.annotation.loc[top, "label"]
    assert result.annotation["n_events"].sum() == 3000
    again = cluster_events(pooled, markers=["IFNg", "IL4", "IL17A"], resolution=0.3, seed=0, umap=False)
    assert again.adata.obs["leiden"].tolist() == result.adata.obs["leiden"].tolist()


def test_per_event_files_compressed_with_an_integer_index_and_layers_only_when_kept(tmp_path: Path) -> None:
    """X with the gate and QC columns by default, gzip-compressed, the event number as the
    index; a panel's keep_layers adds the raw and compensated copies, equal to ingest's."""
    import h5py
    import yaml

    from immuno.cytometry import ingest_sample
    from immuno.cytometry.io.spillover import read_spillover_file

    folder = _write_batch(tmp_path / "b", ["P01"], 5000)
    panels = tmp_path / "panels"
    panels.mkdir()
    for p in (PROJECT / "panels").glob("*.yaml"):
        spec = yaml.safe_load(p.read_text())
        if spec["name"] == "cytometry_surface_demo":
            spec["keep_layers"] = ["raw", "compensated"]
        (panels / p.name).write_text(yaml.safe_dump(spec, sort_keys=False))
    batch = load_batch(folder, panels_dir=panels)
    out = tmp_path / "out"
    process_batch(batch, out, sample_ids=["P01-D0-ICS-STIM", "P01-D0-SURF"], plots=False)
    with h5py.File(out / "events" / "P01-D0-ICS-STIM.h5ad") as f:
        assert f["X"].compression == "gzip" and f["X"].shuffle and f["X"].shape == (5000, 12)
        assert f["obs/_index"].dtype.kind == "i" and f["obs/CD4"].compression == "gzip"
        assert len(f["layers"]) == 0
    ics = ad.read_h5ad(out / "events" / "P01-D0-ICS-STIM.h5ad")
    again = ingest_sample(folder / "cytometry" / "P01-D0-ICS-STIM.fcs", batch.panels["cytometry_ics_demo"])
    assert ics.X.dtype == again.X.dtype == "float32"
    np.testing.assert_array_equal(ics.X, again.X)
    np.testing.assert_array_equal(ics.obs["qc_pass"], again.obs["qc_pass"])
    kw = ics.uns["keywords"].set_index("keyword")["value"]
    assert kw["$P5N"] == "BUV395-A" and "$FIL" not in kw.index
    surf = ad.read_h5ad(out / "events" / "P01-D0-SURF.h5ad")
    ref = ingest_sample(folder / "cytometry" / "P01-D0-SURF.fcs", batch.panels["cytometry_surface_demo"],
                        spill=read_spillover_file(out / "compensation.csv"))
    assert set(surf.layers) == {"raw", "compensated"}
    np.testing.assert_array_equal(surf.layers["raw"], ref.layers["raw"])
    np.testing.assert_array_equal(surf.layers["compensated"], ref.layers["compensated"])
    np.testing.assert_array_equal(surf.X, ref.X)
    # the X-only file is smaller than the tube's FCS file, its events smaller than stored plainly
    fcs_size = (folder / "cytometry" / "P01-D0-ICS-STIM.fcs").stat().st_size
    assert (out / "events" / "P01-D0-ICS-STIM.h5ad").stat().st_size < fcs_size
    with h5py.File(out / "events" / "P01-D0-ICS-STIM.h5ad") as f:
        assert f["X"].id.get_storage_size() < 0.9 * f["X"].size * 4


def test_one_command_processes_several_units_and_releases_each_tube(tmp_path: Path) -> None:
    """`immuno cytometry process BATCH S1 S2 ...` writes every tube of every unit (an ICS
    pair's control with it) in one process; each outcome is handed over complete and its
    events released before the next tube is read."""
    from immuno.cli import main
    from immuno.cytometry import process_unit

    folder = _write_batch(tmp_path / "b", ["P01"], 4000)
    out = tmp_path / "out"
    assert main(["cytometry", "process", str(folder), "P01-D0-ICS-STIM", "P01-M1-ICS-STIM", "P01-M1-ICS-UNSTIM",
                 "--out", str(out), "--no-plots"]) == 0
    done = sorted(p.name for p in (out / "samples").iterdir())
    assert done == ["P01-D0-ICS-STIM", "P01-D0-ICS-UNSTIM", "P01-M1-ICS-STIM", "P01-M1-ICS-UNSTIM"]
    assert all((out / "events" / f"{s}.h5ad").is_file() for s in done)
    info = batch_samples(load_batch(folder), ["P01-D10-ICS-STIM"])[0]
    seen: list[tuple[str, bool]] = []
    outcomes = process_unit(info, emit=lambda o: seen.append((o.info.sample_id, o.tube is not None)))
    # the control first (it sets the cytokine gates), each with its events when handed over
    assert seen == [("P01-D10-ICS-UNSTIM", True), ("P01-D10-ICS-STIM", True)]
    assert [o.info.sample_id for o in outcomes] == ["P01-D10-ICS-STIM", "P01-D10-ICS-UNSTIM"]
    assert all(o.ok and o.tube is None for o in outcomes)
    kept = process_unit(info)
    assert kept[0].tube is not None and kept[0].events.n_obs == 4000
    assert kept[0].statistics.equals(outcomes[0].statistics)


def test_warm_up_compiles_the_kernels_for_the_pipeline_s_own_layouts() -> None:
    """`immuno cytometry warm` runs a synthetic pair through the pipeline: afterwards the
    gate tests have code for column-major float32 events (the per-tube matrix) and the
    static path's float64 chunks, so no sample job compiles them."""
    from immuno.cytometry.analysis.order_stats import _order_stats32
    from immuno.cytometry.engine.gate_tree import _ellipse, _polygon, _quadrants, _rectangle
    from immuno.cytometry.pipeline.warm import warm

    assert warm(events=2000) > 0
    for kernel in (_rectangle, _polygon, _ellipse, _quadrants):
        layouts = {(str(sig[0].dtype), sig[0].layout) for sig in kernel.signatures}
        assert ("float32", "F") in layouts, (kernel, layouts)
    assert any(str(sig[0].dtype) == "float64" for sig in _rectangle.signatures)
    assert _order_stats32.signatures


def test_gating_figure_draws_each_gate_where_it_is(tmp_path: Path) -> None:
    """One panel per gate, four to a row; each gate's outline is drawn at its coordinates
    (a range gate's cut at its value on the axis), and the same events give the same file."""
    from PIL import Image

    from immuno.cytometry.engine.gates import PolygonGate, RectangleGate
    from immuno.cytometry.pipeline.plots import MARGINS, PANEL, plot_gating

    rng = np.random.default_rng(3)
    events = np.column_stack([rng.normal(0.3, 0.05, 20_000), rng.normal(0.5, 0.05, 20_000)]).astype(np.float32)
    gates = [PolygonGate("blob", None, ("a", "b"), ((0.2, 0.4), (0.4, 0.4), (0.4, 0.6), (0.2, 0.6))),
             RectangleGate("high", "blob", ("a",), (0.3,), (None,))]
    inside = (events[:, 0] > 0.2) & (events[:, 0] < 0.4) & (events[:, 1] > 0.4) & (events[:, 1] < 0.6)
    masks = {"root": np.ones(20_000, bool), "blob": inside, "high": inside & (events[:, 0] >= 0.3)}
    path = tmp_path / "g.png"
    plot_gating(events, ["a", "b"], gates, masks, path, labels={"a": "A (a)"}, title="S1")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (PANEL[1] + 22, 2 * PANEL[0], 3)
    red = (image[:, :, 0] > 200) & (image[:, :, 1] < 60) & (image[:, :, 2] < 90)
    assert red[:, : PANEL[0]].sum() > 200 and red[:, PANEL[0]:].sum() > 100
    # the range gate's cut: a vertical line at a = 0.3 inside the second panel's plot area
    columns = np.flatnonzero(red[:, PANEL[0]:].sum(axis=0) > 100)
    xs = events[inside, 0]
    lo, hi = np.percentile(xs, [0.1, 99.9])
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    expected = MARGINS[0] + (0.3 - lo) / (hi - lo) * (PANEL[0] - MARGINS[0] - MARGINS[2] - 1)
    assert len(columns) and abs(columns.mean() - expected) <= 2
    again = tmp_path / "again.png"
    plot_gating(events, ["a", "b"], gates, masks, again, labels={"a": "A (a)"}, title="S1")
    assert again.read_bytes() == path.read_bytes()
