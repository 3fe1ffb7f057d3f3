"""Transforms agree with FlowKit/flowutils, the reference the lab checks gates against."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flowkit import transforms as fk

from immuno.cytometry.engine.transforms import (
    ArcsinhCofactor,
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    estimate_logicle_w,
    transform_from_spec,
)
from immuno.errors import UserError

LOGICLE_PARAMS = [
    (262144, 0.5, 4.5, 0),
    (262144, 1.0, 4.5, 0.5),
    (10000, 0.5, 4.5, 0),
    (1000, 2.0, 4.0, 0),
    (262144, 1.5, 4.5, 1.0),
    (262144, 0.0, 4.5, 0),
    (4096, 0.25, 3.5, -0.25),
]


def _events(seed: int = 0) -> np.ndarray:
    """Compensated-looking values: a negative spread, a bright log-normal tail, edge values."""
    rng = np.random.default_rng(seed)
    edges = [0.0, 1e-7, -1e-7, 1e-3, -1e-3, 1.0, -1.0, 262143.9, 262144.0, 1e6, -5e4, 3e12]
    return np.concatenate(
        [rng.normal(0, 300, 40_000), rng.lognormal(7, 2.5, 40_000), edges]
    ).astype(np.float64)


@pytest.mark.parametrize("t,w,m,a", LOGICLE_PARAMS)
def test_logicle_equals_flowkit(t: float, w: float, m: float, a: float) -> None:
    x = _events()
    ours = LogicleTransform(t, w, m, a)
    ref = fk.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a).apply(x)
    if w == 0:
        # flowutils' iteration collapses to -1 for 0 < |x| < ~1e-8 when W = 0; compare
        # away from that and check ours there against the exact arcsinh form instead
        keep = (np.abs(x) >= 1e-6) | (x == 0)
        np.testing.assert_array_less(np.abs(ours.apply(x) - ref)[keep], 1e-9)
    else:
        np.testing.assert_array_less(np.abs(ours.apply(x) - ref), 1e-9)
    # the float32 path reads the same values
    x32 = x.astype(np.float32)
    ref32 = fk.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a).apply(
        x32.astype(np.float64)
    )
    keep = (np.abs(x32) >= 1e-6) | (x32 == 0) if w == 0 else slice(None)
    np.testing.assert_array_less(np.abs(ours.apply(x32) - ref32)[keep], 1e-9)
    # the per-value Halley path is the reference algorithm itself
    exact = ours.apply_exact(x)
    np.testing.assert_array_less(np.abs(exact - ours.apply(x)), 1e-9)


@pytest.mark.parametrize("t,w,m,a", LOGICLE_PARAMS)
def test_logicle_inverse_round_trip(t: float, w: float, m: float, a: float) -> None:
    ours = LogicleTransform(t, w, m, a)
    y = np.linspace(-0.2, 1.1, 5001)
    ref = fk.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a).inverse(y)
    back = ours.inverse(y)
    np.testing.assert_allclose(back, ref, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ours.apply(back), y, atol=1e-9)


def test_logicle_w0_small_values_follow_arcsinh() -> None:
    lt = LogicleTransform(262144, 0.0, 4.5, 0.0)
    x = np.array([1e-12, -1e-12, 1e-9, 5e-8])
    # with W = 0 the scale is asinh(x / (2 a)) / b, a and b from T and M
    b = 4.5 * math.log(10)
    two_a = 2 * 262144 / (math.exp(b) - math.exp(-b))
    np.testing.assert_allclose(lt.apply(x), np.arcsinh(x / two_a) / b, rtol=1e-9)


def test_logicle_fixed_points() -> None:
    lt = LogicleTransform(262144, 0.5, 4.5, 0)
    out = lt.apply(np.array([0.0, 262144.0, np.nan]))
    assert out[0] == pytest.approx(0.5 / 4.5, abs=1e-15)  # data zero sits at W/(M+A)
    assert out[1] == pytest.approx(1.0, abs=1e-12)  # T maps to the top of scale
    assert np.isnan(out[2])


def test_logicle_out_parameter_float32() -> None:
    x = _events(3).astype(np.float32)
    buf = np.empty(x.shape, dtype=np.float32)
    lt = LogicleTransform()
    res = lt.apply(x, out=buf)
    assert res is buf
    np.testing.assert_allclose(buf, lt.apply(x).astype(np.float32), rtol=0, atol=0)
    # a strided output (a column of a row-major matrix) is filled too
    matrix = np.zeros((x.size, 3))
    lt.apply(x, out=matrix[:, 1])
    np.testing.assert_array_equal(matrix[:, 1], lt.apply(x))
    assert not matrix[:, [0, 2]].any()


@pytest.mark.parametrize("t,a", [(262144, 0), (1024, 24.5), (100000, -10)])
def test_linear_equals_flowkit(t: float, a: float) -> None:
    x = _events()
    ours = LinearTransform(t, a)
    ref = fk.LinearTransform(param_t=t, param_a=a)
    np.testing.assert_allclose(ours.apply(x), ref.apply(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(ours.inverse(ours.apply(x)), x, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("t,m,a", [(262144, 4.5, 0), (10000, 5, 1), (1000, 4, 0.5)])
def test_asinh_equals_flowkit(t: float, m: float, a: float) -> None:
    x = _events()
    ours = AsinhTransform(t, m, a)
    ref = fk.AsinhTransform(param_t=t, param_m=m, param_a=a)
    np.testing.assert_allclose(ours.apply(x), ref.apply(x), rtol=1e-12, atol=1e-12)
    y = np.linspace(0, 1, 101)
    np.testing.assert_allclose(ours.inverse(y), ref.inverse(y), rtol=1e-12, atol=1e-6)


def test_log_equals_flowkit() -> None:
    x = np.abs(_events()) + 1.0
    ours = LogTransform(10000, 5)
    ref = fk.LogTransform(param_t=10000, param_m=5)
    np.testing.assert_allclose(ours.apply(x), ref.apply(x), rtol=1e-14)
    np.testing.assert_allclose(ours.inverse(ours.apply(x)), x, rtol=1e-10)


def test_hyperlog_equals_flowkit() -> None:
    x = _events()
    ours = HyperlogTransform(1023, 0.5, 4.5, 0)
    ref = fk.HyperlogTransform(param_t=1023, param_w=0.5, param_m=4.5, param_a=0)
    np.testing.assert_allclose(ours.apply(x), ref.apply(x), rtol=0, atol=1e-12)


def test_arcsinh_cofactor() -> None:
    x = _events()
    tr = ArcsinhCofactor(150)
    # CATALYST convention: plain arcsinh of the value divided by the cofactor
    assert tr.apply(np.array([150.0]))[0] == pytest.approx(math.asinh(1.0))
    np.testing.assert_allclose(tr.inverse(tr.apply(x)), x, rtol=1e-12, atol=1e-9)


def test_estimate_logicle_w_from_negative_spread() -> None:
    rng = np.random.default_rng(7)
    # negatives spread uniformly over [-200, 0): their 5th percentile is -190
    neg = -rng.permutation(np.linspace(0.02, 200, 100_000))
    pos = rng.lognormal(8, 1, 50_000)
    x = np.concatenate([neg, pos])
    r = float(np.quantile(neg, 0.05))
    expected = (4.5 - math.log10(262144 / abs(r))) / 2
    assert r == pytest.approx(-190.0, abs=0.01)
    assert estimate_logicle_w(x, 262144, 4.5) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.6801, abs=1e-4)  # (4.5 - log10(262144/190)) / 2
    # no negatives: no linear region needed
    assert estimate_logicle_w(pos, 262144, 4.5) == 0.0
    # enormous negative spread is clipped to the admissible W <= M / 2
    assert estimate_logicle_w(np.array([-1e9, 1.0]), 262144, 4.5) == 2.25


def test_transform_from_spec() -> None:
    lin = transform_from_spec({"type": "linear", "t": 262144, "a": 0})
    assert isinstance(lin, LinearTransform) and lin.params == {"t": 262144.0, "a": 0.0}
    lg = transform_from_spec({"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0})
    assert lg == LogicleTransform(262144, 0.5, 4.5, 0)
    ar = transform_from_spec({"type": "arcsinh", "cofactor": 150})
    assert isinstance(ar, ArcsinhCofactor) and ar.cofactor == 150
    assert transform_from_spec(None) is None
    data = np.concatenate([-np.linspace(0.02, 200, 1000), np.linspace(1, 1e5, 1000)])
    est = transform_from_spec({"type": "logicle", "w": "estimate"}, data=data)
    assert isinstance(est, LogicleTransform)
    assert est.w == pytest.approx(estimate_logicle_w(data, 262144, 4.5))
    assert lg.spec() == {"type": "logicle", "t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ({"type": "logarithmic"}, "unknown transform type"),
        ({"t": 1}, "needs a 'type'"),
        ({"type": "logicle", "w": 3.0, "m": 4.5}, "out of range"),
        ({"type": "arcsinh", "cofactor": "big"}, "must be numbers"),
        ({"type": "linear", "top": 5}, "unknown linear parameter"),
        ({"type": "logicle", "w": "estimate"}, "needs the channel's data"),
    ],
)
def test_transform_from_spec_errors(spec: dict, fragment: str) -> None:
    with pytest.raises(UserError) as err:
        transform_from_spec(spec, where="panels/p.yaml transforms.fluor")
    assert fragment in str(err.value)
    assert "panels/p.yaml transforms.fluor" in str(err.value)
