"""Adaptive gate placement on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from immuno.cytometry.analysis.adaptive import (
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


# --- gating from the panel -------------------------------------------------------------

CHANNELS = [{"channel": "FSC-A", "marker": None}, {"channel": "SSC-A", "marker": None},
            {"channel": "B2-A", "marker": "CD4"}, {"channel": "R4-A", "marker": "CD8"},
            {"channel": "V1-A", "marker": "IFNg"}]


def _quadrant_events(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = 8000
    cd4 = rng.random(n) < 0.55
    cd8 = ~cd4 & (rng.random(n) < 0.6)
    ev = np.empty((n, 5))
    ev[:, 0] = rng.normal(0.25, 0.03, n)
    ev[:, 1] = rng.normal(0.06, 0.01, n)
    ev[:, 2] = np.where(cd4, rng.normal(0.62, 0.04, n), rng.normal(0.18, 0.05, n))
    ev[:, 3] = np.where(cd8, rng.normal(0.68, 0.04, n), rng.normal(0.17, 0.05, n))
    ev[:, 4] = rng.normal(0.2, 0.04, n)
    return ev, cd4, cd8


def test_quadrant_gate_with_valley_dividers_from_the_panel() -> None:
    from immuno.cytometry.analysis.gating import place_gates

    ev, cd4, cd8 = _quadrant_events(np.random.default_rng(11))
    specs = [{"id": "T", "type": "quadrant", "dims": ["CD4", "CD8"],
              "dividers": [{"method": "density_valley", "window": [0.3, 0.5], "default": 0.4},
                           {"method": "density_valley", "window": [0.3, 0.55], "default": 0.42}],
              "quadrants": {"CD4_T": ["+", "-"], "CD8_T": ["-", "+"], "DN": ["-", "-"]}}]
    got = place_gates(ev, ["FSC-A", "SSC-A", "B2-A", "R4-A", "V1-A"], specs, CHANNELS)
    assert not any(p["fallback"] for p in got.placements)
    assert [p["dim"] for p in got.placements] == ["B2-A", "R4-A"]  # markers resolved to channels
    assert np.mean(got.memberships["CD4_T"] == cd4) > 0.999
    assert np.mean(got.memberships["CD8_T"] == cd8) > 0.999
    assert np.mean(got.memberships["DN"] == (~cd4 & ~cd8)) > 0.999


def test_gmm_gate_falls_back_to_the_panel_default_shape() -> None:
    from immuno.cytometry.analysis.gating import place_gates
    from immuno.cytometry.engine.gates import RectangleGate

    ev, _, _ = _quadrant_events(np.random.default_rng(12))
    specs = [{"id": "lymph", "type": "gmm", "dims": ["FSC-A", "SSC-A"], "expected": [0.7, 0.5],
              "max_distance": 0.05, "default": {"type": "rectangle", "min": [0.2, 0.03], "max": [0.3, 0.09]}}]
    got = place_gates(ev, ["FSC-A", "SSC-A", "B2-A", "R4-A", "V1-A"], specs, CHANNELS)
    assert got.fallbacks and got.fallbacks[0]["gate"] == "lymph"
    gate = got.gates[0]
    assert isinstance(gate, RectangleGate) and gate.mins == (0.2, 0.03)
    inside = (ev[:, 0] >= 0.2) & (ev[:, 0] < 0.3) & (ev[:, 1] >= 0.03) & (ev[:, 1] < 0.09)
    np.testing.assert_array_equal(got.memberships["lymph"], inside)


def test_control_percentile_gate_needs_a_control_tube() -> None:
    from immuno.cytometry.analysis.gating import ControlGating, place_gates
    from immuno.errors import UserError

    rng = np.random.default_rng(13)
    ev, _, _ = _quadrant_events(rng)
    specs = [{"id": "IFNg", "type": "threshold", "thresholds": [
        {"dim": "IFNg", "keep": "above", "method": "control_percentile", "percentile": 99.9, "default": 0.5}]}]
    names = ["FSC-A", "SSC-A", "B2-A", "R4-A", "V1-A"]
    with pytest.raises(UserError, match="control_of") as err:
        place_gates(ev, names, specs, CHANNELS, sample_id="P01-D0-ICS-STIM")
    assert "P01-D0-ICS-STIM" in str(err.value)
    control = ControlGating("P01-D0-ICS-UNSTIM", ev, names, {"root": np.ones(len(ev), bool)})
    stim = ev.copy()
    stim[:500, 4] = rng.normal(0.6, 0.03, 500)  # 500 responders
    got = place_gates(stim, names, specs, CHANNELS, control=control)
    threshold = got.gates[0].mins[0]
    assert threshold == pytest.approx(0.2 + 3.09 * 0.04, abs=0.01)
    assert got.memberships["IFNg"].sum() == pytest.approx(500 + 0.001 * 7500, abs=8)


def test_panel_mistakes_name_the_file_line_and_name(tmp_path) -> None:
    from pathlib import Path

    from immuno.contract.panels import load_panel
    from immuno.cytometry.pipeline.sample import panel_populations
    from immuno.errors import UserError

    source = Path(__file__).resolve().parents[1] / "panels" / "cytometry_ics_demo.yaml"
    text = source.read_text().replace('IL4_CD4: {expr: "CD4 & IL4 & !IFNg"',
                                    'IL4_CD4: {expr: "CD4 & IL4 & !IFNgamma"')
    text = text.replace("    parent: CD3\n", "    parent: CD33\n", 1)
    bad = tmp_path / "ics.yaml"
    bad.write_text(text)
    with pytest.raises(UserError) as err:
        panel_populations(load_panel(bad))
    msg = str(err.value)
    gate_line = text.splitlines().index("    parent: CD33") + 1 - 1  # the gate's "- id:" line
    assert f"{bad}: line {gate_line}: gates[4] (CD4)" in msg and "'CD33'" in msg
    # once the gates are right, the population's unknown name is reported with its line
    fixed = tmp_path / "ics2.yaml"
    fixed.write_text(text.replace("    parent: CD33\n", "    parent: CD3\n"))
    with pytest.raises(UserError) as err:
        panel_populations(load_panel(fixed))
    pop_line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("  IL4_CD4:"))
    assert f"{fixed}: line {pop_line}: populations.IL4_CD4" in str(err.value)
    assert "'IFNgamma'" in str(err.value)


def test_headline_names_are_checked(tmp_path) -> None:
    from pathlib import Path

    from immuno.contract.panels import load_panel
    from immuno.cytometry.pipeline.sample import panel_populations
    from immuno.errors import UserError

    source = Path(__file__).resolve().parents[1] / "panels" / "cytometry_surface_demo.yaml"
    text = source.read_text().replace("Treg: {population: Treg, of: CD4,", "Treg: {population: Treg, of: CD4T,")
    text = text.replace("ratio: [Th1, Th2]", "ratio: [Th1, Th22]")
    bad = tmp_path / "surface.yaml"
    bad.write_text(text)
    with pytest.raises(UserError) as err:
        panel_populations(load_panel(bad))
    problems = err.value.problems
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("  Treg: {population"))
    assert problems[0].where == f"{bad}: line {line}: headline.Treg" and "'CD4T'" in problems[0].what
    assert problems[1].where.endswith("headline.Th1_Th2_ratio") and "'Th22'" in problems[1].what
