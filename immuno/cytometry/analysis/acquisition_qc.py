"""Acquisition QC: flag events acquired under unstable flow, at the margin, or with
negative scatter. Flagged events are excluded from gating but never deleted.

Unstable flow (a clog, a bubble, a pressure drop) shows as a change of the event rate and
a shift of the signal over a stretch of the run. In the spirit of flowAI and PeacoQC, the
run is cut into time bins of about ``bin_events`` events; a bin is flagged when its event
count, or the signal level of any checked channel, departs from the run's median bin by
more than ``k_mad`` robust standard deviations (1.4826 x MAD across bins, and never less
than the level's own sampling error). Every event of a
flagged bin is flagged. Margin events sit at the top of a channel's range ($PnR - 1:
the detector saturated), and negative forward or side scatter is an electronic artefact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from immuno.cytometry.analysis.acquisition_kernels import bin_index, column_std, edge_flags
from immuno.cytometry.engine.gates import BooleanGate, RectangleGate, float32_limit

#: per-event flag columns, in the order they appear in ``obs``
FLAG_COLUMNS = ("qc_flow", "qc_margin", "qc_negative_scatter")
_MAD_SD = 1.4826  # MAD -> standard deviation of a normal distribution
MIN_BIN_EVENTS = 10  # bins with fewer events give no median worth testing
LEVEL_EVENTS = 250_000  # at most this many events enter the signal-level test
MAX_BINS = 1000  # on large files bins grow instead: a clog lasts seconds, not milliseconds


@dataclass
class AcquisitionQC:
    """Per-event flags and per-bin statistics of one sample's acquisition.

    Attributes
    ----------
    flags
        One row per event: boolean columns ``qc_flow``, ``qc_margin``,
        ``qc_negative_scatter`` and ``qc_pass`` (none of them).
    bins
        One row per time bin: ``start``, ``end`` (Time units), ``events``, ``rate_z``,
        ``worst_channel``, ``worst_level_z``, ``flagged``.
    params
        The parameters used (recorded in provenance).
    """

    flags: pd.DataFrame
    bins: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        """Number of events checked."""
        return len(self.flags)

    def fraction(self, column: str) -> float:
        """Fraction of events with ``column`` set."""
        return float(self.flags[column].mean()) if len(self.flags) else 0.0


def _robust_z(values: np.ndarray, floor: float | np.floating = 0.0) -> np.ndarray:
    med = np.median(values)
    sd = _MAD_SD * np.median(np.abs(values - med))
    sd = max(sd, floor, 1e-12)
    return (values - med) / sd


def flow_bins(time: np.ndarray, bin_events: int, max_bins: int = MAX_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Assign events to equal-width time bins holding ``bin_events`` events on average
    (fewer, larger bins when that would exceed ``max_bins``).

    Returns
    -------
    bin_of_event, edges
        ``bin_of_event`` is an int array (one bin index per event) and ``edges`` the
        ``n_bins + 1`` bin boundaries in Time units.
    """
    t0, t1 = float(np.min(time)), float(np.max(time))
    n_bins = min(max(1, int(round(time.size / max(bin_events, 1)))), max_bins)
    if t1 <= t0:
        return np.zeros(time.size, dtype=np.intp), np.array([t0, t1])
    width = (t1 - t0) / n_bins
    idx = np.empty(time.size, dtype=np.intp)
    bin_index(np.ascontiguousarray(time), t0, width, n_bins - 1, idx)
    return idx, t0 + width * np.arange(n_bins + 1)


def _bin_levels(values: np.ndarray, idx: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin signal level of each channel and the spread it has by sampling alone.

    The level is the mean of arcsinh(x / 150): on a channel with two populations of
    similar size (CD4+ and CD4-, CD45RA+ and CD45RA-) a bin's median jumps between the
    two modes from one bin to the next, while this mean moves smoothly and is close to
    normal, so k robust standard deviations mean the same on every channel. Under stable
    flow the events of a bin are a random draw of the run, so the level's sampling
    spread is the run's standard deviation over sqrt(events in the bin).
    """
    counts = np.bincount(idx, minlength=n_bins)
    scaled = np.arcsinh(values.astype(np.float32, copy=False) / np.float32(150.0))
    level = np.full((n_bins, scaled.shape[1]), np.nan)
    ok = counts >= MIN_BIN_EVENTS
    for j in range(scaled.shape[1]):
        sums = np.bincount(idx, weights=scaled[:, j], minlength=n_bins)
        level[ok, j] = sums[ok] / counts[ok]
    sampling = column_std(scaled)[None, :] / np.sqrt(np.maximum(counts, 1))[:, None]
    return level, sampling


class QCCollector:
    """What acquisition QC needs from a sample's events, gathered block by block.

    A tube is read in blocks of rows; each block gives its Time values, its margin and
    negative-scatter flags and, for the signal-level test, its rows at every ``stride``-th
    event of the file. :meth:`finish` then judges the whole run exactly as
    :func:`acquisition_qc` judges the whole matrix.

    Parameters
    ----------
    n_events
        Events in the file.
    channels, ranges, time_channel, margin, negative_scatter, check_channels
        As for :func:`acquisition_qc`.
    dtype
        The events' float type (Time limits are placed for float32 values).
    """

    def __init__(self, n_events: int, channels: Sequence[str], ranges: Sequence[float] | np.ndarray,
                 time_channel: str | None = "Time", margin: bool = True, negative_scatter: bool = True,
                 check_channels: Sequence[str] | None = None, dtype: Any = np.float32) -> None:
        self.channels = list(channels)
        self.n = int(n_events)
        ranges = np.asarray(ranges, dtype=np.float64)
        self.time_channel = time_channel
        self.has_time = time_channel is not None and time_channel in self.channels and self.n > 0
        self.t_col = self.channels.index(time_channel) if self.has_time else -1
        signal = [j for j, c in enumerate(self.channels) if j != self.t_col]
        if check_channels is not None:
            signal = [self.channels.index(c) for c in check_channels if c in self.channels and c != time_channel]
        self.signal_cols = signal
        self.margin, self.negative_scatter = bool(margin), bool(negative_scatter)
        self.margin_limits: dict[str, float] = {}
        if margin:
            for j in (k for k in range(len(self.channels)) if k != self.t_col):
                if ranges[j] > 0:
                    # relative slack: a decoded log channel's top is stored in float32
                    self.margin_limits[self.channels[j]] = float((ranges[j] - 1) * (1 - 1e-6))
        self.scatter = ([c for c in self.channels if c.upper().startswith(("FSC", "SSC"))]
                        if negative_scatter else [])
        # levels from every k-th event on large files: a bin of 1000 events has a precise
        # level from 250 of them, and the arcsinh of every event would dominate the QC time
        self.stride = max(1, -(-self.n // LEVEL_EVENTS))
        self.time = np.empty(self.n if self.has_time else 0, dtype=dtype)
        self.levels = np.empty((-(-self.n // self.stride) if self.has_time else 0, len(signal)), dtype=dtype)
        self.at_margin = np.zeros(self.n, dtype=bool)
        self.negative = np.zeros(self.n, dtype=bool)

    def add(self, start: int, block: np.ndarray) -> None:
        """Take rows ``start`` to ``start + len(block)`` of the file."""
        stop = start + block.shape[0]
        if self.has_time:
            self.time[start:stop] = block[:, self.t_col]
            first = (-start) % self.stride
            picked = block[first::self.stride][:, self.signal_cols]
            at = (start + first) // self.stride
            self.levels[at:at + picked.shape[0]] = picked
        margin, negative = edge_flags(block, [self.channels.index(c) for c in self.margin_limits],
                                       list(self.margin_limits.values()),
                                       [self.channels.index(c) for c in self.scatter])
        self.at_margin[start:stop] = margin
        self.negative[start:stop] = negative

    def finish(self, bin_events: int = 100, k_mad: float = 4.0, k_level: float | None = None,
               time_unit: str = "Time units") -> AcquisitionQC:
        """The QC of the whole run (see :func:`acquisition_qc`)."""
        n, channels, signal_cols = self.n, self.channels, self.signal_cols
        flow = np.zeros(n, dtype=bool)
        excluded: list[list[float | None]] = []
        bins = pd.DataFrame(columns=["start", "end", "events", "rate_z", "worst_channel",
                                     "worst_level_z", "flagged"])
        if self.has_time:
            idx, edges = flow_bins(self.time, bin_events)
            n_bins = edges.size - 1
            counts = np.bincount(idx, minlength=n_bins)
            level, sampling = _bin_levels(self.levels, idx[::self.stride], n_bins)
            # a Poisson count cannot be steadier than sqrt(mean): floor the spread there
            rate_z = _robust_z(counts.astype(np.float64), floor=float(np.sqrt(max(np.median(counts), 1.0))))
            level_z = np.zeros_like(level)
            for j in range(level.shape[1]):
                ok = ~np.isnan(level[:, j])
                if ok.sum() >= 3:
                    centre = np.median(level[ok, j])
                    drift_sd = _MAD_SD * np.median(np.abs(level[ok, j] - centre))
                    level_z[ok, j] = (level[ok, j] - centre) / np.maximum(np.maximum(drift_sd, sampling[ok, j]),
                                                                          1e-12)
            worst = np.argmax(np.abs(level_z), axis=1) if level.shape[1] else np.zeros(n_bins, np.intp)
            worst_z = np.abs(level_z[np.arange(n_bins), worst]) if level.shape[1] else np.zeros(n_bins)
            k_lvl = k_mad + 1.0 if k_level is None else k_level
            flagged = (np.abs(rate_z) > k_mad) | (worst_z > k_lvl)
            # a stable-looking bin between two unstable ones is part of the same event (a
            # bin straddling the end of a rate drop and the start of the burst can count normal)
            gap = np.zeros_like(flagged)
            gap[1:-1] = flagged[:-2] & flagged[2:]
            flagged |= gap
            flow = flagged[idx]
            excluded = _flagged_intervals(self.time, idx, flagged)
            bins = pd.DataFrame({
                "start": edges[:-1], "end": edges[1:], "events": counts, "rate_z": rate_z,
                "worst_channel": [channels[signal_cols[w]] for w in worst] if signal_cols else [""] * n_bins,
                "worst_level_z": worst_z, "flagged": flagged,
            })
        at_margin, neg = self.at_margin, self.negative
        flags = pd.DataFrame({"qc_flow": flow, "qc_margin": at_margin, "qc_negative_scatter": neg})
        flags["qc_pass"] = ~(flow | at_margin | neg)
        params = {"time_channel": self.time_channel if self.has_time else None, "bin_events": int(bin_events),
                  "k_mad": float(k_mad), "k_level": float(k_mad + 1.0 if k_level is None else k_level),
                  "margin": self.margin, "negative_scatter": self.negative_scatter, "time_unit": time_unit,
                  "check_channels": [channels[j] for j in signal_cols],
                  # the keep mask as limits on raw values (see :func:`keep_gates`)
                  "margin_limits": dict(self.margin_limits), "scatter_channels": list(self.scatter),
                  "flow_excluded": excluded}
        return AcquisitionQC(flags=flags, bins=bins, params=params)


def acquisition_qc(events: np.ndarray, channels: Sequence[str], ranges: Sequence[float] | np.ndarray,
                   time_channel: str | None = "Time", bin_events: int = 100, k_mad: float = 4.0,
                   margin: bool = True, negative_scatter: bool = True,
                   check_channels: Sequence[str] | None = None,
                   k_level: float | None = None, time_unit: str = "Time units") -> AcquisitionQC:
    """Flag the events of one sample.

    Parameters
    ----------
    events
        ``(n_events, n_channels)`` raw (uncompensated) values, in acquisition order or not.
    channels
        ``$PnN`` of the columns.
    ranges
        ``$PnR`` of the columns (margin = value >= range - 1).
    time_channel
        The Time channel; None (or absent from ``channels``) skips the flow check.
    bin_events
        Average number of events per time bin.
    k_mad
        How many robust standard deviations a bin may depart before it is flagged.
    margin, negative_scatter
        Whether to flag margin events / negative FSC or SSC.
    check_channels
        Channels whose per-bin signal levels are tested (default: all but Time).
    k_level
        Threshold for the signal-level test (default ``k_mad + 1``: a dozen channels are
        tested in every bin, so a single-test threshold would flag about one stable bin
        per file by chance).
    time_unit
        What the Time values count (``"s"`` once ``$TIMESTEP`` is applied), for messages.

    Returns
    -------
    AcquisitionQC
    """
    collector = QCCollector(events.shape[0], channels, ranges, time_channel, margin, negative_scatter,
                            check_channels, dtype=events.dtype if events.dtype.kind == "f" else np.float64)
    collector.add(0, events)
    return collector.finish(bin_events, k_mad, k_level, time_unit)


def _flagged_intervals(time: np.ndarray, idx: np.ndarray, flagged: np.ndarray) -> list[list[float | None]]:
    """Each run of flagged bins as ``[lower, upper or None]`` limits on Time.

    The limits come from events' Time values, not from bin edges: a bin index grows with
    Time, so the events with ``first Time in the run <= Time < first Time after it`` are
    exactly those of the run, with no rounding at an edge (an exported gate then removes
    the same events); see :func:`_gate_limit`.
    """
    out: list[list[float | None]] = []
    n_bins = flagged.size
    b = 0
    while b < n_bins:
        if not flagged[b]:
            b += 1
            continue
        end = b
        while end + 1 < n_bins and flagged[end + 1]:
            end += 1
        inside = (idx >= b) & (idx <= end)
        if inside.any():
            after = idx > end
            first = time[inside].min()
            out.append([_gate_limit(first), _gate_limit(time[after].min()) if after.any() else None])
        b = end + 1
    return out


def _gate_limit(value: np.floating) -> float:
    """A gate limit that puts ``value`` and everything above it on one side.

    Float32 Time values are rounded from the float64 values other software computes
    (stored value x $TIMESTEP): the limit is the smallest float64 that rounds to
    ``value`` (ties go to the even neighbour), so an event's float64 Time is at or above
    the limit exactly when its float32 Time is at or above ``value``.
    """
    if np.asarray(value).dtype != np.float32:
        return float(value)
    return float32_limit(float(value))


def keep_gates(params: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    """The events acquisition QC keeps, as gates on raw (uncompensated, untransformed) values.

    Margin: a rectangle below each checked channel's limit; negative scatter: a
    rectangle with minimum 0 on FSC/SSC; unstable flow: a rectangle on Time per flagged
    stretch, joined by OR; the kept events are AND of the first two and NOT the third.
    An exported gating hierarchy hangs below that gate, so that software reading the
    file alone starts from the same events.

    Parameters
    ----------
    params
        :attr:`AcquisitionQC.params` (as recorded in a sample's provenance).

    Returns
    -------
    gates, root
        The gates (no parents but each other) and the id of the gate holding the kept
        events; ``([], None)`` when QC removes nothing by construction.
    """
    gates: list[Any] = []
    keep: list[tuple[str, bool]] = []
    limits = params.get("margin_limits") or {}
    if limits:
        dims = tuple(limits)
        gates.append(RectangleGate("acq_below_margin", None, dims, (None,) * len(dims),
                                   tuple(float(limits[d]) for d in dims)))
        keep.append(("acq_below_margin", False))
    scatter = tuple(params.get("scatter_channels") or ())
    if scatter:
        gates.append(RectangleGate("acq_scatter_not_negative", None, scatter, (0.0,) * len(scatter),
                                   (None,) * len(scatter)))
        keep.append(("acq_scatter_not_negative", False))
    time_channel = params.get("time_channel")
    stretches = [RectangleGate(f"acq_unstable_flow_{i + 1}", None, (str(time_channel),),
                               (float(lo),), (None if hi is None else float(hi),))
                 for i, (lo, hi) in enumerate(params.get("flow_excluded") or [])]
    gates += stretches
    if len(stretches) > 1:
        gates.append(BooleanGate("acq_unstable_flow", None, "or", tuple((g.gate_id, False) for g in stretches)))
        keep.append(("acq_unstable_flow", True))
    elif stretches:
        keep.append((stretches[0].gate_id, True))
    if not keep:
        return [], None
    if len(keep) == 1 and not keep[0][1]:
        return gates, keep[0][0]
    if len(keep) == 1:
        gates.append(BooleanGate("acq_kept", None, "not", ((keep[0][0], False),)))
    else:
        gates.append(BooleanGate("acq_kept", None, "and", tuple(keep)))
    return gates, "acq_kept"


def qc_settings(panel_qc: Mapping[str, Any] | None, panel_channels: Sequence[str] | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`acquisition_qc` from a panel's ``qc:`` section.

    Per-bin medians are tested on the panel's channels (``qc.channels`` overrides) and
    margins on every channel of the file.
    """
    qc = dict(panel_qc or {})
    time_channel = qc.get("time_channel", "Time")
    check = qc.get("channels") or [c for c in (panel_channels or []) if c != time_channel] or None
    return {"time_channel": time_channel, "bin_events": int(qc.get("bin_events", 100)),
            "k_mad": float(qc.get("k_mad", 4.0)), "margin": bool(qc.get("margin", True)),
            "k_level": float(qc["k_level"]) if "k_level" in qc else None,
            "negative_scatter": bool(qc.get("negative_scatter", True)), "check_channels": check}


#: above this fraction of events flagged for unstable flow the sample fails QC
MAX_FLOW_FRACTION = 0.25
MIN_KEPT_FRACTION = 0.5


def qc_rows(result: AcquisitionQC, batch_id: str, sample_id: str, panel: str) -> tuple[list[dict], list[dict]]:
    """Summarise a sample's acquisition QC as rows of ``qc/metrics`` and ``qc/flags``.

    Returns
    -------
    metrics, flags
        Rows for :func:`immuno.contract.qc.metrics_table` and :func:`immuno.contract.qc.flags_table`.
    """
    base = {"batch_id": batch_id, "sample_id": sample_id, "assay": "cytometry", "panel": panel}
    n = result.n_events
    flow_bins_flagged = int(result.bins["flagged"].sum()) if len(result.bins) else 0
    kept = result.fraction("qc_pass")
    metrics = [
        {**base, "check": "acquisition_events", "target": "all", "value": n, "lower_limit": 1,
         "passed": n >= 1, "detail": "events in the file"},
        {**base, "check": "acquisition_flow", "target": "qc_flow", "value": result.fraction("qc_flow"),
         "upper_limit": MAX_FLOW_FRACTION, "passed": result.fraction("qc_flow") <= MAX_FLOW_FRACTION,
         "detail": f"{flow_bins_flagged} of {len(result.bins)} time bins unstable"},
        {**base, "check": "acquisition_margin", "target": "qc_margin", "value": result.fraction("qc_margin"),
         "detail": "events at the top of a channel's range"},
        {**base, "check": "acquisition_negative_scatter", "target": "qc_negative_scatter",
         "value": result.fraction("qc_negative_scatter"), "detail": "events with FSC or SSC below 0"},
        {**base, "check": "acquisition_kept", "target": "qc_pass", "value": kept,
         "lower_limit": MIN_KEPT_FRACTION, "passed": kept >= MIN_KEPT_FRACTION,
         "detail": "events passing acquisition QC (used for gating)"},
    ]
    flags: list[dict] = []
    if flow_bins_flagged:
        worst = result.bins.loc[result.bins["flagged"]]
        severity = "fail" if result.fraction("qc_flow") > MAX_FLOW_FRACTION else "warning"
        flags.append({**base, "target": "qc_flow", "flag": "unstable_flow", "severity": severity,
                      "reason": f"{int(result.flags['qc_flow'].sum())} events ({100 * result.fraction('qc_flow'):.1f} %) "
                                f"in {flow_bins_flagged} time bins between {worst['start'].min():.4g} and "
                                f"{worst['end'].max():.4g} {result.params.get('time_unit', 'Time units')} flagged for unstable flow; excluded from gating"})
    if kept < MIN_KEPT_FRACTION:
        flags.append({**base, "target": "qc_pass", "flag": "few_events_kept", "severity": "fail",
                      "reason": f"only {100 * kept:.1f} % of events pass acquisition QC"})
    return metrics, flags
