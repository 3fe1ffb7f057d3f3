"""The workflow end to end on a small demo batch, and its plans (local and SLURM)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from immuno.cli import main
from immuno.contract.measurements import COLUMNS

from .conftest import PROJECT, SMALL_DEMO


def _snakemake(workdir: Path, overrides: dict, *args: str) -> subprocess.CompletedProcess[str]:
    override = workdir / "overrides.yaml"
    override.write_text(yaml.safe_dump(overrides))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT / "snakefile"),
           "--directory", str(workdir), "--configfile", str(PROJECT / "config" / "config.yaml"),
           str(override), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


def _demo_config(workdir: Path) -> dict:
    return {"results": str(workdir / "results"), "batches": ["demo"],
            "demo": {"make": True, "folder": "demo", **SMALL_DEMO}}


def test_default_config_plans(tmp_path: Path) -> None:
    done = _snakemake(tmp_path, {"results": str(tmp_path / "results")}, "--dry-run", "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "demo_batch" in done.stdout and "validate_batch" in done.stdout


def test_slurm_profile_plans(tmp_path: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="install the [slurm] extra")
    done = _snakemake(tmp_path, {"results": str(tmp_path / "results")}, "--dry-run",
                      "--workflow-profile", str(PROJECT / "workflows" / "profiles" / "slurm"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "demo_batch" in done.stdout


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("wf")
    done = _snakemake(workdir, _demo_config(workdir), "--cores", "2")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    return workdir


@pytest.mark.slow
def test_workflow_writes_the_contract(workflow_run: Path) -> None:
    out = workflow_run / "results" / "demo"
    m = pd.read_parquet(out / "measurements.parquet")
    assert list(m.columns) == COLUMNS
    assert set(m.assay) == {"cytometry", "chemokine", "chimerism"}
    assert not m.duplicated(["batch_id", "sample_id", "assay", "panel", "feature"]).any()
    assert (m.loc[m.value.notna(), "unit"].fillna("") != "").all()
    assert set(m.batch_id) == {"demo"}
    for qc in ("metrics", "flags"):
        assert (out / "qc" / f"{qc}.parquet").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["schema_version"] and prov["batch_id"] == "demo"
    sheet = pd.read_csv(workflow_run / "demo" / "samplesheet.csv", dtype=str, keep_default_na=False)
    assert set(sheet["file"]) <= set(prov["inputs"])
    assert all(len(v["sha256"]) == 64 for v in prov["inputs"].values())
    assert prov["panels"] and all(len(v["sha256"]) == 64 for v in prov["panels"].values())
    assert prov["software"]["immuno"] != "not installed"
    # ingested forms of every file
    cyto = sheet.loc[sheet.assay == "cytometry", "sample_id"]
    assert all((out / "cytometry" / "events" / f"{s}.h5ad").is_file() for s in cyto)
    assert (out / "chemokines" / "wells.parquet").is_file()
    assert (out / "chimerism" / "genotypes.parquet").is_file()
    # no temporary files left behind
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_a_tube_labelling_every_channel_runs_to_the_report(workflow_run: Path) -> None:
    """MACSQuant-style files ($PnS on every channel) beside normal ones: the demo has one."""
    from immuno.cytometry.io.fcs import read_fcs_header

    out = workflow_run / "results" / "demo"
    sheet = pd.read_csv(workflow_run / "demo" / "samplesheet.csv", dtype=str, keep_default_na=False)
    surface = sheet[sheet["tube"] == "stained"]
    labelled = {s for s, f in zip(surface["sample_id"], surface["file"], strict=True)
                if all(read_fcs_header(workflow_run / "demo" / f).markers)}
    assert labelled and labelled != set(surface["sample_id"])
    m = pd.read_parquet(out / "measurements.parquet")
    done = m[m["sample_id"].isin(labelled) & (m["feature"] == "Th1")]
    assert len(done) == len(labelled) and done["qc_pass"].all()
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_workflow_matches_truth_headlines(workflow_run: Path) -> None:
    m = pd.read_parquet(workflow_run / "results" / "demo" / "measurements.parquet")
    truth = pd.read_csv(workflow_run / "demo" / "truth.csv")
    j = truth.merge(m, on=["sample_id", "assay", "feature"], suffixes=("_true", ""))
    # every assay's headline truth is reported
    for assay, feature in [("cytometry", "Th1"), ("chemokine", "CXCL10"), ("chimerism", "donor_fraction")]:
        assert len(j[(j.assay == assay) & (j.feature == feature)]) > 0, (assay, feature)


@pytest.mark.slow
def test_workflow_is_deterministic(workflow_run: Path, tmp_path: Path) -> None:
    config = _demo_config(workflow_run) | {"results": str(tmp_path / "again"), "demo": {"make": False}}
    done = _snakemake(workflow_run, config, "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    first = pd.read_parquet(workflow_run / "results" / "demo" / "measurements.parquet")
    second = pd.read_parquet(tmp_path / "again" / "demo" / "measurements.parquet")
    pd.testing.assert_frame_equal(first, second)


def test_run_refuses_a_bad_batch_and_writes_nothing(demo_copy: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "visit"] = "D100"
    sheet.to_csv(demo_copy / "samplesheet.csv", index=False)
    results = tmp_path / "results"
    status = main(["run", str(demo_copy), "--results", str(results)])
    err = capsys.readouterr().err
    assert status == 2
    assert "'D100' is not an allowed visit" in err and "nothing was processed" in err
    assert not results.exists()


@pytest.mark.slow
def test_study_store_reads_every_batch(workflow_run: Path) -> None:
    from immuno.study import Study

    results = workflow_run / "results"
    study = Study(results)
    batch = pd.read_parquet(results / "demo" / "measurements.parquet")
    pd.testing.assert_frame_equal(study.measurements(), batch)
    # the rebuilt study table is what the workflow wrote
    pd.testing.assert_frame_equal(pd.read_parquet(results / "study" / "measurements.parquet"), batch)
    by_sql = study.sql("select count(*) as n from measurements where assay = 'chimerism'")
    assert int(by_sql.n[0]) == int((batch.assay == "chimerism").sum())
    adata = study.to_anndata("chemokine")
    assert adata.n_obs == batch[batch.assay == "chemokine"].sample_id.nunique()
    assert "CXCL10" in adata.var_names
    change = study.change_from_baseline("chemokine")
    d0 = change[(change.visit == "D0") & change.value.notna()]
    assert len(d0) and (d0.change == 0).all()


@pytest.mark.slow
def test_report_is_self_contained(workflow_run: Path) -> None:
    html = (workflow_run / "results" / "demo" / "report.html").read_text()
    assert "Batch demo" in html
    for section in ("Cytometry", "Chemokine", "Chimerism", "Provenance"):
        assert section in html
    assert "src=\"http" not in html and "href=\"http" not in html
    assert "data:image/png;base64," in html


def test_older_results_schema_is_recognised(tmp_path: Path) -> None:
    from immuno.errors import UserError
    from immuno.study import Study

    batch = tmp_path / "old"
    batch.mkdir()
    (batch / "provenance.json").write_text(json.dumps({"schema_version": "0.1"}))
    with pytest.raises(UserError, match="schema version '0.1'"):
        Study(tmp_path)


def test_run_options_may_follow_batches(small_demo: Path, tmp_path: Path) -> None:
    results = tmp_path / "res"
    status = main(["run", str(small_demo), "--results", str(results), "--cores", "1", "--", "--dry-run"])
    assert status == 0
    assert not (results / "demo" / "measurements.parquet").exists()


def test_workflow_writes_no_results_for_an_invalid_batch(demo_copy: Path, tmp_path: Path) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "visit"] = "D7"
    sheet.to_csv(demo_copy / "samplesheet.csv", index=False)
    results = tmp_path / "results"
    done = _snakemake(tmp_path, {"results": str(results), "batches": [str(demo_copy)], "demo": {"make": False}},
                      "--cores", "1")
    assert done.returncode != 0
    assert not (results / demo_copy.name).exists()
    log = (results / "logs" / f"validate_batch.{demo_copy.name}.log").read_text()
    assert "'D7' is not an allowed visit" in log
