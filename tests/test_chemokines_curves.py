"""Standard curves: 5PL/4PL fits, back-calculation, acceptance and exclusion rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import (
    CurveParams,
    back_calculate,
    fit_curve,
    fit_standard_curves,
    fit_standards,
    precision_profile,
    predict,
)

TRUE = CurveParams(a=3.0, b=0.8, c=4000.0, d=28000.0, g=1.3)
LEVELS = 10000.0 / 4.0 ** np.arange(8)


def _standards(
    p: CurveParams, noise: float = 0.0, seed: int = 0, levels: np.ndarray = LEVELS
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.repeat(levels, 2)
    y = predict(p, x) * (1 + noise * rng.standard_normal(len(x)))
    return pd.DataFrame(
        {
            "standard_level": np.repeat(np.arange(1, len(levels) + 1), 2).astype(float),
            "expected_conc": x,
            "net_mfi": y,
        }
    )


def test_back_calculate_inverts_predict() -> None:
    x = np.geomspace(0.1, 1e5, 50)
    assert np.allclose(back_calculate(TRUE, predict(TRUE, x)), x, rtol=1e-9)
    # beyond an asymptote there is no number
    assert np.isnan(back_calculate(TRUE, np.array([TRUE.a - 1, TRUE.d + 1, TRUE.a]))).all()


def test_5pl_fit_recovers_noiseless_curve() -> None:
    std = _standards(TRUE)
    fit = fit_curve(std["expected_conc"], std["net_mfi"], "5PL")
    assert fit.converged and fit.r2 > 0.999999
    x = np.geomspace(LEVELS.min(), LEVELS.max(), 30)
    assert np.allclose(back_calculate(fit.params, predict(TRUE, x)), x, rtol=1e-4)


def test_fit_with_noise_meets_acceptance_and_sets_loq() -> None:
    curve = fit_standards(_standards(TRUE, noise=0.03, seed=4), "CXCL10")
    assert curve.status == "ok" and curve.fit.model == "5PL"
    assert curve.points["passed"].mean() >= 0.75
    assert curve.lloq == pytest.approx(LEVELS.min()) and curve.uloq == pytest.approx(LEVELS.max())
    assert curve.params.ec50 > 0 and math.isfinite(curve.fit.r2)


def test_4pl_fallback_under_six_levels() -> None:
    p4 = CurveParams(a=5.0, b=1.0, c=500.0, d=20000.0, g=1.0)
    curve = fit_standards(_standards(p4, levels=LEVELS[:5]), "IL10")
    assert curve.status == "ok" and curve.fit.model == "4PL"
    assert curve.params.g == 1.0 and curve.params.c == pytest.approx(500.0, rel=1e-3)


def test_a_bad_standard_is_excluded_and_recorded() -> None:
    std = _standards(TRUE, noise=0.01, seed=2)
    std.loc[std["standard_level"] == 3, "net_mfi"] *= 2.5  # a pipetting error at S3
    curve = fit_standards(std, "CCL17")
    assert len(curve.excluded) >= 1 and len(curve.excluded) <= 2
    assert curve.excluded[0].startswith("standard 3 ")
    assert bool(curve.points.set_index("standard_level").loc[3.0, "excluded"])
    assert curve.status == "ok"


def test_locale_corrupted_concentrations_fail_the_analyte() -> None:
    std = _standards(TRUE)
    std.loc[std["standard_level"] == 2, "expected_conc"] = 2.5  # "2.500" read as 2.5
    curve = fit_standards(std, "CXCL9")
    assert curve.status == "failed" and "do not decrease" in curve.reason


def test_flat_standards_fail_with_a_reason() -> None:
    std = _standards(TRUE)
    std["net_mfi"] = np.random.default_rng(1).normal(100, 5, len(std))
    curve = fit_standards(std, "CCL22")
    assert curve.status == "failed" and "does not rise" in curve.reason


def test_missing_standards_fail_with_a_reason() -> None:
    std = _standards(TRUE).assign(expected_conc=np.nan)
    curve = fit_standards(std, "CCL11")
    assert curve.status == "failed" and "expected concentration" in curve.reason
    few = fit_curve(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), "5PL")
    assert not few.converged and "at least" in few.message


def test_fit_standard_curves_on_a_plate_table() -> None:
    std = _standards(TRUE, noise=0.02, seed=9)
    wells = pd.concat(
        [std.assign(analyte="CXCL9"), std.assign(analyte="IL10", net_mfi=std["net_mfi"] * 0.5)]
    )
    wells = wells.assign(role="standard", bead_count=80.0)
    wells.loc[wells.index[:1], "bead_count"] = 20.0  # one standard well with too few beads
    table, fitted = fit_standard_curves(wells)
    assert list(table["analyte"]) == ["CXCL9", "IL10"] and (table["status"] == "ok").all()
    assert fitted["CXCL9"].points.set_index("standard_level").loc[1.0, "n_wells"] == 1
    # halving every response moves the lower asymptote a and upper d, not the EC50
    assert table.loc[1, "ec50"] == pytest.approx(table.loc[0, "ec50"], rel=0.05)


def test_precision_profile_of_a_4pl() -> None:
    # a=0, b=1, g=1: a back-calculated CV of s * (1 + x/c), so 20 % is reached at x = 3c for s = 5 %
    p = CurveParams(a=0.0, b=1.0, c=100.0, d=10000.0, g=1.0)
    lo, hi = precision_profile(p, 0.05, 1.0, 10000.0)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(300.0, rel=0.02)
    # duplicates halve the variance: s / sqrt(2) * (1 + x/c) <= 20 % up to x = (4 sqrt(2) - 1) c
    _, hi2 = precision_profile(p, 0.05, 1.0, 10000.0, n_wells=2)
    assert hi2 == pytest.approx(100.0 * (4 * math.sqrt(2) - 1), rel=0.02)
    assert np.isnan(precision_profile(p, 0.5, 1.0, 10000.0)[0])
