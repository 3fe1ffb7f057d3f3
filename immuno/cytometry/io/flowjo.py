"""FlowJo 10's own display transforms, as FlowKit evaluates them.

A FlowJo workspace's ``biex`` and ``log`` transforms are defined by FlowJo's interpolated
lookup tables rather than by the GatingML formulas; FlowKit reproduces those tables.
Both the GatingML reader (workspace gates arrive as FlowKit gating strategies) and the
template reader need them, so they live here, below both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from immuno.cytometry.engine.transforms import Transform

__all__ = ["FlowJoTransform", "wsp_transform"]


class FlowJoTransform(Transform):
    """A FlowJo 10 display transform (``biex`` lookup table or ``log``), as FlowKit evaluates it.

    FlowJo's biexponential is defined by its own interpolated lookup table rather than by
    the logicle formula, so it is delegated to FlowKit's reproduction of that table.
    """

    kind = "flowjo"

    def __init__(self, flowkit_transform: Any) -> None:
        self._fk = flowkit_transform

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fk.apply(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        if not hasattr(self._fk, "inverse"):
            raise NotImplementedError(f"{type(self._fk).__name__} has no inverse")
        return np.asarray(self._fk.inverse(np.asarray(y, dtype=np.float64)), dtype=np.float64)

    @property
    def params(self) -> dict[str, float]:
        names = ("negative", "width", "positive", "max_value", "offset", "decades")
        return {n: float(getattr(self._fk, n)) for n in names if hasattr(self._fk, n)}

    def spec(self) -> dict[str, Any]:
        return {"type": f"flowjo_{type(self._fk).__name__}", **self.params}


def wsp_transform(xform: Any) -> Transform | None:
    """Our transform for one of FlowJo's workspace transforms, or None if it is not one."""
    if type(xform).__name__ in ("WSPBiexTransform", "WSPLogTransform"):
        return FlowJoTransform(xform)
    return None
