"""The cytometry rules of the workflow: per-sample jobs, the batch matrix and the aggregate."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from immuno.cli import main
from immuno.contract.batch import load_batch, write_sheet
from immuno.cytometry import process_batch

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cyto_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cytometry-only batch: one patient at three visits, 5000 events per tube."""
    from immuno.demo import cytometry as demo

    folder = tmp_path_factory.mktemp("wfc") / "cytobatch"
    folder.mkdir()
    rows, truth = demo.simulate(folder, 3, ["P01"], ["D0", "D10", "M1"], 5000)
    write_sheet(rows, folder / "samplesheet.csv")
    pd.DataFrame(truth).to_csv(folder / "truth.csv", index=False)
    return folder


def _snakemake(workdir: Path, batch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    override = workdir / "overrides.yaml"
    override.write_text(yaml.safe_dump({"results": str(workdir / "results"), "batches": [str(batch)],
                                        "demo": {"make": False}}))
    # targets and options first: --configfile takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT / "snakefile"),
           "--directory", str(workdir), *args, "--configfile", str(PROJECT / "config" / "config.yaml"),
           str(override)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_plan_has_one_job_per_gated_tube(cyto_batch: Path, tmp_path: Path) -> None:
    # the plan is known once the validation checkpoint has run
    sheet_out = str(tmp_path / "results" / cyto_batch.name / "validation" / "samplesheet.csv")
    done = _snakemake(tmp_path, cyto_batch, sheet_out, "--cores", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    # the batch's cytometry folder is the cytometry_batch rule's (directory) output
    target = str(tmp_path / "results" / cyto_batch.name / "cytometry")
    done = _snakemake(tmp_path, cyto_batch, target, "--dry-run", "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(re.findall(r"^(cytometry_\w+)\s+(\d+)\s*$", done.stdout, flags=re.MULTILINE))
    # one job per patient: P01's 3 visits x (ICS pair + surface tube) in one process, and
    # the reference control's ICS pair and surface tube (no patient) in another; an ICS pair
    # is gated together (the unstimulated tube sets the stimulated tube's gates); single
    # stains and the unstained tube feed the one batch-level compensation job and are
    # ingested by one more
    assert counts == {"cytometry_patient": "2", "cytometry_compensation": "1", "cytometry_controls": "1",
                      "cytometry_batch": "1"}


@pytest.mark.slow
def test_workflow_matches_the_library(cyto_batch: Path, tmp_path: Path) -> None:
    # the batch's cytometry folder is the cytometry_batch rule's (directory) output
    target = str(tmp_path / "results" / cyto_batch.name / "cytometry")
    done = _snakemake(tmp_path, cyto_batch, target, "--cores", "2")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = tmp_path / "results" / cyto_batch.name
    # the batch holds a tube labelling every channel in $PnS (MACSQuant-style) beside
    # normal ones: it is gated and its per-event AnnData is written like the others'
    from immuno.cytometry.io.fcs import read_fcs_header

    assert all(read_fcs_header(cyto_batch / "cytometry" / "P01-D0-SURF.fcs").markers)
    assert not all(read_fcs_header(cyto_batch / "cytometry" / "P01-D10-SURF.fcs").markers)
    flags = pd.read_parquet(out / "cytometry" / "qc_flags.parquet")
    assert not (flags["severity"] == "fail").any(), flags[flags["severity"] == "fail"]
    wf = pd.read_parquet(out / "cytometry" / "cytometry_measurements.parquet")
    # one log per rule and per patient's job (a line per tube), the batch matrix computed once
    assert (out / "logs" / "cytometry_compensation.log").is_file()
    log = (out / "logs" / "cytometry" / "P01.log").read_text()
    assert "P01-D10-SURF: " in log and "P01-M1-ICS-STIM: " in log
    sheet = pd.read_csv(cyto_batch / "samplesheet.csv", dtype=str, keep_default_na=False)
    gated = sheet[~sheet["tube"].isin(["single_stain", "unstained"])]
    assert {p.stem for p in (out / "logs" / "cytometry").glob("*.log")} == set(gated["patient_id"])
    assert (out / "cytometry" / "gatingml" / "P01-D10-SURF.xml").is_file()
    assert (out / "cytometry" / "plots" / "P01-D10-SURF.png").is_file()
    assert all((out / "cytometry" / "events" / f"{s}.h5ad").is_file() for s in sheet["sample_id"])
    lib = process_batch(load_batch(cyto_batch), tmp_path / "lib", plots=False, events=False)
    pd.testing.assert_frame_equal(wf, lib)  # same numbers through the workflow as in a notebook


def test_cli_steps_and_failure_report(cyto_batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cyto"
    assert main(["cytometry", "compensation", str(cyto_batch), "--out", str(out / "compensation.csv")]) == 0
    for sid in ("P01-M1-ICS-STIM", "P01-M1-SURF"):
        assert main(["cytometry", "process", str(cyto_batch), sid, "--out", str(out), "--no-plots",
                     "--no-events", "--compensation", str(out / "compensation.csv")]) == 0
    # a surface tube without the batch matrix fails as a sample (flagged), not as a command
    assert main(["cytometry", "process", str(cyto_batch), "P01-D0-SURF", "--out", str(out), "--no-plots",
                 "--no-events"]) == 0
    assert "FAILED" in capsys.readouterr().out
    flags = pd.read_parquet(out / "samples" / "P01-D0-SURF" / "sample_qc_flags.parquet")
    assert flags["severity"].tolist() == ["fail"] and "--compensation" in flags["reason"].iloc[0]
    m = pd.read_parquet(out / "samples" / "P01-M1-SURF" / "sample_measurements.parquet")
    assert {"Th1", "Th2", "Th17", "Th1_17", "Treg", "Th1_Th2_ratio"} <= set(m["feature"])
    # an unknown sample is the user's mistake: exit status 2 with the sheet named
    assert main(["cytometry", "process", str(cyto_batch), "P09-D0-SURF", "--out", str(out)]) == 2
    assert "samplesheet.csv" in capsys.readouterr().err
