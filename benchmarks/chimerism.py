"""Chimerism benchmark: speed of the counts estimator and the anchors, printed as JSON.

    .venv/bin/python benchmarks/chimerism.py [--biopsies 100] [--markers 200] [--repeats 3] [--coverage-draws 200]

* speed: 100 simulated biopsies x 200 biallelic markers at ~1000x (each with its own
  recipient/donor pair), estimated with references typed beforehand (``estimate``) and
  from the raw reference counts (``end_to_end``); best of ``--repeats`` runs;
* coverage: the counts interval's coverage at 0.1-30 % donor (``--coverage-draws`` per
  level, 48 markers as in the demo);
* anchors: the allomix 10 % admixture VCF (truth 10 %) and the Pedini et al. 2021 ddPCR
  table (Poisson-corrected vs the paper's raw droplet ratio), when ../shared/data/real
  is present.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.chimerism import estimate_counts, read_vcf, reference_pair
from immuno.chimerism.pcr import estimate_ddpcr
from immuno.demo.chimerism import simulate_case

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "chimerism"
LEVELS = (0.0, 0.001, 0.005, 0.01, 0.05)
COVERAGE_LEVELS = (0.001, 0.01, 0.05, 0.10, 0.20, 0.30)


def _cases(biopsies: int, markers: int, seed: int = 1) -> list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, float]]:
    rng = np.random.default_rng(seed)
    return [(*simulate_case(rng, markers, LEVELS[i % len(LEVELS)]), LEVELS[i % len(LEVELS)]) for i in range(biopsies)]


def speed(biopsies: int, markers: int, repeats: int) -> dict[str, float]:
    """Seconds for the whole set: estimation alone, and with reference typing."""
    cases = _cases(biopsies, markers)
    pairs = [reference_pair(rec, don) for _, rec, don, _ in cases]
    estimate, estimate_cpu, end_to_end = [], [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        results = [estimate_counts(bx, pair=p) for (bx, _, _, _), p in zip(cases, pairs, strict=True)]
        estimate.append(time.perf_counter() - t)
        estimate_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        for bx, rec, don, _ in cases:
            estimate_counts(bx, rec, don)
        end_to_end.append(time.perf_counter() - t)
    covered = [r.lower <= lv <= r.upper for r, (_, _, _, lv) in zip(results, cases, strict=True)]
    return {"biopsies": biopsies, "markers": markers, "estimate_seconds": min(estimate),
            "estimate_cpu_seconds": min(estimate_cpu),
            "end_to_end_seconds": min(end_to_end), "interval_coverage": float(np.mean(covered)),
            "detected_at_0": float(np.mean([r.detected for r, c in zip(results, cases, strict=True) if c[3] == 0]))}


def coverage(per_level: int, markers: int = 48, seed: int = 20261126) -> dict[str, dict[str, float]]:
    """Interval coverage, SD of the estimates and mean half-width / (1.96 SD) per donor level.

    Each biopsy has its own unrelated pair typed from simulated reference counts, as in
    the demo (48 markers, ~1000x, rho = 800); a calibrated interval covers ~95 % with a
    width ratio near 1.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for level in COVERAGE_LEVELS:
        r = [estimate_counts(*simulate_case(rng, markers, level)) for _ in range(per_level)]
        est = np.array([x.fraction for x in r])
        half = np.array([(x.upper - x.lower) / 2 for x in r])
        out[f"{100 * level:g} %"] = {"coverage": float(np.mean([x.lower <= level <= x.upper for x in r])),
                                     "sd_pct": 100 * float(est.std(ddof=1)),
                                     "halfwidth_over_1.96sd": float(half.mean() / (1.96 * est.std(ddof=1)))}
    return out


def anchors() -> dict[str, object]:
    """The real-file anchors, or why they were skipped."""
    if not REAL.is_dir():
        return {"skipped": "../shared/data/real/chimerism not present"}
    folder = REAL / "allomix_synthetic"
    r = estimate_counts(read_vcf(folder / "host_90_donor_10.vcf"), read_vcf(folder / "host.vcf"),
                        read_vcf(folder / "donor.vcf"))
    out: dict[str, object] = {"allomix_10pct": {"truth_pct": 10.0, "estimate_pct": 100 * r.fraction,
                                                "lower_pct": 100 * r.lower, "upper_pct": 100 * r.upper,
                                                "summary": r.summary()}}
    table = pd.read_csv(REAL / "ddpcr" / "pedini2021_table3.tsv", sep="\t", comment="#")
    rows = []
    for _, t in table.iterrows():
        d = estimate_ddpcr(t["y_pos"], t["total_droplets"], t["rpp30_pos"], t["total_droplets"])
        rows.append({"sample": t["sample"], "expected_pct": float(t["expected_pct"]),
                     "paper_pct": str(t["reported_pct"]), "raw_pct": 100 * d.details["raw_fraction"],
                     "poisson_pct": 100 * d.fraction, "lower_pct": 100 * d.lower, "upper_pct": 100 * d.upper,
                     "detected": d.detected})
    out["pedini2021_ddpcr"] = rows
    return out


def _machine_speed() -> float:
    """Seconds for 1M log-gamma evaluations (best of 5): scales the timings between machines."""
    from scipy.special import gammaln

    x = np.linspace(1.0, 1000.0, 1_000_000)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        gammaln(x)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--biopsies", type=int, default=100)
    ap.add_argument("--markers", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--coverage-draws", type=int, default=200, help="simulated biopsies per level (0: skip)")
    a = ap.parse_args()
    result = {"machine": {"gammaln_1M_seconds": _machine_speed()},
              "speed": speed(a.biopsies, a.markers, a.repeats), "anchors": anchors()}
    if a.coverage_draws:
        result["coverage"] = coverage(a.coverage_draws)
    print(json.dumps(result, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))


if __name__ == "__main__":
    main()
