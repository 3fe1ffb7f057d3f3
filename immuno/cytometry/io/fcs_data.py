"""The DATA segment of an FCS data set: where it is, how its values are stored, decoding.

Re-exported through :mod:`immuno.cytometry.io.fcs`, where the format is described. The
offsets and layouts real instruments write, and what is done with each:

- HEADER and TEXT offsets that disagree (Accuri C6, CyAn, some Stratedigm files): the
  candidate that lies after the TEXT segment, inside the file, and spans the bytes the
  event count needs is used; when both qualify, the one that starts right where TEXT
  ends. The choice is recorded in the data set's notes (a QC warning downstream); when
  neither or both remain, the file is refused with both offsets named.
- ``$PnB`` of 8/16/32/64 bits, mixed widths, and 24-bit (or other whole-byte) widths;
  a width that is not a whole number of bytes (Beckman FC500 writes ``$PnB=10``) when the
  DATA segment's size shows the values sit in 16-bit words. Values are masked to the
  power of two at or above ``$PnR`` (Coulter System II keeps extra flags in bits 10-15).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from immuno.cytometry.io.fcs_text import Segments, fail, int_keyword

__all__ = ["DataLayout", "data_layout", "decode_integers", "read_events"]

#: HEADER offsets above this are 0 and the TEXT holds the real ones (FCS 3.1 3.2.3)
HEADER_OFFSET_LIMIT = 99_999_999


@dataclass
class DataLayout:
    """How one data set's events are stored.

    Attributes
    ----------
    start
        Absolute byte offset of the first event.
    n_events
        Events to read.
    float_dtype
        numpy dtype of float data (``None`` for integer data).
    widths
        Bytes per stored value of each parameter (integer data).
    bits
        ``$PnB`` of each parameter (integer data).
    order
        ``"<"`` or ``">"``.
    """

    start: int
    n_events: int
    float_dtype: np.dtype | None
    widths: list[int]
    bits: list[int]
    order: str

    @property
    def row_bytes(self) -> int:
        """Bytes per event."""
        if self.float_dtype is not None:
            return self.float_dtype.itemsize * len(self.bits)
        return sum(self.widths)


def _byte_order(kw: dict[str, str], path: object) -> str:
    order = kw.get("$BYTEORD", "1,2,3,4").replace(" ", "")
    parts = [p for p in order.split(",") if p]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if numbers == sorted(numbers) and numbers and numbers[0] == 1:
        return "<"
    if numbers == sorted(numbers, reverse=True) and numbers and numbers[-1] == 1:
        return ">"
    raise fail(str(path), f"unsupported $BYTEORD {order!r} (expected 1,2,3,4 or 4,3,2,1)")


def _span_candidates(seg: Segments, path: object) -> list[tuple[str, int, int]]:
    kw, head = seg.keywords, seg.header
    cands: list[tuple[str, int, int]] = []
    if head["data_end"] > 0:
        cands.append(("HEADER", head["data_start"], head["data_end"]))
    t_end = int_keyword(kw, "$ENDDATA", path, 0)
    if t_end > 0:
        cands.append(("TEXT", int_keyword(kw, "$BEGINDATA", path, 0), t_end))
    return cands


def _fits(seg: Segments, start: int, end: int, need: int | None, row: int) -> str:
    """Why a DATA span cannot be right ("" when it can)."""
    text0, text1 = seg.header["text_start"], seg.header["text_end"]
    if start < 58 or end < start:
        return "is not a byte range after the HEADER"
    if text0 <= start <= text1:
        return "starts inside the TEXT segment"
    if seg.base + end > seg.size:
        return f"ends past the end of the file ({seg.size} bytes)"
    span = end - start + 1
    if need is not None and span not in (need, need + 1) and not (span < need and seg.base + start + need <= seg.size):
        return f"holds {span} bytes, but $TOT events need {need}"
    if need is None and span % row not in (0, 1):
        return f"holds {span} bytes, not a whole number of {row}-byte events"
    return ""


def _choose_span(seg: Segments, need: int | None, row: int, path: object) -> tuple[int, int]:
    cands = _span_candidates(seg, path)
    if not cands:
        raise fail(str(path), "no DATA segment offsets in HEADER or TEXT ($BEGINDATA/$ENDDATA)")
    distinct = {(s, e) for _, s, e in cands}
    if len(distinct) == 1:
        return cands[0][1], cands[0][2]
    header = next(c for c in cands if c[0] == "HEADER")
    text = next(c for c in cands if c[0] == "TEXT")
    if header[2] <= HEADER_OFFSET_LIMIT < text[2] or (header[1] == 0 and text[2] > HEADER_OFFSET_LIMIT):
        return text[1], text[2]  # a large file: the HEADER cannot hold the offsets
    why = {name: _fits(seg, s, e, need, row) for name, s, e in cands}
    ok = [c for c in cands if not why[c[0]]]
    if len(ok) == 2:
        # both plausible: the DATA segment follows the TEXT segment in every writer we know
        after_text = [c for c in ok if c[1] == seg.header["text_end"] + 1]
        ok = after_text if len(after_text) == 1 else []
        reason = "starts right after the TEXT segment"
    else:
        other = next(c for c in cands if c not in ok) if ok else None
        reason = f"the other {why[other[0]]}" if other else ""
    desc = f"HEADER says bytes {header[1]}-{header[2]}, TEXT $BEGINDATA/$ENDDATA say {text[1]}-{text[2]}"
    if not ok:
        details = "; ".join(f"{n}'s {w}" for n, w in why.items() if w) or "both fit"
        raise fail(str(path), f"DATA offsets disagree ({desc}) and the right one cannot be told ({details})")
    chosen = ok[0]
    seg.notes.append(f"DATA offsets disagree ({desc}); used {chosen[0]}'s: {reason}")
    return chosen[1], chosen[2]


def _integer_widths(bits: list[int], seg: Segments, n_par: int, path: object) -> tuple[list[int], bool]:
    """Stored bytes per value of each parameter; True when the widths come from the
    DATA segment's size rather than from ``$PnB``."""
    if all(b > 0 and b % 8 == 0 and b <= 64 for b in bits):
        return [b // 8 for b in bits], False
    bad = sorted({b for b in bits if b <= 0 or b > 64})
    if bad:
        raise fail(str(path), f"$PnB of {bad} bits is not an integer width this reader knows (1-64)")
    # $PnB is not a whole number of bytes: FCS 2.0 writers store such values in 16-bit
    # (or wider) words; the DATA size tells which
    kw = seg.keywords
    n_tot = int_keyword(kw, "$TOT", path, -1)
    cands = _span_candidates(seg, path)
    if n_tot <= 0 or not cands:
        raise fail(str(path), f"$PnB of {sorted(set(bits))} bits without $TOT: the storage width cannot be told")
    span = cands[0][2] - cands[0][1] + 1
    for word in (1, 2, 4, 8):
        widths = [max(word, (b + 7) // 8) for b in bits]
        widths = [w if w in (1, 2, 4, 8) else 8 for w in widths]
        if span in (n_tot * sum(widths), n_tot * sum(widths) + 1):
            return widths, True
    packed = n_tot * sum(bits) / 8
    what = "packed bit fields" if abs(span - packed) <= 1 else "a layout that matches no word size"
    raise fail(str(path), f"$PnB of {sorted(set(bits))} bits stored as {what} ({span} bytes for {n_tot} "
               f"events x {n_par} channels); this reader needs whole-byte or word-aligned values")


def data_layout(seg: Segments, n_par: int, path: object) -> DataLayout:
    """Where the events of a data set are and how they are stored; checks they fit in the file.

    Raises
    ------
    UserError
        Histogram or ASCII data, unsupported widths or byte orders, offsets that cannot
        be resolved, or a DATA segment the file is too short for (truncated).
    """
    kw = seg.keywords
    mode = kw.get("$MODE", "L").strip().upper()
    if mode != "L":
        raise fail(str(path), f"$MODE {mode!r} (histogram data) is not supported; export list mode data")
    order = _byte_order(kw, path)
    code = kw.get("$DATATYPE", "").strip().upper()
    bits: list[int] = [int_keyword(kw, f"$P{i}B", path, 0) for i in range(1, n_par + 1)]
    if code in ("F", "D"):
        float_dtype: np.dtype | None = np.dtype(f"{order}{'f4' if code == 'F' else 'f8'}")
        # the standard fixes a float's width; a $PnB saying otherwise leaves the layout in
        # doubt (which of the two did the writer follow?), so the file is not guessed at
        size = 8 * float_dtype.itemsize
        odd = [f"$P{i}B={b}" for i, b in enumerate(bits, start=1) if b != size]
        if odd:
            raise fail(str(path), f"{', '.join(odd[:4])}{' ...' if len(odd) > 4 else ''} but $DATATYPE "
                       f"{code} stores {size}-bit floats: the header contradicts itself; re-export the file")
        widths: list[int] = []
        row = float_dtype.itemsize * n_par
    elif code == "I":
        float_dtype = None
        widths, from_size = _integer_widths(bits, seg, n_par, path)
        if from_size:
            seg.notes.append(f"$PnB of {sorted(set(bits))} bits is not a whole number of bytes; the DATA "
                             f"segment's size shows {sorted(set(widths))}-byte words")
        row = sum(widths)
    else:
        raise fail(str(path), f"unsupported $DATATYPE {code!r} (this reader handles F, D and I; "
                   "ASCII data must be re-exported as binary)")
    n_tot = int_keyword(kw, "$TOT", path, -1)
    need = n_tot * row if n_tot >= 0 else None
    start, end = _choose_span(seg, need, row, path)
    span = end - start + 1
    if n_tot < 0:
        n_tot = span // row  # $TOT is optional in FCS 2.0; one byte too many is the usual off-by-one
        need = n_tot * row
    assert need is not None
    if seg.base + start + need > seg.size:
        raise fail(str(path), f"DATA segment needs {need} bytes for {n_tot} events x {n_par} channels "
                   f"but the file ends after {max(seg.size - seg.base - start, 0)}: the file is truncated")
    if span > need + 1:
        raise fail(str(path), f"DATA segment is {span} bytes but $TOT={n_tot} events x {n_par} channels "
                   f"need {need}; the file is inconsistent")
    return DataLayout(start=seg.base + start, n_events=n_tot, float_dtype=float_dtype, widths=widths,
                      bits=bits, order=order)


def decode_integers(raw: np.ndarray, widths: list[int], order: str) -> np.ndarray:
    """Unsigned integers of any whole-byte widths from raw event bytes.

    Parameters
    ----------
    raw
        ``(n_events, sum(widths))`` uint8.
    widths
        Bytes per value of each parameter.
    order
        ``"<"`` or ``">"``.

    Returns
    -------
    numpy.ndarray
        ``(n_events, n_par)`` uint64.
    """
    out = np.zeros((raw.shape[0], len(widths)), dtype=np.uint64)
    pos = 0
    for j, w in enumerate(widths):
        cols = raw[:, pos:pos + w].astype(np.uint64)
        for k in range(w):
            shift = 8 * (k if order == "<" else w - 1 - k)
            out[:, j] |= cols[:, k] << np.uint64(shift)
        pos += w
    return out


def read_events(path: object, layout: DataLayout, n_par: int, start: int = 0,
                count: int | None = None) -> tuple[np.ndarray, bool]:
    """The stored values of a data set (or of ``count`` events from event ``start``):
    ``(events, is_integer)``.

    Float data come back as stored (possibly non-native byte order); integer data as
    uint64 (native widths) or uint8/16/32/64 arrays, unmasked.
    """
    n = layout.n_events - start if count is None else min(count, layout.n_events - start)
    n = max(n, 0)
    with open(str(path), "rb") as fh:
        fh.seek(layout.start + start * layout.row_bytes)
        if layout.float_dtype is not None:
            flat = np.fromfile(fh, dtype=layout.float_dtype, count=n * n_par)
            return flat.reshape(n, n_par), False
        widths = layout.widths
        if len(set(widths)) == 1 and widths[0] in (1, 2, 4, 8):
            flat = np.fromfile(fh, dtype=np.dtype(f"{layout.order}u{widths[0]}"), count=n * n_par)
            return flat.reshape(n, n_par), True
        if all(w in (1, 2, 4, 8) for w in widths):
            rec = np.dtype([(f"p{i}", f"{layout.order}u{w}") for i, w in enumerate(widths)])
            flat = np.fromfile(fh, dtype=rec, count=n)
            cols = [flat[name].astype(np.uint64) for name in rec.names or ()]
            return (np.stack(cols, axis=1) if cols else np.zeros((0, n_par), np.uint64)), True
        raw = np.fromfile(fh, dtype=np.uint8, count=n * sum(widths)).reshape(n, sum(widths))
        return decode_integers(raw, widths, layout.order), True


def mask_integers(ints: np.ndarray, widths: list[int], ranges: np.ndarray) -> np.ndarray:
    """Drop bits above the power of two at or above ``$PnR``, as the FCS standard asks."""
    out = ints
    for j, (w, r) in enumerate(zip(widths, ranges, strict=True)):
        r_int = int(r)
        top = 1 if r_int <= 1 else 1 << (r_int - 1).bit_length()
        if top < (1 << (8 * w)):
            if out is ints:
                out = ints.copy()
            out[:, j] &= np.asarray(top - 1, dtype=out.dtype)
    return out
