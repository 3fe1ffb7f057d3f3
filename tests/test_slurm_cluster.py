"""The workflow on a real one-node SLURM cluster (tests/slurm/cluster.py), against a local run.

One ``immuno run BATCH --profile PROFILE`` of the lean batch goes through
snakemake-executor-plugin-slurm; while a job runs, slurmd is killed and started again
(a node daemon that crashed and came back). The run must finish by itself, every job must
have been a SLURM job that completed on the node, and every result file must be the same
as a local run's. One run carries all three checks: a SLURM run of the lean batch takes
about three minutes on 2 cores (each job starts Snakemake twice, under sbatch and srun).

Skipped, with the reason, where SLURM is not installed or its daemons do not come up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from .conftest import LEAN_TUBES, PROJECT, _run_batch
from .slurm.cluster import Cluster, SlurmUnavailable, start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

#: the lab's profile; the test's own profile is this one with the test cluster's partition
LAB_PROFILE = PROJECT / "workflows" / "profiles" / "slurm" / "config.yaml"
#: the rule whose job is running when slurmd is killed (one per patient, the longest jobs)
KILLED_DURING = "cytometry_patient"
#: files that hold the run's times or its results folder's path, compared without them
TIMED = {"provenance.json", "report.html", "dashboard.html"}
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A one-node cluster on localhost for this module; skips where none can start."""
    try:
        running = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM cluster on this machine: {exc}")
    yield running
    running.stop()


def _profile(cluster: Cluster, folder: Path) -> Path:
    """The lab's SLURM profile with the test cluster's partition, as a profile folder.

    No accounting database: job states come from ``squeue`` (the plugin's fall-back,
    reliable while the cluster's ``MinJobAge`` outlasts three first status intervals);
    the first status check comes after one second, not forty, to keep the test short.
    """
    settings = yaml.safe_load(LAB_PROFILE.read_text(encoding="utf-8"))
    settings["default-resources"] = {
        **settings["default-resources"],
        "slurm_partition": cluster.partition,
    }
    settings["slurm-status-command"] = "squeue"
    settings["slurm-init-seconds-before-status-checks"] = 1
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return folder


@dataclass
class SlurmRun:
    """What the run through SLURM left: its exit status, output and results folder."""

    status: int
    output: str
    results: Path
    #: the SLURM jobs running when slurmd was killed
    killed_during: list[str]
    #: when slurmd was back (local time, as SLURM writes its times)
    restarted: datetime


def _running_job_of_rule(cluster: Cluster, rule: str, run: subprocess.Popen) -> list[str]:
    """Wait for a running job of ``rule`` (the plugin puts the rule in the job's comment)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        done = cluster.command("squeue", "--noheader", "--states=RUNNING", "--format=%i|%k")
        jobs = [line.split("|", 1) for line in done.stdout.splitlines() if "|" in line]
        ids = [job_id for job_id, comment in jobs if f"rule_{rule}" in comment]
        if ids:
            return ids
        time.sleep(0.5)
    raise AssertionError(f"no {rule} job was seen running (run exit status {run.poll()})")


@pytest.fixture(scope="module")
def slurm_run(
    cluster: Cluster, lean_batch: Path, tmp_path_factory: pytest.TempPathFactory
) -> SlurmRun:
    """The lean batch run through SLURM, slurmd killed and restarted while a job runs."""
    work = tmp_path_factory.mktemp("slurm_run")
    profile = _profile(cluster, work / "profile")
    results = work / "R1"
    argv = [
        sys.executable,
        "-m",
        "immuno",
        "run",
        str(lean_batch),
        "--profile",
        str(profile),
        "--results",
        str(results),
    ]
    log = work / "run.log"
    with log.open("w", encoding="utf-8") as out:
        run = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=cluster.env
        )
        try:
            victims = _running_job_of_rule(cluster, KILLED_DURING, run)
            cluster.kill_slurmd()
            # the node without its daemon for a while; the job's slurmstepd goes on
            time.sleep(3)
            cluster.start_slurmd()
            restarted = datetime.now()
            status = run.wait(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
    return SlurmRun(status, log.read_text(encoding="utf-8"), results, victims, restarted)


@pytest.fixture(scope="module")
def local_results(lean_batch: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same batch run on this machine (no profile)."""
    return _run_batch(lean_batch, tmp_path_factory.mktemp("local_run") / "results")


def test_the_run_survives_a_slurmd_restart(slurm_run: SlurmRun, cluster: Cluster) -> None:
    assert slurm_run.status == 0, slurm_run.output[-5000:]
    assert re.search(r"^(\d+) of \1 steps \(100%\) done", slurm_run.output, re.M)
    completed = {job["JobId"]: job for job in cluster.completed_jobs()}
    # the jobs that were running when slurmd died ran on after it came back and finished
    # (not failed, not requeued)
    for job_id in slurm_run.killed_during:
        job = completed[job_id]
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert datetime.fromisoformat(job["EndTime"]) >= slurm_run.restarted.replace(microsecond=0)
    # the node's daemon started twice: the run's jobs went on across the restart
    assert cluster.log("slurmd").count("slurmd started on") == 2, cluster.log_tail("slurmd")


def test_every_job_went_through_slurm(slurm_run: SlurmRun, cluster: Cluster) -> None:
    run_id = re.search(r"SLURM run ID: (\S+)", slurm_run.output).group(1)
    submitted = dict(
        re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", slurm_run.output)
    )
    rules = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", slurm_run.output, re.M)
    local = re.findall(r"^localrule (\w+):", slurm_run.output, re.M)
    # every step but the final target was a SLURM job (11 of the lean batch's 12)
    assert local == ["all"]
    assert len(submitted) == len(rules) - 1 >= 11
    completed = {job["JobId"]: job for job in cluster.completed_jobs()}
    assert set(completed) == set(submitted.values())
    for job in completed.values():
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Name"] == run_id and job["NodeList"] == "localhost"
        assert job["Partition"] == cluster.partition


def _result_files(results: Path) -> dict[str, Path]:
    """Every file of a results folder but Snakemake's, the steps' logs and the run's own
    configuration (which names the results folder)."""
    files = {}
    for path in results.rglob("*"):
        rel = path.relative_to(results)
        if not path.is_file() or {".snakemake", "logs"} & set(rel.parts):
            continue
        if rel.as_posix() in {".immuno/config.yaml", ".immuno/lock"}:
            continue
        files[rel.as_posix()] = path
    return files


def _without_times(path: Path, results: Path) -> object:
    """A file that records the run's times, with them (and the results folder) left out."""
    if path.suffix == ".json":
        record = json.loads(path.read_text(encoding="utf-8"))
        return {key: value for key, value in record.items() if key not in {"started", "finished"}}
    text = path.read_text(encoding="utf-8").replace(str(results), "RESULTS")
    return ISO_TIME.sub("TIME", text)


def test_results_are_identical_to_a_local_run(slurm_run: SlurmRun, local_results: Path) -> None:
    assert slurm_run.status == 0, slurm_run.output[-5000:]
    here, there = _result_files(local_results), _result_files(slurm_run.results)
    assert sorted(there) == sorted(here)
    batch = "lean"
    assert f"{batch}/measurements.parquet" in here
    for tube in LEAN_TUBES:  # the gated tubes' own files are among those compared
        for name in (
            f"samples/{tube}/sample_measurements.parquet",
            f"events/{tube}.h5ad",
            f"gatingml/{tube}.xml",
        ):
            assert f"{batch}/cytometry/{name}" in here
    differ = []
    for name, path in sorted(here.items()):
        if path.name in TIMED:
            same = _without_times(path, local_results) == _without_times(
                there[name], slurm_run.results
            )
        else:
            same = path.read_bytes() == there[name].read_bytes()
        if not same:
            differ.append(name)
    assert differ == [], differ
