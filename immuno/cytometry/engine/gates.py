"""The static gate model: gates as placed on a sample, in transformed coordinates.

Every gate names its parent (``None`` for a gate on all events) and the dimensions it
is drawn on. Dimensions are channel names ($PnN) of the matrix the gate is evaluated on;
the GatingML reader uses its own dimension keys for compensated/transformed derived
dimensions. Boundaries follow GatingML 2.0, so that FlowKit and FlowJo agree with us
event for event:

- rectangle (a range gate in 1-D): ``min <= x < max`` on every dimension, an open side
  written as ``None``;
- polygon: inside by the winding-number rule on the two dimensions (odd winding counts,
  as flowutils decides it);
- ellipse (ellipsoid in n-D): Mahalanobis distance squared ``<= distance_square``;
- quadrant: each dimension is cut by its divider values into bins ``0..len(values)``
  (bin ``j`` is ``values[j-1] <= x < values[j]``); each quadrant picks one bin per
  dimension and is a gate of its own (its id can be a parent or a boolean operand);
- boolean: ``and``/``or`` over operands, or ``not`` of one, each operand optionally
  complemented, combined from the operands' absolute memberships and then restricted
  to the boolean gate's own parent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "float32_limit",
    "Gate",
    "RectangleGate",
    "PolygonGate",
    "EllipseGate",
    "QuadrantGate",
    "BooleanGate",
    "gate_dims",
    "output_ids",
]


@dataclass(frozen=True)
class RectangleGate:
    """A range (1-D), rectangle (2-D) or hyper-rectangle gate.

    Attributes
    ----------
    gate_id, parent_id
        The gate's id and its parent's id (``None``: all events).
    dims
        Dimension names, one per axis.
    mins, maxs
        Inclusive lower and exclusive upper bound per dimension; ``None`` for an open side.
    complement
        True for the events outside the rectangle (FlowJo's "exclude" option).
    """

    gate_id: str
    parent_id: str | None
    dims: tuple[str, ...]
    mins: tuple[float | None, ...]
    maxs: tuple[float | None, ...]
    complement: bool = False

    def __post_init__(self) -> None:
        if not (len(self.dims) == len(self.mins) == len(self.maxs)) or not self.dims:
            raise ValueError(f"gate {self.gate_id!r}: dims, mins and maxs must have one entry each")
        for d, lo, hi in zip(self.dims, self.mins, self.maxs, strict=True):
            if lo is None and hi is None:
                raise ValueError(f"gate {self.gate_id!r}: dimension {d!r} has neither min nor max")


@dataclass(frozen=True)
class PolygonGate:
    """A polygon on two dimensions; vertices in order, the closing edge implied."""

    gate_id: str
    parent_id: str | None
    dims: tuple[str, str]
    vertices: tuple[tuple[float, float], ...]
    complement: bool = False

    def __post_init__(self) -> None:
        if len(self.dims) != 2:
            raise ValueError(f"gate {self.gate_id!r}: a polygon needs exactly 2 dimensions")
        if len(self.vertices) < 3:
            raise ValueError(f"gate {self.gate_id!r}: a polygon needs at least 3 vertices")


@dataclass(frozen=True)
class EllipseGate:
    """An ellipse (ellipsoid in more than two dimensions) by mean, covariance and size.

    ``distance_square`` is the squared Mahalanobis radius under ``covariance``.
    """

    gate_id: str
    parent_id: str | None
    dims: tuple[str, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    distance_square: float

    def __post_init__(self) -> None:
        n = len(self.dims)
        if n < 2 or len(self.mean) != n or len(self.covariance) != n or any(
            len(row) != n for row in self.covariance
        ):
            raise ValueError(
                f"gate {self.gate_id!r}: an ellipse needs >= 2 dims, a mean and an n x n covariance"
            )


@dataclass(frozen=True)
class QuadrantGate:
    """Dividers cutting one or more dimensions, and named regions (quadrants) between them.

    Attributes
    ----------
    dividers
        Dimension -> increasing divider values.
    quadrants
        Quadrant id -> {dimension: bin}; a dimension left out is not constrained.
    """

    gate_id: str
    parent_id: str | None
    dims: tuple[str, ...]
    dividers: dict[str, tuple[float, ...]]
    quadrants: dict[str, dict[str, int]]

    def __post_init__(self) -> None:
        for d in self.dims:
            values = self.dividers.get(d)
            if not values:
                raise ValueError(f"gate {self.gate_id!r}: dimension {d!r} has no divider values")
            if any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"gate {self.gate_id!r}: divider values of {d!r} must increase")
        for qid, bins in self.quadrants.items():
            for d, b in bins.items():
                if d not in self.dividers or not 0 <= b <= len(self.dividers[d]):
                    raise ValueError(f"quadrant {qid!r} of {self.gate_id!r}: bad bin {b} on {d!r}")


@dataclass(frozen=True)
class BooleanGate:
    """``and``/``or`` of operand gates, or ``not`` of one; operands are ``(gate_id, complement)``."""

    gate_id: str
    parent_id: str | None
    op: Literal["and", "or", "not"]
    operands: tuple[tuple[str, bool], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.op not in ("and", "or", "not"):
            raise ValueError(f"gate {self.gate_id!r}: boolean op must be and, or, not")
        if self.op == "not" and len(self.operands) != 1:
            raise ValueError(f"gate {self.gate_id!r}: 'not' takes exactly one operand")
        if self.op != "not" and len(self.operands) < 2:
            raise ValueError(f"gate {self.gate_id!r}: '{self.op}' needs at least two operands")

    @property
    def dims(self) -> tuple[str, ...]:
        """Boolean gates read no event dimensions."""
        return ()


Gate = RectangleGate | PolygonGate | EllipseGate | QuadrantGate | BooleanGate


def gate_dims(gate: Gate) -> tuple[str, ...]:
    """The event dimensions a gate reads (none for a boolean gate)."""
    return tuple(gate.dims)


def output_ids(gate: Gate) -> tuple[str, ...]:
    """The membership ids a gate produces: its quadrants' ids, or its own id."""
    if isinstance(gate, QuadrantGate):
        return tuple(gate.quadrants)
    return (gate.gate_id,)


def float32_limit(value: float) -> float:
    """The float64 gate limit that splits values as ``value`` splits their float32 roundings.

    The pipeline keeps transformed events as float32 and tests ``x >= value`` (or
    ``x < value``) on them; software that computes the same events in float64 (FlowKit,
    FlowJo) tests the exact values. With ``c`` the smallest float32 at or above
    ``value``, the returned limit is the smallest float64 that rounds to ``c`` (ties go to
    the even neighbour), so that for every float64 ``y``: ``y >= limit`` exactly when
    ``float32(y) >= value``. A gate exported with this limit therefore holds the same
    events in both, to the last event; it differs from ``value`` by less than one float32
    step.
    """
    v = float(value)
    if not math.isfinite(v):
        return v
    c = np.float32(v)
    if float(c) < v:
        c = np.nextafter(c, np.float32(np.inf))
    below = np.nextafter(c, np.float32(-np.inf))
    mid = (float(c) + float(below)) / 2  # exact: float32 values fit in a float64
    ties_up = int(np.asarray(c).view(np.uint32)) & 1 == 0
    return mid if ties_up else float(np.nextafter(mid, np.inf))
