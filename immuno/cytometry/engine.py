"""Fast evaluation of a gate hierarchy on one sample's events.

FlowKit spends most of its time gating a large file on copies of the event matrix (one
per gate, as a pandas DataFrame) and on re-running transforms. Here:

- :class:`GateTree` evaluates each gate only on the rows its parent kept, reading the
  gate's few columns straight out of the caller's matrix inside compiled loops, so no
  event matrix is ever copied per gate and no pandas object is built per event;
- :func:`gate_events` goes from raw events to memberships in chunks of rows: each chunk
  is compensated (one linear solve, as FlowKit does) and transformed once per channel in
  float64, gated, and kept as float32 for storage. Gate decisions therefore see exactly
  the float64 values FlowKit sees (counts agree event for event) while memory stays near
  one extra float32 copy of the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from immuno.cytometry.gates import (
    BooleanGate,
    EllipseGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
    output_ids,
)
from immuno.cytometry.transforms import LogicleTransform, Transform
from immuno.errors import UserError

__all__ = ["GateTree", "GatedEvents", "compensate_columns", "compensate_solve", "gate_events",
           "gate_membership"]


class SpilloverLike(Protocol):
    """Anything with the detector names and the spillover matrix (rows source, cols detector)."""

    channels: list[str]
    matrix: np.ndarray


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


@numba.njit(cache=True, nogil=True)
def _load_chunk(raw, start, work_cols, comp_local, inverse, chunk):
    # copy rows [start, start + len(chunk)) of the chosen columns into the float64 chunk
    # and compensate in the same pass: c = o x inverse(S) on the spillover's columns
    n_comp = comp_local.shape[0]
    observed = np.empty(n_comp)
    for r in range(chunk.shape[0]):
        i = start + r
        for p in range(work_cols.shape[0]):
            chunk[r, p] = raw[i, work_cols[p]]
        for j in range(n_comp):
            observed[j] = chunk[r, comp_local[j]]
        for k in range(n_comp):
            acc = 0.0
            for j in range(n_comp):
                acc += observed[j] * inverse[j, k]
            chunk[r, comp_local[k]] = acc


@numba.njit(cache=True, nogil=True)
def _store_chunk(chunk, start, out):
    for r in range(chunk.shape[0]):
        for p in range(chunk.shape[1]):
            out[start + r, p] = chunk[r, p]


# ------------------------------------------------------------------ the tree


class GateTree:
    """A validated gate hierarchy, evaluated parent first on the parent's events only.

    Parameters
    ----------
    gates
        Static gates (:mod:`immuno.cytometry.gates`); parents may be gates or quadrant ids.

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
                 root_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
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


# ------------------------------------------------------------------ raw events -> memberships


def compensate_solve(observed: np.ndarray, spill_matrix: np.ndarray) -> np.ndarray:
    """Compensated values ``observed x inverse(S)`` by a linear solve, in float64.

    Solving ``S^T c^T = o^T`` is what FlowKit (flowutils) does; using the same arithmetic
    keeps boundary events on the same side of a gate as in FlowKit.
    """
    return np.linalg.solve(np.asarray(spill_matrix, dtype=np.float64).T,
                           np.asarray(observed, dtype=np.float64).T).T


def compensate_columns(raw: np.ndarray, channels: Sequence[str], spill: SpilloverLike | None,
                       columns: Sequence[str], *, chunk_size: int = 65536, where: str = "events") -> np.ndarray:
    """Compensated values of some columns, in one pass over row chunks, as float32.

    Only the chosen columns and the spillover's channels are read; compensation is one
    product with the inverse matrix per row (the same kernel :func:`gate_events` uses).

    Parameters
    ----------
    raw
        ``(n_events, n_channels)`` observed events.
    channels
        Column names ($PnN) of ``raw``.
    spill
        The matrix (its channels must be columns of ``raw``); None copies the columns.
    columns
        The columns wanted, in output order.
    chunk_size
        Rows per chunk (bounds the float64 working memory).
    where
        The file, for error messages.

    Returns
    -------
    numpy.ndarray
        ``(n_events, len(columns))`` float32, C-contiguous.

    Raises
    ------
    UserError
        A spillover channel the events lack, or a singular matrix.
    """
    index = {c: i for i, c in enumerate(channels)}
    spill_cols: list[int] = []
    inverse = np.zeros((0, 0))
    if spill is not None:
        unknown = [c for c in spill.channels if c not in index]
        if unknown:
            raise UserError.single(where, f"spillover channel(s) {', '.join(unknown)} are not channels of the file")
        matrix = np.asarray(spill.matrix, dtype=np.float64)
        if np.linalg.cond(matrix) > 1e12:
            raise UserError.single(where, "the spillover matrix is singular and cannot be inverted")
        spill_cols = [index[c] for c in spill.channels]
        inverse = np.linalg.inv(matrix)
    wanted = [index[c] for c in columns]
    work_cols = sorted(set(wanted) | set(spill_cols))
    pos = {j: p for p, j in enumerate(work_cols)}
    comp_local = np.array([pos[j] for j in spill_cols], dtype=np.int64)
    pick = np.array([pos[j] for j in wanted], dtype=np.int64)
    n = raw.shape[0]
    out = np.empty((n, len(wanted)), dtype=np.float32)
    buf = np.empty((max(min(chunk_size, n), 1), len(work_cols)), dtype=np.float64)
    cols = np.array(work_cols, dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = buf[: stop - start]
        _load_chunk(raw, start, cols, comp_local, inverse, chunk)
        out[start:stop] = chunk[:, pick]
    return out


@dataclass
class GatedEvents:
    """What :func:`gate_events` returns.

    Attributes
    ----------
    masks
        Membership id -> bool array over all events.
    transformed
        Compensated and transformed events as float32 (None when not kept).
    channels
        Column names of ``transformed``.
    """

    masks: dict[str, np.ndarray]
    transformed: np.ndarray | None
    channels: list[str]

    def counts(self) -> dict[str, int]:
        """Event count per membership id."""
        return {k: int(v.sum()) for k, v in self.masks.items()}


def gate_events(raw: np.ndarray, channels: Sequence[str], tree: GateTree,
                transforms: Mapping[str, Transform | None], spill: SpilloverLike | None = None,
                *, root_mask: np.ndarray | None = None, keep_transformed: bool = True,
                chunk_size: int = 65536, where: str = "events") -> GatedEvents:
    """Compensate, transform and gate raw events in one pass over row chunks.

    Parameters
    ----------
    raw
        ``(n_events, n_channels)`` raw events (float32 as read from FCS, or float64).
    channels
        Column names ($PnN) of ``raw``.
    tree
        The gate hierarchy; its dimensions are channel names.
    transforms
        Channel -> transform; channels absent or mapped to None stay on their data scale.
    spill
        Spillover to compensate with (its channels must all be columns of ``raw``).
    root_mask
        Events the top-level gates start from (e.g. passing acquisition QC).
    keep_transformed
        Also return the compensated, transformed events as float32.
    chunk_size
        Rows per chunk (bounds the float64 working memory).
    where
        Name of the file or sample, for error messages.

    Returns
    -------
    GatedEvents
    """
    channels = list(channels)
    index = {c: i for i, c in enumerate(channels)}
    n, k = raw.shape
    comp_cols: np.ndarray | None = None
    matrix: np.ndarray | None = None
    if spill is not None:
        unknown = [c for c in spill.channels if c not in index]
        if unknown:
            raise UserError.single(
                where, f"spillover channel(s) {', '.join(unknown)} are not channels of the file"
            )
        comp_cols = np.array([index[c] for c in spill.channels], dtype=np.int64)
        matrix = np.asarray(spill.matrix, dtype=np.float64)
        if np.linalg.cond(matrix) > 1e12:
            raise UserError.single(where, "the spillover matrix is singular and cannot be inverted")
    gated = [index[d] for d in tree.dims] if tree.dims else []
    # with keep_transformed every column is processed, otherwise only what gates read
    work_cols = list(range(k)) if keep_transformed else sorted(set(gated))
    if comp_cols is not None and not keep_transformed:
        work_cols = sorted(set(work_cols) | set(comp_cols.tolist()))
    xforms = {j: transforms.get(channels[j]) for j in work_cols}
    transformed = np.empty((n, k), dtype=np.float32) if keep_transformed else None
    masks = {oid: np.zeros(n, dtype=bool) for oid in tree.membership_ids}
    local_channels = [channels[j] for j in work_cols]
    pos = {j: p for p, j in enumerate(work_cols)}
    comp_local = np.array([] if comp_cols is None else [pos[j] for j in comp_cols], dtype=np.int64)
    # compensation as one product with the inverse, done while loading each chunk; it
    # differs from FlowKit's solve only in the last bits, far below any gate's resolution
    inverse = np.zeros((0, 0)) if matrix is None else np.linalg.inv(matrix)
    cols = np.array(work_cols, dtype=np.int64)
    # column-major chunk: every channel is contiguous, so transforms run in place; the
    # column stride is padded off a power of two so that the columns of one row do not
    # all fall into the same cache set while a row is written
    rows_per_chunk = min(chunk_size, max(n, 1))
    buf = np.empty((len(work_cols), rows_per_chunk + 8), dtype=np.float64).T
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = buf[: stop - start]
        _load_chunk(raw, start, cols, comp_local, inverse, chunk)
        for j, tr in xforms.items():
            if tr is None:
                continue
            col = chunk[:, pos[j]]
            if isinstance(tr, LogicleTransform):
                tr.apply(col, out=col)
            else:
                col[:] = tr.apply(col)
        sub_root = None if root_mask is None else root_mask[start:stop]
        for oid, m in tree.evaluate(chunk, local_channels, sub_root).items():
            masks[oid][start:stop] = m
        if transformed is not None:
            _store_chunk(chunk, start, transformed)
    return GatedEvents(masks, transformed, channels if keep_transformed else local_channels)

