"""Population statistics and headline features from known counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from immuno.cytometry.analysis.populations import population_specs
from immuno.cytometry.analysis.statistics import (
    headline_features,
    marker_medians,
    population_masks,
    population_statistics,
)

HEADLINE = {
    "Th1": {"population": "Th1", "of": "CD4", "unit": "% of CD4+", "subtract_control": True},
    "Th2": {"population": "Th2", "of": "CD4", "unit": "% of CD4+", "subtract_control": True},
    "Th1_Th2_ratio": {"ratio": ["Th1", "Th2"], "unit": "ratio"},
}


def _masks() -> dict[str, np.ndarray]:
    n = 1000
    root = np.ones(n, bool)
    cd4 = np.zeros(n, bool)
    cd4[:400] = True
    ifng = np.zeros(n, bool)
    ifng[:60] = True      # 60 of CD4 IFNg+
    ifng[900:950] = True  # outside CD4: must not count
    il4 = np.zeros(n, bool)
    il4[50:70] = True     # 10 double positives (50..59), 10 IL4 only
    return {"root": root, "CD4": cd4, "IFNg": cd4 & ifng, "IL4": cd4 & il4}


def test_population_statistics_counts_and_percentages() -> None:
    pops = population_specs({"Th1": {"expr": "CD4 & IFNg & !IL4", "parent": "CD4"},
                             "Th2": {"expr": "CD4 & IL4 & !IFNg", "parent": "CD4"}},
                            ["CD4", "IFNg", "IL4"])
    masks = population_masks(_masks(), pops)
    parents = {"CD4": None, "IFNg": "CD4", "IL4": "CD4", "Th1": "CD4", "Th2": "CD4"}
    stats = population_statistics(masks, parents, reference="CD4").set_index("population")
    assert stats.loc["Th1", "count"] == 50
    assert stats.loc["Th2", "count"] == 10
    assert stats.loc["Th1", "pct_of_parent"] == pytest.approx(12.5)
    assert stats.loc["CD4", "pct_of_parent"] == pytest.approx(40.0)
    assert stats.loc["Th2", "pct_of_reference"] == pytest.approx(2.5)
    assert "root" not in stats.index


def test_marker_medians_per_population() -> None:
    masks = _masks()
    values = np.arange(2000, dtype=float).reshape(1000, 2)
    med = marker_medians(masks, values, ["CD4", "IFNg"])
    assert med.loc["CD4", "CD4"] == pytest.approx(np.median(values[:400, 0]))
    assert med.loc["IL4", "IFNg"] == pytest.approx(np.median(values[50:70, 1]))


def test_headline_subtracts_the_control_and_floors_at_zero() -> None:
    stim = {"CD4": 1000, "Th1": 120, "Th2": 10}
    unstim = {"CD4": 800, "Th1": 8, "Th2": 16}
    rows = {r["feature"]: r for r in headline_features(HEADLINE, stim, unstim)}
    assert rows["Th1_stimulated"]["value"] == pytest.approx(12.0)
    assert rows["Th1_unstimulated"]["value"] == pytest.approx(1.0)
    assert rows["Th1"]["value"] == pytest.approx(11.0)
    assert rows["Th2"]["value"] == 0.0  # 1.0 - 2.0 floored
    assert rows["Th2_unstimulated"]["value"] == pytest.approx(2.0)
    assert math.isnan(rows["Th1_Th2_ratio"]["value"])
    assert rows["Th1_Th2_ratio"]["flag"] == "undefined"


def test_headline_without_control_and_empty_denominator() -> None:
    spec = {"Treg": {"population": "Treg", "of": "CD4", "unit": "% of CD4+"},
            "Th1": {"population": "Th1", "of": "memory", "unit": "% of memory CD4+"},
            "Th2": {"population": "Th2", "of": "memory", "unit": "% of memory CD4+"},
            "Th1_Th2_ratio": {"ratio": ["Th1", "Th2"], "unit": "ratio"}}
    rows = {r["feature"]: r for r in headline_features(spec, {"CD4": 500, "Treg": 30, "memory": 0})}
    assert rows["Treg"]["value"] == pytest.approx(6.0)
    assert math.isnan(rows["Th1"]["value"]) and rows["Th1"]["flag"] == "no_events"
    rows = {r["feature"]: r for r in headline_features(spec, {"CD4": 500, "memory": 200, "Th1": 30, "Th2": 20})}
    assert rows["Th1_Th2_ratio"]["value"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="subtracts a control"):
        headline_features(HEADLINE, {"CD4": 1})


def test_fast_order_statistics_equal_numpy_to_the_bit() -> None:
    from immuno.cytometry.analysis import order_stats

    rng = np.random.default_rng(5)
    samples = [rng.normal(0.4, 0.1, 50_001), np.round(rng.normal(0, 3, 40_000)),
               rng.exponential(1, 60_000) * rng.choice([-1, 1], 60_000), np.full(30_000, 0.25)]
    for x in samples:
        for data in (x.astype(np.float32), x):
            qs = [0.0, 0.1, 25, 50, 75, 99.9, 100]
            assert np.array_equal(order_stats.percentile(data, qs), np.percentile(data.astype(float), qs))
            assert order_stats.median(data) == np.median(data.astype(float))
            assert order_stats.percentile(data, 99.9) == np.percentile(data.astype(float), 99.9)
    assert np.isnan(order_stats.median(np.array([1.0, np.nan] * 20_000, dtype=np.float32)))


def test_marker_medians_on_transformed_events_report_the_untransformed_median() -> None:
    from immuno.cytometry.engine.transforms import LogicleTransform

    rng = np.random.default_rng(6)
    logicle = LogicleTransform(262144, 0.5, 4.5, 0)
    compensated = np.column_stack([rng.normal(300, 900, 40_001), rng.lognormal(8, 1, 40_001)])
    x = np.asfortranarray(logicle.apply(compensated).astype(np.float32))
    masks = {"all": np.ones(40_001, bool), "half": rng.random(40_001) < 0.5, "none": np.zeros(40_001, bool)}
    med = marker_medians(masks, x, ["A", "B"], inverse={0: logicle, 1: logicle})
    for name, mask in masks.items():
        if mask.any():
            np.testing.assert_allclose(med.loc[name].to_numpy(), np.median(compensated[mask], axis=0),
                                       rtol=2e-6, atol=1e-3)
    assert med.loc["none"].isna().all()
    plain = marker_medians(masks, x, ["A", "B"])
    assert plain.loc["half", "A"] == np.median(x[masks["half"], 0].astype(float))
