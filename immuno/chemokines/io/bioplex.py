"""Bio-Plex Manager Excel exports (.xls and .xlsx): one sheet per analyte.

Each analyte sheet has a few ``Key: value`` header lines (File Name, Analyte, Acquisition
Date, Plate ID, ...), one or two tables with columns Analyte, Type, Well, Description,
FI, FI - Bkgd, Obs Conc, Exp Conc, Dilution, Bead Count (and more), a legend, and a
footer with the regression type and the fitted equation, e.g.
``Std. Curve: FI = 3.45 + (29496.2 - 3.45) / ((1 + (Conc / 3.18)^-12.285))^0.1``.
Sheets are recognised by that table, not by their name: any other sheet (a project
template, a chart) is left aside with a note.

Type codes: ``B`` blank, ``S1``.. standards, ``C1``.. controls (older exports without S
codes number their standards ``C1``.. and describe controls as "Control"), ``X1``..
unknowns. Standards are ordered by their expected concentration, whichever end the
numbering starts from. Flags sit inside value cells: ``OOR <``, ``OOR >``, ``***`` (not
available), ``*12.3`` (extrapolated); ``---`` (or ``1`` in an Outlier column) marks a well
the operator designated an outlier: it is kept out of fits and means, with that reason.

A sheet may hold a replicate-summary table (Well ``A1,B1``, FI averaged) and a per-well
table: the per-well one is read and the summary noted. A summary alone is read as is,
one row per replicate group. Blank and negative-control bead regions (``Blank (53)``,
``MyNegative (4)``) are listed in :attr:`PlateData.negative_beads`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    half_ulp,
    is_negative_bead,
    normal_well,
    parse_cell,
    read_number,
    slug,
    to_float,
)
from immuno.errors import UserError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EQUATION = re.compile(
    rf"FI\s*=\s*(?P<A>{_NUM})\s*\+\s*\((?P<B>{_NUM})\s*[-+]\s*{_NUM}\)\s*/\s*"
    rf"\(+\s*1\s*\+\s*\(\s*Conc\s*/\s*(?P<C>{_NUM})\s*\)\s*\^\s*(?P<D>{_NUM})\s*\)+"
    rf"(?:\s*\^\s*(?P<E>{_NUM}))?"
)


def sniff_sheets(sheets: dict[str, pd.DataFrame]) -> bool:
    """Whether a workbook holds at least one Bio-Plex analyte table."""
    return any(_table_headers(df) for df in sheets.values())


def _cells(df: pd.DataFrame, i: int) -> list[str]:
    return [str(c).strip() for c in df.iloc[i].tolist()]


def _table_headers(df: pd.DataFrame) -> list[int]:
    """Rows that head a Bio-Plex results table (Type and Well, with FI or Obs Conc)."""
    out = []
    first = df.iloc[:, 0].astype(str).str.strip() if len(df.columns) else pd.Series(dtype=str)
    for i in first.index[first.isin(["Analyte", "Type"])]:
        cells = set(_cells(df, i))
        if {"Type", "Well"} <= cells and cells & {"FI", "Obs Conc"}:
            out.append(int(i))
    return out


def _table(df: pd.DataFrame, h: int) -> pd.DataFrame:
    cols = _cells(df, h)
    body = df.iloc[h + 1 :].copy()
    body.columns = cols
    empty = body["Type"].isna() | (body["Type"].astype(str).str.strip().isin(["", "nan"]))
    end = body.index[empty]
    return body.loc[: end[0] - 1] if len(end) else body


def _curve(lines: list[str]) -> dict[str, object] | None:
    regression = next(
        (t.split(":", 1)[1].strip() for t in lines if t.startswith("Regression Type")), ""
    )
    for text in lines:
        m = _EQUATION.search(text.replace("\u00a0", " ")) if "Std. Curve" in text else None
        if m:
            e = m.group("E")
            # Bio-Plex: FI = A + (B - A) / (1 + (Conc / C) ^ D) ^ E  ->  d=A, a=B, c=C, b=D, g=E
            return {
                "model": regression or "5PL",
                "a": float(m.group("B")),
                "b": float(m.group("D")),
                "c": float(m.group("C")),
                "d": float(m.group("A")),
                "g": float(e) if e else 1.0,
                "a_ulp": half_ulp(m.group("B")),
                "b_ulp": half_ulp(m.group("D")),
                "c_ulp": half_ulp(m.group("C")),
                "d_ulp": half_ulp(m.group("A")),
                "g_ulp": half_ulp(e) if e else 0.0,
            }
    return None


def _role(type_code: str, description: str, has_s_codes: bool) -> tuple[str, float]:
    t = type_code.strip()
    if re.fullmatch(r"B\d*", t):
        return "blank", math.nan
    m = re.fullmatch(r"S(\d+)", t)
    if m:
        return "standard", float(m.group(1))
    m = re.fullmatch(r"C(\d+)", t)
    if m:
        if has_s_codes or re.match(r"\s*control", description, re.I):
            return "control", math.nan
        return "standard", float(m.group(1))
    if re.match(r"(Ctrl|Control)", t, re.I):
        return "control", math.nan
    return "unknown", math.nan


def _date(text: str) -> str:
    for fmt in ("%d-%b-%Y, %I:%M %p", "%d-%b-%Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date().isoformat()
        except ValueError:
            continue
    return ""


def read_bioplex(path: str | Path, sheets: dict[str, pd.DataFrame] | None = None) -> PlateData:
    """Read a Bio-Plex Manager Excel export (every analyte sheet) into the wells table.

    Parameters
    ----------
    path
        The ``.xls`` / ``.xlsx`` workbook.
    sheets
        The workbook already read (every sheet, no header row), to avoid reading it twice.

    Returns
    -------
    PlateData
        ``format="bioplex"``; ``vendor_result``/``vendor_flag`` from Obs Conc;
        ``vendor_curves`` from each sheet's Std. Curve equation.
    """
    path = Path(path)
    where = str(path)
    if sheets is None:
        sheets = read_workbook(path)
    records, curves, issues = [], [], []
    header: dict[str, str] = {}
    for name, df in sheets.items():
        heads = _table_headers(df) if not df.empty else []
        if not heads:
            issues.append(
                PlateIssue(
                    "sheet_ignored",
                    f"{where}: sheet {name!r}",
                    "no analyte table (Type, Well, FI); sheet left aside",
                    blocking=False,
                )
            )
            continue
        first = df.iloc[:, 0].astype(str).str.strip()
        sheet_head = {
            k.strip(): v.strip()
            for k, v in (t.split(":", 1) for t in first[: heads[0]] if ":" in t)
        }
        header = header or sheet_head
        tables = [(h, _table(df, h)) for h in heads]
        is_summary = {
            h: bool(len(t)) and t["Well"].astype(str).str.contains(",").mean() > 0.5
            for h, t in tables
        }
        summary = [(h, t) for h, t in tables if is_summary[h]]
        raw = [(h, t) for h, t in tables if not is_summary[h]]
        if raw and summary:
            issues.append(
                PlateIssue(
                    "summary_ignored",
                    f"{where}: sheet {name!r}, row {summary[0][0] + 1}",
                    "replicate-summary table left aside; the per-well table is read",
                    blocking=False,
                )
            )
        h, table = (raw or summary)[0]
        analyte = sheet_head.get("Analyte") or str(
            table["Analyte"].iloc[0] if "Analyte" in table and len(table) else name
        )
        analyte = analyte.strip()
        curve = _curve(first[h:].tolist())
        if curve is not None:
            curves.append({"analyte": analyte, **curve})
        has_s = table["Type"].astype(str).str.fullmatch(r"\s*S\d+\s*").any()
        for i, r in table.iterrows():
            records.append(
                _record(r, analyte, has_s, f"sheet {name!r}, row {int(i) + 1}", where, issues)
            )
    if not records:
        raise UserError.single(
            where,
            "no analyte sheet with a results table (Analyte, Type, Well, FI, ...); "
            "expected a Bio-Plex Manager export",
        )
    plate_id = slug(header.get("Plate ID") or header.get("File Name") or "", slug(path.stem))
    wells = finish_wells(pd.DataFrame(records).assign(plate_id=plate_id))
    meta = {"date_iso": _date(header.get("Acquisition Date", ""))}
    if header.get("Reader Serial Number"):
        meta["SN"] = header["Reader Serial Number"]
    cols = [
        "analyte",
        "model",
        "a",
        "b",
        "c",
        "d",
        "g",
        "a_ulp",
        "b_ulp",
        "c_ulp",
        "d_ulp",
        "g_ulp",
    ]
    analytes = list(dict.fromkeys(wells["analyte"]))
    return PlateData(
        plate_id=plate_id,
        format="bioplex",
        kind="multiplex",
        wells=wells,
        meta=meta,
        vendor_curves=pd.DataFrame(curves, columns=cols),
        issues=issues,
        negative_beads=[a for a in analytes if is_negative_bead(a)],
    )


def _record(
    r: pd.Series, analyte: str, has_s: bool, row: str, where: str, issues: list[PlateIssue]
) -> dict[str, object]:
    """One table row as a wells-table record; unreadable values become the row's problem."""
    desc = str(r.get("Description")) if pd.notna(r.get("Description")) else ""
    role, level = _role(str(r.get("Type", "")), desc, bool(has_s))
    well = ",".join(normal_well(w) for w in str(r.get("Well", "")).split(",") if w.strip())
    value, flag = parse_cell(r.get("Obs Conc"))
    exp_value = to_float(r.get("Exp Conc"))
    fi, fi_problem = read_number(r.get("FI"), "FI")
    net, net_problem = (
        read_number(r.get("FI - Bkgd"), "FI - Bkgd") if "FI - Bkgd" in r.index else (math.nan, "")
    )
    problem = net_problem if "FI - Bkgd" in r.index else fi_problem
    outlier = (
        str(r.get("Outlier", "")).strip() in ("1", "1.0", "True")
        or str(r.get("FI", "")).strip() == "---"
    )
    if outlier:
        problem = "designated an outlier in Bio-Plex Manager"
    elif "not a number" in problem:
        issues.append(
            PlateIssue(
                "non_numeric",
                f"{where}: {row}",
                f"well {well}, {analyte}: {problem}; expected a number",
                well,
                analyte,
            )
        )
    if problem:
        problem = f"{row}: {problem}"
    raw_net = r.get("FI - Bkgd") if "FI - Bkgd" in r.index else r.get("FI")
    return {
        "well": well,
        "acquisition_order": math.nan,
        "sample_name": desc or str(r.get("Type", "")).strip(),
        "role": role,
        "standard_level": level,
        "expected_conc": exp_value
        if role in ("standard", "control") and exp_value > 0
        else math.nan,
        # a standard's Dilution is its place in the series, not a factor on its result
        "dilution": 1.0 if role == "standard" else to_float(r.get("Dilution")),
        "analyte": analyte,
        "mfi": fi,
        "net_mfi": net,
        "bead_count": to_float(r.get("Bead Count")),
        "vendor_result": value,
        "vendor_flag": flag,
        "vendor_result_ulp": half_ulp(str(r.get("Obs Conc")).lstrip("*"))
        if math.isfinite(value)
        else math.nan,
        "net_mfi_ulp": half_ulp(raw_net) if not problem else math.nan,
        "problem": problem,
    }


def read_workbook(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of an Excel workbook, without a header row; a clear error when the file
    is not a readable workbook."""
    try:
        return pd.read_excel(path, sheet_name=None, header=None)
    except Exception as exc:  # xlrd/openpyxl raise many types for a corrupt workbook
        raise UserError.single(
            str(path), f"cannot read the Excel workbook ({type(exc).__name__}: {exc})"
        ) from None
