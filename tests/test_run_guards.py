"""The guards of a run, one by one: lock, input hashes, quoting, privacy, failure messages,
Snakemake hygiene (lint, schemas, SLURM plan)."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from immuno.cli import main
from immuno.contract.batch import (
    ASSAYS,
    CODE,
    DEFAULT_PATIENT_ID_PATTERN,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ROLES,
    TUBES,
    load_batch,
    write_sheet,
)
from immuno.errors import RunError, UserError
from immuno.io import sha256_file
from immuno.run import lock as runlock
from immuno.run.steps import check_unchanged, gather, parse_expectations, run_step, running_marker
from immuno.run.workflow import recover

from .conftest import PROJECT

WORKFLOWS = PROJECT / "workflows"


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --- the lock ---------------------------------------------------------------------------

def test_a_held_lock_refuses_a_second_run_naming_the_first(tmp_path: Path) -> None:
    first = runlock.acquire(tmp_path, command="immuno run B1")
    try:
        with pytest.raises(RunError, match=r"in use by another run \(pid \d+ on .*: immuno run B1\)"):
            runlock.acquire(tmp_path, command="immuno run B2")
    finally:
        first.release()
    again = runlock.acquire(tmp_path)  # released: free again, and nothing stale
    assert again.stale is None
    again.release()


def test_a_lock_left_by_a_dead_run_is_recovered(tmp_path: Path) -> None:
    record = {"pid": 999999, "host": "h", "started": "2026-01-01T00:00:00+00:00", "cwd": "/x",
              "command": "immuno run B"}
    (tmp_path / ".immuno").mkdir()
    (tmp_path / ".immuno" / "lock").write_text(json.dumps(record))  # written, never flock-ed
    lock = runlock.acquire(tmp_path)
    try:
        assert lock.stale == record
        assert json.loads((tmp_path / ".immuno" / "lock").read_text())["pid"] != 999999
    finally:
        lock.release()


def test_recovery_removes_interrupted_writes_only(tmp_path: Path) -> None:
    (tmp_path / "b" / "qc").mkdir(parents=True)
    stale = tmp_path / "b" / "qc" / ".flags.parquet.k3j2h1.tmp"
    stale.write_bytes(b"")
    kept = tmp_path / "b" / "qc" / "flags.parquet"
    kept.write_bytes(b"x")
    assert recover(tmp_path) == [str(stale)]
    assert not stale.exists() and kept.exists()


def test_the_outputs_of_a_killed_step_are_removed_by_the_next_run(tmp_path: Path) -> None:
    room = tmp_path / "b" / "chemokines"
    seen = {}

    def step_killed_halfway(argv: list[str]) -> int:
        room.mkdir(parents=True)
        (room / "wells.parquet").write_text("half")
        seen["marked"] = running_marker(room).is_file()
        raise KeyboardInterrupt  # stands for the kill: nothing after this line runs in a real kill

    with pytest.raises(KeyboardInterrupt):
        run_step(["chemokines", "process"], step_killed_halfway, outputs=[str(room)])
    assert seen["marked"]
    running_marker(room).touch()  # what a kill -9 leaves (the finally clause never runs)
    finished = tmp_path / "b" / "chimerism"
    finished.mkdir()
    assert recover(tmp_path) == [str(room)]
    assert not room.exists() and not running_marker(room).exists() and finished.exists()


# --- input hashes -----------------------------------------------------------------------

def test_expectations_are_checked_before_and_after_the_step(tmp_path: Path) -> None:
    data = tmp_path / "plate.csv"
    data.write_text("a,b\n1,2\n")
    expect = [f"{sha256_file(data)}={data}"]
    check_unchanged(parse_expectations(expect), "before")  # unchanged: no error

    def step_that_sees_the_file_change(argv: list[str]) -> int:
        data.write_text("a,b\n1,3\n")  # re-exported while the step runs
        return 0

    with pytest.raises(RunError, match=r"plate.csv changed since the run started .* \(after the step ran\)"):
        run_step(["anything"], step_that_sees_the_file_change, expect=expect)


def test_a_step_on_a_changed_file_fails_in_one_line_and_writes_nothing(
        demo_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fcs = demo_copy / "cytometry" / "P01-D0-SURF.fcs"
    digest = sha256_file(fcs)
    with open(fcs, "ab") as fh:
        fh.write(b"\0")  # the file changed after the run hashed it
    out = tmp_path / "job"
    status = main(["step", "--expect", f"{digest}={fcs}", "--", "cytometry", "process", str(demo_copy),
                   "P01-D0-SURF", "--out", str(out)])
    line = one_line(capsys.readouterr().err)
    assert status == 1
    assert line.startswith(f"error: {fcs} changed since the run started (SHA-256 {digest[:12]}")
    assert "run the same command again" in line
    assert not out.exists()


def test_bad_expectations_and_conflicting_job_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="expected SHA256=PATH"):
        parse_expectations(["abc=/x"])
    for job in ("a", "b"):
        (tmp_path / job / "events").mkdir(parents=True)
        (tmp_path / job / "events" / "S1.h5ad").write_text(job)
    with pytest.raises(RunError, match="written by two steps"):
        gather([tmp_path / "a", tmp_path / "b"], tmp_path / "into")


def test_gather_links_every_job_file(tmp_path: Path) -> None:
    (tmp_path / "a" / "samples" / "S1").mkdir(parents=True)
    (tmp_path / "a" / "samples" / "S1" / "t.parquet").write_text("1")
    (tmp_path / "a" / ".snakemake_timestamp").write_text("")
    (tmp_path / "b" / "plots").mkdir(parents=True)
    (tmp_path / "b" / "plots" / "S2.png").write_text("2")
    assert gather([tmp_path / "a", tmp_path / "b"], tmp_path / "room") == 2
    assert (tmp_path / "room" / "samples" / "S1" / "t.parquet").read_text() == "1"
    assert (tmp_path / "room" / "plots" / "S2.png").stat().st_ino == (tmp_path / "b" / "plots" / "S2.png").stat().st_ino
    assert not (tmp_path / "room" / ".snakemake_timestamp").exists()


# --- quoting ----------------------------------------------------------------------------

#: constants of common.smk pasted into commands: made with shlex.quote, like `:q`
QUOTED_CONSTANTS = {"IMMUNO", "STEP", "ROOM_OPTS"}


def shell_commands() -> dict[str, str]:
    """Every rule's shell command, by rule name, from the .smk files."""
    commands = {}
    for name, body in rule_bodies():
        shell = re.search(r"shell:\n((?:[ \t]+\".*\"\n)+)", body)
        if shell:
            commands[name] = "".join(re.findall(r"\"(.*)\"", shell.group(1)))
    return commands


def rule_bodies() -> list[tuple[str, str]]:
    """(name, text) of every rule and checkpoint in the .smk files."""
    bodies = []
    for smk in sorted(WORKFLOWS.glob("*.smk")):
        parts = re.split(r"^[ \t]*(?:rule|checkpoint) (\w+):\n", smk.read_text(), flags=re.M)
        bodies += list(zip(parts[1::2], parts[2::2], strict=True))
    return bodies


def test_every_value_in_a_shell_command_is_quoted() -> None:
    commands = shell_commands()
    assert set(commands) == {"demo_batch", "validate_batch", "collect_batch", "cytometry_compensation",
                             "cytometry_patient", "cytometry_controls", "cytometry_batch", "chemokines_batch",
                             "chimerism_batch", "report_batch", "study_tables"}
    for rule, command in commands.items():
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
            assert field.endswith(":q") or field in QUOTED_CONSTANTS, (rule, field)


# --- privacy ----------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["DUPONT", "Jean.DUPONT", "dupont-jean", "P01DUPONT", "JEAN_DUPONT_1985x"])
def test_names_are_not_patient_codes(small_demo: Path, tmp_path: Path, code: str) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    sheet = pd.read_csv(small_demo / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet = sheet[sheet["assay"] == "chemokine"].copy()
    sheet.loc[sheet.index[0], "patient_id"] = code
    for f in set(sheet["file"]):
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_bytes((small_demo / f).read_bytes())
    write_sheet(sheet.to_dict("records"), folder / "samplesheet.csv")
    with pytest.raises(UserError) as info:
        load_batch(folder)
    (problem,) = info.value.problems
    assert problem.where == f"{folder / 'samplesheet.csv'}: row 2, column patient_id"
    assert f"{code!r} does not match the patient code pattern {DEFAULT_PATIENT_ID_PATTERN}" in problem.what


def test_the_patient_code_pattern_is_configuration(small_demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert re.fullmatch(DEFAULT_PATIENT_ID_PATTERN, "LYS-014") and re.fullmatch(DEFAULT_PATIENT_ID_PATTERN, "P01")
    load_batch(small_demo)  # P01, P02; the reference control REFCTRL is a batch control
    with pytest.raises(UserError, match=r"'P01' does not match the patient code pattern \^LYS-"):
        load_batch(small_demo, patient_id_pattern=r"^LYS-\d{3}$")
    monkeypatch.setenv("IMMUNO_PATIENT_ID_PATTERN", r"^LYS-\d{3}$")  # what workflow steps receive
    with pytest.raises(UserError, match="does not match the patient code pattern"):
        load_batch(small_demo)
    assert main(["validate", str(small_demo), "--patient-id-pattern", r"^P\d+$"]) == 0


# --- failure messages -------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small RAM file system mounted at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_read_only_results_folder(small_demo: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        done = subprocess.run([sys.executable, "-m", "immuno", "run", str(small_demo), "--results",
                               str(ro / "results")], capture_output=True, text=True, timeout=600)
        assert done.returncode == 1
        line = one_line(done.stderr)
        assert line.startswith(f"error: cannot write the results folder {ro / 'results'}: read-only file system")
        assert list(ro.iterdir()) == []


def test_disk_full_leaves_nothing_partial(small_demo: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "64k") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        done = subprocess.run([sys.executable, "-m", "immuno", "validate", str(small_demo), "--write",
                               str(full / "sheet.csv")], capture_output=True, text=True, timeout=600)
        assert done.returncode == 1
        line = one_line(done.stderr)
        assert line.startswith("error: no space left on the device") and "free some space" in line
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_disk_full_and_missing_permission_without_a_mount(small_demo: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    real_write_text = Path.write_text

    def half_then_full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", half_then_full)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["validate", str(small_demo), "--write", str(out / "sheet.csv")]) == 1
    assert one_line(capsys.readouterr().err).startswith("error: no space left on the device (")
    assert list(out.iterdir()) == []  # neither the file nor its temporary

    def forbidden(path: object, *args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(runlock.os, "open", forbidden)
    assert main(["run", str(small_demo), "--results", str(tmp_path / "res")]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write the results folder {tmp_path / 'res'}: permission denied")


def test_a_batch_cannot_take_a_results_folder_name(demo_copy: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    study = demo_copy.rename(demo_copy.parent / "study")
    assert main(["run", str(study), "--results", str(tmp_path / "res")]) == 2
    assert "a batch folder cannot be called 'study'" in capsys.readouterr().err


# --- Snakemake hygiene ------------------------------------------------------------------

def test_lint_leaves_only_the_justified_items(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT / "snakefile"),
                           "--directory", str(tmp_path), "--lint", "--config", f"results={tmp_path / 'r'}"],
                          capture_output=True, text=True, timeout=600)
    titles = set(re.findall(r"^    \* (.+?):?$", done.stdout + done.stderr, flags=re.M))
    justified = {"Specify a conda environment or container for each rule."}
    justified |= {f"Shell command directly uses variable {v} from outside of the rule" for v in QUOTED_CONSTANTS}
    assert titles and titles <= justified, titles - justified
    comment = (WORKFLOWS / "Snakefile").read_text()
    assert "Specify a conda environment or container for each rule" in comment
    assert "Shell command directly uses variable IMMUNO / STEP / ROOM_OPTS" in comment


def test_every_rule_states_threads_and_resources() -> None:
    bodies = rule_bodies()
    assert len(bodies) == 11
    for name, body in bodies:
        assert "threads:" in body and "mem_mb=" in body and "runtime=" in body, name


def test_the_sheet_schema_agrees_with_the_sheet_checks() -> None:
    schema = yaml.safe_load((WORKFLOWS / "schemas" / "samplesheet.schema.yaml").read_text())
    props = schema["properties"]
    assert set(props) == {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
    assert set(REQUIRED_COLUMNS) <= set(schema["required"])
    assert set(props["assay"]["enum"]) == set(ASSAYS)
    assert set(props["tube"]["enum"]) == {"", *TUBES}
    assert set(props["role"]["enum"]) == {"", *ROLES}
    assert props["sample_id"]["pattern"] == CODE.pattern


def test_the_sheet_schema_rejects_what_validation_rejects(small_demo: Path) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(WORKFLOWS / "schemas" / "samplesheet.schema.yaml")
    batch = load_batch(small_demo)
    sheet = batch.sheet.drop(columns="row")
    validate(sheet, schema)
    for column, value in [("assay", "flow"), ("sample_id", "P01 D0"), ("file", "/etc/passwd"),
                          ("tube", "stim"), ("dna_input_ng", "ten")]:
        bad = sheet.copy()
        bad.loc[0, column] = value
        with pytest.raises(WorkflowError):
            validate(bad, schema)


def test_slurm_profile_plans_through_immuno_run(lean_batch: Path, tmp_path: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="install the [slurm] extra")
    done = subprocess.run([sys.executable, "-m", "immuno", "run", str(lean_batch), "--results",
                           str(tmp_path / "res"), "--profile", "slurm", "--dry-run"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # the jobs are planned with the profile's SLURM resources
    assert "validate_batch" in done.stdout and "slurm_partition=normal" in done.stdout
    assert not (tmp_path / "res" / lean_batch.name / "validation").exists()  # planned only


def test_a_labs_configuration_names_its_batches(demo_copy: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sheet = pd.read_csv(demo_copy / "samplesheet.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "visit"] = "W2"  # allowed by the lab's visits below, not by the default ones
    sheet.to_csv(demo_copy / "samplesheet.csv", index=False)
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"batches": [str(demo_copy)], "visits": ["D0", "D10", "M1"]}))
    assert main(["run", "--configfile", str(lab), "--results", str(tmp_path / "res")]) == 2
    assert "'W2' is not an allowed visit (D0, D10, M1)" in capsys.readouterr().err
    lab.write_text(yaml.safe_dump({"batches": [str(demo_copy)], "visits": ["D0", "D10", "M1", "W2"]}))
    assert main(["run", "--configfile", str(lab), "--results", str(tmp_path / "res"), "--dry-run"]) == 0
    config = yaml.safe_load((tmp_path / "res" / ".immuno" / "config.yaml").read_text())
    assert config["batches"] == [str(demo_copy)]  # the lab's batch, not the demo


def test_output_read_by_a_pipe_that_closes_early_is_no_error(small_demo: Path) -> None:
    # `immuno cytometry inspect *.fcs | head` closes the pipe after a few lines: the command
    # stops quietly with status 0 instead of a BrokenPipeError traceback
    fcs = sorted(small_demo.glob("cytometry/*.fcs"))
    proc = subprocess.Popen([sys.executable, "-m", "immuno", "cytometry", "inspect", *fcs * 20],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
