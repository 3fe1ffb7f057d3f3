"""Operating characteristics of the counts estimator on simulated biopsies.

800 biopsies (100 at each of 0, 0.1, 0.5, 1, 5, 10, 20 and 30 % donor), each with its own unrelated
recipient/donor pair typed on 40 biallelic markers at ~1000x, beta-binomial reads
(rho = 800) and per-marker background errors around 0.1 %. The references are simulated
too, so genotype calling and the error estimate are part of what is tested. The high
levels guard the interval ends: where the profile is steep, an end interpolated across a
wide grid step cut inside the interval (coverage was ~0.82 at 30 % in 1000 draws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immuno.chimerism import estimate_counts
from immuno.demo.chimerism import simulate_case

LEVELS = (0.0, 0.001, 0.005, 0.01, 0.05, 0.10, 0.20, 0.30)
PER_LEVEL = 100
MARKERS = 40


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    rng = np.random.default_rng(20261126)
    rows = []
    for level in LEVELS:
        for _ in range(PER_LEVEL):
            r = estimate_counts(*simulate_case(rng, MARKERS, level))
            rows.append(
                {
                    "level": level,
                    "fraction": r.fraction,
                    "lower": r.lower,
                    "upper": r.upper,
                    "detected": r.detected,
                    "failed": r.failed,
                    "lod": r.lod,
                }
            )
    return pd.DataFrame(rows)


def test_every_biopsy_gets_an_answer(simulated: pd.DataFrame) -> None:
    assert len(simulated) >= 200
    assert not simulated["failed"].any()
    assert simulated[["fraction", "lower", "upper", "lod"]].notna().all().all()


def test_interval_coverage_at_every_level(simulated: pd.DataFrame) -> None:
    covered = (simulated["lower"] <= simulated["level"]) & (
        simulated["level"] <= simulated["upper"]
    )
    coverage = covered.groupby(simulated["level"]).mean()
    assert (coverage >= 0.90).all(), coverage.to_dict()


def test_false_detection_and_power(simulated: pd.DataFrame) -> None:
    detected = simulated.groupby("level")["detected"].mean()
    assert detected[0.0] <= 0.02, detected.to_dict()
    assert detected[0.005] >= 0.95, detected.to_dict()
    assert (detected[detected.index >= 0.01] == 1.0).all(), detected.to_dict()


def test_estimates_unbiased_where_detectable(simulated: pd.DataFrame) -> None:
    for level in LEVELS[2:]:
        est = simulated.loc[simulated["level"] == level, "fraction"]
        # the mean of 100 estimates: within 3 standard errors of the truth
        assert abs(est.mean() - level) <= 3 * est.std(ddof=1) / np.sqrt(len(est)), (
            level,
            est.mean(),
        )
