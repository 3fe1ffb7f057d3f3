"""Cytometry benchmark: the immuno gating path against FlowKit on the same file and gates.

Run from the project root::

    .venv/bin/python benchmarks/cytometry.py [--events 1000000] [--repeat 3] [--no-workflow]

It writes a demo PBMC tube (the demo generator, 16 channels: 4 scatter, 12 fluorescence,
$SPILLOVER), a 15-gate static hierarchy exported as GatingML, then times in separate
processes (1) FlowKit: ``Sample`` + ``GatingStrategy.gate_sample`` (which compensates and
transforms as the gates require), (2) immuno: ``read_fcs`` + ``gate_events``
(compensate, transform, gate, keep float32 transformed events). Each process warms up on
a small file first, then records its resident memory as the baseline, so import and
compilation costs are not counted; peak memory is the high-water mark above it. Every
gate count must be identical. (3) The whole per-sample pipeline (``process_unit``: read,
compensate, acquisition QC, transform, adaptive and static gates, populations,
statistics) on a demo ICS pair of 1M-event tubes, in its own process likewise. It also
times the logicle transform alone against flowutils and, unless ``--no-workflow``,
``immuno run`` on a fresh demo batch. One JSON object goes to stdout.
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


def run_pipeline(fcs: Path, panel: Path, warm: Path, repeat: int) -> dict:
    """The whole per-sample pipeline on an ICS pair (stimulated ``fcs`` and its control).

    read, compensate, acquisition QC, transform, adaptive and static gates, populations,
    statistics and headline rows (no files written), for both tubes of the pair.
    """
    from immuno.cytometry.pipeline.sample import process_unit
    from immuno.cytometry.pipeline.tubes import SampleInfo
    from immuno.panels import load_panel

    ics = load_panel(panel)

    def once(path: Path) -> dict[str, int]:
        control = SampleInfo("BENCH-UNSTIM", _control_of(path), ics, tube="unstimulated", control_of="BENCH-STIM")
        info = SampleInfo("BENCH-STIM", path, ics, tube="stimulated", control=control)
        outcomes = process_unit(info)
        failed = [o.flags for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"the pipeline failed: {failed}")
        stats = outcomes[0].statistics
        return {str(k): int(v) for k, v in zip(stats["population"], stats["count"], strict=True)}

    return _timed(once, fcs, warm, repeat)


def write_ics_pair(path: Path, n: int, seed: int) -> None:
    """A demo ICS pair (stimulated tube with a clog, and its unstimulated control), 17 channels."""
    from immuno.demo import cytometry as demo

    demo.simulate_tube(path, "stimulated", n, seed=seed, clog=True)
    demo.simulate_tube(_control_of(path), "unstimulated", n, seed=seed + 1)


def _child(which: str, fcs: Path, gml: Path, warm: Path, repeat: int) -> dict:
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


def workflow_figure(events: int) -> tuple[float | None, str]:
    """Seconds for ``immuno demo`` + ``immuno run`` on a fresh demo batch, or None and why."""
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
                return None, f"{' '.join(cmd[1:2])} failed: {' | '.join(tail)}"
        return time.perf_counter() - t0, f"demo batch with {events} events per tube"


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
        run = {"flowkit": run_flowkit, "immuno": run_immuno, "pipeline": run_pipeline}[which]
        print(json.dumps(run(Path(fcs), Path(gml), Path(warm), int(repeat))))
        return 0

    from immuno.cytometry.engine.gate_tree import GateTree
    from immuno.cytometry.io.gatingml import write_gatingml

    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    fcs, warm, gml = out / "bench_1M.fcs", out / "bench_warm.fcs", out / "bench_gates.xml"
    channels, fluors = write_tube(fcs, args.events, args.seed)
    write_tube(warm, 5_000, args.seed + 1)
    from immuno.cytometry.engine.compensation import Spillover
    from immuno.demo.cytometry import true_spillover

    names, matrix = true_spillover()
    write_gatingml(hierarchy(), transforms(fluors), Spillover(names, matrix), gml)
    n_gates = len(GateTree(hierarchy()).membership_ids)

    flowkit = _child("flowkit", fcs, gml, warm, args.repeat)
    immuno = _child("immuno", fcs, gml, warm, args.repeat)
    pair, warm_pair = out / "bench_pipeline_1M.fcs", out / "bench_pipeline_warm.fcs"
    write_ics_pair(pair, args.events, args.seed)
    write_ics_pair(warm_pair, 5_000, args.seed + 2)
    pipeline = _child("pipeline", pair, ROOT / "panels" / "cytometry_ics_demo.yaml", warm_pair, args.repeat)
    report: dict = {
        "flowkit_s": round(flowkit["seconds"], 4),
        "immuno_s": round(immuno["seconds"], 4),
        "ratio": round(flowkit["seconds"] / immuno["seconds"], 2),
        "counts_identical": flowkit["counts"] == immuno["counts"],
        "flowkit_peak_mb": round(flowkit["peak_mb"], 1),
        "immuno_peak_mb": round(immuno["peak_mb"], 1),
        "events_mb": round(args.events * len(channels) * 4 / 2**20, 1),
        "n_events": args.events,
        "n_channels": len(channels),
        "n_gates": n_gates,
    }
    report["immuno_peak_over_events"] = round(report["immuno_peak_mb"] / report["events_mb"], 2)
    # the whole per-sample pipeline (an ICS pair is processed together: the control sets
    # the cytokine gates), against FlowKit's static gating of one file of the same size
    report["pipeline_pair_s"] = round(pipeline["seconds"], 4)
    report["pipeline_sample_s"] = round(pipeline["seconds"] / 2, 4)
    report["pipeline_ratio"] = round(flowkit["seconds"] / (pipeline["seconds"] / 2), 2)
    report["pipeline_peak_mb"] = round(pipeline["peak_mb"], 1)
    report["pipeline_populations"] = len(pipeline["counts"])
    report.update({k: (round(v, 4) if k.endswith("_s") or k == "logicle_ratio" else v)
                   for k, v in logicle_figure(fcs, args.repeat).items()})
    if args.no_workflow:
        report["workflow_demo_s"], report["workflow_note"] = None, "skipped (--no-workflow)"
    else:
        seconds, note = workflow_figure(args.workflow_events)
        report["workflow_demo_s"] = None if seconds is None else round(seconds, 1)
        report["workflow_note"] = note
    report["cpu_count"] = os.cpu_count()
    if not report["counts_identical"]:
        report["counts_flowkit"], report["counts_immuno"] = flowkit["counts"], immuno["counts"]
    print(json.dumps(report))
    return 0 if report["counts_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
