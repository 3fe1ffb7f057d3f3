"""Luminex xPONENT CSV exports (FlexMAP 3D, MAGPIX, LX100/200, Intelliflex).

An export has key/value header rows (Program, Build, Date, SN, Batch, ...), a
``Results`` row, then blocks each opened by ``DataType:,<name>`` and closed by a blank
row (in a re-saved file a "blank" row is a row of empty fields). Three block shapes occur:

* per well: ``Location,Sample,<analytes...>[,Total Events]`` with Location ``1(1,A1)``
  (acquisition order, plate, well) - Median, Net MFI, Count, Result, Standard Expected
  Concentration, Control Range Low/High, ...;
  the Dilution Factor block is per well with a single value column;
* per sample: ``Sample,<analytes...>`` (Avg Net MFI, Avg Result), not needed here;
* per analyte: ``Analyte:,<analytes...>`` then labelled rows (Units, Per Bead Count,
  Analysis Types, Analysis Coefficients).

Seen in the wild and handled: fully quoted or unquoted with trailing commas, ``;``
delimiters with decimal commas, day-first dates, ``NaN``/``N/A`` cells, blocks absent,
a repeated header row inside a block.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from immuno.chemokines.plate import (
    PlateData,
    finish_wells,
    infer_role,
    parse_cell,
    split_location,
    to_float,
)
from immuno.errors import UserError

#: header keys copied into PlateData.meta (instrument facts only, no people or free text)
META_KEYS = ("Program", "Build", "Date", "SN", "Batch", "ProtocolName", "ProtocolVersion",
             "BatchStartTime", "BatchStopTime")
#: per-well blocks and the wells-table column each fills
WELL_BLOCKS = {"Median": "mfi", "Net MFI": "net_mfi", "Count": "bead_count",
               "Result": "vendor_result", "Standard Expected Concentration": "expected_conc"}


def sniff(head: str) -> bool:
    """Whether text looks like an xPONENT export."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    return bool(re.match(r'^"?Program"?[,;]"?xPONENT', first))


def _rows(text: str) -> tuple[list[list[str]], bool]:
    first = text.splitlines()[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text), delimiter=delim)]
    # trailing empty fields come from Excel re-saves; they carry nothing
    for r in rows:
        while r and r[-1] == "":
            r.pop()
    return rows, delim == ";"


def _blocks(rows: list[list[str]]) -> tuple[dict[str, list[str]], dict[str, list[list[str]]]]:
    header: dict[str, list[str]] = {}
    blocks: dict[str, list[list[str]]] = {}
    current: str | None = None
    in_results = False
    for r in rows:
        if not r:
            current = None
            continue
        if r[0] == "Results" and len(r) == 1:
            in_results = True
            continue
        if r[0] == "DataType:":
            current = r[1] if len(r) > 1 else ""
            blocks[current] = []
            continue
        if r[0].startswith("-- CRC --") or r[0].startswith("CRC"):
            current = None
            continue
        if current is not None:
            blocks[current].append(r)
        elif not in_results and r[0] not in header:
            header[r[0]] = r[1:]
    return header, blocks


def _day_first(header: dict[str, list[str]], semicolon: bool) -> bool:
    """Guess whether the export's dates are day-first (European locale)."""
    dates = [header.get("Date", [""])[0], *header.get("BatchStartTime", [""])[:1]]
    for d in dates:
        m = re.match(r"^(\d{1,2})[/.](\d{1,2})[/.]\d{4}", d)
        if m and int(m.group(1)) > 12:
            return True
        if m and int(m.group(2)) > 12:
            return False
    return semicolon


def _iso_date(text: str, day_first: bool) -> str:
    m = re.match(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        day, month = (a, b) if day_first else (b, a)
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"{y:04d}-{month:02d}-{day:02d}"
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
    return m.group(0) if m else ""


def _per_well(block: list[list[str]], where: str) -> tuple[list[str], list[list[str]]]:
    if not block or len(block[0]) < 2 or block[0][0] != "Location":
        raise UserError.single(where, "expected a header row starting with Location,Sample")
    names = block[0][2:]
    body = [r for r in block[1:] if r and r[0] != "Location"]
    return names, body


def _per_analyte(block: list[list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in block:
        if r:
            out[r[0].rstrip(":")] = r[1:]
    return out


def read_xponent(path: str | Path) -> PlateData:
    """Read an xPONENT CSV export into the wells table.

    Parameters
    ----------
    path
        The CSV file.

    Returns
    -------
    PlateData
        ``format="xponent"``; ``vendor_curves`` filled from an ``Analysis Coefficients``
        block, ``control_ranges`` from ``Control Range Low/High``, ``units`` from ``Units``.

    Raises
    ------
    UserError
        When the file has no per-well Median or Net MFI block, or a block is malformed.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows, semicolon = _rows(text)
    header, blocks = _blocks(rows)
    where = str(path)
    day_first = _day_first(header, semicolon)
    meta = {k: " ".join(v for v in header[k] if v) for k in META_KEYS if k in header}
    if "Date" in meta:
        meta["date_iso"] = _iso_date(header["Date"][0], day_first)
    meta["day_first_dates"] = str(day_first)
    plate_id = meta.get("Batch") or path.stem

    if "Median" not in blocks and "Net MFI" not in blocks:
        raise UserError.single(where, "no 'DataType:,Median' or 'DataType:,Net MFI' block; "
                               "expected an xPONENT export with per-well results")
    analytes: list[str] | None = None
    wells: dict[tuple[str, str], dict[str, object]] = {}
    well_info: dict[str, dict[str, object]] = {}
    for block_name, column in WELL_BLOCKS.items():
        if block_name not in blocks:
            continue
        names, body = _per_well(blocks[block_name], f"{where}: block {block_name!r}")
        names = [n for n in names if n and n != "Total Events"]
        if block_name in ("Median", "Net MFI") and analytes is None:
            analytes = names
        if not body and block_name in ("Median", "Net MFI"):
            raise UserError.single(f"{where}: block {block_name!r}", "the block is empty; expected one row per well")
        for r in body:
            order, well = split_location(r[0])
            sample = r[1] if len(r) > 1 else ""
            well_info.setdefault(well, {"acquisition_order": order, "sample_name": sample})
            for i, name in enumerate(names):
                cell = r[2 + i] if len(r) > 2 + i else ""
                rec = wells.setdefault((well, name), {})
                if column == "vendor_result":
                    value, flag = parse_cell(cell, semicolon)
                    rec["vendor_result"], rec["vendor_flag"] = value, flag
                else:
                    rec[column] = to_float(cell, semicolon)
    if analytes is None:
        analytes = []
    dilution: dict[str, float] = {}
    if "Dilution Factor" in blocks:
        _, body = _per_well(blocks["Dilution Factor"], f"{where}: block 'Dilution Factor'")
        for r in body:
            _, well = split_location(r[0])
            dilution[well] = to_float(r[2], semicolon) if len(r) > 2 else math.nan
    ranges = []
    for side in ("Low", "High"):
        name = f"Control Range {side}"
        if name in blocks:
            names, body = _per_well(blocks[name], f"{where}: block {name!r}")
            for r in body:
                for i, a in enumerate(names):
                    v = to_float(r[2 + i], semicolon) if len(r) > 2 + i else math.nan
                    if not math.isnan(v):
                        ranges.append({"sample_name": r[1], "analyte": a, "side": side.lower(), "value": v})
    control_ranges = pd.DataFrame(columns=["sample_name", "analyte", "low", "high"])
    if ranges:
        cr = pd.DataFrame(ranges).pivot_table(index=["sample_name", "analyte"], columns="side",
                                              values="value", aggfunc="first").reset_index()
        for side in ("low", "high"):
            if side not in cr.columns:
                cr[side] = np.nan
        control_ranges = cr[["sample_name", "analyte", "low", "high"]]
        control_ranges.columns.name = None
    units: dict[str, str] = {}
    if "Units" in blocks:
        lab = _per_analyte(blocks["Units"])
        for a, u in zip(lab.get("Analyte", []), lab.get("Units", []), strict=False):
            if u:
                units[a] = u
    vendor_curves = _coefficients(blocks, semicolon)

    records = []
    for (well, analyte), rec in wells.items():
        if analyte not in analytes:
            continue
        info = well_info[well]
        role, level = infer_role(str(info["sample_name"]))
        records.append({"plate_id": plate_id, "well": well, **info, "role": role,
                        "standard_level": level, "dilution": dilution.get(well, math.nan),
                        "analyte": analyte, **rec})
    df = pd.DataFrame(records)
    if df.empty:
        raise UserError.single(where, "the Median / Net MFI blocks hold no wells")
    df = finish_wells(df)
    df["_a"] = df["analyte"].map({a: i for i, a in enumerate(analytes)})
    df = df.sort_values(["acquisition_order", "well", "_a"], kind="stable").drop(columns="_a")
    return PlateData(plate_id=plate_id, format="xponent", kind="multiplex",
                     wells=df.reset_index(drop=True), meta=meta, vendor_curves=vendor_curves,
                     control_ranges=control_ranges, units=units)


def _coefficients(blocks: dict[str, list[list[str]]], decimal_comma: bool) -> pd.DataFrame:
    """The vendor's curve per analyte from ``Analysis Coefficients`` (and ``Analysis Types``).

    xPONENT writes ``y = A + (B - A) / (1 + (x / C) ** D) ** F`` (F absent or 1 for 4PL;
    some builds label the asymmetry E):
    A is the response at infinite concentration, B at zero. In our form
    ``y = d + (a - d) / (1 + (x / c) ** b) ** g`` that is d=A, a=B, c=C, b=D, g=F.
    """
    cols = ["analyte", "model", "a", "b", "c", "d", "g"]
    if "Analysis Coefficients" not in blocks:
        return pd.DataFrame(columns=cols)
    lab = _per_analyte(blocks["Analysis Coefficients"])
    types = _per_analyte(blocks.get("Analysis Types", []))
    type_of = dict(zip(types.get("Analyte", []), types.get("AnalysisType", []), strict=False))
    out = []
    for i, a in enumerate(lab.get("Analyte", [])):
        def coef(key: str, default: float = math.nan, _i: int = i) -> float:
            vals = lab.get(key, [])
            return to_float(vals[_i], decimal_comma) if _i < len(vals) else default
        g = coef("F") if "F" in lab else coef("E", 1.0)
        out.append({"analyte": a, "model": type_of.get(a, "5PL" if g != 1.0 else "4PL"),
                    "a": coef("B"), "b": coef("D"), "c": coef("C"), "d": coef("A"),
                    "g": 1.0 if math.isnan(g) else g})
    return pd.DataFrame(out, columns=cols)
