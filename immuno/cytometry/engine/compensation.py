"""Spillover matrices and compensation.

Each fluorochrome is seen mostly in its own (primary) detector and partly in others:
observed = true x S, with S's rows the fluorochromes (named by their primary detector,
$PnN) and its columns the detectors. Compensation recovers the true signal as
observed x inverse(S), on the channels S covers only; every other column (scatter, Time,
detectors outside the matrix) is left as it is.

S comes from one of three places, as the panel's ``compensation: {source: ...}`` says:
the file's ``$SPILLOVER`` (or ``$SPILL``, ``$COMP``, ``$DFCiTOj``) keyword or a matrix file
(both read by :mod:`immuno.cytometry.io.spillover`), or the batch's single-stain controls
and unstained tube (:func:`spillover_from_single_stains`, here). The last one is what labs
use when the acquisition-time matrix is stale; FlowKit does not offer it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from immuno.errors import Problem, UserError

if TYPE_CHECKING:  # the single-stain estimate takes read files; reading them is io's job
    from immuno.cytometry.io.fcs import FCSData

_CHUNK = 1 << 16  # events compensated at a time: bounds the float64 scratch memory


class SpilloverLike(Protocol):
    """Anything with the detector names and the spillover matrix (rows source, cols detector)."""

    channels: list[str]
    matrix: np.ndarray


@dataclass
class Spillover:
    """A spillover matrix.

    Attributes
    ----------
    channels
        The channels ($PnN) the matrix covers, in row and column order.
    matrix
        ``(n, n)`` float64; row = fluorochrome (its primary detector), column = detector.
    source
        Where the matrix came from, for provenance (e.g. ``"$SPILLOVER of x.fcs"``).
    """

    channels: list[str]
    matrix: np.ndarray
    source: str = ""
    _inverse: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        n = len(self.channels)
        if self.matrix.shape != (n, n):
            raise UserError.single(self.source or "spillover", f"matrix is {self.matrix.shape}, expected {n} x {n} for channels {', '.join(self.channels)}")

    def inverse(self) -> np.ndarray:
        """inverse(S), computed once.

        Raises
        ------
        UserError
            If the matrix is singular (e.g. two identical rows).
        """
        if self._inverse is None:
            cond = np.linalg.cond(self.matrix) if self.matrix.size else 1.0
            if not np.isfinite(cond) or cond > 1e12:
                raise UserError.single(self.source or "spillover", "the spillover matrix is singular "
                                       "(cannot be inverted); check for duplicated or all-zero rows",
                                       hint="Fix or recompute the spillover matrix.")
            self._inverse = np.linalg.inv(self.matrix)
        return self._inverse

    def value(self, source: str, detector: str) -> float:
        """Spillover of the fluorochrome read in ``source`` into ``detector``."""
        return float(self.matrix[self.channels.index(source), self.channels.index(detector)])


def compensate(events: np.ndarray, channels: Sequence[str], spill: Spillover,
               inplace: bool = False, where: str = "") -> np.ndarray:
    """Compensate events: observed x inverse(S) on the spill's channels only.

    Parameters
    ----------
    events
        ``(n_events, n_channels)`` observed values.
    channels
        ``$PnN`` of the columns of ``events``.
    spill
        The matrix; it may cover any subset of ``channels``.
    inplace
        Overwrite ``events`` instead of returning a compensated copy (saves memory on
        large files).
    where
        The file being compensated, for error messages.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``events``.

    Raises
    ------
    UserError
        If the matrix names a channel the events lack, or is singular.
    """
    missing = [c for c in spill.channels if c not in channels]
    if missing:
        raise UserError.single(where or spill.source or "compensation",
                               f"spillover matrix ({spill.source or 'given'}) names channel(s) "
                               f"{', '.join(missing)} that the data does not have "
                               f"(channels: {', '.join(channels)})")
    inv = spill.inverse()
    idx = np.array([list(channels).index(c) for c in spill.channels], dtype=np.intp)
    out = events if inplace else events.copy()
    if idx.size == 0:
        return out
    # float64 arithmetic in chunks: exact enough to reproduce float64 tools, bounded memory.
    # einsum rather than @: OpenBLAS's dgemm on a tall, 12-column matrix is several times
    # slower than this plain loop on 2-core machines.
    for start in range(0, out.shape[0], _CHUNK):
        block = out[start:start + _CHUNK]
        block[:, idx] = np.einsum("ij,jk->ik", block[:, idx].astype(np.float64), inv, optimize=False)
    return out


def compensate_solve(observed: np.ndarray, spill_matrix: np.ndarray) -> np.ndarray:
    """Compensated values ``observed x inverse(S)`` by a linear solve, in float64.

    Solving ``S^T c^T = o^T`` is what FlowKit (flowutils) does; using the same arithmetic
    keeps boundary events on the same side of a gate as in FlowKit.
    """
    return np.linalg.solve(np.asarray(spill_matrix, dtype=np.float64).T,
                           np.asarray(observed, dtype=np.float64).T).T


def _robust_split(x: np.ndarray) -> float:
    """Threshold between the dim and bright population of a single-stain channel.

    Otsu's criterion on an arcsinh scale (cofactor 150), where beads and cells form two
    well separated modes whatever the brightness.
    """
    y = np.arcsinh(x / 150.0)
    lo, hi = np.quantile(y, [0.001, 0.999])
    if hi <= lo:
        return float(np.sinh(hi) * 150.0)
    hist, edges = np.histogram(y, bins=256, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(np.sinh(edges[1:][int(np.argmax(between))]) * 150.0)


def _separated(bright: np.ndarray, dim: np.ndarray, k: float = 3.0) -> bool:
    """True when two sides of a split are distinct populations, not halves of one mode:
    their medians (arcsinh scale) lie more than ``k`` summed MADs apart."""
    if bright.size == 0 or dim.size == 0:
        return False
    b, d = np.arcsinh(bright / 150.0), np.arcsinh(dim / 150.0)
    mb, md = np.median(b), np.median(d)
    spread = np.median(np.abs(b - mb)) + np.median(np.abs(d - md))
    return bool(mb - md > k * max(spread, 1e-9))


def _in_scatter_gate(fcs: FCSData, gate: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    assert fcs.events is not None
    keep = np.ones(fcs.events.shape[0], dtype=bool)
    for key, channel in (("fsc", "FSC-A"), ("ssc", "SSC-A")):
        if gate and key in gate:
            lo, hi = gate[key]
            x = fcs.events[:, fcs.channel_index(channel)]
            keep &= (x >= lo) & (x < hi)
    return keep


def primary_channel(control: FCSData, candidates: Sequence[str], unstained: FCSData | None = None) -> str:
    """The detector a single-stain control is brightest in, relative to its negatives."""
    assert control.events is not None
    best, best_score = candidates[0], -np.inf
    for c in candidates:
        x = control.events[:, control.channel_index(c)].astype(np.float64)
        base = np.median(unstained.events[:, unstained.channel_index(c)]) if unstained is not None else np.quantile(x, 0.25)
        score = np.quantile(x, 0.98) - base
        if score > best_score:
            best, best_score = c, score
    return best


def spillover_from_single_stains(controls: Mapping[str, FCSData], unstained: FCSData | None = None,
                                 scatter_gate: Mapping[str, Sequence[float]] | None = None,
                                 min_events: int = 50) -> Spillover:
    """Compute the spillover matrix from single-stain controls.

    For each control, the positive population is the bright mode of its primary detector;
    its negative reference is the control's own dim mode (negative beads or cells), or the
    unstained tube when the control has too few negatives. Then, in every detector j,
    ``S[primary, j] = (median_pos_j - median_neg_j) / (median_pos_primary - median_neg_primary)``.
    Medians make it robust to outliers and to debris.

    Parameters
    ----------
    controls
        Primary channel ($PnN) -> the single-stain control read with :func:`read_fcs`.
    unstained
        The unstained tube (the negative reference when a control lacks its own).
    scatter_gate
        Optional ``{fsc: [lo, hi], ssc: [lo, hi]}`` on FSC-A / SSC-A (raw units) applied to
        every control before the medians (e.g. the bead singlets).
    min_events
        Fewest events a positive or negative population may have.

    Returns
    -------
    Spillover
        Rows and columns in the order of ``controls``.

    Raises
    ------
    UserError
        Naming the control file whose positive or negative population is too small or
        which lacks one of the channels.
    """
    channels = list(controls)
    matrix = np.eye(len(channels))
    problems: list[Problem] = []
    for i, primary in enumerate(channels):
        fcs = controls[primary]
        assert fcs.events is not None
        missing = [c for c in channels if c not in fcs.channels]
        if missing:
            problems.append(Problem(str(fcs.path), f"single-stain control lacks channel(s) {', '.join(missing)}"))
            continue
        keep = _in_scatter_gate(fcs, scatter_gate)
        cols = [fcs.channel_index(c) for c in channels]
        data = fcs.events[keep][:, cols].astype(np.float64)
        x = data[:, i]
        cut = _robust_split(x)
        pos = data[x > cut]
        neg = data[x <= cut]
        if len(neg) < min_events or not _separated(x[x > cut], x[x <= cut]):
            pos = data  # one population only: all of it is the stain, the unstained tube the negative
            if unstained is None:
                problems.append(Problem(str(fcs.path), f"no negative population in {primary} and no "
                                        "unstained tube to use instead"))
                continue
            u_keep = _in_scatter_gate(unstained, scatter_gate)
            neg = unstained.events[u_keep][:, [unstained.channel_index(c) for c in channels]].astype(np.float64)
        if len(pos) < min_events:
            problems.append(Problem(str(fcs.path), f"only {len(pos)} positive events in {primary} "
                                    f"(need {min_events}); is this the {primary} single stain?"))
            continue
        delta = np.median(pos, axis=0) - np.median(neg, axis=0)
        if delta[i] <= 0:
            problems.append(Problem(str(fcs.path), f"positive population is not brighter than the negative in {primary}"))
            continue
        matrix[i] = delta / delta[i]
    if problems:
        raise UserError(problems, hint="Check the single-stain controls of the batch (one per fluorochrome).")
    return Spillover(channels, matrix, source="single-stain controls")


