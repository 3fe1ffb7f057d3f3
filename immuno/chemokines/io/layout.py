"""Plate layouts: which sample sits in which well, for labs that rename samples.

A layout is a plate grid (first row the column numbers, first column the row letters,
cells the sample names) or a long table with a ``well`` column. Its names and roles
replace the export's.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.io.plate import _DILUTION, ROLES, infer_role, normal_well, to_float
from immuno.errors import UserError


def read_layout(path: str | Path) -> pd.DataFrame:
    """Read a plate layout file: which sample sits in which well.

    Two shapes are accepted: a plate grid (first row the column numbers 1..12, first
    column the row letters A..H, cells the sample names), or a long table with a
    ``well`` column and ``sample_name`` (optionally ``role``, ``standard_level``,
    ``expected_conc``, ``dilution``). Grid cells like ``1/50`` are standards whose
    relative concentration is the dilution (serology curves); ``B``/``Blank`` are blanks.

    Returns
    -------
    pandas.DataFrame
        Columns well, sample_name, role, standard_level, expected_conc, dilution.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError.single(str(path), f"cannot read the plate layout ({exc})") from None
    first = text.splitlines()[0] if text.strip() else ""
    delim = ";" if first.count(";") > first.count(",") else ("\t" if "\t" in first else ",")
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if any(c.strip() for c in r)]
    if not rows:
        raise UserError.single(str(path), "the plate layout is empty")
    header = [h.strip() for h in rows[0]]
    records: list[dict[str, Any]] = []
    if "well" in [h.lower() for h in header]:
        cols = [h.lower() for h in header]
        for i, r in enumerate(rows[1:], start=2):
            rec = dict(zip(cols, [c.strip() for c in r], strict=False))
            if not rec.get("well"):
                raise UserError.single(f"{path}: line {i}", "empty well; expected e.g. A1")
            records.append(rec)
        df = pd.DataFrame(records)
    else:
        numbers = header[1:]
        if not all(n.strip().isdigit() for n in numbers if n.strip()):
            raise UserError.single(
                f"{path}: line 1", "expected a plate grid (first row 1..12) or a 'well' column"
            )
        for i, r in enumerate(rows[1:], start=2):
            letter = r[0].strip().upper()
            if not re.match(r"^[A-P]$", letter):
                raise UserError.single(
                    f"{path}: line {i}", f"row label {letter!r}; expected a plate row letter A-P"
                )
            for num, cell in zip(numbers, r[1:], strict=False):
                if cell.strip() and num.strip():
                    records.append({"well": f"{letter}{int(num)}", "sample_name": cell.strip()})
        df = pd.DataFrame(records)
    for col in ("role", "standard_level", "expected_conc", "dilution"):
        if col not in df.columns:
            df[col] = ""
    out = []
    for rec in df.to_dict("records"):
        role, level = infer_role(rec["sample_name"])
        m = _DILUTION.match(rec["sample_name"])
        expected = to_float(rec["expected_conc"])
        if m and math.isnan(expected):
            expected = 1.0 / float(m.group(1))
        role = rec["role"].strip().lower() or role
        if role not in ROLES:
            raise UserError.single(
                f"{path}: well {rec['well']}", f"role {role!r}; expected one of {', '.join(ROLES)}"
            )
        lvl = to_float(rec["standard_level"])
        out.append(
            {
                "well": normal_well(rec["well"]),
                "sample_name": rec["sample_name"],
                "role": role,
                "standard_level": level if math.isnan(lvl) else lvl,
                "expected_conc": expected,
                "dilution": to_float(rec["dilution"]),
            }
        )
    layout = pd.DataFrame(out)
    # dilution-named standards get levels by decreasing concentration (S1 = most concentrated)
    std = (
        (layout["role"] == "standard")
        & layout["standard_level"].isna()
        & layout["expected_conc"].notna()
    )
    if std.any():
        ranks = layout.loc[std, "expected_conc"].rank(method="dense", ascending=False)
        layout.loc[std, "standard_level"] = ranks
    return layout


def apply_layout(wells: pd.DataFrame, layout: pd.DataFrame) -> pd.DataFrame:
    """Take sample names and roles from a layout (by well); layout values win where set."""
    lay = layout.set_index("well")
    out = wells.copy()
    hit = out["well"].isin(lay.index)
    w = out.loc[hit, "well"]
    out.loc[hit, "sample_name"] = lay.loc[w, "sample_name"].to_numpy()
    out.loc[hit, "role"] = lay.loc[w, "role"].to_numpy()
    out.loc[hit, "standard_level"] = lay.loc[w, "standard_level"].to_numpy()
    for col in ("expected_conc", "dilution"):
        vals = lay.loc[w, col].to_numpy(dtype=float)
        cur = out.loc[hit, col].to_numpy(dtype=float)
        out.loc[hit, col] = np.where(np.isnan(vals), cur, vals)
    return out
