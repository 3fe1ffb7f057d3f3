"""``immuno run``: the workflow for lab scientists who never type snakemake.

Validates every batch first (all problems listed, nothing started), then runs the
project's Snakemake workflow in a subprocess so that Snakemake shows its own job
progress and the log file of every rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from immuno.errors import Problem, UserError


def project_root() -> Path:
    """The source checkout holding ``snakefile`` and ``workflows/``."""
    return Path(__file__).resolve().parent.parent


def _snakefile() -> Path:
    path = project_root() / "snakefile"
    if not path.is_file():
        raise UserError.single(str(path), "the workflow is not here: `immuno run` needs the project's source "
                               "checkout (install it with `pip install -e .` from a clone)")
    return path


def run_workflow(batches: Sequence[str], results: str = "results", cores: int | None = None,
                 panels: str | None = None, profile: str | None = None, dry_run: bool = False,
                 extra: Sequence[str] = ()) -> int:
    """Run the workflow on batch folders, or on the default configuration (the demo).

    Parameters
    ----------
    batches
        Batch folders; an empty list runs the default configuration, which generates
        the demo batch if it is absent and processes it.
    results
        Results folder (``results/<batch_id>/`` per batch).
    cores
        Cores for local jobs (default: all).
    panels
        Panels folder (default: the project's ``panels/``).
    profile
        ``local`` or ``slurm`` (a folder under ``workflows/profiles/``), or a path.
    dry_run
        Plan only.
    extra
        Further Snakemake arguments (after ``--``).

    Returns
    -------
    int
        Snakemake's exit status (0 on success).
    """
    from immuno.validate import validate_batch

    snakefile = _snakefile()
    overrides: dict[str, object] = {"results": str(Path(results).resolve())}
    if panels:
        overrides["panels"] = str(Path(panels).resolve())
    if batches:
        problems: list[Problem] = []
        ids: dict[str, str] = {}
        for folder in batches:
            try:
                batch = validate_batch(folder, panels_dir=panels)
            except UserError as exc:
                problems += exc.problems
                continue
            if batch.batch_id in ids:
                problems.append(Problem(folder, f"batch id {batch.batch_id!r} (the folder name) is also "
                                        f"the name of {ids[batch.batch_id]}; batch folders need distinct names"))
            ids[batch.batch_id] = str(batch.root)
        if problems:
            raise UserError(problems, hint="Fix the problems above and run again; nothing was processed.")
        overrides["batches"] = [ids[k] for k in sorted(ids)]
        overrides["demo"] = {"make": False}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
           "--cores", str(cores or os.cpu_count() or 1), "--show-failed-logs", "--rerun-incomplete"]
    if profile:
        prof = project_root() / "workflows" / "profiles" / profile
        cmd += ["--workflow-profile", str(prof if prof.is_dir() else Path(profile).resolve())]
    if dry_run:
        cmd.append("--dry-run")
    with tempfile.TemporaryDirectory(prefix="immuno-run-") as tmp:
        override_file = Path(tmp) / "overrides.yaml"
        override_file.write_text(yaml.safe_dump(overrides, sort_keys=True))
        cmd += ["--configfile", str(project_root() / "config" / "config.yaml"), str(override_file), *extra]
        status = subprocess.call(cmd)
    if status != 0:
        print(f"\nThe workflow stopped (exit status {status}). The log of each failed step is shown above "
              f"and kept under {results}/<batch>/logs/. Finished steps are kept: fix the cause and run "
              "the same command again.", file=sys.stderr)
    return status
