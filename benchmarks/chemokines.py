"""Benchmark: fit and quantify a 30-analyte multiplex plate (DESIGN §4: well under a second).

Simulates a full 96-well xPONENT export with 30 analytes (8 standard levels in duplicate,
blanks, two kit controls, 37 samples in duplicate), reads it, fits every standard curve
and quantifies every sample; prints JSON with the timings and the accuracy against the
simulated truth.

    .venv/bin/python benchmarks/chemokines.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from immuno.chemokines import quantify_plate, read_plate
from immuno.demo.chemokines import simulate_plate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    analytes = [(f"A{i:02d}", f"A{i:02d}", "Th1" if i % 2 else "Th2", float(rng.choice([1000.0, 5000.0, 10000.0])),
                 0.0) for i in range(30)]
    samples = [f"P{i:02d}-D0-PLASMA" for i in range(37)]
    truth = {}
    for s in samples:
        for _label, feat, _cls, top, _ in analytes:
            truth[(s, feat)] = math.exp(rng.uniform(math.log(top / 2000), math.log(top)))  # inside the range
    sim = simulate_plate(rng, "BENCH", samples, truth, analytes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        path.write_text(sim.text)
        t0 = time.perf_counter()
        plate = read_plate(path)
        t_read = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = quantify_plate(plate)
            times.append(time.perf_counter() - t0)
    s = res.samples[(res.samples["role"] == "unknown") & (res.samples["flag"] == "")]
    true = np.array([truth[(a, b)] for a, b in zip(s["sample_name"], s["feature"], strict=True)])
    rel = np.abs(s["value"].to_numpy() / true - 1)
    print(json.dumps({
        "benchmark": "chemokines_30_analyte_plate", "analytes": 30, "wells": int(plate.wells["well"].nunique()),
        "read_seconds": round(t_read, 4), "fit_and_quantify_seconds_median": round(float(np.median(times)), 4),
        "fit_and_quantify_seconds_min": round(float(np.min(times)), 4),
        "curves_ok": int((res.curves["status"] == "ok").sum()),
        "in_range_values": int(len(s)), "median_abs_rel_error": round(float(np.median(rel)), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
