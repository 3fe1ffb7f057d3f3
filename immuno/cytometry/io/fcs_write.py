"""Writing FCS 3.1 files (float32 list mode), as the demo and tests need them.

Re-exported by :mod:`immuno.cytometry.io.fcs`, where the format is described.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["format_spillover", "write_fcs"]

#: HEADER offsets above this are written as 0 and read from TEXT (FCS 3.1, section 3.2.3)
HEADER_OFFSET_LIMIT = 99_999_999
TEXT_START = 256  # where the writer puts TEXT; the bytes between are spaces, as BD does


def format_spillover(channels: list[str], matrix: np.ndarray) -> str:
    """The ``$SPILLOVER`` keyword value for ``channels`` and ``matrix`` (inverse of
    :func:`parse_spillover`; numbers written with full float64 precision)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    values = ",".join(repr(float(v)) for v in matrix.ravel())
    return f"{len(channels)},{','.join(channels)},{values}"


def _escape(value: str) -> str:
    value = str(value).replace("/", "//")
    return value if value.strip() else " "  # FCS 3.1 forbids empty values


def write_fcs(path: str | os.PathLike[str], events: np.ndarray, channels: list[str],
              markers: list[str | None], keywords: dict[str, str] | None = None,
              ranges: np.ndarray | list[float] | None = None) -> Path:
    """Write events as an FCS 3.1 list-mode float32 file (atomically).

    Parameters
    ----------
    path
        Destination file.
    events
        ``(n_events, n_channels)`` values, stored as little-endian float32.
    channels
        ``$PnN`` names.
    markers
        ``$PnS`` names (None or "" to omit).
    keywords
        Extra TEXT keywords (e.g. ``$SPILLOVER``, ``$TIMESTEP``, ``$BTIM``). Keys are
        written upper-cased; the layout keywords ($PAR, $TOT, $PnB ...) are always ours.
    ranges
        ``$PnR`` per channel (default 262144).

    Returns
    -------
    Path
    """
    events = np.ascontiguousarray(events, dtype="<f4")
    n_events, n_par = events.shape if events.ndim == 2 else (0, len(channels))
    if n_par != len(channels) or len(markers) != len(channels):
        raise ValueError("events, channels and markers disagree on the number of channels")
    rng = np.full(n_par, 262144.0) if ranges is None else np.asarray(ranges, dtype=float)
    kw: dict[str, str] = {}
    for key, value in (keywords or {}).items():
        kw[key.upper()] = str(value)
    kw.update({"$BYTEORD": "1,2,3,4", "$DATATYPE": "F", "$MODE": "L", "$NEXTDATA": "0",
               "$PAR": str(n_par), "$TOT": str(n_events)})
    for i, (name, marker, r) in enumerate(zip(channels, markers, rng, strict=True), start=1):
        kw[f"$P{i}N"] = name
        kw[f"$P{i}B"] = "32"
        kw[f"$P{i}E"] = "0,0"
        kw[f"$P{i}R"] = str(int(r)) if float(r).is_integer() else str(r)
        if marker:
            kw[f"$P{i}S"] = marker
        else:
            kw.pop(f"$P{i}S", None)
    for key in ("$BEGINANALYSIS", "$ENDANALYSIS", "$BEGINSTEXT", "$ENDSTEXT"):
        kw[key] = "0"
    data_bytes = events.tobytes()
    # Offsets are written zero-padded to a fixed width so TEXT's length does not depend on them.
    kw["$BEGINDATA"] = "0" * 20
    kw["$ENDDATA"] = "0" * 20
    text_body = "/" + "".join(f"{_escape(k)}/{_escape(v)}/" for k, v in kw.items())
    text_len = len(text_body.encode("utf-8"))
    text_end = TEXT_START + text_len - 1
    data_start = text_end + 1
    data_end = data_start + len(data_bytes) - 1 if data_bytes else data_start
    text_body = text_body.replace(f"$BEGINDATA/{'0' * 20}/", f"$BEGINDATA/{data_start:020d}/")
    text_body = text_body.replace(f"$ENDDATA/{'0' * 20}/", f"$ENDDATA/{data_end:020d}/")
    big = data_end > HEADER_OFFSET_LIMIT
    header = "FCS3.1    " + "".join(f"{v:>8d}" for v in (
        TEXT_START, text_end, 0 if big else data_start, 0 if big else data_end, 0, 0))
    from immuno.io import atomic_path  # (immuno.io brings pandas: not needed to read files)

    out = Path(path)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii").ljust(TEXT_START, b" "))
        fh.write(text_body.encode("utf-8"))
        fh.write(data_bytes)
    return out
