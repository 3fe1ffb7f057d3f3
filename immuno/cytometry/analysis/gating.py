"""Gating from the panel: place each gate of the hierarchy on one sample.

The panel's ``gates:`` list is a hierarchy (each gate names its ``parent``); a gate is
either fixed (rectangle, polygon, ellipse, in transformed coordinates) or placed on
each sample from its data (threshold gates by density valley or control percentile,
quadrants whose dividers are such thresholds, singlets by FSC-H/FSC-A ratio,
lymphocytes by a Gaussian mixture). Gates are placed top down: a child is placed on the
events of its parent as placed on this sample. The result is a list of static gates of
:mod:`immuno.cytometry.engine.gates` (what the GatingML export writes) plus every event's
membership and a record of each placement (method, value, fallback and why).

Gates without a parent start from the events that passed acquisition QC (the root mask),
so flagged events never enter a population. The placed hierarchy is evaluated in one pass
by :class:`immuno.cytometry.engine.gate_tree.GateTree`.

:func:`~immuno.cytometry.pipeline.panel_checks.panel_problems` resolves a panel's gating logic
(gates, populations, headline names) without any data; processing a sample and
``immuno validate`` both run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from immuno.cytometry.analysis import adaptive
from immuno.cytometry.engine.gate_tree import GateTree, gate_membership
from immuno.cytometry.engine.gates import EllipseGate, PolygonGate, QuadrantGate, RectangleGate
from immuno.cytometry.io.markers import spellings
from immuno.errors import UserError

__all__ = ["ROOT", "ControlGating", "GatingResult", "control_gating", "control_needs", "gate_names",
           "place_gates", "resolve_dim"]

ROOT = "root"


def resolve_dim(name: str, panel_channels: Sequence[Mapping[str, Any]]) -> str:
    """The channel ($PnN) a gate dimension refers to: a panel marker (any of its
    spellings), else a channel name."""
    for ch in panel_channels:
        if name in spellings(ch.get("marker")):
            return str(ch["channel"])
    for ch in panel_channels:
        if str(ch["channel"]) == name:
            return name
    raise KeyError(name)


def gate_names(gate_specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every name a population may use: gate ids and quadrant ids."""
    names: list[str] = []
    for g in gate_specs:
        if g.get("type") == "quadrant":
            names.extend(str(q) for q in g.get("quadrants", {}))
        else:
            names.append(str(g["id"]))
    return names





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
        Static gates (:mod:`immuno.cytometry.engine.gates`) in panel order.
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
    memberships: Mapping[str, np.ndarray] = field(default_factory=dict)
    placements: list[dict[str, Any]] = field(default_factory=list)
    template: str = ""

    @property
    def fallbacks(self) -> list[dict[str, Any]]:
        """The placements that used the panel's default."""
        return [p for p in self.placements if p["fallback"]]


def control_needs(gate_specs: Sequence[Mapping[str, Any]],
                  panel_channels: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (parent, channel) pairs whose control events set control-percentile gates."""
    needs: list[tuple[str, str]] = []
    for g in gate_specs:
        parent = str(g["parent"]) if g.get("parent") is not None else ROOT
        if g.get("type") == "threshold":
            pairs = [(t, str(t["dim"])) for t in g.get("thresholds", [])]
        elif g.get("type") == "quadrant":
            pairs = list(zip(g.get("dividers", []), (str(d) for d in g.get("dims", [])), strict=False))
        else:
            continue
        for t, dim in pairs:
            if t.get("method") == "control_percentile":
                pair = (parent, resolve_dim(dim, panel_channels))
                if pair not in needs:
                    needs.append(pair)
    return needs


def control_gating(sample_id: str, events: np.ndarray, channels: Sequence[str],
                   memberships: Mapping[str, np.ndarray], gate_specs: Sequence[Mapping[str, Any]],
                   panel_channels: Sequence[Mapping[str, Any]]) -> ControlGating:
    """A gated control tube reduced to what its stimulated tube's gates read.

    Only the channels of control-percentile gates and their parents' events are kept,
    so a control's events need not stay in memory while its stimulated tube is processed.
    """
    needs = control_needs(gate_specs, panel_channels)
    parents = list(dict.fromkeys(p for p, _ in needs))
    dims = list(dict.fromkeys(d for _, d in needs))
    any_parent = np.zeros(events.shape[0], dtype=bool)
    for p in parents:
        any_parent |= memberships[p]
    rows = np.flatnonzero(any_parent)
    cols = [list(channels).index(d) for d in dims]
    kept = np.empty((rows.size, len(cols)), dtype=events.dtype, order="F")
    for j, c in enumerate(cols):
        kept[:, j] = events[:, c][rows]
    return ControlGating(sample_id, kept, dims, {p: memberships[p][rows] for p in parents})


class _Placer:
    """Places the gates of one panel on one sample (see :func:`place_gates`)."""

    def __init__(self, events: np.ndarray, channels: list[str], panel_channels: Sequence[Mapping[str, Any]],
                 control: ControlGating | None, own_control: bool, sample_id: str) -> None:
        self.events, self.channels = events, list(channels)
        self.panel_channels = panel_channels
        self.control, self.own_control, self.sample_id = control, own_control, sample_id
        self.result = GatingResult()
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def col(self, dim: str) -> int:
        return self.channels.index(dim)

    def values(self, dim: str, mask: np.ndarray) -> np.ndarray:
        # the parent's rows are found once per parent; the column first: with the
        # pipeline's column-major events it is contiguous
        key = id(mask)
        if key not in self._rows:
            # the mask is kept, so its id stays its own; int32 rows: half the memory
            self._rows[key] = (mask, np.flatnonzero(mask).astype(np.int32))
        return self.events[:, self.col(dim)].take(self._rows[key][1])

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
                ctrl = c.events[:, c.channels.index(dim)][c.memberships[parent]]
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
    # (the parents, evaluated while their children were placed, are not evaluated again)
    tree = GateTree(placer.result.gates)
    known = {k: v for k, v in placing.items() if k != ROOT}
    placer.result.memberships = {ROOT: root, **tree.evaluate(placer.events, placer.channels, root_mask=root,
                                                             known=known)}
    return placer.result
