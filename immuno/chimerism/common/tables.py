"""Reading instrument tables as labs save them: any delimiter, gzip, decimal commas.

Shared by the chimerism readers. Every problem names the file, and where it can the data
row and column, and says what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.errors import UserError

#: cells that mean "no value" in instrument exports
NO_CALL = {"", "undetermined", "undet", "no ct", "n/a", "na", "nan", "-", "--", "none", "null"}

_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_DOT_DECIMAL = re.compile(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$")
_EURO_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+,\d+$")


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (whatever its name)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def read_text(path: Path) -> str:
    """The file as text (UTF-8 with or without BOM; gzip-compressed files are opened)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read the file ({exc.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise UserError.single(
                str(path), f"a damaged gzip file ({exc}); expected a complete .gz export"
            ) from None
    return raw.decode("utf-8-sig", errors="replace")


def delimited(path: Path, skip_prefix: str | None = None, text: str | None = None) -> pd.DataFrame:
    """A delimited text table as strings, with the delimiter sniffed from its header.

    A first line ``sep=,`` (written by Excel and some instrument software) names the
    delimiter and is skipped. Rows padded with trailing delimiters keep the header's
    width.
    """
    text = read_text(path) if text is None else text
    lines = [
        ln
        for ln in text.splitlines()
        if ln.strip() and not (skip_prefix and ln.startswith(skip_prefix))
    ]
    if lines and lines[0].strip().strip('"').lower().startswith("sep="):
        delim = lines[0].strip().strip('"')[4:5] or ","
        lines = lines[1:]
    else:
        delim = max(("\t", ",", ";"), key=lines[0].count) if lines else ","
    if not lines:
        raise UserError.single(str(path), "the file is empty; expected a table with a header row")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    cols = [c.strip() for c in rows[0]]
    # Excel re-saves pad rows with trailing delimiters, and some exports end the header
    # with one: trailing unnamed columns are dropped
    while cols and not cols[-1]:
        cols.pop()
    width = len(cols)
    body = [(r + [""] * width)[:width] for r in rows[1:]]
    return pd.DataFrame(body, columns=cols, dtype=str).fillna("")


def norm(name: str) -> str:
    """A column name reduced to lower-case letters and digits (``Peak Area 1`` -> ``peakarea1``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def pick(
    df: pd.DataFrame, path: Path, wanted: dict[str, tuple[str, ...]], optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Rename the first matching column of each synonym list; complain about missing ones."""
    by_norm = {norm(c): c for c in df.columns}
    out: dict[str, pd.Series] = {}
    missing = []
    for key, synonyms in wanted.items():
        col = next((by_norm[norm(s)] for s in synonyms if norm(s) in by_norm), None)
        if col is None:
            if key not in optional:
                missing.append(f"{key} (any of: {', '.join(synonyms)})")
            continue
        out[key] = df[col].astype(str).str.strip()
    if missing:
        raise UserError.single(
            str(path),
            f"missing column(s) {'; '.join(missing)}; the file has: {', '.join(df.columns)}",
            hint="Export the table again with these columns, or check that this is the right file.",
        )
    return pd.DataFrame(out)


def decimal_style(values: pd.Series | list[str]) -> str | None:
    """``comma`` or ``point`` when the cells show which decimal mark they use, else None.

    Raises
    ------
    ValueError
        When both marks are used as decimals (``1,5`` next to ``2.5``).
    """
    comma = point = False
    for v in pd.Series(values, dtype=str).str.strip():
        if not v or v.lower() in NO_CALL:
            continue
        if _EURO_THOUSANDS.match(v) or (_DECIMAL_COMMA.match(v) and not _THOUSANDS.match(v)):
            comma = True
        elif _DOT_DECIMAL.match(v) or (_THOUSANDS.match(v) and "." in v):
            point = True
    if comma and point:
        raise ValueError("both decimal commas and decimal points")
    return "comma" if comma else "point" if point else None


def numbers(
    values: pd.Series,
    path: Path,
    column: str,
    allow_missing: bool = False,
    style: str | None = None,
    rows: np.ndarray | None = None,
    count: bool = False,
) -> np.ndarray:
    """Numbers from text cells, with the file's decimal mark.

    Parameters
    ----------
    values
        The cells.
    path, column
        For messages.
    allow_missing
        Empty and no-call cells (``NA``, ``Undetermined`` ...) become NaN instead of an error.
    style
        ``comma`` (``128,45`` and ``1.234,5``), ``point`` (``128.45`` and ``1,234.5``) or
        None (decided from this column's own cells; ``1,234`` alone reads as a thousands
        separator, as instrument software writes it).
    rows
        The data row number of each cell, for messages (default: its position + 1).
    count
        The cells are counts (reads, droplets, nuclei): a negative or fractional number is
        refused like a word, since no instrument writes one and any estimate built on it
        would be silently wrong.

    Raises
    ------
    UserError
        A cell that is not a number (or not a count), or a column mixing decimal commas and
        points.
    """
    text = values.astype(str).str.strip()
    if style is None:
        try:
            style = decimal_style(text)
        except ValueError:
            raise UserError.single(
                f"{path}: column {column}",
                "mixes decimal commas and decimal points (e.g. 1,5 and 2.5); "
                "export the file again with one decimal mark",
            ) from None
    if style == "comma":
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.where(~text.str.match(_THOUSANDS), text.str.replace(",", "", regex=False))
    missing = text.str.lower().isin(NO_CALL)
    nums = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = nums.isna() & ~missing
    if count:
        bad |= nums.notna() & ((nums < 0) | (nums != np.floor(nums)))
    if bad.any() or (missing.any() and not allow_missing):
        i = int(np.flatnonzero(bad | missing)[0])
        what = f"got {values.iloc[i]!r}; expected {'a count (a whole number >= 0)' if count else 'a number'}"
        if "," in str(values.iloc[i]) and style != "comma":
            what += " (a decimal comma where the file's other numbers use points?)"
        row = int(rows[i]) if rows is not None else i + 1
        raise UserError.single(f"{path}: data row {row}, column {column}", what)
    return nums.to_numpy(dtype=float)


def file_decimal_style(df: pd.DataFrame, columns: list[str], path: Path) -> str | None:
    """The decimal mark of a whole file, from the given columns (e.g. every Size column).

    Raises
    ------
    UserError
        When the columns disagree.
    """
    cells = [v for c in columns if c in df.columns for v in df[c].tolist()]
    try:
        return decimal_style(cells)
    except ValueError:
        raise UserError.single(
            str(path),
            f"mixes decimal commas and decimal points in {', '.join(columns[:3])}; "
            "export the file again with one decimal mark",
        ) from None
