"""The HEADER and TEXT segments of an FCS file, and the chain of its data sets.

Re-exported by :mod:`immuno.cytometry.io.fcs`, where the format is described. A data set is
a HEADER (58 bytes at the data set's offset: version and the offsets of its segments,
relative to that offset), a TEXT segment of keyword/value pairs and a DATA segment. A
nonzero ``$NEXTDATA`` gives the offset of the next data set, relative to the current
one; Beckman Coulter list-mode files (FC500, Gallios ``.LMD``) and Guava files hold two
or more data sets this way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from immuno.errors import UserError

__all__ = ["DataSetInfo", "Segments", "fail", "list_datasets", "parse_text", "read_segments"]

HEADER_BYTES = 58
#: data sets followed at most (a $NEXTDATA chain pointing back would otherwise never end)
MAX_DATASETS = 1000


def fail(path: Path | str, what: str) -> UserError:
    """A reading error naming the file, with the usual advice."""
    return UserError.single(str(path), what, hint="Check that the file is a complete FCS "
                            "export from the cytometer (re-export it if needed).")


@dataclass
class Segments:
    """HEADER and TEXT of one data set.

    Attributes
    ----------
    base
        Byte offset of the data set's HEADER in the file (0 for the first).
    version
        FCS version from the HEADER.
    header
        ``text_start``, ``text_end``, ``data_start``, ``data_end``, ``analysis_start``,
        ``analysis_end`` as the HEADER gives them (relative to ``base``).
    keywords
        TEXT (and supplemental TEXT) keywords, names upper-cased.
    size
        File size in bytes.
    notes
        What was unusual while reading (non-UTF-8 bytes ...).
    """

    base: int
    version: str
    header: dict[str, int]
    keywords: dict[str, str]
    size: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataSetInfo:
    """One data set of a file, as :func:`list_datasets` describes it.

    Attributes
    ----------
    index
        1-based position in the file (what ``dataset=`` chooses).
    offset
        Byte offset of its HEADER.
    version
        FCS version.
    n_events, n_channels
        ``$TOT`` and ``$PAR``.
    channels
        ``$PnN`` of each parameter.
    """

    index: int
    offset: int
    version: str
    n_events: int
    n_channels: int
    channels: tuple[str, ...]

    def describe(self) -> str:
        """One line for messages: ``2 = FCS3.0, 8 channels (FS, SS, ...), 27072 events``."""
        shown = ", ".join(self.channels[:6]) + (", ..." if len(self.channels) > 6 else "")
        return f"{self.index} = FCS{self.version}, {self.n_channels} channels ({shown}), {self.n_events} events"


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        # FCS 2.0/3.0 predate the UTF-8 rule; Mac and Windows acquisition software wrote
        # their own code pages. Latin-1 maps every byte, so nothing is lost or refused.
        return raw.decode("latin-1"), True


def parse_text(raw: bytes, path: Path | str, notes: list[str] | None = None) -> dict[str, str]:
    """Split a TEXT (or supplemental TEXT) segment into upper-cased keyword -> value.

    Each keyword and value is decoded on its own (UTF-8, else Latin-1), so one byte in a
    vendor's free-text keyword cannot spoil the others; a doubled delimiter is a literal
    delimiter inside a keyword or value.
    """
    if len(raw) < 2:
        raise fail(path, "TEXT segment is empty")
    delim = raw[:1]
    # protect doubled delimiters with a byte that cannot occur in TEXT, then split
    body = raw[1:].rstrip(b"\x00 \r\n")
    while body.endswith(delim):
        body = body[:-1]  # the closing delimiter (some writers double it)
    parts = body.replace(delim * 2, b"\x00").split(delim)
    if len(parts) % 2:
        parts = parts[:-1]  # a dangling keyword without value: ignore, as other readers do
    out: dict[str, str] = {}
    latin = False
    for key_raw, value_raw in zip(parts[::2], parts[1::2], strict=True):
        key, bad_key = _decode(key_raw.replace(b"\x00", delim))
        value, bad_value = _decode(value_raw.replace(b"\x00", delim))
        latin |= bad_key or bad_value
        key = key.strip().upper()
        if key:
            out[key] = value
    if latin and notes is not None:
        notes.append("TEXT holds bytes that are not UTF-8 (read as Latin-1)")
    return out


def int_keyword(kw: dict[str, str], key: str, path: Path | str, default: int | None = None) -> int:
    """An integer keyword; ``default`` when absent or blank (an error without default)."""
    value = kw.get(key)
    if value is None or not value.strip():
        if default is not None:
            return default
        raise fail(path, f"required keyword {key} is missing")
    try:
        return int(float(value.strip()))
    except ValueError:
        raise fail(path, f"keyword {key} should be a number, got {value!r}") from None


def _segments_at(fh, base: int, size: int, path: Path, dataset: int) -> Segments:  # noqa: ANN001
    which = "" if dataset == 1 else f"data set {dataset}: "
    fh.seek(base)
    head = fh.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES or not head.startswith(b"FCS"):
        if base == 0:
            what = "file is empty" if size == 0 else "not an FCS file (no 'FCS' version in the first bytes)"
        else:
            what = f"{which}$NEXTDATA points to byte {base}, where no FCS data set starts"
        raise fail(path, what)
    version = head[3:6].decode("ascii", "replace")
    try:
        offs = [int(head[i:i + 8].strip() or 0) for i in range(10, 58, 8)]
    except ValueError:
        raise fail(path, f"{which}HEADER offsets are not numbers (corrupted file)") from None
    seg = dict(zip(("text_start", "text_end", "data_start", "data_end", "analysis_start", "analysis_end"),
                   offs, strict=True))
    if seg["text_end"] <= seg["text_start"] or base + seg["text_end"] >= size:
        raise fail(path, f"{which}TEXT segment ({seg['text_start']}-{seg['text_end']}) lies "
                   f"outside the file ({size} bytes): the file is truncated")
    notes: list[str] = []
    fh.seek(base + seg["text_start"])
    kw = parse_text(fh.read(seg["text_end"] - seg["text_start"] + 1), path, notes)
    s_start = int_keyword(kw, "$BEGINSTEXT", path, 0)
    s_end = int_keyword(kw, "$ENDSTEXT", path, 0)
    inside_primary = seg["text_start"] <= s_start <= seg["text_end"]
    if 0 < s_start < s_end < size - base and not inside_primary:
        fh.seek(base + s_start)
        extra = parse_text(fh.read(s_end - s_start + 1), path, notes)
        kw = {**extra, **kw}  # primary TEXT wins on conflicts
    return Segments(base=base, version=version, header=seg, keywords=kw, size=size, notes=notes)


def read_segments(path: Path) -> list[Segments]:
    """HEADER and TEXT of every data set in the file, following ``$NEXTDATA``.

    Raises
    ------
    UserError
        Missing, empty, non-FCS or truncated file, or a ``$NEXTDATA`` that points where
        no data set starts.
    """
    try:
        size = path.stat().st_size
        out: list[Segments] = []
        with open(path, "rb") as fh:
            base = 0
            while True:
                seg = _segments_at(fh, base, size, path, len(out) + 1)
                out.append(seg)
                nxt = int_keyword(seg.keywords, "$NEXTDATA", path, 0)
                if nxt <= 0 or len(out) >= MAX_DATASETS:
                    break
                if base + nxt >= size:
                    raise fail(path, f"data set {len(out)}: $NEXTDATA points to byte {base + nxt}, "
                               f"past the end of the file ({size} bytes): the file is truncated")
                base += nxt
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read FCS file ({exc.strerror})") from None
    return out


def describe_segments(seg: Segments, index: int, path: Path) -> DataSetInfo:
    """The :class:`DataSetInfo` of one data set's segments."""
    n_par = int_keyword(seg.keywords, "$PAR", path, 0)
    channels = tuple((seg.keywords.get(f"$P{i}N") or "").strip() or f"P{i}" for i in range(1, n_par + 1))
    return DataSetInfo(index=index, offset=seg.base, version=seg.version,
                       n_events=int_keyword(seg.keywords, "$TOT", path, -1), n_channels=n_par,
                       channels=channels)


def list_datasets(path: str | Path) -> list[DataSetInfo]:
    """The data sets an FCS file holds (usually one).

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    list of DataSetInfo
        In file order; ``index`` is what ``read_fcs(..., dataset=index)`` takes.
        ``n_events`` is -1 where ``$TOT`` is absent (allowed in FCS 2.0).
    """
    path = Path(path)
    return [describe_segments(seg, i, path) for i, seg in enumerate(read_segments(path), start=1)]
