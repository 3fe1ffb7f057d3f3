"""Exact medians and percentiles of large event arrays, faster than a partition.

A float32's bits, with the sign bit flipped for positive values and every bit flipped
for negative ones, sort as the values do. One pass counts the values per top 16 bits of
that key (a histogram that stays in cache); the ranks wanted fall in one or a few of the
65,536 buckets, whose values (a few per cent of the array on event data) a second pass
gathers and sorts. The result is the exact order statistic, in about two streaming passes
over the data instead of numpy's several partitioning passes with swaps.

:func:`percentile` and :func:`median` return what ``numpy.percentile`` (linear method)
and ``numpy.median`` return for the same values in float64, to the last bit, so that a
gate placed with them is placed exactly where it was placed with numpy. Arrays of
another type, with a NaN, or small go to numpy itself; so do float64 arrays, whose
values can crowd into one bucket (the event columns are float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

__all__ = ["median", "middle_values", "percentile"]

#: below this many values numpy's partition is as fast
_SMALL = 20_000
_BUCKETS = 1 << 16


@numba.njit(cache=True, nogil=True, inline="always")
def _key32(u):
    return u ^ np.uint32(0xFFFFFFFF) if u >> 31 else u | np.uint32(0x80000000)


@numba.njit(cache=True, nogil=True)
def _ranks_from_hist(hist, ranks, buckets, offsets):
    # the bucket of each (ascending) rank, and where the bucket starts among the
    # values of the wanted buckets once they are gathered in order
    n = ranks.shape[0]
    r = 0
    before = 0
    gathered = 0
    last = -1
    start = 0
    for b in range(hist.shape[0]):
        c = hist[b]
        while r < n and ranks[r] < before + c:
            if b != last:
                last = b
                start = gathered
                gathered += c
            buckets[r] = b
            offsets[r] = start - before
            r += 1
        if r == n:
            break
        before += c
    return gathered


@numba.njit(cache=True, nogil=True)
def _order_stats32(a, ranks, hist, out):
    bits = a.view(np.uint32)
    for i in range(hist.shape[0]):
        hist[i] = 0
    for i in range(a.shape[0]):
        hist[_key32(bits[i]) >> 16] += 1
    buckets = np.empty(ranks.shape[0], np.int64)
    offsets = np.empty(ranks.shape[0], np.int64)
    total = _ranks_from_hist(hist, ranks, buckets, offsets)
    wanted = np.zeros(hist.shape[0], np.bool_)
    for b in buckets:
        wanted[b] = True
    chosen = np.empty(total, a.dtype)
    k = 0
    for i in range(a.shape[0]):
        if wanted[_key32(bits[i]) >> 16]:
            chosen[k] = a[i]
            k += 1
    chosen.sort()
    for r in range(ranks.shape[0]):
        out[r] = chosen[ranks[r] + offsets[r]]


def _fast(a: np.ndarray) -> bool:
    # float64 values spread over few binary exponents (a ratio near 0.9) would put most
    # of them in one bucket: numpy's partition serves those
    return a.ndim == 1 and a.size >= _SMALL and a.dtype == np.float32 and not np.isnan(a).any()


def order_statistics(a: np.ndarray, ranks: Sequence[int]) -> np.ndarray:
    """The values of ``a`` at the given 0-based ranks of its sorted order (float64).

    ``a`` must be a 1-D float32 array without NaN.
    """
    arr = np.ascontiguousarray(a)
    order = np.argsort(np.asarray(ranks, dtype=np.int64), kind="stable")
    sorted_ranks = np.asarray(ranks, dtype=np.int64)[order]
    if sorted_ranks.size and (sorted_ranks[0] < 0 or sorted_ranks[-1] >= arr.size):
        raise IndexError(f"ranks must lie in [0, {arr.size})")
    found = np.empty(sorted_ranks.size, dtype=arr.dtype)
    hist = np.empty(_BUCKETS, dtype=np.int64)
    _order_stats32(arr, sorted_ranks, hist, found)
    out = np.empty(sorted_ranks.size, dtype=np.float64)
    out[order] = found
    return out


def percentile(a: np.ndarray, q: float | Sequence[float]) -> float | np.ndarray:
    """``numpy.percentile(numpy.asarray(a, dtype=float), q)``, to the last bit, faster.

    Parameters
    ----------
    a
        1-D values.
    q
        A percentile or a sequence of them, in [0, 100].

    Returns
    -------
    float or numpy.ndarray
        As numpy returns them (float64).
    """
    arr = np.asarray(a)
    if not _fast(arr):
        return np.percentile(np.asarray(arr, dtype=np.float64), q)
    qs = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    n = arr.size
    # numpy's "linear" method: virtual index (n - 1) q, as numpy computes it
    virtual = (n - 1) * qs
    previous = np.floor(virtual)
    above = virtual >= n - 1
    below = virtual < 0
    prev_i = np.where(above, n - 1, np.where(below, 0, previous)).astype(np.int64)
    next_i = np.where(above, n - 1, np.where(below, 0, previous + 1)).astype(np.int64)
    gamma = virtual - np.where(above, -1, np.where(below, 0, previous))
    values = order_statistics(arr, np.concatenate([prev_i.ravel(), next_i.ravel()]))
    lo, hi = values[: prev_i.size].reshape(prev_i.shape), values[prev_i.size:].reshape(next_i.shape)
    # numpy's _lerp: a + (b - a) t, or b - (b - a)(1 - t) from t = 0.5 on
    diff = hi - lo
    result = np.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma)
    return float(result) if np.ndim(q) == 0 else result


def median(a: np.ndarray) -> float:
    """``numpy.median(numpy.asarray(a, dtype=float))``, to the last bit, faster."""
    arr = np.asarray(a)
    if not _fast(arr):
        return float(np.median(np.asarray(arr, dtype=np.float64)))
    n = arr.size
    k = (n - 1) // 2
    lo, hi = order_statistics(arr, [k, k + 1 - n % 2])
    return float((lo + hi) / 2) if n % 2 == 0 else float(lo)


@numba.njit(cache=True, nogil=True)
def _middle_rows32(values, rows, hist, buf):
    # the two middle values (equal for an odd count) of values[rows]; NaN when any is NaN
    m = rows.shape[0]
    for r in range(m):
        v = values[rows[r]]
        if v != v:
            return np.nan, np.nan
        buf[r] = v
    ranks = np.empty(2, np.int64)
    ranks[0] = (m - 1) // 2
    ranks[1] = ranks[0] + 1 - m % 2
    found = np.empty(2, values.dtype)
    _order_stats32(buf[:m], ranks, hist, found)
    return np.float64(found[0]), np.float64(found[1])


def middle_values(column: np.ndarray, rows: np.ndarray, hist: np.ndarray, buf: np.ndarray) -> tuple[float, float]:
    """The two middle values of ``column[rows]`` (the same one twice for an odd count).

    ``column`` is a contiguous column, ``rows`` sorted int64 indices, ``hist`` an int64
    scratch of 65,536 entries and ``buf`` a float32 scratch at least as long as ``rows``;
    NaN when a value is NaN. Float32 columns are selected by radix, others by numpy.
    """
    if column.dtype == np.float32:
        return _middle_rows32(column, rows, hist, buf)
    values = column[rows]
    if np.isnan(values).any():
        return float("nan"), float("nan")
    k = (rows.size - 1) // 2
    part = np.partition(values, [k, k + 1 - rows.size % 2])
    return float(part[k]), float(part[k + 1 - rows.size % 2])
