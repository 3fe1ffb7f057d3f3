"""Batch benchmark: ``immuno run`` on demo batches of growing size, seconds per tube.

Run from the project root::

    .venv/bin/python benchmarks/batch.py [--patients 4 8 16] [--events 300000] [--repeat 3]
        [--compare /path/to/other/python] [--compare-patients 16] [--compare-events 20000]

For each number of patients it writes a demo batch (``immuno demo``, ``--events`` events
per cytometry tube) and times ``immuno run`` on it from scratch (``--cores`` cores, best
of ``--repeat``), then prints the seconds per cytometry tube, so that growth with the
batch's size shows. With ``--compare PYTHON`` it also runs a demo of
``--compare-patients`` patients (``--compare-events`` events per tube) with that
interpreter and with this one, alternately, each generating its batch with its own
``immuno demo``: PYTHON is another checkout's environment (e.g. the code before a change,
its package first on the path), and the ratio is the speed-up. One JSON object goes to
stdout; generated batches go to benchmarks/out/batch/ and are deleted after use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from disk import unique_bytes  # benchmarks/disk.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "batch"


def _immuno(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "immuno", *args], capture_output=True, text=True, cwd=cwd)


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"{what} failed:\n" + "\n".join(tail))


def make_demo(python: str, folder: Path, patients: int, events: int, seed: int) -> dict:
    """Write a demo batch; its size and the seconds it took."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done = _immuno(python, "demo", str(folder), "--patients", str(patients), "--events", str(events),
                   "--seed", str(seed), cwd=folder.parent)
    _check(done, f"immuno demo ({patients} patients)")
    seconds = time.perf_counter() - t0
    sheet = (folder / "samplesheet.csv").read_text().splitlines()
    header = sheet[0].split(",")
    assay = header.index("assay")
    tubes = sum(1 for line in sheet[1:] if line.split(",")[assay] == "cytometry")
    fcs = unique_bytes(folder.rglob("*.fcs"))
    return {"demo_s": seconds, "tubes": tubes, "fcs_mb": fcs / 2**20}


def run_once(python: str, folder: Path, cores: int) -> dict:
    """``immuno run`` from scratch on one batch: seconds, jobs, results size."""
    results = folder.parent / f"{folder.name}-results"
    shutil.rmtree(results, ignore_errors=True)
    t0 = time.perf_counter()
    done = _immuno(python, "run", "--results", str(results), "--cores", str(cores), str(folder), cwd=folder.parent)
    seconds = time.perf_counter() - t0
    _check(done, f"immuno run {folder.name}")
    steps = re.findall(r"(\d+) of (\d+) steps", done.stdout + done.stderr)
    size = unique_bytes(results.rglob("*"))
    shutil.rmtree(results, ignore_errors=True)
    return {"seconds": seconds, "jobs": int(steps[-1][1]) if steps else None, "results_mb": size / 2**20}


def warm(python: str) -> None:
    """Compile the cytometry kernels before timing (older checkouts have no such command)."""
    _immuno(python, "cytometry", "warm", cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--compare", default=None, help="another environment's python to compare with")
    parser.add_argument("--compare-patients", type=int, default=16)
    parser.add_argument("--compare-events", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated batches")
    args = parser.parse_args(argv)
    me = sys.executable
    report: dict = {"events": args.events, "cores": args.cores, "repeat": args.repeat,
                    "load_start": [round(x, 2) for x in os.getloadavg()], "sizes": []}
    warm(me)
    for n in args.patients:
        folder = OUT / f"demo-{n}"
        demo = make_demo(me, folder, n, args.events, args.seed)
        runs = [run_once(me, folder, args.cores) for _ in range(args.repeat)]
        best = min(r["seconds"] for r in runs)
        report["sizes"].append({
            "patients": n, "tubes": demo["tubes"], "fcs_mb": round(demo["fcs_mb"], 1),
            "demo_s": round(demo["demo_s"], 1), "run_s": round(best, 1),
            "run_s_all": [round(r["seconds"], 1) for r in runs], "jobs": runs[0]["jobs"],
            "results_mb": round(runs[0]["results_mb"], 1),
            "seconds_per_tube": round(best / demo["tubes"], 3)})
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    per_tube = [s["seconds_per_tube"] for s in report["sizes"]]
    report["seconds_per_tube"] = per_tube
    report["per_tube_growth"] = round(per_tube[-1] / per_tube[0] - 1, 3) if len(per_tube) > 1 else 0.0
    if args.compare:
        warm(args.compare)
        sides = {"before": args.compare, "after": me}
        folders = {side: OUT / f"compare-{side}" for side in sides}
        demos = {side: make_demo(py, folders[side], args.compare_patients, args.compare_events, args.seed)
                 for side, py in sides.items()}
        times: dict[str, list[float]] = {side: [] for side in sides}
        jobs: dict[str, int | None] = {}
        for _ in range(args.repeat):
            for side, py in sides.items():  # alternately, so both see the same load
                run = run_once(py, folders[side], args.cores)
                times[side].append(run["seconds"])
                jobs[side] = run["jobs"]
        report["compare"] = {
            "patients": args.compare_patients, "events": args.compare_events,
            **{f"{side}_run_s": round(min(t), 1) for side, t in times.items()},
            **{f"{side}_run_s_all": [round(x, 1) for x in t] for side, t in times.items()},
            **{f"{side}_demo_s": round(d["demo_s"], 1) for side, d in demos.items()},
            **{f"{side}_jobs": jobs[side] for side in sides},
            "tubes": demos["after"]["tubes"],
            "speedup": round(min(times["before"]) / min(times["after"]), 2),
            "speedup_with_demo": round((min(times["before"]) + demos["before"]["demo_s"])
                                       / (min(times["after"]) + demos["after"]["demo_s"]), 2),
        }
        if not args.keep:
            for folder in folders.values():
                shutil.rmtree(folder, ignore_errors=True)
    report["cpu_count"] = os.cpu_count()
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
