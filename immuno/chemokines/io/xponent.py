"""Luminex xPONENT CSV exports (FlexMAP 3D, MAGPIX, LX100/200, Intelliflex in xPONENT style).

An export has key/value header rows (Program, Build, Date, SN, Batch, ...), a
``Results`` row, then blocks each opened by ``DataType:,<name>`` and closed by a blank
row (in a re-saved file a "blank" row is a row of empty fields). Block shapes:

* per well: ``Location,Sample,<analytes...>[,Total Events]`` with Location ``1(1,A1)``
  (acquisition order, plate, well) - Median, Net MFI, Count, Result, ...; the Dilution
  Factor block is per well with a single value column;
* per reagent (xPONENT 3.1 and kit protocols): ``Reagent,<analytes...>`` then one row per
  standard or control (``Standard1,10000,...``) - Standard Expected Concentration,
  Control Expected Concentration, Control Range Low/High. Rows are matched to the wells
  by sample name;
* per sample: ``Sample,<analytes...>`` (Avg Net MFI, Avg Result), not needed here;
* per analyte: ``Analyte:,<analytes...>`` then labelled rows (Units, Analysis Types,
  Analysis Coefficients with rows ``A``..``F``, ``A:``, ``Coefficient A``...).

Seen in the wild and handled: fully quoted or unquoted with trailing commas, a UTF-8 BOM,
``;`` delimiters with decimal commas, decimal commas quoted inside a comma-delimited file
(read as decimals; refused with the line when mixed with decimal points or when unquoted,
which shifts the columns), day-first dates, ``NaN``/``N/A`` cells, blocks absent, a
repeated header row inside a block, a duplicated well (flagged, never averaged).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.delimited import Row, read_rows
from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    half_ulp,
    infer_role,
    parse_cell,
    plate_shape,
    read_number,
    slug,
    split_location,
)
from immuno.chemokines.io.xponent_blocks import (
    coefficients,
    control_ranges,
    per_analyte,
    per_well,
    reagent_values,
)
from immuno.errors import UserError

#: header keys copied into PlateData.meta (instrument facts only, no people or free text)
META_KEYS = (
    "Program",
    "Build",
    "Date",
    "SN",
    "Batch",
    "ProtocolName",
    "ProtocolVersion",
    "BatchStartTime",
    "BatchStopTime",
)
#: per-well blocks and the wells-table column each fills
WELL_BLOCKS = {
    "Median": "mfi",
    "Net MFI": "net_mfi",
    "Count": "bead_count",
    "Result": "vendor_result",
}
#: blocks that may be per well or per reagent, and what they give
REAGENT_BLOCKS = (
    "Standard Expected Concentration",
    "Control Expected Concentration",
    "Control Range Low",
    "Control Range High",
)
_NUMERIC_BLOCKS = (*WELL_BLOCKS, *REAGENT_BLOCKS, "Dilution Factor")


def sniff(head: str) -> bool:
    """Whether text looks like an xPONENT export."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    return bool(re.match(r'^"?Program"?[,;]"?xPONENT', first))


def _block_name(text: str) -> str:
    """``Control Range - Low`` and ``Control Range Low`` are one block."""
    return re.sub(r"\s*-\s*", " ", text).strip()


def _rows(text: str) -> tuple[list[Row], str, list[Row]]:
    """Rows with their line numbers; the delimiter; and rows whose raw text had a quoted
    number with a comma (``"78,125"``) - decimal commas in a comma-delimited file (a
    comma inside a cell can only have come from quotes)."""
    first = text.splitlines()[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = read_rows(text, delim)
    comma_numbers = [
        (ln, r)
        for ln, r in rows
        if delim == "," and any(re.fullmatch(r"[<>*]?\s*-?\d+,\d+", c) for c in r[1:])
    ]
    return rows, delim, comma_numbers


def _blocks(rows: list[Row]) -> tuple[dict[str, list[str]], dict[str, list[Row]]]:
    header: dict[str, list[str]] = {}
    blocks: dict[str, list[Row]] = {}
    current: str | None = None
    in_results = False
    for ln, r in rows:
        if not r:
            current = None
            continue
        if r[0] == "Results" and len(r) == 1:
            in_results = True
            continue
        if r[0] == "DataType:":
            current = _block_name(r[1]) if len(r) > 1 else ""
            blocks[current] = []
            continue
        if r[0].startswith("-- CRC --") or r[0].startswith("CRC"):
            current = None
            continue
        if current is not None:
            blocks[current].append((ln, r))
        elif not in_results and r[0] not in header:
            header[r[0]] = r[1:]
    return header, blocks


def _decimal_style(
    where: str, delim: str, blocks: dict[str, list[Row]], comma_rows: list[Row]
) -> bool:
    """Whether numbers use decimal commas. A ``;`` file does; a ``,`` file does when its
    numbers carry commas inside quotes and none carries a decimal point (xPONENT never
    groups digits); both at once, or an unquoted decimal comma, is refused with the line."""
    if delim == ";":
        return True
    numeric = {ln for name in _NUMERIC_BLOCKS for ln, _ in blocks.get(name, [])}
    commas = [(ln, r) for ln, r in comma_rows if ln in numeric]
    if not commas:
        return False
    points = [
        ln
        for name in _NUMERIC_BLOCKS
        for ln, r in blocks.get(name, [])
        if any(re.fullmatch(r"[<>*]?\s*-?\d+\.\d+", c) for c in r[1:])
    ]
    if points:
        ln = commas[0][0]
        raise UserError.single(
            f"{where}: line {ln}",
            "numbers with a decimal comma and numbers with a decimal "
            f"point in one file (e.g. line {points[0]}); expected one decimal separator",
            hint="Re-export the plate from xPONENT without editing it.",
        )
    return True


def _check_widths(where: str, name: str, block: list[Row]) -> None:
    """A data row longer than its header: an unquoted decimal comma split a number."""
    if not block:
        return
    width = len(block[0][1])
    for ln, r in block[1:]:
        if len(r) > width and r[0] != block[0][1][0]:
            raise UserError.single(
                f"{where}: line {ln}",
                f"block {name!r} row has {len(r)} fields where its header "
                f"(line {block[0][0]}) has {width}; a decimal comma in a comma-delimited file? "
                "expected ';' delimiters or '.' decimals",
                hint="Re-export with the list separator ';' (European locale) or '.' decimals.",
            )


def _date(header: dict[str, list[str]], semicolon: bool) -> tuple[str, bool]:
    """The run date as ISO and whether the export writes dates day-first."""
    dates = [header.get("Date", [""])[0], *header.get("BatchStartTime", [""])[:1]]
    day_first = semicolon
    for d in dates:
        m = re.match(r"^(\d{1,2})[/.](\d{1,2})[/.]\d{4}", d)
        if m and int(m.group(1)) > 12:
            day_first = True
            break
        if m and int(m.group(2)) > 12:
            day_first = False
            break
    text = header.get("Date", [""])[0]
    m = re.match(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        day, month = (a, b) if day_first else (b, a)
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"{y:04d}-{month:02d}-{day:02d}", day_first
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
    return (m.group(0) if m else ""), day_first


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
        Unreadable cells, duplicated wells and reagent rows that match no well are
        :class:`~immuno.chemokines.io.plate.PlateIssue` entries.

    Raises
    ------
    UserError
        When the file has no per-well Median or Net MFI block, a block is malformed, or
        its decimal separator cannot be told.
    """
    path = Path(path)
    where = str(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows, delim, comma_rows = _rows(text)
    header, blocks = _blocks(rows)
    for name in _NUMERIC_BLOCKS:
        if name in blocks:
            _check_widths(where, name, blocks[name])
    dec = _decimal_style(where, delim, blocks, comma_rows)
    issues: list[PlateIssue] = []
    if dec and delim == ",":
        issues.append(
            PlateIssue(
                "decimal_comma",
                where,
                "numbers written with decimal commas inside quotes; read as decimals",
                blocking=False,
            )
        )
    meta = {k: " ".join(v for v in header[k] if v) for k in META_KEYS if k in header}
    meta["date_iso"], day_first = _date(header, delim == ";")
    meta["day_first_dates"] = str(day_first)
    meta.pop("Batch", None)
    plate_id = slug(header.get("Batch", [""])[0] if header.get("Batch") else "", slug(path.stem))
    pp = header.get("ProtocolPlate", [])
    n_rows, n_cols = plate_shape(
        pp[pp.index("Type") + 1] if "Type" in pp and pp.index("Type") + 1 < len(pp) else 96
    )

    if "Median" not in blocks and "Net MFI" not in blocks:
        raise UserError.single(
            where,
            "no 'DataType:,Median' or 'DataType:,Net MFI' block; "
            "expected an xPONENT export with per-well results",
        )
    analytes: list[str] | None = None
    wells: dict[tuple[str, str], dict[str, object]] = {}
    info: dict[str, dict[str, object]] = {}
    for block_name, column in WELL_BLOCKS.items():
        if block_name not in blocks:
            continue
        names, body = per_well(blocks[block_name], f"{where}: block {block_name!r}")
        names = [n for n in names if n and n != "Total Events"]
        if block_name in ("Median", "Net MFI") and analytes is None:
            analytes = names
        if not body and block_name in ("Median", "Net MFI"):
            raise UserError.single(
                f"{where}: block {block_name!r}", "the block is empty; expected one row per well"
            )
        seen: dict[str, int] = {}
        for ln, r in body:
            order, well = split_location(r[0])
            # the same location twice in a block (an edited export): both rows are kept, so
            # the duplicated well is seen and flagged rather than one row silently winning
            seen[r[0]] = seen.get(r[0], 0) + 1
            loc = r[0] if seen[r[0]] == 1 else f"{r[0]}#{seen[r[0]]}"
            info.setdefault(
                loc,
                {
                    "acquisition_order": order,
                    "well": well,
                    "sample_name": r[1] if len(r) > 1 else "",
                    "line": ln,
                },
            )
            for i, name in enumerate(names):
                cell = r[2 + i] if len(r) > 2 + i else ""
                rec = wells.setdefault((loc, name), {})
                if column == "vendor_result":
                    rec["vendor_result"], rec["vendor_flag"] = parse_cell(cell, dec)
                    rec["vendor_result_ulp"] = (
                        half_ulp(cell.lstrip("<>* "))
                        if math.isfinite(rec["vendor_result"])
                        else math.nan
                    )
                    continue
                what = {"mfi": "MFI", "net_mfi": "net MFI", "bead_count": "bead count"}[column]
                value, problem = read_number(cell, what, dec)
                rec[column] = value
                if column in ("mfi", "net_mfi") and math.isfinite(value):
                    rec.setdefault("net_mfi_ulp", half_ulp(cell))
                    if column == "net_mfi":
                        rec["net_mfi_ulp"] = half_ulp(cell)
                if problem:
                    rec[f"{column}_problem"] = f"line {ln}: {problem}"
                    if "not a number" in problem:
                        issues.append(
                            PlateIssue(
                                "non_numeric",
                                f"{where}: line {ln}",
                                f"block {block_name!r}, well {well}, {name}: {problem}; "
                                "expected a number",
                                well,
                                name,
                            )
                        )
    analytes = analytes or []
    by_name: dict[str, list[str]] = {}
    for loc, i in info.items():
        by_name.setdefault(str(i["sample_name"]), []).append(loc)
    dilution = _dilutions(blocks, where, dec, issues)
    expected: dict[tuple[str, str], float] = {}
    ranges: list[dict[str, object]] = []
    for name in REAGENT_BLOCKS:
        if name not in blocks:
            continue
        for loc_or_name, analyte, value in reagent_values(
            blocks[name], name, where, dec, analytes, by_name, info, issues
        ):
            locs = by_name.get(loc_or_name, [loc_or_name])
            if name.endswith("Expected Concentration"):
                for loc in locs:
                    expected[(loc, analyte)] = value
            else:
                sample = info[locs[0]]["sample_name"] if locs[0] in info else loc_or_name
                ranges.append(
                    {
                        "sample_name": sample,
                        "analyte": analyte,
                        "side": name.split()[-1].lower(),
                        "value": value,
                    }
                )
    records = []
    for (loc, analyte), rec in wells.items():
        if analyte not in analytes:
            continue
        i = info[loc]
        role, level = infer_role(str(i["sample_name"]))
        problem = (
            rec.pop("net_mfi_problem", "")
            if not math.isfinite(float(rec.get("net_mfi", math.nan)))
            else ""
        )
        if not problem and not math.isfinite(float(rec.get("net_mfi", math.nan))):
            problem = rec.get("mfi_problem", "")
        rec.pop("mfi_problem", None)
        rec.pop("net_mfi_problem", None)
        rec.pop("bead_count_problem", None)
        records.append(
            {
                "plate_id": plate_id,
                "well": i["well"],
                "acquisition_order": i["acquisition_order"],
                "sample_name": i["sample_name"],
                "role": role,
                "standard_level": level,
                "dilution": dilution.get(loc, math.nan),
                "analyte": analyte,
                "expected_conc": expected.get((loc, analyte), math.nan),
                "problem": problem,
                **rec,
            }
        )
    df = pd.DataFrame(records)
    if df.empty:
        raise UserError.single(where, "the Median / Net MFI blocks hold no wells")
    df = finish_wells(df)
    df["_a"] = df["analyte"].map({a: k for k, a in enumerate(analytes)})
    df = df.sort_values(["acquisition_order", "well", "_a"], kind="stable").drop(columns="_a")
    units = {}
    if "Units" in blocks:
        lab = per_analyte(blocks["Units"])
        units = {
            a: u for a, u in zip(lab.get("Analyte", []), lab.get("Units", []), strict=False) if u
        }
    return PlateData(
        plate_id=plate_id,
        format="xponent",
        kind="multiplex",
        wells=df.reset_index(drop=True),
        meta=meta,
        vendor_curves=coefficients(blocks, dec, where, issues),
        control_ranges=control_ranges(ranges),
        units=units,
        issues=issues,
        rows=n_rows,
        columns=n_cols,
    )


def _dilutions(
    blocks: dict[str, list[Row]], where: str, dec: bool, issues: list[PlateIssue]
) -> dict[str, float]:
    out: dict[str, float] = {}
    if "Dilution Factor" not in blocks:
        return out
    _, body = per_well(blocks["Dilution Factor"], f"{where}: block 'Dilution Factor'")
    for ln, r in body:
        _, well = split_location(r[0])
        value, problem = read_number(r[2] if len(r) > 2 else "", "dilution factor", dec)
        out[r[0]] = value
        if "not a number" in problem:
            issues.append(
                PlateIssue(
                    "non_numeric",
                    f"{where}: line {ln}",
                    f"block 'Dilution Factor', well {well}: {problem}; expected a number",
                    well,
                )
            )
    return out
