"""Fast evaluation of a gate hierarchy on one sample's events.

FlowKit spends most of its time gating a large file on copies of the event matrix (one
per gate, as a pandas DataFrame) and on re-running transforms. Here:

- :class:`GateTree` evaluates each gate only on the rows its parent kept, reading the
  gate's few columns straight out of the caller's matrix inside compiled loops, so no
  event matrix is ever copied per gate and no pandas object is built per event;
- :func:`immuno.cytometry.engine.event_pass.gate_events` builds on it to go from raw
  events to memberships in chunks of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numba
import numpy as np

from immuno.cytometry.engine.gates import (
    BooleanGate,
    EllipseGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
    output_ids,
)
from immuno.errors import UserError

__all__ = ["GateTree", "gate_membership"]


# ------------------------------------------------------------------ compiled gate tests


@numba.njit(cache=True, nogil=True)
def _rectangle(events, rows, cols, lo, hi, has_lo, has_hi, complement, out):
    for r in range(rows.shape[0]):
        i = rows[r]
        inside = True
        for j in range(cols.shape[0]):
            v = events[i, cols[j]]
            # written so that NaN fails both bounds, as a numpy comparison would
            if has_lo[j] and not (v >= lo[j]):
                inside = False
                break
            if has_hi[j] and not (v < hi[j]):
                inside = False
                break
        out[i] = inside != complement


@numba.njit(cache=True, nogil=True)
def _polygon(events, rows, cx, cy, vx, vy, complement, out):
    n = vx.shape[0]
    for r in range(rows.shape[0]):
        i = rows[r]
        px = np.float64(events[i, cx])
        py = np.float64(events[i, cy])
        wind = 0
        for k in range(n):
            ax, ay = vx[k], vy[k]
            bx, by = vx[(k + 1) % n], vy[(k + 1) % n]
            # winding number: count upward crossings with the point left of the edge
            # and downward crossings with it right of the edge
            side = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
            if ay <= py:
                if by > py and side > 0:
                    wind += 1
            elif by <= py and side < 0:
                wind -= 1
        out[i] = (wind % 2 != 0) != complement


@numba.njit(cache=True, nogil=True)
def _ellipse(events, rows, cols, mean, inv_cov, dist2, out):
    n = cols.shape[0]
    t = np.empty(n)
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(n):
            t[j] = events[i, cols[j]] - mean[j]
        total = 0.0
        for k in range(n):
            acc = 0.0
            for j in range(n):
                acc += t[j] * inv_cov[j, k]
            total += acc * t[k]
        out[i] = total <= dist2


@numba.njit(cache=True, nogil=True)
def _quadrants(events, rows, cols, cuts, n_cuts, wanted, outs):
    # wanted[q, j] is the bin quadrant q needs on dimension j, or -1 for any bin
    n_dims = cols.shape[0]
    bins = np.empty(n_dims, dtype=np.int64)
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(n_dims):
            v = events[i, cols[j]]
            b = 0
            while b < n_cuts[j] and v >= cuts[j, b]:
                b += 1
            # NaN is in no bin (as a comparison with a divider would say) but still
            # leaves the quadrants that do not constrain its dimension
            bins[j] = -2 if v != v else b
        for q in range(wanted.shape[0]):
            hit = True
            for j in range(n_dims):
                if wanted[q, j] >= 0 and bins[j] != wanted[q, j]:
                    hit = False
            outs[q, i] = hit


# ------------------------------------------------------------------ the tree


class GateTree:
    """A validated gate hierarchy, evaluated parent first on the parent's events only.

    Parameters
    ----------
    gates
        Static gates (:mod:`immuno.cytometry.engine.gates`); parents may be gates or quadrant ids.

    Raises
    ------
    ValueError
        Duplicate ids, unknown parents or boolean operands, or a cycle.
    """

    def __init__(self, gates: Iterable[Gate]) -> None:
        self.gates: dict[str, Gate] = {}
        self._owner: dict[str, str] = {}  # membership id -> gate id producing it
        for g in gates:
            if g.gate_id in self.gates:
                raise ValueError(f"gate id {g.gate_id!r} is used twice")
            self.gates[g.gate_id] = g
            for oid in output_ids(g):
                if oid in self._owner:
                    raise ValueError(f"gate id {oid!r} is used twice")
                self._owner[oid] = g.gate_id
        self.order = self._topological_order()

    def _depends_on(self, g: Gate) -> list[str]:
        deps = [] if g.parent_id is None else [g.parent_id]
        if isinstance(g, BooleanGate):
            deps += [ref for ref, _ in g.operands]
        out = []
        for ref in deps:
            if ref not in self._owner:
                what = "parent" if ref == g.parent_id else "operand"
                if ref in self.gates:  # a quadrant gate's own id has no membership
                    raise ValueError(
                        f"gate {g.gate_id!r}: {what} {ref!r} is a quadrant gate; name one of its quadrants"
                    )
                raise ValueError(f"gate {g.gate_id!r}: unknown {what} {ref!r}")
            out.append(self._owner[ref])
        return out

    def _topological_order(self) -> list[str]:
        state: dict[str, int] = {}
        order: list[str] = []
        for start in self.gates:
            # iterative depth-first search; state 1 = on the stack, 2 = done
            stack: list[tuple[str, int]] = [(start, 0)]
            while stack:
                gid, k = stack.pop()
                if k == 0:
                    if state.get(gid) == 2:
                        continue
                    if state.get(gid) == 1:
                        raise ValueError(f"gate {gid!r} depends on itself (cycle)")
                    state[gid] = 1
                deps = self._depends_on(self.gates[gid])
                if k < len(deps):
                    stack.append((gid, k + 1))
                    dep = deps[k]
                    if state.get(dep) == 1:
                        raise ValueError(f"gates {gid!r} and {dep!r} form a cycle")
                    if state.get(dep) != 2:
                        stack.append((dep, 0))
                else:
                    state[gid] = 2
                    order.append(gid)
        return order

    @property
    def membership_ids(self) -> list[str]:
        """Every id :meth:`evaluate` returns, in evaluation order."""
        return [oid for gid in self.order for oid in output_ids(self.gates[gid])]

    @property
    def dims(self) -> list[str]:
        """Every dimension any gate reads, in first-use order."""
        seen: dict[str, None] = {}
        for gid in self.order:
            for d in self.gates[gid].dims:
                seen.setdefault(d, None)
        return list(seen)

    def evaluate(self, events: np.ndarray, channels: Sequence[str],
                 root_mask: np.ndarray | None = None,
                 known: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Absolute membership of every gate (inside it and all its ancestors).

        Parameters
        ----------
        events
            ``(n_events, n_channels)`` float32 or float64, in the gates' (transformed) units.
        channels
            Column names of ``events``.
        root_mask
            Events the top-level gates start from (e.g. those passing acquisition QC);
            all events when None.
        known
            Memberships already evaluated on the same events and root (e.g. while the
            hierarchy was being placed): a shape gate all of whose memberships are given
            is not evaluated again.

        Returns
        -------
        dict
            Membership id (gate id, or quadrant id) -> bool array of length n_events.
        """
        if events.ndim != 2 or events.shape[1] != len(channels):
            raise ValueError(f"events shape {events.shape} does not match {len(channels)} channels")
        index = {c: i for i, c in enumerate(channels)}
        missing = [d for d in self.dims if d not in index]
        if missing:
            raise UserError.single(
                "gates", f"dimension(s) {', '.join(missing)} not among the channels {list(channels)}"
            )
        n = events.shape[0]
        all_rows = np.arange(n, dtype=np.int64) if root_mask is None else np.flatnonzero(root_mask)
        masks: dict[str, np.ndarray] = {}
        rows_of: dict[str, np.ndarray] = {}

        def rows(parent: str | None) -> np.ndarray:
            if parent is None:
                return all_rows
            if parent not in rows_of:
                rows_of[parent] = np.flatnonzero(masks[parent])
            return rows_of[parent]

        for gid in self.order:
            g = self.gates[gid]
            if isinstance(g, BooleanGate):
                masks[gid] = self._boolean(g, masks, n, root_mask)
                continue
            outputs = output_ids(g)
            if known is not None and all(o in known for o in outputs):
                masks.update({o: known[o] for o in outputs})
                continue
            masks.update(_evaluate_shape(g, events, index, rows(g.parent_id), n))
        return masks

    def _boolean(self, g: BooleanGate, masks: Mapping[str, np.ndarray], n: int,
                 root_mask: np.ndarray | None) -> np.ndarray:
        parts = [~masks[ref] if comp else masks[ref] for ref, comp in g.operands]
        if g.op == "and":
            result = np.logical_and.reduce(parts)
        elif g.op == "or":
            result = np.logical_or.reduce(parts)
        else:
            result = ~parts[0]
        if g.parent_id is not None:
            result &= masks[g.parent_id]
        elif root_mask is not None:
            result &= root_mask
        return np.asarray(result, dtype=bool)

    def counts(self, events: np.ndarray, channels: Sequence[str],
               root_mask: np.ndarray | None = None) -> dict[str, int]:
        """Event count of every gate (see :meth:`evaluate`)."""
        return {k: int(v.sum()) for k, v in self.evaluate(events, channels, root_mask).items()}


def _evaluate_shape(g: Gate, events: np.ndarray, index: Mapping[str, int], parent_rows: np.ndarray,
                    n: int) -> dict[str, np.ndarray]:
    """Membership of one non-boolean gate, tested only on ``parent_rows``."""
    cols = np.array([index[d] for d in g.dims], dtype=np.int64)
    if isinstance(g, QuadrantGate):
        return _eval_quadrants(g, events, parent_rows, cols, n)
    out = np.zeros(n, dtype=bool)
    if isinstance(g, RectangleGate):
        lo = np.array([np.nan if v is None else v for v in g.mins], dtype=np.float64)
        hi = np.array([np.nan if v is None else v for v in g.maxs], dtype=np.float64)
        _rectangle(events, parent_rows, cols, lo, hi, np.array([v is not None for v in g.mins]),
                   np.array([v is not None for v in g.maxs]), g.complement, out)
    elif isinstance(g, PolygonGate):
        verts = np.asarray(g.vertices, dtype=np.float64)
        _polygon(events, parent_rows, cols[0], cols[1], np.ascontiguousarray(verts[:, 0]),
                 np.ascontiguousarray(verts[:, 1]), g.complement, out)
    elif isinstance(g, EllipseGate):
        inv = np.linalg.inv(np.asarray(g.covariance, dtype=np.float64))
        _ellipse(events, parent_rows, cols, np.asarray(g.mean, dtype=np.float64), inv,
                 float(g.distance_square), out)
    else:  # pragma: no cover - the gate model only has these shapes
        raise TypeError(f"unknown gate type {type(g).__name__}")
    return {g.gate_id: out}


def gate_membership(gate: Gate, events: np.ndarray, channels: Sequence[str],
                    parent_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Absolute membership of one shape gate whose parent's membership is known.

    Used while a hierarchy is being placed (a child gate is placed on its parent's
    events, so the parent's membership is needed before the child exists). The gate is
    tested only on the parent's rows, by the same kernels as :meth:`GateTree.evaluate`.

    Returns
    -------
    dict
        Gate id (or each quadrant id) -> bool array over all events.
    """
    if isinstance(gate, BooleanGate):
        raise TypeError("boolean gates combine other memberships; evaluate them with a GateTree")
    index = {c: i for i, c in enumerate(channels)}
    missing = [d for d in gate.dims if d not in index]
    if missing:
        raise UserError.single("gates", f"dimension(s) {', '.join(missing)} not among the channels {list(channels)}")
    return _evaluate_shape(gate, events, index, np.flatnonzero(parent_mask), events.shape[0])


def _eval_quadrants(g: QuadrantGate, events: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    n: int) -> dict[str, np.ndarray]:
    width = max(len(g.dividers[d]) for d in g.dims)
    cuts = np.full((len(g.dims), width), np.inf)
    n_cuts = np.zeros(len(g.dims), dtype=np.int64)
    for j, d in enumerate(g.dims):
        cuts[j, : len(g.dividers[d])] = g.dividers[d]
        n_cuts[j] = len(g.dividers[d])
    qids = list(g.quadrants)
    wanted = np.full((len(qids), len(g.dims)), -1, dtype=np.int64)
    for q, qid in enumerate(qids):
        for j, d in enumerate(g.dims):
            wanted[q, j] = g.quadrants[qid].get(d, -1)
    outs = np.zeros((len(qids), n), dtype=bool)
    _quadrants(events, rows, cols, cuts, n_cuts, wanted, outs)
    return {qid: outs[q] for q, qid in enumerate(qids)}
