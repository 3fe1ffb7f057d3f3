"""Applied Biosystems QuantStudio / ViiA 7 / 7500 exports: text and Excel, and Design &
Analysis (QuantStudio Pro) Excel.

Text: ``* key = value`` header lines, then sections (``[Sample Setup]``, ``[Results]``,
...). Excel: the same key/value rows on top of each sheet, the table below them. The
results table has Well, Well Position, Omit, Sample Name (D&A: Sample), Target Name
(Target), Task, Reporter, the cycle threshold (``CT``, ``Cт``, ``Cq``), Quantity, and in
comparative-Ct experiments the software's own RQ, ``Delta Ct Mean`` and ``Delta Delta
Ct``, kept as ``vendor_*`` columns so that our values can be checked against them.

Rows after the wells are not wells: ``Endogenous Control``, ``Reference Sample`` (and
other ``key value`` footers) are read into ``meta`` (``endogenous_control``,
``reference_sample``), blank and other rows are skipped. A genotyping run (``SNP Assay
Name``, allele Cts) is read with one target per allele. The standard-curve facts a run
states (slope, intercept, R^2, efficiency per target) are the vendor's curve.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_qpcr,
    half_ulp,
    normal_well,
    plate_shape,
    read_number,
    slug,
    to_float,
)
from immuno.errors import UserError

_TASK = {
    "UNKNOWN": "unknown",
    "STANDARD": "standard",
    "NTC": "ntc",
    "NAC": "nac",
    "ENDOGENOUS CONTROL": "unknown",
    "PC_ALLELE_1": "control",
    "PC_ALLELE_2": "control",
    "PC_ALLELE_BOTH": "control",
}
#: header facts kept (instrument and analysis; no people, no paths)
META_KEYS = (
    "Experiment Type",
    "Instrument Type",
    "Chemistry",
    "Quantification Cycle Method",
    "Block Type",
    "Passive Reference",
    "Software Name and Version",
)
_FOOTERS = {
    "endogenous control": "endogenous_control",
    "reference sample": "reference_sample",
    "calibrator sample": "reference_sample",
}


def _norm(col: str) -> str:
    """Column names compared without case, spaces and the Cyrillic 'т' of ``Cт``."""
    return re.sub(r"[\s_]+", " ", str(col).replace("т", "t").replace("Δ", "Delta ")).strip().lower()


def sniff(head: str) -> bool:
    """Whether text looks like a QuantStudio / 7500 text export."""
    text = head.lstrip("\ufeff")
    return text.startswith("* ") and ("[Sample Setup]" in text or "[Results]" in text)


def sniff_sheets(sheets: dict[str, pd.DataFrame]) -> bool:
    """Whether a workbook holds a QuantStudio results table."""
    return any(_sheet_header(df) is not None for df in sheets.values())


def _sheet_header(df: pd.DataFrame) -> int | None:
    for i in range(min(len(df), 80)):
        cells = {_norm(c) for c in df.iloc[i].tolist()}
        if {"well", "well position"} <= cells and cells & {
            "target name",
            "target",
            "snp assay name",
        }:
            return i
    return None


def read_quantstudio(path: str | Path, sheets: dict[str, pd.DataFrame] | None = None) -> PlateData:
    """Read a QuantStudio text or Excel export (or a Design & Analysis workbook).

    Returns
    -------
    PlateData
        ``format="quantstudio"``, ``kind="qpcr"``; ``meta`` has the experiment type and,
        when the file states them, ``endogenous_control`` and ``reference_sample``;
        ``vendor_curves`` the stated standard curve per target.
    """
    path = Path(path)
    if sheets is not None:
        return _read_excel(path, sheets)
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    header: dict[str, str] = {}
    for ln in lines:
        m = re.match(r"^\*\s*(.+?)\s*=\s*(.*)$", ln)
        if m:
            header[m.group(1)] = m.group(2).strip()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "[Results]")
    except StopIteration:
        raise UserError.single(
            str(path), "no [Results] section; expected the run exported with its results"
        ) from None
    rows: list[tuple[int, list[str]]] = []
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        rows.append((i + 1, lines[i].split("\t")))
    if len(rows) < 2:
        raise UserError.single(
            f"{path}: [Results]", "the section is empty; expected a header row and one row per well"
        )
    return _plate(path, header, rows, 0, f"{path}", "line")


def _read_excel(path: Path, sheets: dict[str, pd.DataFrame]) -> PlateData:
    found = [
        (name, df, _sheet_header(df))
        for name, df in sheets.items()
        if _sheet_header(df) is not None
    ]
    name, df, h = next((f for f in found if f[0].lower() == "results"), found[0])
    header = {
        str(df.iloc[i, 0]).strip(): str(df.iloc[i, 1]).strip()
        for i in range(h)
        if pd.notna(df.iloc[i, 0]) and df.shape[1] > 1
    }
    rows = [
        (
            i + 1,
            [
                ("" if pd.isna(c) else (repr(c) if isinstance(c, float) else str(c)))
                for c in df.iloc[i].tolist()
            ],
        )
        for i in range(h, len(df))
    ]
    plate = _plate(path, header, rows, 0, f"{path}: sheet {name!r}", "row")
    curve = sheets.get("Standard Curve Result")
    if curve is not None and _sheet_header(curve) is not None:
        plate = _merge_standard_curve(plate, curve, _sheet_header(curve))
    others = [n for n in sheets if n != name and n != "Standard Curve Result"]
    if others:
        plate.issues.append(
            PlateIssue(
                "sheet_ignored",
                str(path),
                f"sheets {', '.join(repr(n) for n in others)} "
                "left aside (curves, setup or replicate summaries)",
                blocking=False,
            )
        )
    return plate


def _plate(
    path: Path,
    header: dict[str, str],
    rows: list[tuple[int, list[str]]],
    h: int,
    where: str,
    unit: str,
) -> PlateData:
    cols = [_norm(c) for c in rows[h][1]]
    idx = {c: i for i, c in reversed(list(enumerate(cols)))}

    def pick(*names: str) -> int | None:
        return next((idx[n] for n in names if n in idx), None)

    c_well, c_pos = pick("well"), pick("well position")
    c_sample, c_target = pick("sample name", "sample"), pick("target name", "target")
    c_cq = pick("ct", "cq", "crt")
    c_snp, c_a1, c_a2 = pick("snp assay name"), pick("allele1 ct"), pick("allele2 ct")
    if c_pos is None or (c_target is None and c_snp is None) or (c_cq is None and c_a1 is None):
        raise UserError.single(
            f"{where}, {unit} {rows[h][0]}",
            "expected the columns Well Position, Target Name and CT (or Cq)",
        )
    c_task, c_rep, c_omit, c_qty = pick("task"), pick("reporter"), pick("omit"), pick("quantity")
    c_dct, c_ddct, c_rq = (
        pick("delta ct mean", "delta ct", "delta cq mean"),
        pick("delta delta ct", "delta delta cq"),
        pick("rq"),
    )
    meta = {
        k: header[k] for k in META_KEYS if header.get(k) and header[k].lower() not in ("nan", "na")
    }
    records, issues, curves = [], [], {}
    for ln, r in rows[h + 1 :]:

        def cell(c: int | None, _r: list[str] = r) -> str:
            return _r[c].strip() if c is not None and c < len(_r) else ""

        first = cell(0)
        if not re.fullmatch(r"\d+(\.0)?", cell(c_well)) or not cell(c_pos):
            key = _FOOTERS.get(first.lower().rstrip(":"))
            if key:
                meta[key] = next(
                    (c.strip() for c in r[1:] if c.strip() and c.strip().lower() != "nan"), ""
                )
            continue  # a footer or a blank row, not a well
        well = normal_well(cell(c_pos))
        task = cell(c_task).upper()
        sample = cell(c_sample)
        role = _TASK.get(task, "unknown")
        if role == "unknown" and re.match(r"(?i)^ntc\b", sample):
            role = "ntc"
        targets = (
            [(cell(c_target), cell(c_rep), cell(c_cq))]
            if c_snp is None
            else [
                (f"{cell(c_snp)} allele 1", "", cell(c_a1)),
                (f"{cell(c_snp)} allele 2", "", cell(c_a2)),
            ]
        )
        for target, reporter, cq_text in targets:
            cq, problem = read_number(cq_text, "Ct")
            if "not a number" in problem:
                issues.append(
                    PlateIssue(
                        "non_numeric",
                        f"{where}, {unit} {ln}",
                        f"well {well}, {target}: {problem}; expected a number or 'Undetermined'",
                        well,
                        target,
                    )
                )
            records.append(
                {
                    "well": well,
                    "sample_name": sample,
                    "role": role,
                    "target": target,
                    "reporter": reporter,
                    "cq": cq,
                    "quantity": to_float(cell(c_qty)),
                    "omitted": cell(c_omit),
                    "vendor_dcq": to_float(cell(c_dct)),
                    "vendor_ddcq": to_float(cell(c_ddct)),
                    "vendor_rq": to_float(cell(c_rq)),
                    # printed precision of the Ct and of the software's own numbers
                    "cq_ulp": _ulp(cq_text),
                    "vendor_dcq_ulp": _ulp(cell(c_dct)),
                    "vendor_ddcq_ulp": _ulp(cell(c_ddct)),
                    "vendor_rq_ulp": _ulp(cell(c_rq)),
                    "problem": f"{unit} {ln}: {problem}" if "not a number" in problem else "",
                }
            )
            slope = to_float(cell(pick("slope")))
            if math.isfinite(slope) and target not in curves:
                curves[target] = {
                    "target": target,
                    "slope": slope,
                    "intercept": to_float(cell(pick("y-intercept"))),
                    "r2": to_float(cell(pick("r(superscript 2)", "r2", "r^2"))),
                    "efficiency": to_float(cell(pick("efficiency"))),
                }
    if not records:
        raise UserError.single(f"{where}", "no well rows in the results table")
    name = (
        header.get("Experiment Name")
        or header.get("Experiment File Name")
        or header.get("File Name")
        or ""
    )
    plate_id = slug(name if name.lower() not in ("nan", "na") else "", slug(path.stem))
    block = re.search(r"(\d+)-Well", header.get("Block Type", ""))
    n_rows, n_cols = plate_shape(block.group(1) if block else 96)
    if "genotyping" in header.get("Experiment Type", "").lower() or c_snp is not None:
        meta["Experiment Type"] = header.get("Experiment Type", "Genotyping")
    return PlateData(
        plate_id=plate_id,
        format="quantstudio",
        kind="qpcr",
        wells=finish_qpcr(records, plate_id),
        meta=meta,
        vendor_curves=pd.DataFrame(
            list(curves.values()), columns=["target", "slope", "intercept", "r2", "efficiency"]
        ),
        issues=issues,
        rows=n_rows,
        columns=n_cols,
    )


def _ulp(text: str) -> float:
    return half_ulp(text) if math.isfinite(to_float(text)) else math.nan


def _merge_standard_curve(plate: PlateData, df: pd.DataFrame, h: int) -> PlateData:
    """Quantities and the stated curve per target from a D&A ``Standard Curve Result`` sheet."""
    cols = [_norm(c) for c in df.iloc[h].tolist()]
    body = df.iloc[h + 1 :].copy()
    body.columns = cols
    if {"well position", "target", "quantity"} <= set(cols):
        q = {
            (normal_well(str(r["well position"])), str(r["target"])): to_float(r["quantity"])
            for _, r in body.iterrows()
        }
        keys = list(zip(plate.wells["well"], plate.wells["target"], strict=True))
        plate.wells["quantity"] = [
            q.get(k, v) for k, v in zip(keys, plate.wells["quantity"], strict=True)
        ]
    if {"target", "slope"} <= set(cols):
        first = body.drop_duplicates("target")
        plate.vendor_curves = pd.DataFrame(
            {
                "target": first["target"].astype(str),
                "slope": pd.to_numeric(first["slope"], errors="coerce"),
                "intercept": pd.to_numeric(first.get("y-intercept"), errors="coerce"),
                "r2": pd.to_numeric(first.get("r2"), errors="coerce"),
                "efficiency": pd.to_numeric(first.get("efficiency"), errors="coerce"),
            }
        ).reset_index(drop=True)
    return plate
