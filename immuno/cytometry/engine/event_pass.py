"""Raw events to gate memberships in one pass over row chunks.

:func:`gate_events` processes chunks of rows: each chunk is compensated (one product
with the inverse spillover per row, fused with loading the chunk) and transformed once
per channel in float64, gated by a :class:`~immuno.cytometry.engine.gate_tree.GateTree`, and kept
as float32 for storage. Gate decisions therefore see float64 values, as FlowKit's do
(counts agree event for event), while memory stays near one extra float32 copy of the
events. :func:`compensate_columns` is the same compensation without gating (the
per-sample pipeline's ingest step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from immuno.cytometry.engine.compensation import SpilloverLike
from immuno.cytometry.engine.gate_tree import GateTree
from immuno.cytometry.engine.transforms import LogicleTransform, Transform
from immuno.errors import UserError

__all__ = ["GatedEvents", "compensate_columns", "compensate_transform", "gate_events"]


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



@numba.njit(cache=True, nogil=True)
def _load_columns(raw, start, m, work_cols, comp_local, inverse, chunk, scratch):
    # rows [start, start + m) of the chosen columns into the float64 chunk, one chunk row
    # per column, then compensated in place on the spillover's columns:
    # c_k = sum_j o_j inverse[j, k], summed in the same order as the row-wise kernel
    # above (and as ``compensate``), so the results are identical to the bit, while the
    # innermost loops run along contiguous events and vectorise
    n_work = work_cols.shape[0]
    for r in range(m):
        i = start + r
        for p in range(n_work):
            chunk[p, r] = raw[i, work_cols[p]]
    n_comp = comp_local.shape[0]
    for k in range(n_comp):
        for r in range(m):
            scratch[k, r] = 0.0
        for j in range(n_comp):
            w = inverse[j, k]
            jj = comp_local[j]
            for r in range(m):
                scratch[k, r] += chunk[jj, r] * w
    for k in range(n_comp):
        kk = comp_local[k]
        for r in range(m):
            chunk[kk, r] = scratch[k, r]


def _inverse_of(spill: SpilloverLike | None, index: Mapping[str, int], where: str) -> tuple[list[int], np.ndarray]:
    """The file columns a spillover covers and the inverse matrix, checked."""
    if spill is None:
        return [], np.zeros((0, 0))
    unknown = [c for c in spill.channels if c not in index]
    if unknown:
        raise UserError.single(where, f"spillover channel(s) {', '.join(unknown)} are not channels of the file")
    matrix = np.asarray(spill.matrix, dtype=np.float64)
    if np.linalg.cond(matrix) > 1e12:
        raise UserError.single(where, "the spillover matrix is singular and cannot be inverted")
    return [index[c] for c in spill.channels], np.linalg.inv(matrix)


def compensate_transform(raw: np.ndarray, channels: Sequence[str], spill: SpilloverLike | None,
                         columns: Sequence[str], transforms: Sequence[Transform | None] | None = None, *,
                         out: np.ndarray | None = None, compensated: np.ndarray | None = None,
                         chunk_size: int = 16384, where: str = "events") -> np.ndarray:
    """Compensate and transform some columns of raw events in one pass over row chunks.

    Each chunk of rows is loaded and compensated in float64 (one product with the inverse
    spillover per event), each wanted column is transformed in place in float64, and the
    result is stored as float32: the stored value is the float32 rounding of the exact
    float64 value FlowKit computes, so a gate placed between two float32 values can be
    written with a float64 limit that FlowKit evaluates identically (see
    :func:`immuno.cytometry.engine.gates.float32_limit`).

    Parameters
    ----------
    raw
        ``(n_events, n_channels)`` raw events (float32 or float64), as read.
    channels
        Column names ($PnN) of ``raw``.
    spill
        The matrix (its channels must be columns of ``raw``); None leaves values as they are.
    columns
        The columns wanted, in output order.
    transforms
        One transform (or None: untransformed) per wanted column; None for all untransformed.
    out
        ``(n_events, len(columns))`` float32 to fill (any memory order; column-major keeps
        each channel contiguous). Allocated column-major when None.
    compensated
        Optional ``(n_events, len(columns))`` float32 receiving the compensated values
        before the transform.
    chunk_size
        Rows per chunk: bounds the float64 working memory (a few MB) and keeps it in cache.
    where
        The file, for error messages.

    Returns
    -------
    numpy.ndarray
        ``out``.

    Raises
    ------
    UserError
        A spillover channel the events lack, or a singular matrix.
    """
    index = {c: i for i, c in enumerate(channels)}
    spill_cols, inverse = _inverse_of(spill, index, where)
    wanted = [index[c] for c in columns]
    work_cols = sorted(set(wanted) | set(spill_cols))
    pos = {j: p for p, j in enumerate(work_cols)}
    comp_local = np.array([pos[j] for j in spill_cols], dtype=np.int64)
    pick = [pos[j] for j in wanted]
    xforms = list(transforms) if transforms is not None else [None] * len(wanted)
    if len(xforms) != len(wanted):
        raise ValueError(f"{len(xforms)} transforms for {len(wanted)} columns")
    shared = {p for p in pick if pick.count(p) > 1}  # a column wanted twice keeps its chunk row
    n = raw.shape[0]
    if out is None:
        out = np.empty((n, len(wanted)), dtype=np.float32, order="F")
    rows = max(min(chunk_size, n), 1)
    # one row per column; the row length is padded off a power of two so that the
    # columns of one event do not all fall into the same cache set while it is loaded
    buf = np.empty((len(work_cols), rows + 24), dtype=np.float64)
    scratch = np.empty((len(spill_cols), rows + 24), dtype=np.float64)
    cols = np.array(work_cols, dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        _load_columns(raw, start, stop - start, cols, comp_local, inverse, buf, scratch)
        for j, (p, tr) in enumerate(zip(pick, xforms, strict=True)):
            col = buf[p, : stop - start]
            if compensated is not None:
                compensated[start:stop, j] = col
            if tr is None:
                out[start:stop, j] = col
            elif isinstance(tr, LogicleTransform) and p not in shared:
                out[start:stop, j] = tr.apply(col, out=col)  # in place: no float64 temporary
            else:
                out[start:stop, j] = tr.apply(col)
    return out


def compensate_columns(raw: np.ndarray, channels: Sequence[str], spill: SpilloverLike | None,
                       columns: Sequence[str], *, chunk_size: int = 16384, where: str = "events") -> np.ndarray:
    """Compensated values of some columns, in one pass over row chunks, as float32.

    Only the chosen columns and the spillover's channels are read; compensation is one
    product with the inverse matrix per row (see :func:`compensate_transform`).

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
    out = np.empty((raw.shape[0], len(columns)), dtype=np.float32)
    return compensate_transform(raw, channels, spill, columns, None, out=out, chunk_size=chunk_size, where=where)


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

