"""Bio-Rad CFX run exports (CFX Maestro / CFX Manager quantification CSV and the table
workbook).

They become the qPCR wells table (:data:`immuno.chemokines.io.plate.QPCR_COLUMNS`): one row
per well and target with its Cq (NaN for ``Undetermined``), the role (unknown /
standard / ntc / nac / control) and the standard quantity where given. QuantStudio and
RDML files have their own modules (:mod:`immuno.chemokines.io.quantstudio`,
:mod:`immuno.chemokines.io.rdml`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.delimited import check_table, read_rows
from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_qpcr,
    normal_well,
    read_number,
    slug,
    to_float,
)
from immuno.errors import UserError

_CFX_CONTENT = {
    "unkn": "unknown",
    "std": "standard",
    "ntc": "ntc",
    "nrt": "nac",
    "neg": "ntc",
    "pos": "control",
    "neg ctrl": "ntc",
    "pos ctrl": "control",
}


def sniff_cfx(head: str) -> bool:
    """Whether text looks like a CFX Maestro / CFX Manager quantification CSV."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    cells = [c.strip() for c in first.split(",")]
    return {"Well", "Fluor", "Content", "Cq"} <= set(cells)


def sniff_cfx_sheets(sheets: dict[str, pd.DataFrame]) -> bool:
    """Whether a workbook holds a CFX well table (Well, Fluor, Target, Content)."""
    return any(_cfx_header(df) is not None for df in sheets.values())


def _cfx_header(df: pd.DataFrame) -> int | None:
    for i in range(min(len(df), 10)):
        if {"Well", "Fluor", "Content"} <= {str(c).strip() for c in df.iloc[i].tolist()}:
            return i
    return None


def read_cfx(path: str | Path, sheets: dict[str, pd.DataFrame] | None = None) -> PlateData:
    """Read a Bio-Rad CFX quantification CSV (Well, Fluor, Target, Content, Sample, Cq, ...),
    or the CFX table workbook (a ``description`` sheet; amplification curves elsewhere)."""
    path = Path(path)
    issues: list[PlateIssue] = []
    if sheets is None:
        rows = read_rows(path.read_text(encoding="utf-8-sig", errors="replace"))
        where, unit = str(path), "line"
        dec = check_table(rows, 0, where)
    else:
        name, df = next((n, d) for n, d in sheets.items() if _cfx_header(d) is not None)
        h = _cfx_header(df)
        rows = [
            (i + 1, ["" if pd.isna(c) else str(c).strip() for c in df.iloc[i].tolist()])
            for i in range(h, len(df))
        ]
        where, unit, dec = f"{path}: sheet {name!r}", "row", False
        others = [n for n in sheets if n != name]
        if others:
            issues.append(
                PlateIssue(
                    "sheet_ignored",
                    str(path),
                    f"sheets {', '.join(repr(n) for n in others)} left "
                    "aside (amplification curves: Cq values are not computed from curves)",
                    blocking=False,
                )
            )
    header = rows[0][1]
    has_cq = "Cq" in header
    if not has_cq:
        issues.append(
            PlateIssue(
                "no_cq", where, "the table has no Cq column; expected the quantification Cq results"
            )
        )
    records = []
    for ln, r in rows[1:]:
        if not any(c.strip() for c in r):
            continue
        rec = dict(zip(header, r, strict=False))
        content = rec.get("Content", "").lower()
        role = _CFX_CONTENT.get(re.sub(r"-\d+$", "", content), "unknown")
        well = normal_well(rec.get("Well", ""))
        target = rec.get("Target") or rec.get("Fluor", "")
        cq, problem = (
            read_number(rec.get("Cq"), "Cq", dec) if has_cq else (math.nan, "no Cq in the export")
        )
        if "not a number" in problem:
            issues.append(
                PlateIssue(
                    "non_numeric",
                    f"{where}, {unit} {ln}",
                    f"well {well}, {target}: {problem}; expected a number",
                    well,
                    target,
                )
            )
        records.append(
            {
                "well": well,
                "sample_name": rec.get("Sample", ""),
                "role": role,
                "target": target,
                "reporter": rec.get("Fluor", ""),
                "cq": cq,
                "quantity": to_float(
                    rec.get("Starting Quantity (SQ)", rec.get("Starting Quantity")), dec
                ),
                "problem": f"{unit} {ln}: {problem}"
                if problem
                and "undetermined" not in problem.lower()
                and "'nan'" not in problem.lower()
                else "",
            }
        )
    if not records:
        raise UserError.single(str(path), "no wells in the CFX export")
    plate_id = slug(path.stem)
    return PlateData(
        plate_id=plate_id,
        format="cfx",
        kind="qpcr",
        wells=finish_qpcr(records, plate_id),
        issues=issues,
    )
