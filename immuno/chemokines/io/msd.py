"""MSD (Meso Scale Discovery) exports: Discovery Workbench tables and Methodical Mind text.

Discovery Workbench (CSV, or the same table on a sheet of an ``.xlsx``): the plate name
on its own line (``Plate_<barcode>``), then one row per well and spot: Sample, Assay,
Well, Spot, (optionally Fit Statistic: RSquared, and Detection Range,) Dilution,
Concentration (expected, for calibrators), Signal, Adjusted Signal, ..., Calc.
Concentration. Sample
names follow MSD's convention (``S001`` standard, ``C001`` control, ``U001`` unknown,
``B`` blank); a row with an expected Concentration is a calibrator whatever its name,
and a calibrator at concentration 0 is the blank. The electrochemiluminescence signal
takes the MFI's place (no bead counts).

Methodical Mind text (the plate reader's own export): per spot, a header block (plate
number, barcode, plate type, ``SpotID``) and a ``==========Data====`` plate grid of
signals; several spots and several plates may follow one another in one file. It holds
no sample names: a plate layout gives them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.delimited import Row, check_table, read_rows
from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    half_ulp,
    infer_role,
    normal_well,
    parse_cell,
    plate_shape,
    read_number,
    slug,
    to_float,
)
from immuno.errors import UserError

REQUIRED = ("Sample", "Assay", "Well", "Signal")


def sniff(head: str) -> bool:
    """Whether text looks like a Discovery Workbench CSV export."""
    lines = head.lstrip("\ufeff").splitlines()
    return len(lines) > 1 and lines[1].startswith("Sample,Assay,Well")


def sniff_sheets(sheets: dict[str, pd.DataFrame]) -> bool:
    """Whether a workbook holds a Discovery Workbench table on one of its sheets."""
    return any(_sheet_header(df) is not None for df in sheets.values())


def _sheet_header(df: pd.DataFrame) -> int | None:
    for i in range(min(len(df), 30)):
        cells = [str(c).strip() for c in df.iloc[i].tolist()[:3]]
        if cells == ["Sample", "Assay", "Well"]:
            return i
    return None


def read_msd(path: str | Path, sheets: dict[str, pd.DataFrame] | None = None) -> PlateData:
    """Read a Discovery Workbench export (CSV, or ``.xlsx`` given its sheets) into the wells table.

    Returns
    -------
    PlateData
        ``format="msd"``; ``vendor_result`` from Calc. Concentration, ``vendor_flag``
        from Detection Range when outside it.
    """
    path = Path(path)
    issues: list[PlateIssue] = []
    if sheets is None:
        rows = read_rows(path.read_text(encoding="utf-8-sig", errors="replace"))
        if len(rows) < 2:
            raise UserError.single(
                str(path), "too short for an MSD export (plate line, header, wells)"
            )
        where, header_at = str(path), 1
        dec = check_table(rows, 1, where)
        unit = "line"
    else:
        name, df, h = next(
            (n, d, _sheet_header(d)) for n, d in sheets.items() if _sheet_header(d) is not None
        )
        for other in sheets:
            if other != name:
                issues.append(
                    PlateIssue(
                        "sheet_ignored",
                        f"{path}: sheet {other!r}",
                        "no Workbench table (Sample, Assay, Well); sheet left aside",
                        blocking=False,
                    )
                )
        rows = [
            (
                i + 1,
                [
                    ("" if pd.isna(c) else (repr(c) if isinstance(c, float) else str(c)).strip())
                    for c in df.iloc[i].tolist()
                ],
            )
            for i in range(len(df))
        ]
        for _, r in rows:
            while r and r[-1] in ("", "nan"):
                r.pop()
        where, header_at, dec, unit = f"{path}: sheet {name!r}", h, False, "row"
        rows = rows[max(0, h - 1) :]
        header_at = 1 if h > 0 else 0
    return _table(path, rows, header_at, where, unit, dec, issues)


def _table(
    path: Path, rows: list[Row], h: int, where: str, unit: str, dec: bool, issues: list[PlateIssue]
) -> PlateData:
    sep = ": " if unit == "line" else ", "
    plate_name = rows[0][1][0] if h > 0 and rows[0][1] else ""
    header = rows[h][1]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError.single(
            f"{where}{sep}{unit} {rows[h][0]}", f"missing column(s) {', '.join(missing)}"
        )
    records = []
    for ln, r in rows[h + 1 :]:
        if not any(c.strip() for c in r):
            continue
        rec = dict(zip(header, r, strict=False))
        # a cut row or a row without its identity is refused; an empty Signal is a well
        # without a value, flagged below
        short = (
            [c for c in REQUIRED if not rec.get(c)]
            if len(r) < len(header)
            else [c for c in REQUIRED[:3] if not rec.get(c)]
        )
        if short:
            raise UserError.single(
                f"{where}{sep}{unit} {ln}",
                f"empty or missing {', '.join(short)}; "
                f"expected a value in each of {', '.join(REQUIRED)}",
            )
        role, level = infer_role(rec["Sample"])
        expected = to_float(rec.get("Concentration"), dec)
        if role == "unknown" and expected > 0:
            role = "standard"  # the Concentration column is filled for calibrators only
        if role == "standard" and expected == 0:
            role, level = "blank", math.nan
        value, flag = parse_cell(rec.get("Calc. Concentration"), dec)
        rng = rec.get("Detection Range", "")
        if rng and not rng.lower().startswith("in "):
            flag = rng
        signal, problem = read_number(rec["Signal"], "signal", dec)
        adjusted, p_adj = read_number(
            rec.get("Adjusted Signal", rec["Signal"]), "adjusted signal", dec
        )
        problem = p_adj or problem
        well = normal_well(rec["Well"])
        if "not a number" in problem:
            issues.append(
                PlateIssue(
                    "non_numeric",
                    f"{where}{sep}{unit} {ln}",
                    f"well {well}, {rec['Assay']}: {problem}; expected a number",
                    well,
                    rec["Assay"],
                )
            )
        records.append(
            {
                "well": well,
                "acquisition_order": math.nan,
                "sample_name": rec["Sample"],
                "role": role,
                "standard_level": level,
                "expected_conc": expected if role == "standard" else math.nan,
                "dilution": to_float(rec.get("Dilution"), dec),
                "analyte": rec["Assay"],
                "mfi": signal,
                "net_mfi": adjusted,
                "bead_count": math.nan,
                "vendor_result": value,
                "vendor_flag": flag,
                "vendor_result_ulp": half_ulp(rec.get("Calc. Concentration"))
                if math.isfinite(value)
                else math.nan,
                "net_mfi_ulp": half_ulp(rec.get("Adjusted Signal", rec["Signal"]))
                if not problem
                else math.nan,
                "problem": f"{unit} {ln}: {problem}" if problem else "",
            }
        )
    if not records:
        raise UserError.single(where, "no wells after the header")
    plate_id = slug(plate_name, slug(path.stem))
    return PlateData(
        plate_id=plate_id,
        format="msd",
        kind="multiplex",
        wells=finish_wells(pd.DataFrame(records).assign(plate_id=plate_id)),
        issues=issues,
    )


# --- Methodical Mind -------------------------------------------------------------------


def sniff_methodical_mind(head: str) -> bool:
    """Whether text looks like an MSD Methodical Mind export."""
    return bool(re.match(r"^\s*FileName\s*:", head.lstrip("\ufeff"))) and "==========Data" in head


def read_methodical_mind(path: str | Path) -> PlateData:
    """Read a Methodical Mind text export: every spot table of every plate in the file.

    Analytes are named ``spot <SpotID>``; wells of plate 2 onwards are written ``2:A1``.
    Sample names are the wells themselves until a layout names them.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    records, meta, plates, barcode = [], {}, [], ""
    plate_no, spot, shape = "1", "", (8, 12)
    i = 0
    while i < len(lines):
        line = lines[i]
        key, _, value = line.partition(":")
        key, value = key.strip(), value.replace("\\t", "\t").strip()
        if key == "Plate #":
            plate_no = value or "1"
            plates.append(plate_no)
        elif key == "Barcode1":
            barcode = barcode or value.strip("<>*")
        elif key == "Type" and value.isdigit():
            shape = plate_shape(value)
        elif key == "SpotID":
            spot = value
        elif key in ("Model", "Version", "Serial #"):
            meta[{"Serial #": "SN", "Version": "Build"}.get(key, key)] = value
        if line.startswith("==========Data"):
            cols = [c.strip() for c in lines[i + 1].split("\t")[1:] if c.strip()]
            for k in range(shape[0]):
                ln = i + 3 + k
                cells = lines[i + 2 + k].split("\t") if i + 2 + k < len(lines) else []
                if not cells or not re.fullmatch(r"[A-Z]{1,2}", cells[0].strip()):
                    raise UserError.single(
                        f"{path}: line {ln - 1}",
                        f"expected plate row {chr(65 + k)} of spot {spot}'s data grid",
                    )
                for col, cell in zip(cols, cells[1:], strict=False):
                    well = f"{cells[0].strip()}{int(col)}"
                    well = well if plate_no == "1" else f"{plate_no}:{well}"
                    value_, problem = read_number(cell, "signal")
                    records.append(
                        {
                            "well": well,
                            "sample_name": well,
                            "role": "unknown",
                            "analyte": f"spot {spot}",
                            "mfi": value_,
                            "net_mfi": value_,
                            "net_mfi_ulp": half_ulp(cell.strip()),
                            "problem": f"line {ln - 1}: {problem}" if problem else "",
                        }
                    )
            i += 2 + shape[0]
            continue
        i += 1
    if not records:
        raise UserError.single(
            str(path), "no '==========Data' plate grid; expected a Methodical Mind export"
        )
    plate_id = slug(barcode, slug(path.stem))
    issues = []
    if len(set(plates)) > 1:
        issues.append(
            PlateIssue(
                "several_plates",
                str(path),
                f"{len(set(plates))} plates in one file; wells of plate 2 "
                "onwards are written '2:A1'",
                blocking=False,
            )
        )
    return PlateData(
        plate_id=plate_id,
        format="methodical_mind",
        kind="multiplex",
        wells=finish_wells(pd.DataFrame(records).assign(plate_id=plate_id)),
        meta=meta,
        issues=issues,
        rows=shape[0],
        columns=shape[1],
    )
