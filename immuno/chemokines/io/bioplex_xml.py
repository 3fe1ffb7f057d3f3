"""Bio-Plex Manager 6.x XML export (``bpm:BioPlexManager``).

The document lists the plate's wells with their bead-region counts (``Wells/Well``), the
standard curves (``StandardCurves/Interpolators``: regression type, or the reason no
curve was computed) and the samples by role (``Samples/Blanks|Controls|Standards|
Unknowns``), each with its label (B, C1, S1, X1), dilution, expected concentration per
analyte and its member wells' readings (FI) and observed concentrations.
Readings the operator marked as outliers, or the software as invalid, are kept with
that reason and left out of fits; a per-well sampling-error code (low bead count, bead
aggregates, ...) is kept as the vendor's flag.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    is_negative_bead,
    plate_shape,
    slug,
    to_float,
)
from immuno.errors import UserError

_ROLE = {"Blanks": "blank", "Controls": "control", "Standards": "standard", "Unknowns": "unknown"}
#: Bio-Plex sampling-error codes of a reading
SAMPLING_ERRORS = {
    "1": "low bead count",
    "2": "bead aggregates",
    "3": "classification",
    "4": "region selection",
    "5": "platform temperature",
}


def _local(el: ElementTree.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _child(el: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c) == name), None)


def _children(el: ElementTree.Element | None, name: str) -> list[ElementTree.Element]:
    return [c for c in el if _local(c) == name] if el is not None else []


def _all(el: ElementTree.Element | None) -> list[ElementTree.Element]:
    return list(el) if el is not None else []


def _text(el: ElementTree.Element | None, name: str) -> str:
    c = _child(el, name)
    return "".join(c.itertext()).strip() if c is not None else ""


def _well(el: ElementTree.Element) -> str:
    row, col = int(el.get("RowNo", "0")), int(el.get("ColNo", "0"))
    return f"{chr(64 + row)}{col}" if 1 <= row <= 26 else f"R{row}C{col}"


def read_bioplex_xml(path: str | Path) -> PlateData:
    """Read a Bio-Plex Manager XML export into the wells table.

    Returns
    -------
    PlateData
        ``format="bioplex_xml"``; bead counts from the wells' region counts where the
        document carries them; a note for every analyte without a vendor curve.
    """
    path = Path(path)
    where = str(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise UserError.single(where, f"not a readable XML document ({exc})") from None
    dims = _child(root, "PlateDimensions")
    n_rows, n_cols = plate_shape(dims.get("TotalWells", 96) if dims is not None else 96)
    counts: dict[tuple[str, str], float] = {}
    for w in _children(_child(root, "Wells"), "Well"):
        for region in _children(_child(w, "BeadRegions"), "BeadRegion"):
            counts[(_well(w), region.get("RegionNumber", ""))] = to_float(
                _text(region, "RegionCount")
            )
    issues: list[PlateIssue] = []
    for interp in _children(
        _child(_child(root, "StandardCurves"), "Interpolators"), "Interpolator"
    ):
        err = _text(interp, "EquationErr")
        if err:
            issues.append(
                PlateIssue(
                    "vendor_curve_missing",
                    where,
                    f"analyte {_text(interp, 'AnalyteName')}: Bio-Plex "
                    f"Manager computed no curve ({err})",
                    "",
                    _text(interp, "AnalyteName"),
                    blocking=False,
                )
            )
    records = []
    for group, role in _ROLE.items():
        for sample in _all(_child(_child(root, "Samples"), group)):
            label = _text(sample, "Label")
            name = _text(sample, "Description") or label
            level = to_float(label[1:]) if role == "standard" and label[1:].isdigit() else math.nan
            dilution = 1.0 if role == "standard" else to_float(_text(sample, "Dilution"))
            expected = {
                _text(a, "AnalyteName"): to_float(_text(a, "ExpectedConc"))
                for a in _children(_child(sample, "Analytes"), "Analyte")
            }
            for mw in _children(_child(sample, "MemberWells"), "MemberWell"):
                well = _well(mw)
                for mwa in _children(_child(mw, "MWAnalytes"), "MWAnalyte"):
                    analyte = _text(mwa, "AnalyteName")
                    reading = _child(mwa, "Reading")
                    fi = (
                        to_float(reading.text) if reading is not None and reading.text else math.nan
                    )
                    problem = ""
                    if reading is not None and reading.get("OutlierType", "None") != "None":
                        problem = f"designated an outlier in Bio-Plex Manager ({reading.get('OutlierType')})"
                    elif reading is not None and reading.get("Valid", "true") != "true":
                        problem = "reading marked invalid by Bio-Plex Manager"
                    elif not math.isfinite(fi):
                        problem = "no FI in the export"
                    code = reading.get("Code", "0") if reading is not None else "0"
                    obs = _child(mwa, "MWObsConc")
                    ok = obs is not None and obs.get("ReadingOK", "false") == "true"
                    exp = expected.get(analyte, math.nan)
                    records.append(
                        {
                            "well": well,
                            "acquisition_order": math.nan,
                            "sample_name": name,
                            "role": role,
                            "standard_level": level,
                            "expected_conc": exp if exp > 0 else math.nan,
                            "dilution": dilution,
                            "analyte": analyte,
                            "mfi": fi if not problem else math.nan,
                            "bead_count": counts.get((well, mwa.get("RegionNumber", "")), math.nan),
                            "vendor_result": to_float("".join(obs.itertext())) if ok else math.nan,
                            "vendor_flag": f"sampling error {code} ({SAMPLING_ERRORS.get(code, 'unknown')})"
                            if code != "0"
                            else "",
                            "problem": f"well {well}: {problem}" if problem else "",
                        }
                    )
    if not records:
        raise UserError.single(
            where,
            "no sample with member-well readings under Samples; expected a Bio-Plex "
            "Manager XML export with results",
        )
    plate_id = slug(_text(root, "NativeDocumentName"), slug(path.stem))
    wells = finish_wells(pd.DataFrame(records).assign(plate_id=plate_id))
    meta = {"Build": root.get("BioPlexManagerVersion", "")}
    analytes = list(dict.fromkeys(wells["analyte"]))
    return PlateData(
        plate_id=plate_id,
        format="bioplex_xml",
        kind="multiplex",
        wells=wells,
        meta=meta,
        issues=issues,
        rows=n_rows,
        columns=n_cols,
        negative_beads=[a for a in analytes if is_negative_bead(a)],
    )
