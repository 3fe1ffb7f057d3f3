"""Delimited text tables of plate exports: rows with their line numbers, and the decimal
separator told from the numbers themselves.

A comma-delimited export written in a decimal-comma locale either quotes its numbers
(``"78,125"``: read as 78.125 when no number in the file uses a decimal point) or does
not, which splits every such number across two columns: that row is then longer than its
header and is refused with its line number. Mixed separators are refused too: a number
is never guessed.
"""

from __future__ import annotations

import csv
import io
import re

from immuno.errors import UserError

Row = tuple[int, list[str]]
_COMMA_NUMBER = re.compile(r"[<>*]?\s*-?\d+,\d+")
_POINT_NUMBER = re.compile(r"[<>*]?\s*-?\d+\.\d+([eE][-+]?\d+)?")


def read_rows(text: str, delimiter: str = ",") -> list[Row]:
    """The rows of a delimited text with the line each starts on (trailing empty fields
    dropped; blank rows kept as empty lists)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[Row] = []
    line = 1
    for r in reader:
        cells = [c.strip() for c in r]
        while cells and cells[-1] == "":
            cells.pop()
        rows.append((line, cells))
        line = reader.line_num + 1
    return rows


def check_table(rows: list[Row], header: int, where: str, delimiter: str = ",") -> bool:
    """Check a table's rows against its header row (index ``header`` in ``rows``) and tell
    whether its numbers use decimal commas.

    Raises
    ------
    UserError
        A row with more fields than the header (an unquoted decimal comma), or decimal
        commas and decimal points in one table.
    """
    width = len(rows[header][1])
    body = rows[header + 1 :]
    for ln, r in body:
        if len(r) > width:
            raise UserError.single(
                f"{where}: line {ln}",
                f"{len(r)} fields where the header (line {rows[header][0]}) "
                f"has {width}; a decimal comma in a {delimiter!r}-delimited file? expected one field "
                "per column",
                hint="Re-export with '.' decimals, or with ';' as the list separator.",
            )
    if delimiter != ",":
        return delimiter == ";"
    commas = [ln for ln, r in body if any(_COMMA_NUMBER.fullmatch(c) for c in r)]
    if not commas:
        return False
    points = [ln for ln, r in body if any(_POINT_NUMBER.fullmatch(c) for c in r)]
    if points:
        raise UserError.single(
            f"{where}: line {commas[0]}",
            "numbers with a decimal comma and numbers with a decimal "
            f"point (e.g. line {points[0]}) in one table; expected one decimal separator",
        )
    return True
