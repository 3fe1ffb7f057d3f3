"""Bio-Plex Manager Excel exports (.xls and .xlsx): one sheet per analyte.

Each sheet has a few ``Key: value`` header lines (File Name, Analyte, Acquisition Date,
Plate ID, ...), a table with columns Analyte, Type, Well, Description, FI, FI - Bkgd,
Obs Conc, Exp Conc, Dilution, Bead Count (and more), a legend, and a footer with the
regression type and the fitted equation, e.g.
``Std. Curve: FI = 3.45 + (29496.2 - 3.45) / ((1 + (Conc / 3.18)^-12.285))^0.1``.
Type codes: ``B`` blank, ``S1``.. or ``C1``.. (in older exports) standards,
``X1``.. unknowns, ``Ctrl``/``Control`` kit controls. Flags sit inside value cells:
``OOR <``, ``OOR >``, ``***`` (not available), ``*12.3`` (extrapolated). A Well cell may
list several wells (``A1,B1``) when the export averages replicates.

Standards carry their own dilution in the Dilution column (it is not applied to their
results), unknowns their sample dilution.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.plate import PlateData, finish_wells, parse_cell, to_float
from immuno.errors import UserError

_EQUATION = re.compile(
    r"FI\s*=\s*(?P<A>[-+0-9.eE]+)\s*\+\s*\((?P<B>[-+0-9.eE]+)\s*[-+]\s*[-+0-9.eE]+\)\s*/\s*"
    r"\(+\s*1\s*\+\s*\(\s*Conc\s*/\s*(?P<C>[-+0-9.eE]+)\s*\)\s*\^\s*(?P<D>[-+0-9.eE]+)\s*\)+"
    r"(?:\s*\^\s*(?P<E>[-+0-9.eE]+))?")


def sniff(path: Path) -> bool:
    """Whether a file is an Excel workbook (``.xls`` OLE2 or ``.xlsx`` zip signature)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head.startswith(b"\xd0\xcf\x11\xe0") or (head.startswith(b"PK") and path.suffix.lower() in (".xlsx", ".xlsm"))


def _role(type_code: str) -> tuple[str, float]:
    t = type_code.strip()
    if re.fullmatch(r"B\d*", t):
        return "blank", math.nan
    m = re.fullmatch(r"[SC](\d+)", t)
    if m:
        return "standard", float(m.group(1))
    if re.match(r"(Ctrl|Control)", t, re.I):
        return "control", math.nan
    return "unknown", math.nan


def _sheet(df: pd.DataFrame, sheet: str, where: str) -> tuple[dict[str, str], pd.DataFrame, dict[str, float] | None]:
    first = df.iloc[:, 0].astype(str)
    head_rows = first[first.str.strip() == "Analyte"].index
    hits = [i for i in head_rows if "Type" in df.loc[i].astype(str).tolist()]
    if not hits:
        raise UserError.single(f"{where}: sheet {sheet!r}", "no table header row (Analyte, Type, Well, ...) found")
    h = hits[0]
    header: dict[str, str] = {}
    for text in first[:h]:
        if ":" in text:
            k, v = text.split(":", 1)
            header[k.strip()] = v.strip()
    cols = [str(c).strip() for c in df.loc[h].tolist()]
    body = df.loc[h + 1:].copy()
    body.columns = cols
    end = body.index[body["Type"].isna() | (body["Type"].astype(str).str.strip() == "")]
    table = body.loc[: end[0] - 1] if len(end) else body
    curve = None
    for text in first[h:]:
        m = _EQUATION.search(text.replace(" ", " ")) if "Std. Curve" in text else None
        if m:
            e = m.group("E")
            # Bio-Plex: FI = A + (B - A) / (1 + (Conc / C) ^ D) ^ E  ->  d=A, a=B, c=C, b=D, g=E
            curve = {"a": float(m.group("B")), "b": float(m.group("D")), "c": float(m.group("C")),
                     "d": float(m.group("A")), "g": float(e) if e else 1.0}
    regression = next((t.split(":", 1)[1].strip() for t in first[h:] if t.startswith("Regression Type")), "")
    if curve is not None:
        curve["model"] = regression or "5PL"
    return header, table, curve


def read_bioplex(path: str | Path) -> PlateData:
    """Read a Bio-Plex Manager Excel export (every analyte sheet) into the wells table.

    Parameters
    ----------
    path
        The ``.xls`` / ``.xlsx`` workbook.

    Returns
    -------
    PlateData
        ``format="bioplex"``; ``vendor_result``/``vendor_flag`` from Obs Conc;
        ``vendor_curves`` from each sheet's Std. Curve equation.
    """
    path = Path(path)
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None)
    except Exception as exc:  # xlrd/openpyxl raise many types for a corrupt workbook
        raise UserError.single(str(path), f"cannot read the Excel workbook ({type(exc).__name__}: {exc})") from None
    records, curves, meta = [], [], {}
    plate_id = path.stem
    for name, df in sheets.items():
        if df.empty:
            continue
        header, table, curve = _sheet(df, str(name), str(path))
        analyte = header.get("Analyte", str(name)).strip()
        plate_id = header.get("Plate ID") or header.get("File Name") or plate_id
        meta = {k: header[k] for k in ("File Name", "Acquisition Date", "Reader Serial Number", "Plate ID") if k in header}
        if curve is not None:
            curves.append({"analyte": analyte, **curve})
        for r in table.to_dict("records"):
            role, level = _role(str(r.get("Type", "")))
            if re.match(r"\s*control", str(r.get("Description", "")), re.I):
                role, level = "control", math.nan  # old exports number controls after the C standards
            value, flag = parse_cell(r.get("Obs Conc"))
            exp_value, _ = parse_cell(r.get("Exp Conc"))
            dil = to_float(r.get("Dilution"))
            records.append({
                "plate_id": plate_id, "well": str(r.get("Well", "")).replace(" ", ""),
                "acquisition_order": math.nan,
                "sample_name": str(r.get("Description")) if pd.notna(r.get("Description")) else str(r.get("Type")),
                "role": role, "standard_level": level,
                "expected_conc": exp_value if role in ("standard", "control") else math.nan,
                # a standard's Dilution is its place in the series, not a factor on its result
                "dilution": 1.0 if role == "standard" else dil,
                "analyte": analyte, "mfi": to_float(r.get("FI")), "net_mfi": to_float(r.get("FI - Bkgd")),
                "bead_count": to_float(r.get("Bead Count")), "vendor_result": value, "vendor_flag": flag,
            })
    if not records:
        raise UserError.single(str(path), "no analyte sheet with a results table; expected a Bio-Plex Manager export")
    wells = finish_wells(pd.DataFrame(records))
    vendor = pd.DataFrame(curves, columns=["analyte", "model", "a", "b", "c", "d", "g"])
    return PlateData(plate_id=str(plate_id), format="bioplex", kind="multiplex", wells=wells, meta=meta,
                     vendor_curves=vendor)
