"""``immuno run``: the workflow for lab scientists who never type snakemake.

Validates every batch first (all problems listed, nothing started), takes the results
folder's lock (one run per results folder; a lock left by a dead run is recovered),
hashes every input file once, then runs the workflow shipped in the package in a
Snakemake subprocess, so that Snakemake shows its own job progress and the log file of
every rule. Snakemake's working folder is the results folder: its bookkeeping (which
jobs were interrupted, which parameters produced which file) lives with the results,
whichever folder the command is started from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from immuno.contract.panels import default_panels_dir
from immuno.contract.validate import validate_batch
from immuno.demo import make_demo_batch
from immuno.errors import Problem, RunError, UserError, describe_os_error
from immuno.io import write_json, write_text
from immuno.run import lock as runlock
from immuno.run.provenance import hash_files, input_files
from immuno.run.stamps import STAMPS, write_stamps
from immuno.run.steps import interrupted_outputs

#: names under the results folder that are not batches
RESERVED = ("study", "logs")
#: characters Snakemake reads as wildcards in a path (everything else in a name is fine)
BRACES = frozenset("{}")
BRACES_WHAT = "the path holds '{' or '}', which Snakemake reads as wildcards; rename the folder"
#: the run's input hashes, under the results folder
MANIFEST = Path(".immuno") / "inputs.json"
#: the installed package (``immuno/``), holding the shipped workflow and configuration
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The folder above the package: the source checkout, when running from one."""
    return PACKAGE_DIR.parent


def _shipped(packaged: str, checkout: str) -> Path:
    """A folder shipped inside the installed package, or its place in a source checkout."""
    shipped = PACKAGE_DIR / packaged
    return shipped if shipped.is_dir() else project_root() / checkout


def workflow_dir() -> Path:
    """The workflow folder (``Snakefile``, one ``.smk`` per concern, schemas, profiles)."""
    return _shipped("workflows", "workflows")


def default_config_file() -> Path:
    """The default configuration (``config/config.yaml``)."""
    return _shipped("config", "config") / "config.yaml"


def profile_dir(profile: str) -> Path:
    """A profile shipped with the workflow (``local``, ``slurm``) or a profile folder."""
    shipped = workflow_dir() / "profiles" / profile
    return shipped if shipped.is_dir() else Path(profile).resolve()


def load_config(configfile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default configuration updated with a lab's configuration file, and the lab's
    file alone."""
    config = yaml.safe_load(default_config_file().read_text(encoding="utf-8")) or {}
    lab: dict[str, Any] = {}
    if configfile:
        try:
            lab = yaml.safe_load(Path(configfile).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError.single(configfile, f"cannot read the configuration ({exc})") from None
        if not isinstance(lab, dict):
            raise UserError.single(configfile, "expected a YAML mapping of configuration keys")
        config.update(lab)
    return config, lab


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_demo(config: dict[str, Any]) -> Path:
    """The demo batch folder, generated first if absent.

    It is written into a temporary sibling folder and renamed into place, so an
    interrupted generation never leaves a half-written batch (and a temporary folder left
    by a dead run is removed).
    """
    demo = config.get("demo") or {}
    folder = Path(demo.get("folder") or "demo").resolve()
    for stale in folder.parent.glob(f".{folder.name}.*.tmp"):
        pid = stale.name.split(".")[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    if (folder / "samplesheet.csv").is_file():
        return folder
    print(f"generating the demo batch in {folder} ...", file=sys.stderr)
    staging = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    made = make_demo_batch(
        staging / folder.name,
        seed=int(demo.get("seed", 20261126)),
        patients=int(demo.get("patients", 4)),
        events=int(demo.get("events", 20000)),
    )
    os.replace(made, folder)
    staging.rmdir()
    return folder


def validate_batches(
    folders: Sequence[str | Path], config: dict[str, Any], panels: str | None
) -> list[Any]:
    """Every batch validated, or one UserError listing every problem of every batch."""
    problems: list[Problem] = []
    batches: dict[str, Any] = {}
    for folder in folders:
        try:
            batch = validate_batch(
                folder,
                visits=config["visits"],
                panels_dir=panels,
                patient_id_pattern=config.get("patient_id_pattern"),
            )
        except UserError as exc:
            problems += exc.problems
            continue
        if batch.batch_id in batches:
            problems.append(
                Problem(
                    str(folder),
                    f"batch id {batch.batch_id!r} (the folder name) is also "
                    f"the name of {batches[batch.batch_id].root}; batch folders need distinct names",
                )
            )
        elif batch.batch_id in RESERVED or batch.batch_id.startswith("."):
            problems.append(
                Problem(
                    str(folder),
                    f"a batch folder cannot be called {batch.batch_id!r}: the "
                    "results folder uses that name; rename the folder",
                )
            )
        elif BRACES.intersection(str(batch.root)):
            problems.append(Problem(str(folder), BRACES_WHAT))
        batches[batch.batch_id] = batch
    if problems:
        raise UserError(
            problems, hint="Fix the problems above and run again; nothing was processed."
        )
    return [batches[k] for k in sorted(batches)]


def recover(results: Path) -> list[str]:
    """Remove what an interrupted run left in ``results`` (call only while holding its lock).

    The outputs of steps killed while writing them (their ``.running`` markers are left,
    see :func:`immuno.run.steps.run_step`) and the temporary files of interrupted atomic
    writes (``.<name>.<random>.tmp``) are deleted, so Snakemake finds those outputs
    missing and reruns their jobs; Snakemake's own lock of the dead run is cleared by the
    caller.

    Returns
    -------
    list of str
        The files and folders removed.
    """
    removed = []
    for marker, output in interrupted_outputs(results):
        if output.is_dir():
            shutil.rmtree(output)
        else:
            output.unlink(missing_ok=True)
        marker.unlink()
        removed.append(str(output))
    for path in results.rglob(".*.tmp"):
        if ".snakemake" in path.relative_to(results).parts:
            continue
        if path.is_file():
            path.unlink()
            removed.append(str(path))
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def input_manifest(batches: Sequence[Any]) -> dict[str, Any]:
    """Every input file and panel of the batches with its SHA-256, hashed once for this run."""
    return {
        "batches": {
            b.batch_id: {
                "folder": str(b.root),
                "inputs": hash_files(b.root, input_files(b)),
                "panels": {
                    name: {"path": str(p.path.resolve()), "sha256": p.sha256}
                    for name, p in sorted(b.panels.items())
                },
            }
            for b in batches
        }
    }


def _failed_steps(results: Path, since: float) -> list[str]:
    """The last line of every step log written during this run that ends in an error."""
    lines = []
    for log in sorted(results.glob("**/logs/**/*.log")):
        try:
            if log.stat().st_mtime < since:
                continue
            tail = [
                ln
                for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()
                if ln.strip()
            ]
        except OSError:
            continue
        if tail and tail[-1].startswith("error: "):
            lines.append(f"  {log.relative_to(results)}: {tail[-1][len('error: ') :]}")
    return lines


def run_workflow(
    batches: Sequence[str],
    results: str = "results",
    cores: int | None = None,
    panels: str | None = None,
    profile: str | None = None,
    dry_run: bool = False,
    extra: Sequence[str] = (),
    configfile: str | None = None,
) -> int:
    """Run the workflow on batch folders, or on the demo batch.

    Parameters
    ----------
    batches
        Batch folders; none runs the batches of ``configfile`` if it names some, else the
        demo batch of the configuration (generated in the working folder if absent).
    results
        Results folder (``results/<batch_id>/`` per batch).
    cores
        Cores for local jobs (default: all).
    panels
        Panels folder (default: the panels shipped with immuno).
    profile
        ``local`` or ``slurm`` (shipped with the workflow), or a profile folder.
    dry_run
        Plan only.
    extra
        Further Snakemake arguments (after ``--``).
    configfile
        A lab's configuration file (keys of ``config/config.yaml``).

    Returns
    -------
    int
        Snakemake's exit status (0 on success).

    Raises
    ------
    UserError
        A batch is invalid (nothing was started).
    RunError
        The results folder is in use by another run, or cannot be written.
    """
    config, lab = load_config(configfile)
    chosen = panels or config.get("panels")
    panels_dir = str(Path(chosen).resolve() if chosen else default_panels_dir())
    folders = list(batches) or list(lab.get("batches") or []) or [prepare_demo(config)]
    validated = validate_batches(folders, config, panels_dir)
    out = Path(results).resolve()
    if BRACES.intersection(str(out)):
        raise UserError.single(str(out), BRACES_WHAT)
    overrides = {
        "results": str(out),
        "panels": panels_dir,
        "batches": [str(b.root) for b in validated],
        "demo": {"make": False},
        "inputs": str(out / MANIFEST),
    }
    try:
        return _run_locked(
            out, validated, overrides, config, cores, profile, dry_run, extra, configfile
        )
    except OSError as exc:
        message = describe_os_error(exc)
        if message is None:
            raise
        raise RunError(f"cannot write the results folder {out}: {message}") from None


def _run_locked(
    out: Path,
    validated: list[Any],
    overrides: dict[str, Any],
    config: dict[str, Any],
    cores: int | None,
    profile: str | None,
    dry_run: bool,
    extra: Sequence[str],
    configfile: str | None,
) -> int:
    lock = runlock.acquire(out)
    try:
        if lock.stale:
            print(
                f"recovering the results folder after a run that stopped without finishing "
                f"({runlock.describe(lock.stale)})",
                file=sys.stderr,
            )
        for path in recover(out):
            print(f"removed {path} (left half-written by an interrupted step)", file=sys.stderr)
        manifest = input_manifest(validated)
        write_json(manifest, out / MANIFEST)
        # the rules' rerun triggers: a stamp is newer than a job's outputs exactly when a
        # file the job reads changed content since (immuno.run.stamps)
        write_stamps(manifest, out / STAMPS)
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(workflow_dir() / "Snakefile"),
            "--directory",
            str(out),
            "--cores",
            str(cores or os.cpu_count() or 1),
            "--show-failed-logs",
            "--rerun-incomplete",
            "--keep-going",
        ]
        if profile:
            cmd += ["--workflow-profile", str(profile_dir(profile))]
        overrides_file = out / ".immuno" / "config.yaml"
        write_text(yaml.safe_dump(overrides, sort_keys=True), overrides_file)
        # the workflow reads its default configuration itself; then the lab's, then this run's
        configs = [
            "--configfile",
            *([str(Path(configfile).resolve())] if configfile else []),
            str(overrides_file),
        ]
        if (out / ".snakemake" / "locks").is_dir() and any(
            (out / ".snakemake" / "locks").iterdir()
        ):
            # Snakemake's own lock of a dead run: no live run holds ours, so none is using it
            subprocess.run([*cmd, "--unlock", *configs], capture_output=True, check=False)
        started = time.time()
        # the Snakemake process inherits the lock: it stays held while Snakemake lives
        status = subprocess.call(
            [*cmd, *(["--dry-run"] if dry_run else []), *extra, *configs], pass_fds=(lock.fd,)
        )
    finally:
        lock.release()
    if status != 0:
        failed = _failed_steps(out, started)
        print(
            f"\nThe workflow stopped (exit status {status}). The log of each failed step is shown above "
            f"and kept under {out}/<batch>/logs/."
            + ("\nFailed steps:\n" + "\n".join(failed) if failed else "")
            + "\nFinished steps are kept: fix the cause and run the same command again.",
            file=sys.stderr,
        )
    return status
