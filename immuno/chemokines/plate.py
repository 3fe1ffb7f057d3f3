"""The plate model every reader fills: one long table of wells x analytes.

Whatever the vendor, a multiplex plate becomes one row per (well, analyte) with the
columns of :data:`WELL_COLUMNS`; a qPCR run becomes one row per (well, target) with the
columns of :data:`QPCR_COLUMNS`. Vendor cells such as ``< 0.105``, ``OOR >``, ``***`` or
``*12.3`` are split into a number and a flag by :func:`parse_cell`, so that the vendor's
own judgement survives next to our numbers.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.errors import UserError

#: columns of the multiplex wells table (one row per well and analyte)
WELL_COLUMNS: list[str] = [
    "plate_id", "well", "acquisition_order", "sample_name", "role", "standard_level",
    "expected_conc", "dilution", "analyte", "mfi", "net_mfi", "bead_count",
    "vendor_result", "vendor_flag",
]
#: columns of the qPCR wells table (one row per well and target)
QPCR_COLUMNS: list[str] = [
    "plate_id", "well", "sample_name", "role", "target", "reporter", "cq", "quantity",
    "omitted",
]
ROLES = ("blank", "standard", "control", "unknown")
QPCR_ROLES = ("unknown", "standard", "ntc", "nac", "control")


@dataclass
class PlateData:
    """One plate export, read.

    Attributes
    ----------
    plate_id
        The plate's identifier (the export's batch / plate name, or the file stem).
    format
        Which reader produced it: ``xponent``, ``bioplex``, ``msd``, ``cfx``,
        ``quantstudio`` or ``rdml``.
    kind
        ``multiplex`` (wells follow :data:`WELL_COLUMNS`) or ``qpcr`` (:data:`QPCR_COLUMNS`).
    wells
        The long table.
    meta
        Instrument facts from the header (program, build, serial number, date); never
        operator names or free-text descriptions.
    vendor_curves
        The vendor's own standard-curve fit per analyte when the export carries it
        (columns analyte, model, a, b, c, d, g in the 5PL form
        ``y = d + (a - d) / (1 + (x / c) ** b) ** g``).
    control_ranges
        Kit control lot ranges (sample_name, analyte, low, high) when exported.
    units
        Concentration unit per analyte when exported.
    """

    plate_id: str
    format: str
    kind: str
    wells: pd.DataFrame
    meta: dict[str, str] = field(default_factory=dict)
    vendor_curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["analyte", "model", "a", "b", "c", "d", "g"]))
    control_ranges: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["sample_name", "analyte", "low", "high"]))
    units: dict[str, str] = field(default_factory=dict)

    @property
    def analytes(self) -> list[str]:
        """Analytes (multiplex) or targets (qPCR) in file order."""
        col = "analyte" if self.kind == "multiplex" else "target"
        return list(dict.fromkeys(self.wells[col].tolist()))

    @property
    def sample_names(self) -> list[str]:
        """Distinct sample names in acquisition order."""
        return list(dict.fromkeys(self.wells["sample_name"].tolist()))


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MISSING = {"", "nan", "n/a", "na", "none", "null", "-", "---", "***", "undetermined"}


def to_float(text: Any, decimal_comma: bool = False) -> float:
    """A cell as a float, NaN when it holds no number (``NaN``, ``N/A``, ``***``, text)."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text)
    s = str(text).strip().replace("\u00a0", "")
    if decimal_comma:
        s = s.replace(".", "").replace(",", ".") if re.match(r"^-?\d{1,3}(\.\d{3})+,\d*$", s) else s.replace(",", ".")
    elif re.match(r"^-?\d{1,3}(,\d{3})+(\.\d*)?$", s):
        s = s.replace(",", "")  # thousands separators, e.g. QuantStudio "5,720.562"
    if s.lower() in _MISSING or not _NUMBER.match(s):
        return math.nan
    return float(s)


def parse_cell(text: Any, decimal_comma: bool = False) -> tuple[float, str]:
    """Split a vendor result cell into (number, flag).

    ``< 0.105`` -> (0.105, "<"); ``> 3450`` -> (3450, ">"); ``OOR <`` -> (NaN, "OOR <");
    ``*12.3`` -> (12.3, "extrapolated"); ``***`` -> (NaN, "not_available");
    ``Control Failed.`` -> (NaN, "Control Failed."); a plain number -> (number, "").
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return math.nan, ""
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text), ""
    s = str(text).strip()
    if not s:
        return math.nan, ""
    low = s.lower()
    if low.startswith("oor"):
        return math.nan, "OOR >" if ">" in s else "OOR <"
    if s in ("***", "---"):
        return math.nan, "not_available" if s == "***" else "outlier"
    if s[0] in "<>":
        return to_float(s[1:], decimal_comma), s[0]
    if s.startswith("*"):
        return to_float(s[1:], decimal_comma), "extrapolated"
    value = to_float(s, decimal_comma)
    if math.isnan(value) and low not in _MISSING:
        return value, s[:40]
    return value, ""


_BLANK = re.compile(r"^(b|blank|bkgd|background|buffer)[\s_-]*\d*$", re.I)
_STANDARD = re.compile(r"(?:^s|standard|std)[\s_-]*0*(\d+)$", re.I)
_CONTROL = re.compile(r"(?:^c|control|ctrl|qc)[\s_-]*0*(\d+)$", re.I)
_DILUTION = re.compile(r"^1\s*[/:]\s*(\d+(?:\.\d+)?)$")


def infer_role(name: str) -> tuple[str, float]:
    """Role and standard level from a sample name (``Background0``, ``Standard3``,
    ``S3``, ``Control1``, ``African-Mix-Standard01``, a ``1/50`` dilution)."""
    s = str(name).strip()
    if _BLANK.match(s):
        return "blank", math.nan
    m = _STANDARD.search(s)
    if m:
        return "standard", float(m.group(1))
    if _CONTROL.search(s):
        return "control", math.nan
    if _DILUTION.match(s):
        return "standard", math.nan
    return "unknown", math.nan


def split_location(loc: str) -> tuple[float, str]:
    """``1(1,A1)`` -> (1, "A1"); ``97(2,A1)`` -> (97, "2:A1"); ``A1`` -> (NaN, "A1")."""
    m = re.match(r"^\s*(\d+)\s*\(\s*(\d+)\s*,\s*([A-Za-z]+\d+)\s*\)\s*$", str(loc))
    if m:
        # a multi-plate batch numbers its plates; wells of plate 2+ keep their plate apart
        well = m.group(3).upper() if m.group(2) == "1" else f"{m.group(2)}:{m.group(3).upper()}"
        return float(m.group(1)), well
    return math.nan, str(loc).strip().upper()


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
            raise UserError.single(f"{path}: line 1", "expected a plate grid (first row 1..12) or a 'well' column")
        for i, r in enumerate(rows[1:], start=2):
            letter = r[0].strip().upper()
            if not re.match(r"^[A-P]$", letter):
                raise UserError.single(f"{path}: line {i}", f"row label {letter!r}; expected a plate row letter A-P")
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
            raise UserError.single(f"{path}: well {rec['well']}", f"role {role!r}; expected one of {', '.join(ROLES)}")
        lvl = to_float(rec["standard_level"])
        out.append({"well": str(rec["well"]).upper(), "sample_name": rec["sample_name"], "role": role,
                    "standard_level": level if math.isnan(lvl) else lvl,
                    "expected_conc": expected, "dilution": to_float(rec["dilution"])})
    layout = pd.DataFrame(out)
    # dilution-named standards get levels by decreasing concentration (S1 = most concentrated)
    std = (layout["role"] == "standard") & layout["standard_level"].isna() & layout["expected_conc"].notna()
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


def finish_wells(df: pd.DataFrame) -> pd.DataFrame:
    """Order and type the wells table; fill net MFI from blanks where the export lacks it."""
    for col in WELL_COLUMNS:
        if col not in df.columns:
            df[col] = "" if col in ("vendor_flag",) else np.nan
    df = df[WELL_COLUMNS].copy()
    for col in ("acquisition_order", "standard_level", "expected_conc", "dilution", "mfi",
                "net_mfi", "bead_count", "vendor_result"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("plate_id", "well", "sample_name", "role", "analyte", "vendor_flag"):
        df[col] = df[col].fillna("").astype(str)
    missing = df["net_mfi"].isna() & df["mfi"].notna()
    if missing.any():
        blank = df[df["role"] == "blank"].groupby("analyte")["mfi"].mean()
        bg = df["analyte"].map(blank).fillna(0.0)
        df.loc[missing, "net_mfi"] = df.loc[missing, "mfi"] - bg[missing]
    df["dilution"] = df["dilution"].where(df["dilution"] > 0, np.nan)
    return df.reset_index(drop=True)
