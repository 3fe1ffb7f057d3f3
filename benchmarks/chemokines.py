"""Benchmark: fit and quantify a 30-analyte multiplex plate (docs/architecture.md, 5: well under a second).

Simulates a full 96-well xPONENT export with 30 analytes (8 standard levels in duplicate,
blanks, two kit controls, 37 samples in duplicate), reads it, fits every standard curve
and quantifies every sample; prints JSON with the timings and the accuracy against the
simulated truth. The anchor is the plain approach a lab script takes: one
``scipy.optimize.curve_fit`` of a 1/y^2-weighted 5PL per analyte from a single start, no
acceptance rules, no censoring, then back-calculation of every unknown; it is timed on
the same wells and judged on the same in-range values.

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
import pandas as pd
from scipy.optimize import curve_fit

from immuno.chemokines import quantify_plate, read_plate
from immuno.demo.chemokines import simulate_plate


def _five_pl(x: np.ndarray, a: float, d: float, c: float, b: float, g: float) -> np.ndarray:
    return d + (a - d) / (1.0 + (x / c) ** b) ** g


def plain_fit_and_quantify(wells: pd.DataFrame) -> pd.DataFrame:
    """The plain approach: one single-start weighted 5PL per analyte, then back-calculation.

    Returns one row per unknown well and analyte with the back-calculated concentration
    (NaN where the inverse does not exist or the fit failed).
    """
    rows = []
    for analyte, w in wells.groupby("analyte", sort=True):
        std = w[(w.role == "standard") & (w.net_mfi > 0)]
        x, y = std.expected_conc.to_numpy(float), std.net_mfi.to_numpy(float)
        start = (y.min(), y.max(), float(np.median(x)), 1.0, 1.0)
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                (a, d, c, b, g), _ = curve_fit(_five_pl, x, y, p0=start, sigma=y, maxfev=5000)
        except (RuntimeError, ValueError):
            a = d = c = b = g = np.nan
        unk = w[w.role == "unknown"]
        ratio = (a - d) / (unk.net_mfi.to_numpy(float) - d)
        with np.errstate(invalid="ignore", divide="ignore"):
            conc = c * (ratio ** (1.0 / g) - 1.0) ** (1.0 / b) * unk.dilution.to_numpy(float)
        rows.append(pd.DataFrame({"sample_name": unk.sample_name.to_numpy(), "analyte": analyte, "value": conc}))
    return pd.concat(rows, ignore_index=True)


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
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = quantify_plate(plate)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        plain_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            plain = plain_fit_and_quantify(plate.wells)
            plain_times.append(time.perf_counter() - t0)
    s = res.samples[(res.samples["role"] == "unknown") & (res.samples["flag"] == "")]
    true = np.array([truth[(a, b)] for a, b in zip(s["sample_name"], s["feature"], strict=True)])
    rel = np.abs(s["value"].to_numpy() / true - 1)
    # the plain approach on the same in-range sample/analyte pairs (mean of the duplicates)
    plain = plain.assign(feature=plain.analyte).groupby(["sample_name", "feature"])["value"].mean()
    plain_vals = np.array([plain.get((a, b), np.nan) for a, b in zip(s["sample_name"], s["feature"], strict=True)])
    plain_rel = np.abs(plain_vals / true - 1)
    print(json.dumps({
        "benchmark": "chemokines_30_analyte_plate", "analytes": 30, "wells": int(plate.wells["well"].nunique()),
        "read_seconds": round(t_read, 4), "fit_and_quantify_seconds_median": round(float(np.median(times)), 4),
        "fit_and_quantify_seconds_min": round(float(np.min(times)), 4),
        # CPU time of this process: comparable between runs on a machine shared with others
        "fit_and_quantify_cpu_seconds_median": round(float(np.median(cpu)), 4),
        "curves_ok": int((res.curves["status"] == "ok").sum()),
        "vendor_results_reproduced": round(float(res.curves["vendor_reproduced_fraction"].mean()), 4),
        "refit_vs_vendor_median": round(float(res.curves["vendor_agreement_median_rel_diff"].median()), 4),
        "in_range_values": int(len(s)), "median_abs_rel_error": round(float(np.median(rel)), 4),
        "plain_fit_and_quantify_seconds_median": round(float(np.median(plain_times)), 4),
        "ratio_plain_over_immuno": round(float(np.median(plain_times) / np.median(times)), 3),
        "plain_median_abs_rel_error": round(float(np.nanmedian(plain_rel)), 4),
        "plain_values_missing": int(np.isnan(plain_vals).sum()),
    }, indent=2))


if __name__ == "__main__":
    main()
