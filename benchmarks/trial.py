"""Trial benchmark: a whole trial batch (30 patients, 3 visits, three assays), locally and on SLURM.

Run from the project root::

    .venv/bin/python benchmarks/trial.py [--patients 30] [--events 20000] [--cores 2]
        [--profile slurm|PROFILE_DIR] [--keep]

It writes a demo batch of ``--patients`` patients (``immuno demo``: cytometry tubes at D0,
D10 and M1, the chemokine plate, the month-one chimerism biopsies with their references)
and runs ``immuno run`` on it from scratch, locally with ``--cores`` cores and, with
``--profile``, once more through that Snakemake profile (``slurm``, or a profile folder of
a site's own, e.g. the one-node cluster of docs/running-a-batch.md). For each run it prints
the wall time, the seconds per cytometry tube, and the peak memory: of the largest single
process (the heaviest job) and of the whole process tree at once (every process the run
started, sampled every 0.1 s). The two runs' measurement tables must be identical
(``tables_identical``). One JSON object goes to stdout; the batch and results go to
benchmarks/out/trial/ and are deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
from batch import ROOT, make_demo, warm  # benchmarks/batch.py, beside this script

OUT = ROOT / "benchmarks" / "out" / "trial"


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = []
            for proc in procs:
                try:
                    rss.append(proc.memory_info().rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass  # ended between the listing and the reading
            self.peak_total = max(self.peak_total, sum(rss))
            self.peak_single = max(self.peak_single, max(rss, default=0))
            time.sleep(self.every)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(folder: Path, results: Path, cores: int, profile: str | None) -> dict:
    """``immuno run`` from scratch; wall seconds and peak memory."""
    shutil.rmtree(results, ignore_errors=True)
    cmd = [sys.executable, "-m", "immuno", "run", str(folder), "--results", str(results),
           "--cores", str(cores), *(["--profile", profile] if profile else [])]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeMemory(proc.pid) as memory:
        out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((err or out).strip().splitlines()[-8:])
        raise SystemExit(f"immuno run ({profile or 'local'}) failed:\n{tail}")
    return {"run_s": round(seconds, 1), "peak_process_mb": round(memory.peak_single / 2**20, 1),
            "peak_tree_mb": round(memory.peak_total / 2**20, 1)}


def measurements(results: Path, batch: str) -> pd.DataFrame:
    m = pd.read_parquet(results / batch / "measurements.parquet")
    return m.sort_values(["sample_id", "panel", "feature"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--profile", default=None, help="also run through this Snakemake profile")
    parser.add_argument("--keep", action="store_true", help="keep the batch and the results")
    args = parser.parse_args(argv)
    folder = OUT / "trial"
    warm(sys.executable)
    demo = make_demo(sys.executable, folder, args.patients, args.events, args.seed)
    report: dict = {"patients": args.patients, "events": args.events, "cores": args.cores,
                    "tubes": demo["tubes"], "fcs_mb": round(demo["fcs_mb"], 1),
                    "load_start": [round(x, 2) for x in os.getloadavg()]}
    sheet = pd.read_csv(folder / "samplesheet.csv", dtype=str, keep_default_na=False)
    report["samples"] = sheet["assay"].value_counts().to_dict()
    report["visits"] = sorted(set(sheet["visit"]))
    local = run(folder, OUT / "results-local", args.cores, None)
    report["local"] = {**local, "seconds_per_tube": round(local["run_s"] / demo["tubes"], 3)}
    if args.profile:
        other = run(folder, OUT / "results-profile", args.cores, args.profile)
        report["profile"] = {"name": args.profile, **other,
                             "seconds_per_tube": round(other["run_s"] / demo["tubes"], 3)}
        report["tables_identical"] = measurements(OUT / "results-local", folder.name).equals(
            measurements(OUT / "results-profile", folder.name))
    report["cpu_count"] = os.cpu_count()
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.keep:
        shutil.rmtree(OUT, ignore_errors=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
