"""Safe, resumable, verifiable runs, end to end with `immuno run` in subprocesses.

One lean batch (see conftest) in a folder whose name holds spaces, quotes, ``$(...)``,
backquotes, ``;`` and non-ASCII letters is run once without interruption, and once more
into another results folder with kill -9 at three points (and a second run on the same
results folder refused meanwhile). Results must be byte-identical, no command hidden in
the folder name may run, and ``immuno verify`` must see every change.
"""

from __future__ import annotations

import filecmp
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from immuno.io import sha256_file, sha256_path

#: a batch folder name no shell may see unquoted; each PWNED file would prove a command ran
HOSTILE = "b 'q\" $(touch PWNED1) ; touch PWNED2 ; `touch PWNED3` & é ü"
#: files that differ from run to run by design: times (provenance and the report showing
#: it) and logs
NOT_DATA = ("provenance.json", "report.html")

pytestmark = pytest.mark.slow


def immuno(*args: str, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """``immuno ARGS`` in a subprocess, as a user would type it."""
    return subprocess.run([sys.executable, "-m", "immuno", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def data_files(batch_dir: Path) -> dict[str, Path]:
    """The data files of a batch results folder, by relative path."""
    files = {}
    for path in sorted(batch_dir.rglob("*")):
        rel = path.relative_to(batch_dir)
        if path.is_file() and rel.parts[0] != "logs" and rel.name not in NOT_DATA \
                and not any(p.startswith(".") for p in rel.parts):
            files[rel.as_posix()] = path
    return files


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("safety")


@pytest.fixture(scope="module")
def hostile(lean_batch: Path, space: Path) -> Path:
    dest = space / "batches" / HOSTILE
    shutil.copytree(lean_batch, dest)
    return dest


@pytest.fixture(scope="module")
def clean_run(hostile: Path, space: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    cwd = space / "cwd-clean"
    cwd.mkdir()
    results = space / "res-clean"
    done = immuno("run", str(hostile), "--results", str(results), "--cores", "2", cwd=cwd)
    return done, results


def test_user_data_never_reaches_a_shell(clean_run: tuple[subprocess.CompletedProcess[str], Path],
                                         space: Path) -> None:
    done, results = clean_run
    assert done.returncode == 0, done.stderr[-3000:]
    out = results / HOSTILE
    assert (out / "report.html").is_file()
    m = pd.read_parquet(out / "measurements.parquet")
    assert set(m["batch_id"]) == {HOSTILE}
    assert set(m["assay"]) == {"cytometry", "chemokine", "chimerism"}
    # no command hidden in the folder name ran, wherever its working folder was
    assert list(space.rglob("PWNED*")) + list(Path.cwd().glob("PWNED*")) == []


def test_every_step_reads_files_checked_against_the_runs_hashes(
        clean_run: tuple[subprocess.CompletedProcess[str], Path], hostile: Path, space: Path) -> None:
    _, results = clean_run
    # the commands of every job after validation (forced), exactly as the shell receives them
    done = immuno("run", str(hostile), "--results", str(results), "--dry-run", "--", "--printshellcmds",
                  "--forcerun", "cytometry_compensation", "cytometry_patient", "cytometry_controls",
                  "chemokines_batch", "chimerism_batch", cwd=space)
    assert done.returncode == 0, done.stderr[-3000:]
    commands = [shlex.split(line.strip()) for line in done.stdout.splitlines()
                if " -m immuno step " in line and not line.lstrip().startswith("reason")]
    assert commands
    sheet = pd.read_csv(hostile / "samplesheet.csv", dtype=str, keep_default_na=False)
    # a LEGENDplex plate is a folder, hashed as the tree of its files
    expected = {str(hostile / f): sha256_path(hostile / f) for f in set(sheet["file"])}
    expected[str(hostile / "samplesheet.csv")] = sha256_file(hostile / "samplesheet.csv")
    seen: set[str] = set()
    for argv in commands:
        # the batch folder reaches each command as one argument, unchanged
        assert str(hostile) in argv or "report" in argv or "study" in argv, argv
        cut = argv.index("--")
        for item in argv[:cut]:
            digest, sep, path = item.partition("=")
            if sep and path in expected:
                assert digest == expected[path]
                seen.add(path)
    assert seen == set(expected)  # every data file is checked by the step that reads it


@pytest.fixture(scope="module")
def killed_runs(hostile: Path, space: Path, clean_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict:
    """kill -9 (the whole process group) at three points, each time the same command again."""
    results = space / "res-killed"
    batch_dir = results / HOSTILE
    cwd = space / "cwd-killed"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "immuno", "run", str(hostile), "--results", str(results), "--cores", "2"]
    def written_since(start: float, *paths: Path) -> bool:
        return any(p.exists() and p.stat().st_mtime >= start for p in paths)

    # each point is something this run (started at t) is writing, in the order the jobs
    # depend on each other (so each next run still has the next point ahead of it)
    points: list[tuple[str, Callable[[float], bool]]] = [
        ("a patient's cytometry job writing",
         lambda t: written_since(t, *(batch_dir / ".jobs" / "cytometry" / "patients").glob("*/*"))),
        ("the cytometry batch job writing", lambda t: written_since(t, batch_dir / "cytometry")),
        ("the merge writing", lambda t: written_since(t, batch_dir / "measurements.parquet")),
    ]
    record: dict = {"reruns": [], "left": [], "concurrent": None}
    for n, (name, reached) in enumerate(points):
        started = time.time() - 0.05  # file times come from a coarser clock than time.time()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        deadline = time.time() + 900
        while not reached(started) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before {name}: {proc.communicate()[1][-2000:]}"
        if n == 0:
            # a second run on the same results folder, from another folder, is refused
            other = space / "cwd-other"
            other.mkdir()
            record["concurrent"] = (immuno("run", str(hostile), "--results", str(results), cwd=other), proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        if n:
            record["reruns"].append(err)
        lock = (results / ".immuno" / "lock").read_text()
        record["left"].append({"point": name, "lock": lock,
                               "tmp": [str(p) for p in results.rglob("*.tmp")]})
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1200)
    record["reruns"].append(done.stderr)
    record["final"] = done
    record["results"] = results
    return record


def test_a_second_run_on_the_same_results_is_refused(killed_runs: dict, space: Path) -> None:
    done, pid = killed_runs["concurrent"]
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert "is in use by another run" in lines[0] and f"pid {pid} " in lines[0]
    assert str(space / "cwd-killed") in lines[0]  # names the other run's folder


def test_kill_9_at_three_points_then_the_same_command_finishes(killed_runs: dict) -> None:
    final = killed_runs["final"]
    assert final.returncode == 0, final.stderr[-3000:]
    # each kill left the dead run's lock record, and each next run recovered it by itself
    assert all(json.loads(left["lock"])["pid"] for left in killed_runs["left"])
    for err in killed_runs["reruns"]:
        assert "recovering the results folder after a run that stopped without finishing" in err
    results = killed_runs["results"]
    assert not list(results.rglob("*.tmp"))
    assert (results / ".immuno" / "lock").read_text() == ""  # released


def test_killed_runs_give_the_same_bytes_as_an_uninterrupted_run(
        killed_runs: dict, clean_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    clean = data_files(clean_run[1] / HOSTILE)
    killed = data_files(killed_runs["results"] / HOSTILE)
    assert set(killed) == set(clean)
    assert any(k.endswith(".h5ad") for k in clean) and any(k.endswith(".png") for k in clean)
    different = [k for k in clean if not filecmp.cmp(clean[k], killed[k], shallow=False)]
    assert different == []
    for name in ("measurements.parquet", "qc_metrics.parquet", "qc_flags.parquet"):
        assert filecmp.cmp(clean_run[1] / "study" / name, killed_runs["results"] / "study" / name, shallow=False)


def test_verify_a_finished_run(clean_run: tuple[subprocess.CompletedProcess[str], Path], hostile: Path,
                               space: Path) -> None:
    _, results = clean_run
    done = immuno("verify", str(results), "--inputs", str(hostile), cwd=space)
    assert done.returncode == 0, done.stdout + done.stderr
    prov = json.loads((results / HOSTILE / "provenance.json").read_text())
    assert f"{len(prov['outputs']) + len(prov['inputs'])} files match" in done.stdout
    assert "measurements.parquet" in prov["outputs"] and "cytometry/events/P01-D0-SURF.h5ad" in prov["outputs"]


def test_verify_finds_an_input_edited_with_its_time_kept(
        clean_run: tuple[subprocess.CompletedProcess[str], Path], hostile: Path, space: Path) -> None:
    _, results = clean_run
    copy = space / "edited" / HOSTILE
    shutil.copytree(hostile, copy)
    fcs = copy / "cytometry" / "P02-D0-SURF.fcs"
    stat = fcs.stat()
    data = bytearray(fcs.read_bytes())
    data[-100] ^= 0x01  # one bit of one event
    fcs.write_bytes(bytes(data))
    os.utime(fcs, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    done = immuno("verify", str(results), "--inputs", str(copy), cwd=space)
    assert done.returncode == 1
    assert done.stdout.strip() == f"{fcs}: input file changed (SHA-256 differs from provenance)"


def test_verify_finds_changed_missing_and_unrecorded_outputs(
        clean_run: tuple[subprocess.CompletedProcess[str], Path], space: Path) -> None:
    copy = space / "results-copy" / HOSTILE
    shutil.copytree(clean_run[1] / HOSTILE, copy)
    with open(copy / "chemokines" / "wells.parquet", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    (copy / "cytometry" / "plots" / "P01-D0-SURF.png").unlink()
    (copy / "cytometry" / "stray.csv").write_text("x\n")
    done = immuno("verify", str(copy), cwd=space)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{copy}/chemokines/wells.parquet: output file changed (SHA-256 differs from provenance)",
        f"{copy}/cytometry/plots/P01-D0-SURF.png: output file missing",
        f"{copy}/cytometry/stray.csv: not recorded in provenance (written after the batch finished)",
    ]


def test_a_file_edited_with_its_time_kept_reruns_only_its_jobs(killed_runs: dict, hostile: Path,
                                                              space: Path) -> None:
    # last in this module: it edits the shared batch (and the killed run's results)
    results = killed_runs["results"]
    plate = hostile / "chemokine" / "CHEMO_PLATE_01.csv"  # the xPONENT export (not a layout)
    stat = plate.stat()
    text = plate.read_text()
    plate.write_text(text + "\n")  # a blank line more, the numbers unchanged
    os.utime(plate, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    done = immuno("run", str(hostile), "--results", str(results), "--cores", "2", cwd=space)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = {line.split()[-1].rstrip(":") for line in (done.stdout + done.stderr).splitlines()
           if line.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint "))}
    assert ran == {"chemokines_batch", "collect_batch", "report_batch", "study_tables", "all"}
    prov = json.loads((results / HOSTILE / "provenance.json").read_text())
    assert prov["inputs"][f"chemokine/{plate.name}"]["sha256"] == sha256_file(plate)
    assert immuno("verify", str(results), "--inputs", str(hostile), cwd=space).returncode == 0
