"""MSD Discovery Workbench CSV exports.

The file starts with the plate name on its own line (``Plate_<barcode>``), then one row
per well and spot: Sample, Assay, Well, Spot, [Fit Statistic: RSquared,] [Detection
Range,] Dilution, Concentration (expected, for standards), Signal, Adjusted Signal,
Mean, ..., Calc. Concentration. Sample names follow MSD's convention: ``S001`` standard
1, ``C001`` control, ``U001`` unknown, ``B``/blank; a standard with expected
concentration 0 is the blank. The electrochemiluminescence signal takes the MFI's place
(no bead counts).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pandas as pd

from immuno.chemokines.plate import (
    PlateData,
    finish_wells,
    infer_role,
    parse_cell,
    split_location,
    to_float,
)
from immuno.errors import UserError

REQUIRED = ("Sample", "Assay", "Well", "Signal")


def sniff(head: str) -> bool:
    """Whether text looks like a Discovery Workbench export."""
    lines = head.lstrip("\ufeff").splitlines()
    return len(lines) > 1 and lines[1].startswith("Sample,Assay,Well,Spot")


def read_msd(path: str | Path) -> PlateData:
    """Read an MSD Discovery Workbench CSV into the wells table.

    Parameters
    ----------
    path
        The CSV file.

    Returns
    -------
    PlateData
        ``format="msd"``; ``vendor_result`` from Calc. Concentration, ``vendor_flag``
        from Detection Range when outside it.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise UserError.single(str(path), "too short for an MSD export (plate line, header, wells)")
    plate_id = rows[0][0].strip() or path.stem
    header = [h.strip() for h in rows[1]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError.single(f"{path}: line 2", f"missing column(s) {', '.join(missing)}")
    records = []
    for lineno, r in enumerate(rows[2:], start=3):
        if not any(c.strip() for c in r):
            continue
        rec = dict(zip(header, [c.strip() for c in r], strict=False))
        short = [c for c in REQUIRED if not rec.get(c)]
        if short:
            raise UserError.single(f"{path}: line {lineno}", f"empty or missing {', '.join(short)}; expected a value in "
                                   f"each of {', '.join(REQUIRED)}")
        role, level = infer_role(rec["Sample"])
        expected = to_float(rec.get("Concentration"))
        if role == "standard" and expected == 0:
            role, level = "blank", math.nan
        value, flag = parse_cell(rec.get("Calc. Concentration"))
        rng = rec.get("Detection Range", "")
        if rng and not rng.lower().startswith("in "):
            flag = rng
        _, well = split_location(rec["Well"])
        well = well[0] + str(int(well[1:])) if well[1:].isdigit() else well
        records.append({"plate_id": plate_id, "well": well, "acquisition_order": math.nan,
                        "sample_name": rec["Sample"], "role": role, "standard_level": level,
                        "expected_conc": expected if role == "standard" else math.nan,
                        "dilution": to_float(rec.get("Dilution")), "analyte": rec["Assay"],
                        "mfi": to_float(rec["Signal"]), "net_mfi": to_float(rec.get("Adjusted Signal", rec["Signal"])),
                        "bead_count": math.nan, "vendor_result": value, "vendor_flag": flag})
        if math.isnan(records[-1]["mfi"]):
            raise UserError.single(f"{path}: line {lineno}, column Signal", f"{rec['Signal']!r} is not a number")
    if not records:
        raise UserError.single(str(path), "no wells after the header")
    return PlateData(plate_id=plate_id, format="msd", kind="multiplex", wells=finish_wells(pd.DataFrame(records)))
