"""The plate model every reader fills: one long table of wells x analytes.

Whatever the vendor, a multiplex plate becomes one row per (well, analyte) with the
columns of :data:`WELL_COLUMNS`; a qPCR run becomes one row per (well, target) with the
columns of :data:`QPCR_COLUMNS`. Vendor cells such as ``< 0.105``, ``OOR >``, ``***`` or
``*12.3`` are split into a number and a flag by :func:`parse_cell`, so that the vendor's
own judgement survives next to our numbers.

A value that cannot be read is never dropped: the reader leaves it NaN and writes why in
the row's ``problem`` column (``'1O5' is not a number``, ``no value in the export``), and
what concerns the file as a whole (a duplicated well, a sheet ignored) becomes a
:class:`PlateIssue`. Printed precision is kept as half a unit in the last printed digit
(``*_ulp`` columns), so that a vendor number can be checked to the precision it was
printed with.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: columns of the multiplex wells table (one row per well and analyte)
WELL_COLUMNS: list[str] = [
    "plate_id",
    "well",
    "acquisition_order",
    "sample_name",
    "role",
    "standard_level",
    "expected_conc",
    "dilution",
    "analyte",
    "mfi",
    "net_mfi",
    "bead_count",
    "vendor_result",
    "vendor_flag",
    "net_mfi_ulp",
    "vendor_result_ulp",
    "problem",
]
#: columns of the qPCR wells table (one row per well and target)
QPCR_COLUMNS: list[str] = [
    "plate_id",
    "well",
    "sample_name",
    "role",
    "target",
    "reporter",
    "cq",
    "quantity",
    "omitted",
    "vendor_dcq",
    "vendor_ddcq",
    "vendor_rq",
    "cq_ulp",
    "vendor_dcq_ulp",
    "vendor_ddcq_ulp",
    "vendor_rq_ulp",
    "problem",
]
ROLES = ("blank", "standard", "control", "unknown")
QPCR_ROLES = ("unknown", "standard", "ntc", "nac", "control")
#: plate sizes by well count: (rows, columns)
PLATE_SHAPES = {
    6: (2, 3),
    12: (3, 4),
    24: (4, 6),
    48: (6, 8),
    96: (8, 12),
    384: (16, 24),
    1536: (32, 48),
}


@dataclass(frozen=True)
class PlateIssue:
    """Something about an export as a whole: a duplicated or impossible well, an
    unreadable cell, decimal commas, a sheet left aside.

    ``blocking`` issues are problems for ``immuno validate`` (the export must be fixed or
    re-exported); the others are notes. Quantification never stops on either: the wells
    concerned are left out of fits and means and flagged.
    """

    kind: str
    where: str
    what: str
    well: str = ""
    analyte: str = ""
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


@dataclass
class PlateData:
    """One plate export, read.

    Attributes
    ----------
    plate_id
        The plate's identifier: a safe slug of the export's batch / plate name (never a
        path), or of the file name.
    format
        Which reader produced it (``xponent``, ``intelliflex``, ``bioplex``,
        ``bioplex_xml``, ``msd``, ``methodical_mind``, ``cfx``, ``quantstudio``, ``rdml``,
        ``legendplex``).
    kind
        ``multiplex`` (wells follow :data:`WELL_COLUMNS`) or ``qpcr`` (:data:`QPCR_COLUMNS`).
    wells
        The long table.
    meta
        Instrument facts from the header (program, build, serial number, date); never
        operator names, paths or free-text descriptions.
    vendor_curves
        The vendor's own standard-curve fit per analyte when the export carries it
        (columns analyte, model, a, b, c, d, g in the 5PL form
        ``y = d + (a - d) / (1 + (x / c) ** b) ** g``, and their printed half-units
        a_ulp ... g_ulp).
    control_ranges
        Kit control lot ranges (sample_name, analyte, low, high) when exported.
    units
        Concentration unit per analyte when exported.
    issues
        Problems and notes about the export as a whole (see :class:`PlateIssue`).
    rows, columns
        The plate's geometry (8 x 12 unless the export says otherwise).
    negative_beads
        Analytes that are blank / negative-control bead regions: used for background,
        never fitted.
    beads
        Bead populations found per well when the plate was classified from events
        (LEGENDplex: well, file, group, bead, analyte, events, medians and reporter CV);
        empty for plate exports.
    """

    plate_id: str
    format: str
    kind: str
    wells: pd.DataFrame
    meta: dict[str, str] = field(default_factory=dict)
    vendor_curves: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["analyte", "model", "a", "b", "c", "d", "g"])
    )
    control_ranges: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["sample_name", "analyte", "low", "high"])
    )
    units: dict[str, str] = field(default_factory=dict)
    issues: list[PlateIssue] = field(default_factory=list)
    rows: int = 8
    columns: int = 12
    negative_beads: list[str] = field(default_factory=list)
    beads: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def analytes(self) -> list[str]:
        """Analytes (multiplex) or targets (qPCR) in file order."""
        col = "analyte" if self.kind == "multiplex" else "target"
        return list(dict.fromkeys(self.wells[col].tolist()))

    @property
    def sample_names(self) -> list[str]:
        """Distinct sample names in acquisition order."""
        return list(dict.fromkeys(self.wells["sample_name"].tolist()))


# --- cells -----------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: what vendors write for "no value": not a reading problem of ours, but still no number
MISSING = {
    "",
    "nan",
    "n/a",
    "na",
    "none",
    "null",
    "-",
    "---",
    "***",
    "undetermined",
    "no ct",
    "no cq",
}


def to_float(text: Any, decimal_comma: bool = False) -> float:
    """A cell as a float, NaN when it holds no number (``NaN``, ``N/A``, ``***``, text)."""
    if text is None:
        return math.nan
    if isinstance(text, (bool, np.bool_)):
        return math.nan
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text)
    s = str(text).strip().replace("\u00a0", "")
    if decimal_comma:
        s = (
            s.replace(".", "").replace(",", ".")
            if re.match(r"^-?\d{1,3}(\.\d{3})+,\d*$", s)
            else s.replace(",", ".")
        )
    elif re.match(r"^-?\d{1,3}(,\d{3})+\.\d*$", s) or re.match(r"^-?\d{1,3}(,\d{3}){2,}$", s):
        s = s.replace(",", "")  # digit grouping with a decimal point, e.g. QuantStudio "5,720.562"
    if s.lower() in MISSING or not _NUMBER.match(s):
        return math.nan
    return float(s)


def read_number(text: Any, what: str = "value", decimal_comma: bool = False) -> tuple[float, str]:
    """A cell as (number, problem): the problem is empty for a number, says that the export
    gives no value for a vendor "missing" marker, and that the text is not a number
    otherwise (``'1O5'``, ``'12,5.3'``)."""
    value = to_float(text, decimal_comma)
    if math.isfinite(value):
        return value, ""
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text).strip()
    if s.lower() in MISSING:
        return math.nan, f"no {what} in the export ({s!r})" if s else f"no {what} in the export"
    return math.nan, f"{what} {s[:40]!r} is not a number"


def half_ulp(text: Any) -> float:
    """Half a unit in the last printed digit of a number: ``'0.15'`` -> 0.005,
    ``'16123.9'`` -> 0.05, ``'3.81249E+006'`` -> 5.0, ``500`` -> 0.5. A float read from a
    spreadsheet is judged by its shortest representation (what the vendor printed)."""
    if text is None:
        return math.nan
    if isinstance(text, (int, np.integer)) or (
        isinstance(text, (float, np.floating))
        and float(text).is_integer()
        and abs(float(text)) < 1e15
    ):
        return 0.5  # a whole number printed without decimals (a spreadsheet stores 93 as 93.0)
    s = repr(float(text)) if isinstance(text, (float, np.floating)) else str(text).strip()
    s = (
        s.lstrip("*<> ").replace(",", "")
        if s.count(",") and "." in s
        else s.lstrip("*<> ").replace(",", ".")
    )
    m = re.match(r"^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$", s)
    if not m or not (m.group(1) or m.group(2)):
        return math.nan
    decimals = len(m.group(2) or "")
    exponent = int(m.group(3) or 0)
    return 0.5 * 10.0 ** (exponent - decimals)


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
    if math.isnan(value) and low not in MISSING:
        return value, s[:40]
    return value, ""


# --- names, roles, wells ---------------------------------------------------------------

_BLANK = re.compile(r"^(b|blank|bkgd|background|buffer)[\s_-]*\d*$", re.I)
_STANDARD = re.compile(r"(?:^s|standard|std)[\s_-]*0*(\d+)$", re.I)
_CONTROL = re.compile(r"(?:^c|control|ctrl|qc)[\s_-]*0*(\d+)$", re.I)
_DILUTION = re.compile(r"^1\s*[/:]\s*(\d+(?:\.\d+)?)$")
#: bead regions that measure non-specific binding (a "Blank" or negative-control bead)
_NEGATIVE_BEAD = re.compile(
    r"(^|[^a-z])(blank|bkgd|background|neg|negative|nc)([^a-z]|$)|negative", re.I
)


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


def is_negative_bead(analyte: str) -> bool:
    """Whether a bead region's name marks a blank / negative-control bead (``Blank (53)``,
    ``MyNegative (4)``, ``Neg ctrl``); a panel may also list them."""
    return bool(_NEGATIVE_BEAD.search(str(analyte)))


def split_location(loc: str) -> tuple[float, str]:
    """``1(1,A1)`` -> (1, "A1"); ``97(2,A1)`` -> (97, "2:A1"); ``A01`` -> (NaN, "A1")."""
    m = re.match(r"^\s*(\d+)\s*\(\s*(\d+)\s*,\s*([A-Za-z]+\d+)\s*\)\s*$", str(loc))
    if m:
        # a multi-plate batch numbers its plates; wells of plate 2+ keep their plate apart
        well = (
            normal_well(m.group(3))
            if m.group(2) == "1"
            else f"{m.group(2)}:{normal_well(m.group(3))}"
        )
        return float(m.group(1)), well
    return math.nan, normal_well(str(loc))


def normal_well(text: str) -> str:
    """``a01`` -> ``A1``; anything that is not a row letter and a number is kept as is."""
    s = str(text).strip().replace(" ", "")
    m = re.fullmatch(r"([A-Za-z]{1,2})0*(\d+)", s)
    return f"{m.group(1).upper()}{m.group(2)}" if m else s.upper()


def well_position(well: str) -> tuple[int, int] | None:
    """(row index from 0, column number) of ``A1`` / ``2:A1``; None when not a well."""
    m = re.fullmatch(r"(?:\d+:)?([A-Z]{1,2})(\d+)", str(well))
    if not m:
        return None
    letters = m.group(1)
    row = (
        (ord(letters[0]) - 65)
        if len(letters) == 1
        else 26 * (ord(letters[0]) - 64) + ord(letters[1]) - 65
    )
    return row, int(m.group(2))


def member_wells(well: str) -> list[str]:
    """The wells a row stands for: ``A1,B1`` (a replicate group averaged by the vendor) ->
    [``A1``, ``B1``]."""
    return [normal_well(w) for w in re.split(r"[,;]", str(well)) if w.strip()]


def plate_shape(n_wells: Any) -> tuple[int, int]:
    """(rows, columns) of a plate of ``n_wells`` wells (96 when unknown)."""
    try:
        return PLATE_SHAPES[int(float(str(n_wells).strip()))]
    except (KeyError, ValueError):
        return PLATE_SHAPES[96]


def slug(text: Any, fallback: str = "plate") -> str:
    """A safe identifier from an export's name: the last part of a Windows or POSIX path,
    without its extension, letters digits ``._-`` only (``C:\\Lab\\Run 3.srbx`` -> ``Run_3``).
    Used for plate ids and the names of output files, so no path ever leaks into them."""
    name = re.split(r"[\\/]", str(text or "").strip())[-1]
    name = re.sub(r"\.(srbx|eds|edt|csv|xlsx?|txt|rdml|xml|wsp|spbx)$", "", name, flags=re.I)
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return out[:80] or fallback


def finish_wells(df: pd.DataFrame) -> pd.DataFrame:
    """Order and type the wells table; fill net MFI from blank wells where the export lacks
    it (Net MFI = MFI - mean of the blank wells of the analyte)."""
    for col in WELL_COLUMNS:
        if col not in df.columns:
            df[col] = "" if col in ("vendor_flag", "problem") else np.nan
    df = df[WELL_COLUMNS].copy()
    for col in (
        "acquisition_order",
        "standard_level",
        "expected_conc",
        "dilution",
        "mfi",
        "net_mfi",
        "bead_count",
        "vendor_result",
        "net_mfi_ulp",
        "vendor_result_ulp",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("plate_id", "well", "sample_name", "role", "analyte", "vendor_flag", "problem"):
        df[col] = df[col].fillna("").astype(str)
    missing = df["net_mfi"].isna() & df["mfi"].notna()
    if missing.any():
        ok_blank = (df["role"] == "blank") & (df["problem"] == "")
        blank = df[ok_blank].groupby("analyte")["mfi"].mean()
        bg = df["analyte"].map(blank).fillna(0.0)
        df.loc[missing, "net_mfi"] = df.loc[missing, "mfi"] - bg[missing]
    df["dilution"] = df["dilution"].where(df["dilution"] > 0, np.nan)
    return df.reset_index(drop=True)


_FLOATS = (
    "cq",
    "quantity",
    "vendor_dcq",
    "vendor_ddcq",
    "vendor_rq",
    "cq_ulp",
    "vendor_dcq_ulp",
    "vendor_ddcq_ulp",
    "vendor_rq_ulp",
)


def finish_qpcr(records: list[dict], plate_id: str) -> pd.DataFrame:
    """Order and type the qPCR wells table."""
    df = pd.DataFrame(records)
    for col in QPCR_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan if col in _FLOATS else ""
    df["plate_id"] = plate_id
    df = df[QPCR_COLUMNS].copy()
    for col in _FLOATS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df.loc[df["cq"] <= 0, "cq"] = math.nan  # RDML writes -1 for "no Cq"
    df["omitted"] = df["omitted"].astype(str).str.lower().isin(["true", "1", "yes"])
    for col in ("plate_id", "well", "sample_name", "role", "target", "reporter", "problem"):
        df[col] = df[col].fillna("").astype(str)
    return df.reset_index(drop=True)
