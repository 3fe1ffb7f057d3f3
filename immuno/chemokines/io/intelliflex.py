"""Luminex INTELLIFLEX native CSV export (DR-SE software 2.x): one row per well.

The header row names run facts (MODEL NAME, SERIAL NUMBER, PLATE NAME, PLATE TYPE NAME,
WELL LOCATION, WELL TYPE, WELL STATUS, SAMPLE ID, DILUTION, ...) and, per bead region,
columns ``R<n>: RP1 ANALYTE NAME``, ``MEDIAN``, ``BACKGROUND``, ``NET MEDIAN``, ``COUNT``.
Well types: ``U<n>`` unknown, ``S<n>`` standard, ``C<n>`` control, ``B`` blank. A well the
instrument could not read (status ``Dry``) carries no values: its rows say so. The file
ends with a document signature block, which holds no wells.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import pandas as pd

from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    half_ulp,
    is_negative_bead,
    normal_well,
    plate_shape,
    read_number,
    slug,
)
from immuno.errors import UserError

_REGION = re.compile(r"^R(\d+): RP1 (.+)$")


def sniff(head: str) -> bool:
    """Whether text looks like a native INTELLIFLEX export."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    return first.startswith("MODEL NAME,") and "WELL LOCATION" in first


def _role(well_type: str) -> tuple[str, float]:
    t = well_type.strip().upper()
    if re.fullmatch(r"B\d*", t):
        return "blank", math.nan
    m = re.fullmatch(r"S(\d+)", t)
    if m:
        return "standard", float(m.group(1))
    if re.fullmatch(r"C\d+", t):
        return "control", math.nan
    return "unknown", math.nan


def read_intelliflex(path: str | Path) -> PlateData:
    """Read a native INTELLIFLEX CSV export into the wells table.

    Returns
    -------
    PlateData
        ``format="intelliflex"``; analytes named from the region's ANALYTE NAME column
        (the region number when no well names it).
    """
    path = Path(path)
    where = str(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig", errors="replace"))))
    header = [h.strip() for h in rows[0]]
    regions: dict[str, dict[str, int]] = {}
    for i, h in enumerate(header):
        m = _REGION.match(h)
        if m:
            regions.setdefault(m.group(1), {})[m.group(2)] = i
    if "WELL LOCATION" not in header or not regions:
        raise UserError.single(
            f"{where}: line 1", "expected WELL LOCATION and 'R<n>: RP1 ...' region columns"
        )
    col = {h: i for i, h in enumerate(header)}
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if len(r) >= len(header) // 2]
    names: dict[str, str] = {}
    for _, r in body:
        for reg, c in regions.items():
            name = r[c["ANALYTE NAME"]].strip() if "ANALYTE NAME" in c else ""
            if name and name.lower() != "nan":
                names.setdefault(reg, name)
    records, issues = [], []
    plate_name = ""
    for ln, r in body:
        get = {h: r[i].strip() if i < len(r) else "" for h, i in col.items()}
        plate_name = plate_name or get.get("PLATE NAME", "")
        role, level = _role(get.get("WELL TYPE", ""))
        well = normal_well(get["WELL LOCATION"])
        status = get.get("WELL STATUS", "")
        dil, _ = read_number(get.get("DILUTION"), "dilution")
        for reg, c in regions.items():
            analyte = names.get(reg, f"R{reg}")
            med, p_med = read_number(r[c["MEDIAN"]] if "MEDIAN" in c else "", "MFI")
            net, p_net = read_number(r[c["NET MEDIAN"]] if "NET MEDIAN" in c else "", "net MFI")
            count, _ = read_number(r[c["COUNT"]] if "COUNT" in c else "", "bead count")
            problem = p_net or p_med
            if problem and status and status.lower() not in ("complete", "ok", "success"):
                problem = f"well status {status!r}: {problem}"
            if "not a number" in problem:
                issues.append(
                    PlateIssue(
                        "non_numeric",
                        f"{where}: line {ln}",
                        f"well {well}, {analyte}: {problem}; expected a number",
                        well,
                        analyte,
                    )
                )
            records.append(
                {
                    "well": well,
                    "acquisition_order": float(ln - 1),
                    "sample_name": get.get("SAMPLE ID", ""),
                    "role": role,
                    "standard_level": level,
                    "dilution": dil,
                    "analyte": analyte,
                    "mfi": med,
                    "net_mfi": net,
                    "bead_count": count,
                    "net_mfi_ulp": half_ulp(r[c["NET MEDIAN"]]) if math.isfinite(net) else math.nan,
                    "problem": f"line {ln}: {problem}" if problem else "",
                }
            )
    if not records:
        raise UserError.single(where, "no well rows after the header")
    first = body[0][1]
    meta = {
        k: first[col[k]].strip()
        for k in ("MODEL NAME", "SERIAL NUMBER")
        if k in col and col[k] < len(first)
    }
    if "SOFTWARE VERSION" in col:
        meta["Build"] = first[col["SOFTWARE VERSION"]].split("/")[0].strip()
    start = first[col["PLATE START"]] if "PLATE START" in col else ""
    meta["date_iso"] = start[:10] if re.match(r"\d{4}-\d{2}-\d{2}", start) else ""
    plate_id = slug(plate_name, slug(path.stem))
    n_rows, n_cols = plate_shape(
        re.match(r"\d+", first[col["PLATE TYPE NAME"]]).group(0)
        if "PLATE TYPE NAME" in col and re.match(r"\d+", first[col["PLATE TYPE NAME"]])
        else 96
    )
    wells = finish_wells(pd.DataFrame(records).assign(plate_id=plate_id))
    analytes = list(dict.fromkeys(wells["analyte"]))
    return PlateData(
        plate_id=plate_id,
        format="intelliflex",
        kind="multiplex",
        wells=wells,
        meta=meta,
        issues=issues,
        rows=n_rows,
        columns=n_cols,
        negative_beads=[a for a in analytes if is_negative_bead(a)],
    )
