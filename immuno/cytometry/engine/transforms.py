"""Per-channel display transforms: linear, log, logicle, hyperlog, arcsinh.

Gates are defined and drawn on the transformed scale, so the transforms must agree with
the tools a lab checks us against (FlowJo via GatingML, FlowKit/flowutils) to far better
than the width of a gate boundary. All transforms compute in float64 whatever the input
precision; callers that store float32 convert afterwards, but make gate decisions on the
float64 values (see :mod:`immuno.cytometry.engine.gate_tree`).

The logicle scale and its fast evaluation live in :mod:`immuno.cytometry.engine.logicle`; the
interface all transforms share in :mod:`immuno.cytometry.engine.transform_base`. Both are
re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flowutils import transforms as fu

from immuno.cytometry.engine.logicle import (
    LogicleTransform,
    _check_logicle_params,
    estimate_logicle_w,
)
from immuno.cytometry.engine.transform_base import Transform, _as_float64
from immuno.errors import UserError

__all__ = [
    "Transform",
    "LinearTransform",
    "LogTransform",
    "LogicleTransform",
    "HyperlogTransform",
    "AsinhTransform",
    "ArcsinhCofactor",
    "estimate_logicle_w",
    "transform_from_spec",
]

_LN10 = math.log(10.0)


class LinearTransform(Transform):
    """GatingML ``flin``: ``(x + a) / (t + a)``, mapping ``[-a, t]`` onto ``[0, 1]``.

    Parameters
    ----------
    t
        Top of scale (e.g. 262144 for an 18-bit instrument).
    a
        Offset bringing ``a`` units below zero on scale.
    """

    kind = "linear"

    def __init__(self, t: float = 262144.0, a: float = 0.0) -> None:
        if not t + a > 0:
            raise ValueError(f"linear transform needs t + a > 0, got t={t}, a={a}")
        self.t = float(t)
        self.a = float(a)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (_as_float64(x) + self.a) / (self.t + self.a)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return _as_float64(y) * (self.t + self.a) - self.a

    @property
    def params(self) -> dict[str, float]:
        return {"t": self.t, "a": self.a}


class LogTransform(Transform):
    """GatingML ``flog``: ``log10(x / t) / m + 1``; ``t`` maps to 1, ``m`` decades span the unit.

    Non-positive data have no logarithm and come out as NaN (or -inf for 0), which no
    gate contains -- the GatingML behaviour.
    """

    kind = "log"

    def __init__(self, t: float = 262144.0, m: float = 4.5) -> None:
        if not (t > 0 and m > 0):
            raise ValueError(f"log transform needs t > 0 and m > 0, got t={t}, m={m}")
        self.t = float(t)
        self.m = float(m)

    def apply(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (1.0 / self.m) * np.log10(_as_float64(x) / self.t) + 1.0

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.t * 10.0 ** ((_as_float64(y) - 1.0) * self.m)

    @property
    def params(self) -> dict[str, float]:
        return {"t": self.t, "m": self.m}


class AsinhTransform(Transform):
    """GatingML ``fasinh``: ``(asinh(x * sinh(m ln10) / t) + a ln10) / ((m + a) ln10)``."""

    kind = "asinh"

    def __init__(self, t: float = 262144.0, m: float = 4.5, a: float = 0.0) -> None:
        if not (t > 0 and m > 0 and m + a > 0):
            raise ValueError(f"asinh transform needs t > 0, m > 0, m + a > 0; got {t}, {m}, {a}")
        self.t = float(t)
        self.m = float(m)
        self.a = float(a)

    def apply(self, x: np.ndarray) -> np.ndarray:
        pre = np.sinh(self.m * _LN10) / self.t
        return (np.arcsinh(_as_float64(x) * pre) + self.a * _LN10) / ((self.m + self.a) * _LN10)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        pre = np.sinh(self.m * _LN10) / self.t
        return np.sinh(_as_float64(y) * (self.m + self.a) * _LN10 - self.a * _LN10) / pre

    @property
    def params(self) -> dict[str, float]:
        return {"t": self.t, "m": self.m, "a": self.a}


class ArcsinhCofactor(Transform):
    """Plain ``arcsinh(x / cofactor)``, the mass/flow convention of CATALYST and cytofkit.

    Unlike the GatingML transforms its output is not scaled to ``[0, 1]``; a cofactor near
    150 suits conventional fluorescence, 5 suits mass cytometry.
    """

    kind = "arcsinh"

    def __init__(self, cofactor: float = 150.0) -> None:
        if not cofactor > 0:
            raise ValueError(f"arcsinh cofactor must be > 0, got {cofactor}")
        self.cofactor = float(cofactor)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.arcsinh(_as_float64(x) / self.cofactor)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.sinh(_as_float64(y)) * self.cofactor

    @property
    def params(self) -> dict[str, float]:
        return {"cofactor": self.cofactor}


class HyperlogTransform(Transform):
    """GatingML ``hyperlog`` (Bagwell 2005), the root of ``a e^(b y) + c y - f``.

    Rare in new panels; kept so that GatingML files using it evaluate. It delegates to
    flowutils, the reference implementation FlowKit uses, so results match it exactly.
    """

    kind = "hyperlog"

    def __init__(self, t: float = 262144.0, w: float = 0.5, m: float = 4.5, a: float = 0.0):
        _check_logicle_params(t, w, m, a, "hyperlog")
        self.t, self.w, self.m, self.a = float(t), float(w), float(m), float(a)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return fu._hyperlog(_as_float64(x).ravel(), self.t, self.m, self.w, self.a).reshape(
            np.shape(x)
        )

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return fu._hyperlog_inverse(
            _as_float64(y).ravel(), self.t, self.m, self.w, self.a
        ).reshape(np.shape(y))

    @property
    def params(self) -> dict[str, float]:
        return {"t": self.t, "w": self.w, "m": self.m, "a": self.a}


def transform_from_spec(spec: dict[str, Any] | None, where: str = "panel",
                        data: np.ndarray | None = None) -> Transform | None:
    """Build a transform from a panel's transform dictionary.

    Parameters
    ----------
    spec
        ``{type: linear, t, a}``, ``{type: logicle, t, w, m, a}`` (``w: estimate`` derives W
        from ``data``), ``{type: arcsinh, cofactor}``, ``{type: asinh, t, m, a}``,
        ``{type: log, t, m}``, ``{type: hyperlog, t, w, m, a}``; ``None`` means untransformed.
    where
        Where the spec came from, for error messages (e.g. ``"panels/x.yaml transforms.fluor"``).
    data
        Compensated values of the channel, needed only for ``w: estimate``.

    Returns
    -------
    Transform or None

    Raises
    ------
    UserError
        Unknown type, missing or out-of-range parameters.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError.single(where, f"a transform needs a 'type', got {spec!r}")
    kind = str(spec["type"]).lower()
    defaults: dict[str, dict[str, float]] = {
        "linear": {"t": 262144.0, "a": 0.0},
        "log": {"t": 262144.0, "m": 4.5},
        "logicle": {"t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0},
        "hyperlog": {"t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0},
        "asinh": {"t": 262144.0, "m": 4.5, "a": 0.0},
        "arcsinh": {"cofactor": 150.0},
    }
    if kind not in defaults:
        raise UserError.single(
            where, f"unknown transform type {kind!r}; expected one of {', '.join(defaults)}"
        )
    unknown = set(spec) - set(defaults[kind]) - {"type"}
    if unknown:
        raise UserError.single(where, f"unknown {kind} parameter(s): {', '.join(sorted(unknown))}")
    params: dict[str, Any] = {**defaults[kind], **{k: v for k, v in spec.items() if k != "type"}}
    if kind == "logicle" and params["w"] == "estimate":
        if data is None:
            raise UserError.single(where, "w: estimate needs the channel's data")
        params["w"] = estimate_logicle_w(data, float(params["t"]), float(params["m"]),
                                         a=float(params["a"]))
    try:
        numeric = {k: float(v) for k, v in params.items()}
    except (TypeError, ValueError):
        raise UserError.single(where, f"{kind} parameters must be numbers, got {params}") from None
    classes: dict[str, type[Transform]] = {
        "linear": LinearTransform, "log": LogTransform, "logicle": LogicleTransform,
        "hyperlog": HyperlogTransform, "asinh": AsinhTransform, "arcsinh": ArcsinhCofactor,
    }
    try:
        return classes[kind](**numeric)
    except ValueError as exc:
        raise UserError.single(where, str(exc)) from None
