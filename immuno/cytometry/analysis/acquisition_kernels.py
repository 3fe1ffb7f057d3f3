"""The compiled loops of acquisition QC, one pass each over a block of events.

:mod:`immuno.cytometry.analysis.acquisition_qc` judges a run; these loops only count: the
time bin of each event, the margin and negative-scatter flags of each row (one pass over
a row-major block, where a test per channel would read the block once per channel), and
the spread of each channel's sampled level without a float64 copy of the sample.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["bin_index", "column_std", "edge_flags"]


@numba.njit(cache=True, nogil=True)
def bin_index(time, t0, width, last, out):
    # min(int((t - t0) / width), last) in float64, as numpy computes it over whole arrays,
    # without their float64 temporaries
    for i in range(time.shape[0]):
        k = np.intp((np.float64(time[i]) - t0) / width)
        out[i] = k if k < last else last


def column_std(values: np.ndarray) -> np.ndarray:
    """``values.std(axis=0, dtype=float64)`` without its float64 copy of the values.

    numpy reduces a row-major matrix along its rows by plain running sums, which the
    kernel repeats in the same order (the result is equal to the bit); a single column
    is summed pairwise by numpy, so it goes to numpy.
    """
    if values.ndim != 2 or values.shape[1] < 2 or values.shape[0] == 0 or not values.flags.c_contiguous:
        return values.std(axis=0, dtype=np.float64)
    return _std_rows(values)


@numba.njit(cache=True, nogil=True)
def _std_rows(values):
    m, k = values.shape
    sums = np.zeros(k)
    for i in range(m):
        for j in range(k):
            sums[j] += np.float64(values[i, j])
    mean = sums / m
    squares = np.zeros(k)
    for i in range(m):
        for j in range(k):
            d = np.float64(values[i, j]) - mean[j]
            squares[j] += d * d
    return np.sqrt(squares / m)


@numba.njit(cache=True, nogil=True)
def _edge_rows(events, margin_cols, limits, scatter_cols, at_margin, negative):
    # one pass over the rows of a row-major matrix (a column test per channel would read
    # the whole matrix once per channel)
    for i in range(events.shape[0]):
        hit = False
        for k in range(margin_cols.shape[0]):
            if events[i, margin_cols[k]] >= limits[k]:
                hit = True
                break
        at_margin[i] = hit
        below = False
        for k in range(scatter_cols.shape[0]):
            if events[i, scatter_cols[k]] < 0:
                below = True
                break
        negative[i] = below


def edge_flags(events: np.ndarray, margin_cols: list[int], limits: list[float],
                scatter_cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Events at a channel's margin (value >= its limit) and with negative FSC/SSC.

    The limits are compared in the events' own precision, as numpy compares a float32
    array with a Python float.
    """
    n = events.shape[0]
    at_margin, negative = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n and (margin_cols or scatter_cols):
        data = events if events.dtype in (np.float32, np.float64) else events.astype(np.float64)
        _edge_rows(np.ascontiguousarray(data), np.asarray(margin_cols, dtype=np.int64),
                   np.asarray(limits, dtype=data.dtype), np.asarray(scatter_cols, dtype=np.int64),
                   at_margin, negative)
    return at_margin, negative
