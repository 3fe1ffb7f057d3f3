"""Reading and writing Flow Cytometry Standard (FCS) files.

An FCS file is a fixed 58-byte HEADER (version and the byte offsets of the other
segments), a TEXT segment of delimiter-separated keyword/value pairs, and a DATA segment
holding the events in list mode. The readers here follow FCS 2.0, 3.0, 3.1 (and files
that declare 3.2) and tolerate the quirks real instruments write:

- DATA offsets that are 0 in the HEADER because the file is over 99,999,999 bytes; the
  offsets then come from ``$BEGINDATA``/``$ENDDATA`` in TEXT;
- a DATA end offset one byte too far (or too short), which many acquisition programs
  write; the event count from ``$TOT`` decides how many bytes are read;
- ``$DATATYPE`` F (float32), D (float64) and I (unsigned integers of 8/16/32/64 bits per
  ``$PnB``, mixed widths allowed, masked to the power of two at or above ``$PnR``);
- both byte orders of ``$BYTEORD``;
- a doubled delimiter inside a value, which the standard defines as an escaped
  delimiter.

Events are returned as FlowKit's ``Sample`` holds its "raw" events: log-amplified
integer channels (``$PnE`` with decades > 0) are decoded to linear values, amplifier gain
(``$PnG``) is divided out except on Time, and Time is multiplied by ``$TIMESTEP``. For
float files without gain or timestep this leaves the DATA segment untouched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from immuno.cytometry.fcs_write import format_spillover, write_fcs
from immuno.errors import UserError

__all__ = ["FCSData", "format_spillover", "parse_spillover", "read_fcs", "read_fcs_header", "write_fcs"]


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
    """

    path: Path
    version: str
    keywords: dict[str, str]
    channels: list[str]
    markers: list[str | None]
    ranges: np.ndarray
    events: np.ndarray | None = None

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


def _fail(path: Path, what: str) -> UserError:
    return UserError.single(str(path), what, hint="Check that the file is a complete FCS "
                            "export from the cytometer (re-export it if needed).")


def _parse_text(raw: bytes, path: Path) -> dict[str, str]:
    """Split a TEXT (or supplemental TEXT) segment into upper-cased keyword -> value."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if len(text) < 2:
        raise _fail(path, "TEXT segment is empty")
    delim = text[0]
    # A doubled delimiter is a literal delimiter inside a keyword or value; protect it
    # with a character that cannot occur in TEXT before splitting on single delimiters.
    body = text[1:].replace(delim * 2, "\x00")
    parts = body.split(delim)
    if parts and parts[-1].strip("\x00 \r\n") == "":
        parts = parts[:-1]
    if len(parts) % 2:
        parts = parts[:-1]  # a dangling keyword without value: ignore, as other readers do
    out: dict[str, str] = {}
    for key, value in zip(parts[::2], parts[1::2], strict=True):
        key = key.replace("\x00", delim).strip().upper()
        if key:
            out[key] = value.replace("\x00", delim)
    return out


def _int_kw(kw: dict[str, str], key: str, path: Path, default: int | None = None) -> int:
    value = kw.get(key)
    if value is None or not value.strip():
        if default is not None:
            return default
        raise _fail(path, f"required keyword {key} is missing")
    try:
        return int(float(value.strip()))
    except ValueError:
        raise _fail(path, f"keyword {key} should be a number, got {value!r}") from None


def _read_header_text(path: Path) -> tuple[str, dict[str, int], dict[str, str], int]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(58)
            if len(head) < 58 or not head.startswith(b"FCS"):
                what = "file is empty" if size == 0 else "not an FCS file (no 'FCS' version in the first bytes)"
                raise _fail(path, what)
            version = head[3:6].decode("ascii", "replace")
            try:
                offs = [int(head[i:i + 8].strip() or 0) for i in range(10, 58, 8)]
            except ValueError:
                raise _fail(path, "HEADER offsets are not numbers (corrupted file)") from None
            seg = dict(zip(("text_start", "text_end", "data_start", "data_end",
                            "analysis_start", "analysis_end"), offs, strict=True))
            if seg["text_end"] <= seg["text_start"] or seg["text_end"] >= size:
                raise _fail(path, f"TEXT segment ({seg['text_start']}-{seg['text_end']}) lies "
                            f"outside the file ({size} bytes): the file is truncated")
            fh.seek(seg["text_start"])
            kw = _parse_text(fh.read(seg["text_end"] - seg["text_start"] + 1), path)
            s_start = _int_kw(kw, "$BEGINSTEXT", path, 0)
            s_end = _int_kw(kw, "$ENDSTEXT", path, 0)
            if 0 < s_start < s_end < size:
                fh.seek(s_start)
                extra = _parse_text(fh.read(s_end - s_start + 1), path)
                kw = {**extra, **kw}  # primary TEXT wins on conflicts
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read FCS file ({exc.strerror})") from None
    return version, seg, kw, size


def _channel_meta(kw: dict[str, str], path: Path) -> tuple[list[str], list[str | None], np.ndarray]:
    n_par = _int_kw(kw, "$PAR", path)
    channels: list[str] = []
    markers: list[str | None] = []
    ranges = np.zeros(n_par, dtype=np.float64)
    for i in range(1, n_par + 1):
        name = kw.get(f"$P{i}N")
        if name is None or not name.strip():
            raise _fail(path, f"parameter {i} has no $P{i}N channel name")
        channels.append(name.strip())
        marker = kw.get(f"$P{i}S", "").strip()
        markers.append(marker or None)
        try:
            ranges[i - 1] = float(kw.get(f"$P{i}R", "0").strip() or 0)
        except ValueError:
            raise _fail(path, f"$P{i}R should be a number, got {kw[f'$P{i}R']!r}") from None
    return channels, markers, ranges


def read_fcs_header(path: str | os.PathLike[str]) -> FCSData:
    """Read only the HEADER and TEXT of an FCS file (fast; for validation).

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    FCSData
        With ``events`` None.

    Raises
    ------
    UserError
        If the file is missing, empty, not FCS, uses an unsupported data layout, or is
        shorter than its DATA segment (truncated).
    """
    path = Path(path)
    version, seg, kw, size = _read_header_text(path)
    channels, markers, ranges = _channel_meta(kw, path)
    _data_layout(version, seg, kw, size, len(channels), path)  # a truncated DATA segment fails here
    return FCSData(path=path, version=version, keywords=kw, channels=channels,
                   markers=markers, ranges=ranges, events=None)


def _byte_order(kw: dict[str, str], path: Path) -> str:
    order = kw.get("$BYTEORD", "1,2,3,4").replace(" ", "")
    if order.startswith("1,2"):
        return "<"
    if order.startswith(("4,3", "2,1")) or order.startswith("8,7"):
        return ">"
    raise _fail(path, f"unsupported $BYTEORD {order!r} (expected 1,2,3,4 or 4,3,2,1)")


def _event_dtype(kw: dict[str, str], n_par: int, order: str, path: Path) -> tuple[np.dtype, list[int]]:
    dtype_code = kw.get("$DATATYPE", "").strip().upper()
    if dtype_code in ("F", "D"):
        return np.dtype(f"{order}{'f4' if dtype_code == 'F' else 'f8'}"), []
    if dtype_code != "I":
        raise _fail(path, f"unsupported $DATATYPE {dtype_code!r} (this reader handles F, D and I)")
    bits = [_int_kw(kw, f"$P{i}B", path) for i in range(1, n_par + 1)]
    bad = sorted({b for b in bits if b not in (8, 16, 32, 64)})
    if bad:
        raise _fail(path, f"integer data with {bad} bits per value is not supported (8/16/32/64)")
    if len(set(bits)) == 1:
        return np.dtype(f"{order}u{bits[0] // 8}"), bits
    return np.dtype([(f"p{i}", f"{order}u{b // 8}") for i, b in enumerate(bits)]), bits


def _data_span(version: str, seg: dict[str, int], kw: dict[str, str], path: Path) -> tuple[int, int]:
    start, end = seg["data_start"], seg["data_end"]
    if not version.startswith("2"):
        t_start = _int_kw(kw, "$BEGINDATA", path, 0)
        t_end = _int_kw(kw, "$ENDDATA", path, 0)
        if t_end > 0:
            start, end = t_start, t_end
    if end <= 0 or end < start:
        raise _fail(path, "no DATA segment offsets in HEADER or TEXT ($BEGINDATA/$ENDDATA)")
    return start, end


def _data_layout(version: str, seg: dict[str, int], kw: dict[str, str], size: int, n_par: int,
                 path: Path) -> tuple[np.dtype, list[int], int, int]:
    """Stored dtype, integer bit widths, DATA start and event count; checks the DATA
    segment fits in the file."""
    mode = kw.get("$MODE", "L").strip().upper()
    if mode != "L":
        raise _fail(path, f"$MODE {mode!r} (histogram data) is not supported; export list mode data")
    order = _byte_order(kw, path)
    stored, bits = _event_dtype(kw, n_par, order, path)
    row_bytes = stored.itemsize * (1 if stored.names else n_par)
    start, end = _data_span(version, seg, kw, path)
    span = end - start + 1
    n_tot = _int_kw(kw, "$TOT", path, -1)
    if n_tot < 0:
        # $TOT is optional in FCS 2.0; a span one byte too long is the common off-by-one
        n_tot = span // row_bytes
    need = n_tot * row_bytes
    if start + need > size:
        raise _fail(path, f"DATA segment needs {need} bytes for {n_tot} events x {n_par} "
                    f"channels but the file ends after {max(size - start, 0)}: the file is truncated")
    if abs(span - need) > 1 and span > need:
        raise _fail(path, f"DATA segment is {span} bytes but $TOT={n_tot} events x {n_par} "
                    f"channels need {need}; the file is inconsistent")
    return stored, bits, start, n_tot


def read_fcs(path: str | os.PathLike[str], dtype: type[np.floating] = np.float32,
             preprocess: bool = True) -> FCSData:
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

    Returns
    -------
    FCSData

    Raises
    ------
    UserError
        If the file is empty, truncated, not FCS, or uses a data layout this reader does
        not support (ASCII data, histogram mode, packed bit widths).
    """
    path = Path(path)
    version, seg, kw, size = _read_header_text(path)
    channels, markers, ranges = _channel_meta(kw, path)
    n_par = len(channels)
    stored, bits, start, n_tot = _data_layout(version, seg, kw, size, n_par, path)
    count = n_tot if stored.names else n_tot * n_par
    with open(path, "rb") as fh:
        fh.seek(start)
        flat = np.fromfile(fh, dtype=stored, count=count)
    if stored.names:
        cols = [flat[name].astype(np.uint64) for name in stored.names]
        ints = np.stack(cols, axis=1) if cols else np.zeros((0, n_par), np.uint64)
    elif bits:
        ints = flat.reshape(n_tot, n_par)
    else:
        ints = None
    if ints is not None:
        events = _mask_integers(ints, bits, ranges).astype(dtype)
    else:
        events = flat.reshape(n_tot, n_par)
        events = events.astype(dtype, copy=events.dtype != np.dtype(dtype) or not events.dtype.isnative)
    if preprocess:
        _preprocess(events, channels, ranges, kw)
    return FCSData(path=path, version=version, keywords=kw, channels=channels,
                   markers=markers, ranges=ranges, events=np.ascontiguousarray(events))


def _mask_integers(ints: np.ndarray, bits: list[int], ranges: np.ndarray) -> np.ndarray:
    """Drop bits above the next power of two of $PnR, as the FCS standard asks."""
    out = ints
    for j, (b, r) in enumerate(zip(bits, ranges, strict=True)):
        r_int = int(r)
        top = 1 if r_int <= 1 else 1 << (r_int - 1).bit_length()
        if top < (1 << b):
            if out is ints:
                out = ints.copy()
            out[:, j] &= np.asarray(top - 1, dtype=out.dtype)
    return out


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
