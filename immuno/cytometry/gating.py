"""Gating from the panel: place each gate of the hierarchy on one sample.

The panel's ``gates:`` list is a hierarchy (each gate names its ``parent``); a gate is
either fixed (rectangle, polygon, ellipse, in transformed coordinates) or placed on
each sample from its data (threshold gates by density valley or control percentile,
quadrants whose dividers are such thresholds, singlets by FSC-H/FSC-A ratio,
lymphocytes by a Gaussian mixture). Gates are placed top down: a child is placed on the
events of its parent as placed on this sample. The result is a list of static gates of
:mod:`immuno.cytometry.gates` (what the GatingML export writes) plus every event's
membership and a record of each placement (method, value, fallback and why).

Gates without a parent start from the events that passed acquisition QC (the root mask),
so flagged events never enter a population. The placed hierarchy is evaluated in one pass
by :class:`immuno.cytometry.engine.GateTree`.

:func:`~immuno.cytometry.panel_checks.panel_problems` resolves a panel's gating logic
(gates, populations, headline names) without any data; processing a sample and
``immuno validate`` both run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from immuno.cytometry import adaptive
from immuno.cytometry.engine import GateTree, gate_membership
from immuno.cytometry.gates import EllipseGate, PolygonGate, QuadrantGate, RectangleGate
from immuno.cytometry.panel_checks import (
    RESERVED_PREFIX,
    ROOT,
    gate_names,
    gate_specs_of,
    panel_lines,
    panel_problems,
    resolve_dim,
)
from immuno.cytometry.populations import Population, population_specs
from immuno.errors import UserError
from immuno.panels import Panel

__all__ = ["RESERVED_PREFIX", "ROOT", "ControlGating", "GatingResult", "gate_names", "panel_populations",
           "panel_problems", "place_gates", "resolve_dim"]



@dataclass
class ControlGating:
    """A control tube gated with the same panel (the source of control-percentile gates).

    Attributes
    ----------
    sample_id
        The control's sample id (for messages).
    events
        Its transformed events.
    channels
        Column names of ``events``.
    memberships
        Gate id -> boolean membership, as placed on the control.
    """

    sample_id: str
    events: np.ndarray
    channels: list[str]
    memberships: dict[str, np.ndarray]


@dataclass
class GatingResult:
    """The gates as placed on one sample.

    Attributes
    ----------
    gates
        Static gates (:mod:`immuno.cytometry.gates`) in panel order.
    memberships
        Gate id (and quadrant id) -> boolean membership over all events, including the
        root mask (``"root"``).
    placements
        One record per placed threshold/shape: gate, dim, method, value, fallback, detail.
    template
        The gating template the gates come from ("" for gates placed from the panel);
        template gates are on the template's own dimensions, so they are not drawn or
        re-exported (the template file itself is the record).
    """

    gates: list[Any] = field(default_factory=list)
    memberships: dict[str, np.ndarray] = field(default_factory=dict)
    placements: list[dict[str, Any]] = field(default_factory=list)
    template: str = ""

    @property
    def fallbacks(self) -> list[dict[str, Any]]:
        """The placements that used the panel's default."""
        return [p for p in self.placements if p["fallback"]]


def panel_populations(panel: Panel) -> list[Population]:
    """The panel's populations, checked against its gates (problems name the panel file).

    Raises
    ------
    UserError
        Listing every problem :func:`panel_problems` finds.
    """
    problems = panel_problems(panel)
    if problems:
        raise UserError(problems, hint=f"Fix the gates, populations or headline section of {panel.path}.")
    pop_lines = {k.split(".", 1)[1]: v for k, v in panel_lines(panel.path).items() if k.startswith("populations.")}
    return population_specs(panel.get("populations"), gate_names(gate_specs_of(panel)),
                            where=str(panel.path), lines=pop_lines)


class _Placer:
    """Places the gates of one panel on one sample (see :func:`place_gates`)."""

    def __init__(self, events: np.ndarray, channels: list[str], panel_channels: Sequence[Mapping[str, Any]],
                 control: ControlGating | None, own_control: bool, sample_id: str) -> None:
        self.events, self.channels = events, list(channels)
        self.panel_channels = panel_channels
        self.control, self.own_control, self.sample_id = control, own_control, sample_id
        self.result = GatingResult()

    def col(self, dim: str) -> int:
        return self.channels.index(dim)

    def values(self, dim: str, mask: np.ndarray) -> np.ndarray:
        return self.events[mask, self.col(dim)]

    def record(self, gate_id: str, dim: str, placed: adaptive.Placement) -> None:
        self.result.placements.append({"gate": gate_id, "dim": dim, "method": placed.method,
                                       "value": placed.value, "fallback": placed.fallback,
                                       "detail": placed.detail})

    def threshold(self, gate_id: str, parent: str, spec: Mapping[str, Any], dim: str,
                  parent_mask: np.ndarray) -> float:
        method = spec["method"]
        if method == "fixed":
            placed = adaptive.Placement("fixed", float(spec["at"]), False, "fixed in the panel")
        elif method == "density_valley":
            kw = {k: spec[k] for k in ("bandwidth", "min_events") if k in spec}
            placed = adaptive.density_valley(self.values(dim, parent_mask), tuple(spec["window"]),
                                             float(spec["default"]), **kw)
        else:  # control_percentile
            if self.own_control:
                ctrl = self.values(dim, parent_mask)
            elif self.control is not None:
                c = self.control
                ctrl = c.events[c.memberships[parent], c.channels.index(dim)]
            else:
                raise UserError.single(f"sample {self.sample_id}",
                                       f"gate {gate_id!r} is set on a control tube, but no unstimulated/FMO "
                                       "tube names this sample in its control_of column",
                                       hint="Add the control tube to the sample sheet with control_of "
                                            f"= {self.sample_id}.")
            kw = {"min_events": int(spec["min_events"])} if "min_events" in spec else {}
            placed = adaptive.tail_threshold(ctrl, float(spec["percentile"]), float(spec["default"]),
                                             estimate=str(spec.get("estimate", "negative_peak")), **kw)
        self.record(gate_id, dim, placed)
        return float(placed.value)

    def place(self, g: Mapping[str, Any]) -> Any:
        gid, kind = str(g["id"]), g["type"]
        parent = str(g["parent"]) if g.get("parent") is not None else ROOT
        pmask = self.result.memberships[parent]
        parent_id = None if parent == ROOT else parent
        dims = tuple(resolve_dim(str(d), self.panel_channels) for d in g.get("dims", []))
        if kind in ("rectangle", "polygon", "ellipse"):
            return _fixed_shape(gid, parent_id, dims, g)
        if kind == "threshold":
            tdims, mins, maxs = [], [], []
            for t in g["thresholds"]:
                dim = resolve_dim(str(t["dim"]), self.panel_channels)
                v = self.threshold(gid, parent, t, dim, pmask)
                tdims.append(dim)
                mins.append(v if t["keep"] == "above" else None)
                maxs.append(v if t["keep"] == "below" else None)
            return RectangleGate(gid, parent_id, tuple(tdims), tuple(mins), tuple(maxs))
        if kind == "quadrant":
            cuts = {d: (self.threshold(gid, parent, t, d, pmask),) for d, t in zip(dims, g["dividers"], strict=True)}
            quads = {str(q): {d: int(s == "+") for d, s in zip(dims, signs, strict=True)}
                     for q, signs in g["quadrants"].items()}
            return QuadrantGate(gid, parent_id, dims, cuts, quads)
        if kind == "singlet":
            area, height = self.values(dims[0], pmask), self.values(dims[1], pmask)
            placed = adaptive.singlet_ratio(area, height, float(g.get("k_mad", 4.0)),
                                            min_inside=float(g.get("min_inside", 0.5)),
                                            default=tuple(g["default"]))
            self.record(gid, f"{dims[1]}/{dims[0]}", placed)
            top = max(1.0, float(area.max()) if len(area) else 1.0) * 1.05
            return PolygonGate(gid, parent_id, (dims[0], dims[1]), adaptive.singlet_polygon(*placed.value, top))
        if kind == "gmm":
            placed = adaptive.lymphocyte_gmm(self.values(dims[0], pmask), self.values(dims[1], pmask),
                                             tuple(g["expected"]), components=int(g.get("components", 3)),
                                             coverage=float(g.get("coverage", 0.95)),
                                             max_distance=g.get("max_distance"))
            self.record(gid, f"{dims[0]},{dims[1]}", placed)
            if placed.fallback:
                return _fixed_shape(gid, parent_id, dims, g["default"])
            v = placed.value
            return EllipseGate(gid, parent_id, dims, v["mean"], v["covariance"], v["distance_square"])
        raise ValueError(f"unknown gate type {kind!r}")  # the schema prevents this


def _fixed_shape(gid: str, parent_id: str | None, dims: tuple[str, ...], g: Mapping[str, Any]) -> Any:
    kind = g["type"]
    if kind == "rectangle":
        n = len(dims)
        mins = tuple(g.get("min", [None] * n))
        maxs = tuple(g.get("max", [None] * n))
        return RectangleGate(gid, parent_id, dims, mins, maxs)
    if kind == "polygon":
        return PolygonGate(gid, parent_id, (dims[0], dims[1]), tuple((float(x), float(y)) for x, y in g["vertices"]))
    return EllipseGate(gid, parent_id, dims, tuple(float(v) for v in g["mean"]),
                       tuple(tuple(float(v) for v in row) for row in g["covariance"]), float(g["distance_square"]))


def place_gates(events: np.ndarray, channels: Sequence[str], gate_specs: Sequence[Mapping[str, Any]],
                panel_channels: Sequence[Mapping[str, Any]], root_mask: np.ndarray | None = None, *,
                control: ControlGating | None = None, own_control: bool = False,
                sample_id: str = "") -> GatingResult:
    """Place a panel's gate hierarchy on one sample and evaluate every gate.

    Parameters
    ----------
    events
        Transformed events (n_events x n_channels).
    channels
        Channel names ($PnN) of the columns.
    gate_specs
        The panel's ``gates:`` list.
    panel_channels
        The panel's ``channels:`` list (marker -> channel).
    root_mask
        Events the hierarchy starts from (those that passed acquisition QC); all when None.
    control
        The control tube gated with the same panel, for control-percentile gates.
    own_control
        True when this sample *is* the control (its own events set the percentile).
    sample_id
        For messages.

    Returns
    -------
    GatingResult

    Raises
    ------
    UserError
        When a control-percentile gate has no control tube.
    """
    placer = _Placer(np.asarray(events), list(channels), panel_channels, control, own_control, sample_id)
    n = events.shape[0]
    root = np.ones(n, dtype=bool) if root_mask is None else np.asarray(root_mask, dtype=bool)
    placing = placer.result.memberships
    placing[ROOT] = root
    parents = {str(g["parent"]) for g in gate_specs if g.get("parent") is not None}
    for g in gate_specs:
        gate = placer.place(g)
        placer.result.gates.append(gate)
        # a child is placed on its parent's events, so a parent's membership is needed
        # before its children exist; leaves wait for the evaluation of the whole tree
        if any(oid in parents for oid in gate_names([g])):
            pmask = placing[ROOT if g.get("parent") is None else str(g["parent"])]
            placing.update(gate_membership(gate, placer.events, placer.channels, pmask))
    # the hierarchy as placed, evaluated in one pass: each gate on its parent's rows only
    tree = GateTree(placer.result.gates)
    placer.result.memberships = {ROOT: root, **tree.evaluate(placer.events, placer.channels, root_mask=root)}
    return placer.result
