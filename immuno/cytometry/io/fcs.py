"""Reading and writing Flow Cytometry Standard (FCS) files.

An FCS file is one or more data sets, each a fixed 58-byte HEADER (version and the byte
offsets of the other segments), a TEXT segment of delimiter-separated keyword/value pairs
and a DATA segment holding the events in list mode. The readers here follow FCS 2.0,
3.0, 3.1 (and files that declare 3.2) and the quirks real instruments write:

- several data sets chained by ``$NEXTDATA`` (Beckman Coulter ``.LMD``, Guava): listed by
  :func:`list_datasets` and chosen with ``dataset=``; a file with several data sets and
  no choice is refused, never read as its first data set;
- DATA offsets that are 0 in the HEADER because the file is over 99,999,999 bytes (the
  offsets then come from TEXT), HEADER and TEXT offsets that disagree (resolved as
  :mod:`immuno.cytometry.io.fcs_data` describes, and noted), and a DATA end one byte too
  far or too short (the event count from ``$TOT`` decides how many bytes are read);
- ``$DATATYPE`` F (float32), D (float64) and I (unsigned integers of any whole number
  of bytes per ``$PnB``, 24-bit included, mixed widths allowed; ``$PnB`` that is not a
  whole number of bytes when the DATA size shows word storage), masked to the power of
  two at or above ``$PnR``;
- both byte orders of ``$BYTEORD``;
- a doubled delimiter inside a value (an escaped delimiter), and TEXT bytes that are
  not UTF-8 (old Mac and Windows software; read as Latin-1, keyword by keyword).

Events are returned as FlowKit's ``Sample`` holds its "raw" events: log-amplified
integer channels (``$PnE`` with decades > 0) are decoded to linear values, amplifier gain
(``$PnG``) is divided out except on Time, and Time is multiplied by ``$TIMESTEP``. For
float files without gain or timestep this leaves the DATA segment untouched. What was
unusual in a file (offsets resolved, word-stored bit widths, non-UTF-8 TEXT) is listed
in :attr:`FCSData.notes`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from immuno.cytometry.io.fcs_data import data_layout, mask_integers, read_events
from immuno.cytometry.io.fcs_text import (
    DataSetInfo,
    Segments,
    describe_segments,
    fail,
    int_keyword,
    list_datasets,
    read_segments,
)
from immuno.cytometry.io.fcs_write import format_spillover, write_fcs
from immuno.errors import UserError

__all__ = ["DataSetInfo", "EventReader", "FCSData", "format_spillover", "list_datasets", "parse_spillover",
           "read_fcs", "read_fcs_header", "write_fcs"]


@dataclass
class FCSData:
    """One FCS file: its keywords, channels and (optionally) events.

    Attributes
    ----------
    path
        The file read.
    version
        ``"2.0"``, ``"3.0"``, ``"3.1"`` or ``"3.2"`` from the HEADER.
    keywords
        Every TEXT keyword, names upper-cased (``$TOT``, ``$P1N``, ``$SPILLOVER`` ...).
    channels
        ``$PnN`` of each parameter, in file order (the detector, e.g. ``BV421-A``).
    markers
        ``$PnS`` of each parameter (the stain, e.g. ``CD3``), or None when absent/blank.
    ranges
        ``$PnR`` of each parameter as float.
    events
        ``(n_events, n_channels)`` C-contiguous array, or None when only the header was
        read (:func:`read_fcs_header`).
    dataset, n_datasets
        Which data set (1-based) was read, of how many in the file.
    notes
        What was unusual in reading it (offsets that disagreed and which were used,
        word-stored bit widths, non-UTF-8 TEXT); the pipeline turns them into QC warnings.
    """

    path: Path
    version: str
    keywords: dict[str, str]
    channels: list[str]
    markers: list[str | None]
    ranges: np.ndarray
    events: np.ndarray | None = None
    dataset: int = 1
    n_datasets: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        """Number of events (from the events when loaded, else ``$TOT``)."""
        if self.events is not None:
            return int(self.events.shape[0])
        return int(self.keywords.get("$TOT", "0").strip() or 0)

    @property
    def n_channels(self) -> int:
        """Number of parameters (``$PAR``)."""
        return len(self.channels)

    def top_values(self, preprocessed: bool = True) -> np.ndarray:
        """The value each channel takes at the top of its range ($PnR - 1): where a
        saturated detector's events sit. With ``preprocessed`` (as :func:`read_fcs`
        returns events by default) log decoding and gain are applied to it as to the data."""
        tops = self.ranges - 1.0
        if preprocessed:
            tops = tops.reshape(1, -1).copy()
            _preprocess(tops, self.channels, self.ranges, self.keywords)
            tops = tops[0]
        return tops

    def channel_index(self, channel: str) -> int:
        """Column of ``channel`` ($PnN) in :attr:`events`.

        Raises
        ------
        UserError
            If the file has no such channel (the message lists the channels it has).
        """
        try:
            return self.channels.index(channel)
        except ValueError:
            raise UserError.single(str(self.path), f"no channel {channel!r} in this FCS file "
                                   f"(channels: {', '.join(self.channels)})") from None


def _channel_meta(kw: dict[str, str], path: Path) -> tuple[list[str], list[str | None], np.ndarray]:
    n_par = int_keyword(kw, "$PAR", path)
    channels: list[str] = []
    markers: list[str | None] = []
    ranges = np.zeros(n_par, dtype=np.float64)
    for i in range(1, n_par + 1):
        name = kw.get(f"$P{i}N")
        if name is None or not name.strip():
            raise fail(path, f"parameter {i} has no $P{i}N channel name")
        channels.append(name.strip())
        marker = kw.get(f"$P{i}S", "").strip()
        markers.append(marker or None)
        try:
            ranges[i - 1] = float(kw.get(f"$P{i}R", "0").strip() or 0)
        except ValueError:
            raise fail(path, f"$P{i}R should be a number, got {kw[f'$P{i}R']!r}") from None
    return channels, markers, ranges


def _keyword_notes(kw: dict[str, str]) -> list[str]:
    notes = []
    step = kw.get("$TIMESTEP")
    if step is not None and step.strip() and _float(step, float("nan")) != _float(step, float("nan")):
        notes.append(f"$TIMESTEP {step.strip()!r} is not a number: Time is left in the instrument's ticks")
    return notes


def _chosen(path: Path, dataset: int | None) -> tuple[Segments, int, int]:
    """The segments of the data set to read, its 1-based index and the file's count."""
    segments = read_segments(path)
    n = len(segments)
    if dataset is None:
        if n > 1:
            sets = "; ".join(describe_segments(s, i, path).describe() for i, s in enumerate(segments, start=1))
            raise UserError.single(str(path), f"holds {n} data sets ($NEXTDATA): {sets}; choose one with "
                                   "dataset=N (--dataset N on the command line, `dataset: N` in the panel)")
        return segments[0], 1, n
    if isinstance(dataset, bool) or not isinstance(dataset, int) or not 1 <= dataset <= n:
        raise UserError.single(str(path), f"has no data set {dataset!r}; it holds {n} "
                               f"(1{'-' + str(n) if n > 1 else ''})")
    return segments[dataset - 1], dataset, n


def read_fcs_header(path: str | os.PathLike[str], dataset: int | None = None) -> FCSData:
    """Read only the HEADER and TEXT of an FCS file (fast; for validation).

    Parameters
    ----------
    path
        The FCS file.
    dataset
        Which data set (1-based) of a file that holds several; see :func:`read_fcs`.

    Returns
    -------
    FCSData
        With ``events`` None.

    Raises
    ------
    UserError
        If the file is missing, empty, not FCS, uses an unsupported data layout, is
        shorter than its DATA segment (truncated), or holds several data sets and
        ``dataset`` does not choose one.
    """
    path = Path(path)
    seg, index, n_sets = _chosen(path, dataset)
    channels, markers, ranges = _channel_meta(seg.keywords, path)
    data_layout(seg, len(channels), path)  # a truncated DATA segment fails here
    return FCSData(path=path, version=seg.version, keywords=seg.keywords, channels=channels,
                   markers=markers, ranges=ranges, events=None, dataset=index, n_datasets=n_sets,
                   notes=[*seg.notes, *_keyword_notes(seg.keywords)])


def read_fcs(path: str | os.PathLike[str], dtype: type[np.floating] = np.float32,
             preprocess: bool = True, dataset: int | None = None) -> FCSData:
    """Read an FCS file with its events.

    Parameters
    ----------
    path
        The FCS file.
    dtype
        Float type of the returned events (float32 by default; float64 reproduces
        FlowKit's arithmetic bit for bit on log-amplified integer files).
    preprocess
        Decode ``$PnE`` log amplification, divide ``$PnG`` gain and scale Time by
        ``$TIMESTEP``, as FlowKit does for its raw events. False returns the stored values.
    dataset
        Which data set (1-based) to read. A file with one data set needs no choice; a
        file with several (``$NEXTDATA``: Beckman Coulter ``.LMD``, Guava) must be given
        one, never silently the first (:func:`list_datasets` lists them).

    Returns
    -------
    FCSData

    Raises
    ------
    UserError
        If the file is empty, truncated, not FCS, holds several data sets and
        ``dataset`` chooses none, or uses a data layout this reader does not support
        (ASCII data, histogram mode, packed bit fields).
    """
    reader = EventReader(path, dtype=dtype, preprocess=preprocess, dataset=dataset)
    fcs = reader.fcs
    fcs.events = reader.rows(0, reader.n_events)
    return fcs


class EventReader:
    """An FCS data set's events read in blocks of rows, decoded as :func:`read_fcs` decodes them.

    For a pipeline that processes a large file block by block, so that the whole file
    never has to be held in memory at once: :attr:`fcs` is the header (events None);
    :meth:`blocks` yields ``(first_row, events)`` blocks that, stacked, equal
    ``read_fcs(...).events``.

    Parameters
    ----------
    path, dtype, preprocess, dataset
        As for :func:`read_fcs`.

    Raises
    ------
    UserError
        As :func:`read_fcs`, when the reader is made (before any event is read).
    """

    def __init__(self, path: str | os.PathLike[str], dtype: type[np.floating] = np.float32,
                 preprocess: bool = True, dataset: int | None = None) -> None:
        path = Path(path)
        seg, index, n_sets = _chosen(path, dataset)
        channels, markers, ranges = _channel_meta(seg.keywords, path)
        self._layout = data_layout(seg, len(channels), path)
        self._dtype, self._preprocess = np.dtype(dtype), preprocess
        self.fcs = FCSData(path=path, version=seg.version, keywords=seg.keywords, channels=channels,
                           markers=markers, ranges=ranges, events=None, dataset=index, n_datasets=n_sets,
                           notes=[*seg.notes, *_keyword_notes(seg.keywords)])

    @property
    def n_events(self) -> int:
        """Events in the data set."""
        return int(self._layout.n_events)

    def rows(self, start: int, count: int) -> np.ndarray:
        """Events ``start`` to ``start + count`` (fewer at the end), decoded, C-contiguous."""
        fcs = self.fcs
        stored, is_int = read_events(fcs.path, self._layout, fcs.n_channels, start, count)
        dtype = self._dtype
        if is_int:
            events = mask_integers(stored, self._layout.widths, fcs.ranges).astype(dtype)
        else:
            _check_floats(stored, fcs, start)
            events = stored.astype(dtype, copy=stored.dtype != dtype or not stored.dtype.isnative)
        if self._preprocess:
            _preprocess(events, fcs.channels, fcs.ranges, fcs.keywords)
        return np.ascontiguousarray(events)

    def blocks(self, rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, events)`` for consecutive blocks of ``rows`` events."""
        for start in range(0, self.n_events, rows):
            yield start, self.rows(start, rows)


#: beyond any detector's values (real files reach tens of times their $PnR, not this)
_IMPLAUSIBLE = 1e15


def _check_floats(stored: np.ndarray, fcs: FCSData, start: int) -> None:
    """Refuse float events that cannot be measurements: NaN, infinities, magnitudes no
    instrument writes, or many subnormal numbers. These are what floats read in the wrong
    byte order (or of another width) look like, and reading them would turn garbage into
    gates and percentages."""
    absolute = np.abs(stored.astype(stored.dtype.newbyteorder("="), copy=False))
    plausible = absolute <= _IMPLAUSIBLE  # False for NaN too
    tiny = (absolute > 0) & (absolute < np.finfo(absolute.dtype).tiny)
    if plausible.all() and tiny.sum() <= 0.01 * max(np.count_nonzero(absolute), 1):
        return
    finite = np.isfinite(absolute)
    named = [fcs.channels[j] for j in np.flatnonzero((~plausible | tiny).any(axis=0))]
    what = (f"{int((~finite).sum())} not finite (NaN or infinite), {int((finite & ~plausible).sum())} beyond "
            f"1e15, {int(tiny.sum())} subnormal")
    raise UserError.single(str(fcs.path), f"event values in rows {start + 1}-{start + len(stored)} are not "
                           f"measurements ({what}; channels {', '.join(named[:6])}"
                           f"{' ...' if len(named) > 6 else ''}): the byte order ($BYTEORD "
                           f"{fcs.keywords.get('$BYTEORD', '?')}) or the data type ($DATATYPE "
                           f"{fcs.keywords.get('$DATATYPE', '?')}) does not match the data; re-export the file")


def _preprocess(events: np.ndarray, channels: list[str], ranges: np.ndarray,
                kw: dict[str, str]) -> None:
    for j, name in enumerate(channels):
        is_time = name.lower() == "time"
        decades, log0 = _pne(kw.get(f"$P{j + 1}E", "0,0"))
        if decades > 0:
            events[:, j] = (10 ** (decades * events[:, j] / ranges[j])) * log0
        gain = _float(kw.get(f"$P{j + 1}G"), 1.0)
        if not is_time and gain not in (0.0, 1.0):
            events[:, j] /= gain
        if is_time:
            step = _float(kw.get("$TIMESTEP"), 1.0)
            if step not in (0.0, 1.0):
                # in float64 and then rounded, as FlowKit computes it: exported Time gates
                # can then be placed between the values FlowKit sees (see acquisition_qc)
                events[:, j] = events[:, j].astype(np.float64) * step


def _pne(text: str) -> tuple[float, float]:
    try:
        decades, log0 = (float(x) for x in text.replace(" ", "").split(",")[:2])
    except ValueError:
        return 0.0, 0.0
    if decades > 0 and log0 == 0:
        log0 = 1.0  # the standard: a log(0) of 0 means 1
    return decades, log0


def _float(text: str | None, default: float) -> float:
    if text is None or not text.strip():
        return default
    try:
        return float(text)
    except ValueError:
        return default


_SPILL_SPLIT = re.compile(r"[,\t]")


def parse_spillover(text: str, where: str = "$SPILLOVER") -> tuple[list[str], np.ndarray]:
    """Parse a ``$SPILLOVER`` / ``$SPILL`` / ``SPILL`` keyword value.

    The value is ``n,ch_1,...,ch_n,s_11,s_12,...,s_nn``: the channels ($PnN) the matrix
    covers, then the matrix row by row (row = fluorochrome's primary detector, column =
    detector it spills into).

    Parameters
    ----------
    text
        The keyword value.
    where
        Named in error messages (e.g. the file and keyword).

    Returns
    -------
    channels, matrix
        ``matrix`` is ``(n, n)`` float64.

    Raises
    ------
    UserError
        If the count, names or numbers do not add up.
    """
    parts = [p.strip() for p in _SPILL_SPLIT.split(text.strip().strip(","))]
    try:
        n = int(float(parts[0]))
    except (ValueError, IndexError):
        raise UserError.single(where, f"spillover should start with the number of channels, got {text[:40]!r}") from None
    if n < 1 or len(parts) != 1 + n + n * n:
        raise UserError.single(where, f"spillover declares {n} channels, so it needs {1 + n + n * n} "
                               f"comma-separated fields; it has {len(parts)}")
    channels = parts[1:1 + n]
    try:
        matrix = np.array([float(v) for v in parts[1 + n:]], dtype=np.float64).reshape(n, n)
    except ValueError:
        raise UserError.single(where, "spillover matrix values must be numbers") from None
    if len(set(channels)) != n:
        raise UserError.single(where, f"spillover names a channel twice: {', '.join(channels)}")
    return channels, matrix
