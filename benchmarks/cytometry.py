"""Cytometry benchmark: the immuno per-tube pipeline and gate engine against FlowKit.

Run from the project root::

    .venv/bin/python benchmarks/cytometry.py [--events 1000000] [--repeat 3] [--no-workflow]

Everything is measured side by side in one run, each path in its own process that first
warms up on a small file (imports, compiled kernels and caches are not counted) and then
records its resident memory as the baseline; peak memory is the high-water mark above it.

1. FlowKit's static gating of a 15-population ICS hierarchy (exported as GatingML) on a
   demo tube of 1M events x 16 channels, against ``read_fcs`` + ``gate_events``; every
   count must be identical.
2. The whole per-tube pipeline (``process_unit``: read, acquisition QC, compensate and
   transform in one pass, adaptive gates, populations, statistics and marker medians, the
   per-event data ready to write) on a demo ICS pair of 1M-event tubes (17 channels, the
   stimulated tube with a clog), each tube's data released once handed over, as the
   workflow runs it; the per-tube time is half the pair's. Compared with figure 1.
3. The same pair as the workflow's job runs it: with every file written (compressed
   per-event .h5ad, tables, GatingML document, gating figure), and the files' size
   against the FCS files'.
4. FlowKit gating the stimulated tube with the GatingML the pipeline exported for it (its
   gates as placed, acquisition QC's removals and the populations): every count the
   pipeline reports must be FlowKit's.
5. The logicle transform alone against flowutils; the first-unit overhead of a new
   process; unless ``--no-workflow``, ``immuno demo`` + ``immuno run`` on a fresh demo
   batch, with the size of its results against its FCS files.

One JSON object goes to stdout (keys in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from disk import unique_bytes  # benchmarks/disk.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SCATTER_T = 262144.0


def hierarchy() -> list:
    """The ICS gating tree as placed on a sample: 11 gates giving 15 populations."""
    from immuno.demo.cytometry_gates import placed_ics_gates

    return placed_ics_gates(cells_gate=True)


def transforms(fluors: list[str]) -> dict:
    from immuno.cytometry.engine.transforms import LinearTransform, LogicleTransform

    out: dict = {c: LogicleTransform(262144, 0.5, 4.5, 0) for c in fluors}
    out.update({c: LinearTransform(SCATTER_T, 0) for c in ("FSC-A", "FSC-H", "SSC-A", "SSC-H")})
    return out


def write_tube(path: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """A stimulated ICS tube from the demo generator, without its Time channel (16 channels)."""
    from immuno.cytometry.io.fcs import format_spillover, write_fcs
    from immuno.demo import cytometry as demo

    rng = np.random.default_rng([seed, demo.K, 4242])
    events, _ = demo.simulate_events(rng, n, "stimulated", demo.TubeParams())
    keep = [i for i, c in enumerate(demo.CHANNELS) if c != "Time"]
    channels = [demo.CHANNELS[i] for i in keep]
    markers = [demo.ICS_STAINS.get(c) for c in channels]
    fluors, spill = demo.true_spillover()
    write_fcs(path, np.ascontiguousarray(events[:, keep]), channels, markers,
              {"$SPILLOVER": format_spillover(fluors, spill)}, ranges=[demo.PNR] * len(channels))
    return channels, fluors


# ---------------------------------------------------------------- memory accounting


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> bool:
    # writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- the two paths (child processes)


def run_flowkit(fcs: Path, gml: Path, warm: Path, repeat: int) -> dict:
    import flowkit as fk

    strategy = fk.parse_gating_xml(str(gml))
    strategy.gate_sample(fk.Sample(str(warm)))  # warm-up: first-use costs are not counted
    baseline = _rss_mb()
    _reset_hwm()
    times, counts = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        sample = fk.Sample(str(fcs))
        result = strategy.gate_sample(sample)
        times.append(time.perf_counter() - t0)
        counts = {r.gate_name: int(r.count) for r in result.report.itertuples()}
        if len(times) == 1:
            peak = _hwm_mb() - baseline
        del sample, result
    return {"seconds": min(times), "peak_mb": peak, "counts": counts}


def run_immuno(fcs: Path, gml: Path, warm: Path, repeat: int) -> dict:
    from immuno.cytometry.engine.event_pass import gate_events
    from immuno.cytometry.engine.gate_tree import GateTree
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

    tree = GateTree(hierarchy())

    def once(path: Path) -> dict[str, int]:
        data = read_fcs(path)
        spill = spillover_from_keywords(data)
        assert spill is not None
        gated = gate_events(data.events, data.channels, tree, transforms(spill.channels), spill)
        return gated.counts()

    return _timed(once, fcs, warm, repeat)


def _timed(once: Any, fcs: Path, warm: Path, repeat: int) -> dict:
    """Best time of ``repeat`` calls of ``once(fcs)`` after a warm-up on ``warm`` (which
    loads imports and compiled kernels); peak memory of the first timed call above the
    baseline measured after the warm-up."""
    once(warm)
    baseline = _rss_mb()
    _reset_hwm()
    times, counts, peak = [], {}, float("nan")
    for _ in range(repeat):
        t0 = time.perf_counter()
        counts = once(fcs)
        times.append(time.perf_counter() - t0)
        if len(times) == 1:
            peak = _hwm_mb() - baseline
    return {"seconds": min(times), "peak_mb": peak, "counts": counts}


def _control_of(path: Path) -> Path:
    return path.with_name(path.stem + "_control.fcs")


def _pair(path: Path | str, panel: Path) -> Any:
    from immuno.contract.panels import load_panel
    from immuno.cytometry.pipeline.tubes import SampleInfo

    path, ics = Path(path), load_panel(panel)
    control = SampleInfo("BENCH-UNSTIM", _control_of(path), ics, patient_id="B01", visit="D0", tube="unstimulated",
                         control_of="BENCH-STIM", batch_id="BENCH")
    return SampleInfo("BENCH-STIM", path, ics, patient_id="B01", visit="D0", tube="stimulated", control=control,
                      batch_id="BENCH")


def run_pipeline(fcs: Path, panel: Path, warm: Path, repeat: int) -> dict:
    """The whole per-tube pipeline on an ICS pair (stimulated ``fcs`` and its control), in
    memory: each tube's outcome is handed over (here: dropped) and its events released,
    as the workflow's job does before writing."""
    from immuno.cytometry.pipeline.sample import process_unit

    def once(path: Path) -> dict[str, int]:
        outcomes = process_unit(_pair(path, panel), emit=lambda outcome: None)
        failed = [o.flags for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"the pipeline failed: {failed}")
        stats = outcomes[0].statistics
        return {str(k): int(v) for k, v in zip(stats["population"], stats["count"], strict=True)}

    return _timed(once, fcs, warm, repeat)


def run_job(fcs: Path, panel: Path, warm: Path, repeat: int) -> dict:
    """The same pair as the workflow's job runs it: every file written (the per-event
    .h5ad compressed, tables, GatingML document, gating figure) under benchmarks/out/job."""
    import shutil

    from immuno.cytometry.pipeline.batch import run_unit

    out = ROOT / "benchmarks" / "out" / "job"

    def once(path: Path) -> dict[str, int]:
        shutil.rmtree(out, ignore_errors=True)
        outcomes = run_unit(_pair(path, panel), out)
        if not all(o.ok for o in outcomes):
            raise SystemExit("the job failed")
        return {}

    result = _timed(once, fcs, warm, repeat)
    result["bytes"] = unique_bytes(out.rglob("*"))
    return result


def run_placed(fcs: Path, document: Path, warm: Path, repeat: int) -> dict:
    """FlowKit gating ``fcs`` with the GatingML the pipeline exported for it (``document``:
    the job's sample_gates.json, written here as GatingML 2.0); counts against the job's."""
    import flowkit as fk
    import h5py
    import pandas as pd

    from immuno.cytometry.pipeline.outputs import write_gatingml_file

    gml = document.with_name("placed.xml")
    write_gatingml_file(json.loads(document.read_text()), gml)
    strategy = fk.parse_gating_xml(str(gml))
    strategy.gate_sample(fk.Sample(str(warm)))  # warm-up: first-use costs are not counted
    times, theirs = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = strategy.gate_sample(fk.Sample(str(fcs)))
        times.append(time.perf_counter() - t0)
        theirs = {r.gate_name: int(r.count) for r in result.report.itertuples()}
    stats = pd.read_parquet(document.with_name("sample_populations.parquet"))
    ours = dict(zip(stats["population"], stats["count"].astype(int), strict=True))
    events = document.parents[2] / "events" / f"{document.parent.name}.h5ad"
    with h5py.File(events) as f:
        ours["acq_kept"] = int(np.asarray(f["obs/qc_pass"]).sum())
    differ = {k: (v, theirs.get(k)) for k, v in ours.items() if theirs.get(k) != v}
    return {"seconds": min(times), "identical": not differ, "differ": differ, "populations": len(ours)}


def first_unit_overhead(folder: Path) -> dict:
    """In a new process: import, then one small ICS pair twice (files written, figures
    drawn); the first pair's extra time over the second is what a job pays to start."""
    code = f"""
import time, json, sys
t0 = time.perf_counter()
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from cytometry import _pair, ROOT
from immuno.cytometry.pipeline.batch import run_unit
t1 = time.perf_counter()
times = []
for out in ("a", "b"):
    start = time.perf_counter()
    run_unit(_pair({str(folder / "small.fcs")!r}, ROOT / "panels" / "cytometry_ics_demo.yaml"),
             {str(folder / "startup")!r} + "/" + out)
    times.append(time.perf_counter() - start)
print(json.dumps({{"import_s": t1 - t0, "first_s": times[0], "second_s": times[1]}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the start-up figure failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_ics_pair(path: Path, n: int, seed: int) -> None:
    """A demo ICS pair (stimulated tube with a clog, and its unstimulated control), 17 channels."""
    from immuno.demo import cytometry as demo

    demo.simulate_tube(path, "stimulated", n, seed=seed, clog=True)
    demo.simulate_tube(_control_of(path), "unstimulated", n, seed=seed + 1)


def _child(which: str, fcs: Path, gml: Path, warm: Path, repeat: int) -> dict:
    """Run one path in its own process (see ``--child``)."""
    cmd = [sys.executable, __file__, "--child", which, str(fcs), str(gml), str(warm), str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the {which} path failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the other figures


def logicle_figure(fcs: Path, repeat: int) -> dict:
    """The logicle transform alone on one compensated 1M-event channel, against flowutils."""
    from flowutils import transforms as fu

    from immuno.cytometry.engine.compensation import compensate_solve
    from immuno.cytometry.engine.transforms import LogicleTransform
    from immuno.cytometry.io.fcs import read_fcs
    from immuno.cytometry.io.spillover import spillover_from_keywords

    data = read_fcs(fcs)
    spill = spillover_from_keywords(data)
    assert spill is not None
    cols = [data.channels.index(c) for c in spill.channels]
    x = np.ascontiguousarray(compensate_solve(data.events[:, cols], spill.matrix)[:, 7])
    ours = LogicleTransform(262144, 0.5, 4.5, 0)
    ours.apply(x[:1000])
    t_ours, t_ref = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        y = ours.apply(x)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = fu.logicle(x, None, t=262144, m=4.5, w=0.5, a=0)
        t_ref.append(time.perf_counter() - t0)
    return {"logicle_s": min(t_ours), "flowutils_logicle_s": min(t_ref),
            "logicle_ratio": min(t_ref) / min(t_ours),
            "logicle_max_abs_diff": float(np.max(np.abs(y - ref)))}


def _size(paths: Any) -> int:
    return unique_bytes(paths)


def workflow_figure(events: int) -> dict:
    """``immuno demo`` + ``immuno run`` on a fresh demo batch: seconds, and the size of its
    results against its FCS files and against all its input files."""
    exe = Path(sys.executable).with_name("immuno")
    with tempfile.TemporaryDirectory(prefix="immuno-bench-") as tmp:
        batch, results = Path(tmp) / "demo", Path(tmp) / "results"
        t0 = time.perf_counter()
        steps = [[str(exe), "demo", str(batch), "--events", str(events)],
                 [str(exe), "run", "--results", str(results), "--cores", "2", str(batch)]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                return {"workflow_demo_s": None, "workflow_note": f"{cmd[1]} failed: {' | '.join(tail)}"}
        seconds = time.perf_counter() - t0
        fcs = _size(batch.rglob("*.fcs"))
        inputs = _size(p for p in batch.rglob("*") if "truth" not in p.name and "truth_events" not in p.parts)
        out = _size(results.rglob("*"))
        cyto = _size((results / "demo" / "cytometry").rglob("*"))
        return {"workflow_demo_s": round(seconds, 1), "workflow_note": f"demo batch with {events} events per tube",
                "demo_fcs_mb": round(fcs / 2**20, 2), "demo_inputs_mb": round(inputs / 2**20, 2),
                "demo_results_mb": round(out / 2**20, 2), "demo_cytometry_results_mb": round(cyto / 2**20, 2),
                "demo_results_over_fcs": round(out / fcs, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-workflow", action="store_true")
    parser.add_argument("--workflow-events", type=int, default=20_000)
    parser.add_argument("--child", nargs=5, metavar=("PATH", "FCS", "GML", "WARM", "REPEAT"))
    args = parser.parse_args(argv)
    if args.child:
        which, fcs, gml, warm, repeat = args.child
        run = {"flowkit": run_flowkit, "immuno": run_immuno, "pipeline": run_pipeline, "job": run_job,
               "placed": run_placed}[which]
        print(json.dumps(run(Path(fcs), Path(gml), Path(warm), int(repeat))))
        return 0

    from immuno.cytometry.engine.compensation import Spillover
    from immuno.cytometry.engine.gate_tree import GateTree
    from immuno.cytometry.io.gatingml import write_gatingml
    from immuno.cytometry.pipeline.warm import warm as warm_kernels
    from immuno.demo.cytometry import true_spillover

    load_start = os.getloadavg()
    warm_s = warm_kernels()  # the kernels compiled once, as `immuno cytometry warm` does
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    fcs, warm, gml = out / "bench_1M.fcs", out / "bench_warm.fcs", out / "bench_gates.xml"
    channels, fluors = write_tube(fcs, args.events, args.seed)
    write_tube(warm, 5_000, args.seed + 1)
    names, matrix = true_spillover()
    write_gatingml(hierarchy(), transforms(fluors), Spillover(names, matrix), gml)
    n_gates = len(GateTree(hierarchy()).membership_ids)
    pair, warm_pair = out / "bench_pipeline_1M.fcs", out / "bench_pipeline_warm.fcs"
    write_ics_pair(pair, args.events, args.seed)
    write_ics_pair(warm_pair, 5_000, args.seed + 2)
    write_ics_pair(out / "small.fcs", 20_000, args.seed + 3)
    panel = ROOT / "panels" / "cytometry_ics_demo.yaml"

    flowkit = _child("flowkit", fcs, gml, warm, args.repeat)
    immuno = _child("immuno", fcs, gml, warm, args.repeat)
    pipeline = _child("pipeline", pair, panel, warm_pair, args.repeat)
    job = _child("job", pair, panel, warm_pair, args.repeat)
    placed = _child("placed", pair, out / "job" / "samples" / "BENCH-STIM" / "sample_gates.json", warm_pair,
                    args.repeat)
    startup = first_unit_overhead(out)
    events_mb = args.events * len(channels) * 4 / 2**20
    tube_mb = args.events * (len(channels) + 1) * 4 / 2**20  # the pipeline's tubes keep Time
    pair_fcs = pair.stat().st_size + _control_of(pair).stat().st_size
    report: dict = {
        "flowkit_s": round(flowkit["seconds"], 4),
        "immuno_s": round(immuno["seconds"], 4),
        "ratio": round(flowkit["seconds"] / immuno["seconds"], 2),
        "counts_identical": flowkit["counts"] == immuno["counts"],
        "flowkit_peak_mb": round(flowkit["peak_mb"], 1),
        "immuno_peak_mb": round(immuno["peak_mb"], 1),
        "events_mb": round(events_mb, 1),
        "n_events": args.events,
        "n_channels": len(channels),
        "n_gates": n_gates,
        "immuno_peak_over_events": round(immuno["peak_mb"] / events_mb, 2),
        # the whole per-tube pipeline (an ICS pair is one unit: the control sets the
        # cytokine gates), against FlowKit's static gating of one file of the same size
        "pipeline_pair_s": round(pipeline["seconds"], 4),
        "pipeline_sample_s": round(pipeline["seconds"] / 2, 4),
        "pipeline_ratio": round(flowkit["seconds"] / (pipeline["seconds"] / 2), 2),
        "pipeline_populations": len(pipeline["counts"]),
        "tube_events_mb": round(tube_mb, 1),
        "pipeline_peak_mb": round(pipeline["peak_mb"], 1),
        "pipeline_peak_over_events": round(pipeline["peak_mb"] / tube_mb, 2),
        # the same with every file written, as the workflow's job runs it
        "job_pair_s": round(job["seconds"], 4),
        "job_sample_s": round(job["seconds"] / 2, 4),
        "job_ratio": round(flowkit["seconds"] / (job["seconds"] / 2), 2),
        "job_peak_mb": round(job["peak_mb"], 1),
        "job_peak_over_events": round(job["peak_mb"] / tube_mb, 2),
        "job_results_mb": round(job["bytes"] / 2**20, 1),
        "job_fcs_mb": round(pair_fcs / 2**20, 1),
        "job_results_over_fcs": round(job["bytes"] / pair_fcs, 3),
        # FlowKit, given the GatingML the pipeline exported, finds every count it reports
        "placed_counts_identical": placed["identical"],
        "placed_populations": placed["populations"],
        "placed_flowkit_s": round(placed["seconds"], 4),
    }
    if not placed["identical"]:
        report["placed_counts_differ"] = placed["differ"]
    report.update({k: (round(v, 4) if k.endswith("_s") or k == "logicle_ratio" else v)
                   for k, v in logicle_figure(fcs, args.repeat).items()})
    report.update({"warm_s": round(warm_s, 2), "startup_import_s": round(startup["import_s"], 2),
                   "startup_first_unit_s": round(startup["first_s"], 2),
                   "startup_next_unit_s": round(startup["second_s"], 2),
                   "startup_overhead_s": round(startup["first_s"] - startup["second_s"], 2)})
    if args.no_workflow:
        report.update({"workflow_demo_s": None, "workflow_note": "skipped (--no-workflow)"})
    else:
        report.update(workflow_figure(args.workflow_events))
    report["cpu_count"] = os.cpu_count()
    report["load_start"] = [round(x, 2) for x in load_start]
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    if not report["counts_identical"]:
        report["counts_flowkit"], report["counts_immuno"] = flowkit["counts"], immuno["counts"]
    print(json.dumps(report))
    return 0 if report["counts_identical"] and report["placed_counts_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
