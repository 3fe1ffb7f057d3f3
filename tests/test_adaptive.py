"""Adaptive gate placement on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from immuno.cytometry.adaptive import (
    density_valley,
    lymphocyte_gmm,
    singlet_polygon,
    singlet_ratio,
    tail_threshold,
)


def _bimodal(rng: np.random.Generator, n: int = 20000) -> tuple[np.ndarray, float]:
    """70 % negatives at 0.2, 30 % positives at 0.7; returns values and the true density minimum."""
    neg = rng.normal(0.2, 0.05, int(n * 0.7))
    pos = rng.normal(0.7, 0.06, n - len(neg))
    grid = np.linspace(0.25, 0.65, 4001)
    dens = 0.7 * norm.pdf(grid, 0.2, 0.05) + 0.3 * norm.pdf(grid, 0.7, 0.06)
    return np.concatenate([neg, pos]), float(grid[np.argmin(dens)])


def test_density_valley_finds_the_true_minimum() -> None:
    x, true_min = _bimodal(np.random.default_rng(1))
    got = density_valley(x, window=(0.3, 0.6), default=0.5)
    assert not got.fallback
    assert abs(got.value - true_min) < 0.02
    # misclassification at the found valley is what the two Gaussians imply, < 0.5 %
    wrong = 0.7 * norm.sf(got.value, 0.2, 0.05) + 0.3 * norm.cdf(got.value, 0.7, 0.06)
    assert wrong < 0.005


def test_density_valley_falls_back_without_a_second_peak() -> None:
    x = np.random.default_rng(2).normal(0.3, 0.08, 10000)
    got = density_valley(x, window=(0.3, 0.7), default=0.55)
    assert got.fallback and got.value == 0.55
    assert "no valley" in got.detail


def test_density_valley_only_searches_inside_the_window() -> None:
    rng = np.random.default_rng(3)
    # three populations: valleys near 0.35 and near 0.65; the window selects the second
    x = np.concatenate([rng.normal(0.2, 0.04, 8000), rng.normal(0.5, 0.04, 5000),
                        rng.normal(0.8, 0.04, 3000)])
    got = density_valley(x, window=(0.55, 0.75), default=0.7)
    assert not got.fallback
    assert 0.6 < got.value < 0.7
    # a window that holds a peak but no valley falls back rather than cutting the peak
    got = density_valley(x, window=(0.45, 0.55), default=0.5)
    assert got.fallback


def test_density_valley_too_few_events() -> None:
    got = density_valley(np.array([0.1, 0.9]), window=(0.2, 0.8), default=0.4)
    assert got.fallback and got.value == 0.4 and "only 2 events" in got.detail


def test_tail_threshold_is_the_control_percentile() -> None:
    control = np.random.default_rng(4).normal(0.2, 0.05, 5000)
    got = tail_threshold(control, 99.9, default=0.6, estimate="empirical")
    assert not got.fallback
    assert got.value == pytest.approx(np.percentile(control, 99.9))
    assert np.mean(control > got.value) == pytest.approx(0.001, abs=0.0005)
    few = tail_threshold(control[:100], 99.9, default=0.6)
    assert few.fallback and few.value == 0.6


def test_tail_threshold_on_the_negative_peak_ignores_genuine_positives() -> None:
    rng = np.random.default_rng(8)
    # an unstimulated tube: 0.3 % genuine producers far above the negatives
    neg = rng.normal(0.3, 0.03, 20000)
    control = np.concatenate([neg, rng.normal(0.62, 0.03, 60)])
    empirical = tail_threshold(control, 99.9, default=0.5, estimate="empirical")
    assert empirical.value > 0.5  # the empirical percentile lands among the positives
    got = tail_threshold(control, 99.9, default=0.5)
    assert got.value == pytest.approx(0.3 + 3.0902 * 0.03, abs=0.006)
    assert np.mean(neg > got.value) == pytest.approx(0.001, abs=0.0006)


def test_singlet_ratio_separates_doublets() -> None:
    rng = np.random.default_rng(5)
    area_s = rng.uniform(0.2, 0.5, 9000)
    height_s = area_s * rng.normal(0.85, 0.02, 9000)
    area_d = rng.uniform(0.4, 0.9, 1000)
    height_d = area_d * rng.normal(0.5, 0.03, 1000)
    area = np.concatenate([area_s, area_d])
    height = np.concatenate([height_s, height_d])
    got = singlet_ratio(area, height, k_mad=4.0)
    assert not got.fallback
    low, high = got.value
    r = height / area
    inside = (r >= low) & (r <= high)
    assert inside[:9000].mean() > 0.99
    assert inside[9000:].mean() < 0.01
    wedge = singlet_polygon(low, high, 1.0)
    assert wedge[0] == (0.0, 0.0) and wedge[1][1] == pytest.approx(low)


def test_singlet_ratio_falls_back_on_constant_ratio_failure() -> None:
    rng = np.random.default_rng(6)
    area = rng.uniform(0.1, 1, 5000)
    height = rng.uniform(0.1, 1, 5000)  # no diagonal at all
    got = singlet_ratio(area, height, k_mad=0.5, default=(0.7, 1.0))
    assert got.fallback and got.value == (0.7, 1.0)


def test_lymphocyte_gmm_picks_the_component_nearest_expected() -> None:
    rng = np.random.default_rng(7)
    lymph = rng.multivariate_normal([0.3, 0.12], [[0.002, 0.0005], [0.0005, 0.0008]], 6000)
    mono = rng.multivariate_normal([0.55, 0.35], [[0.003, 0.0], [0.0, 0.003]], 2000)
    debris = rng.multivariate_normal([0.06, 0.05], [[0.0004, 0.0], [0.0, 0.0004]], 2000)
    pts = np.concatenate([lymph, mono, debris])
    got = lymphocyte_gmm(pts[:, 0], pts[:, 1], expected=(0.3, 0.15), coverage=0.95, seed=0)
    assert not got.fallback
    assert got.value["mean"] == pytest.approx((0.3, 0.12), abs=0.01)
    cov = np.array(got.value["covariance"])
    d = pts - np.array(got.value["mean"])
    m2 = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
    inside = m2 <= got.value["distance_square"]
    assert inside[:6000].mean() == pytest.approx(0.95, abs=0.02)
    assert inside[6000:].mean() < 0.02
    # deterministic for a seed
    again = lymphocyte_gmm(pts[:, 0], pts[:, 1], expected=(0.3, 0.15), coverage=0.95, seed=0)
    assert again.value == got.value
    far = lymphocyte_gmm(pts[:, 0], pts[:, 1], expected=(0.9, 0.9), max_distance=0.1)
    assert far.fallback and far.value is None
