"""xPONENT blocks that are not per-well readings: per-reagent (or per-well) expected
concentrations and control ranges, and the vendor's curve coefficients.

``Standard Expected Concentration``, ``Control Expected Concentration`` and ``Control
Range Low/High`` (also spelt ``Control Range - Low``) come per well
(``Location,Sample,<analytes>``) or, in xPONENT 3.1 and kit protocols, per reagent
(``Reagent,<analytes>`` then one row per standard or control, matched to the wells by
sample name; a transposed table is recognised too). ``Analysis Coefficients`` rows are
labelled ``A``..``F``, ``A:`` or ``Coefficient A``..``E`` depending on the build.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from immuno.chemokines.io.delimited import Row
from immuno.chemokines.io.plate import PlateIssue, half_ulp, read_number, to_float
from immuno.errors import UserError


def per_well(block: list[Row], where: str) -> tuple[list[str], list[Row]]:
    """Analyte names and data rows of a per-well block (``Location,Sample,...``)."""
    if not block or len(block[0][1]) < 2 or block[0][1][0] != "Location":
        ln = block[0][0] if block else "?"
        raise UserError.single(
            f"{where}, line {ln}", "expected a header row starting with Location,Sample"
        )
    names = block[0][1][2:]
    body = [(ln, r) for ln, r in block[1:] if r and r[0] != "Location"]
    return names, body


def per_analyte(block: list[Row]) -> dict[str, list[str]]:
    """Labelled rows of a per-analyte block (``Analyte:,...`` then ``<label>,<values>``)."""
    out: dict[str, list[str]] = {}
    for _, r in block:
        if r:
            out[r[0].rstrip(":")] = r[1:]
    return out


def reagent_values(
    block: list[Row],
    name: str,
    where: str,
    dec: bool,
    analytes: list[str],
    by_name: dict[str, list[str]],
    info: dict[str, dict[str, object]],
    issues: list[PlateIssue],
) -> list[tuple[str, str, float]]:
    """(location or reagent name, analyte, value) from a per-well or per-reagent block."""
    if not block:
        return []
    head = block[0][1]
    out: list[tuple[str, str, float]] = []
    if head and head[0] == "Location":
        names, body = per_well(block, f"{where}: block {name!r}")
        for ln, r in body:
            for i, a in enumerate(names):
                if a not in analytes:
                    continue  # e.g. Total Events
                cell = r[2 + i] if len(r) > 2 + i else ""
                value, problem = read_number(cell, name.lower(), dec)
                if math.isfinite(value):
                    out.append((r[0], a, value))
                elif "not a number" in problem:
                    well = str(info.get(r[0], {}).get("well", r[0]))
                    issues.append(
                        PlateIssue(
                            "non_numeric",
                            f"{where}: line {ln}",
                            f"block {name!r}, well {well}, {a}: {problem}; expected a number",
                            well,
                            a,
                        )
                    )
        return out
    # per reagent: a header naming the analytes (or, transposed, the reagents)
    cols = head[1:]
    transposed = not any(c in analytes for c in cols) and any(c in by_name for c in cols)
    for ln, r in block[1:]:
        if not r or r[0] == head[0]:
            continue
        for i, col in enumerate(cols):
            reagent, analyte = (col, r[0].rstrip(":")) if transposed else (r[0], col)
            if analyte not in analytes:
                continue
            cell = r[1 + i] if len(r) > 1 + i else ""
            value, problem = read_number(cell, name.lower(), dec)
            if "not a number" in problem:
                issues.append(
                    PlateIssue(
                        "non_numeric",
                        f"{where}: line {ln}",
                        f"block {name!r}, reagent {reagent}, "
                        f"{analyte}: {problem}; expected a number",
                        "",
                        analyte,
                    )
                )
            if not math.isfinite(value):
                continue
            if reagent not in by_name:
                issues.append(
                    PlateIssue(
                        "unmatched_reagent",
                        f"{where}: line {ln}",
                        f"block {name!r}: reagent {reagent!r} names no sample on the plate; expected "
                        f"one of the plate's standard or control names",
                        "",
                        analyte,
                        blocking=False,
                    )
                )
                break
            out.append((reagent, analyte, value))
    return out


def control_ranges(ranges: list[dict[str, object]]) -> pd.DataFrame:
    cols = ["sample_name", "analyte", "low", "high"]
    if not ranges:
        return pd.DataFrame(columns=cols)
    cr = (
        pd.DataFrame(ranges)
        .pivot_table(
            index=["sample_name", "analyte"], columns="side", values="value", aggfunc="first"
        )
        .reset_index()
    )
    for side in ("low", "high"):
        if side not in cr.columns:
            cr[side] = np.nan
    out = cr[cols].copy()
    out.columns.name = None
    return out


def coefficient_letter(label: str) -> str:
    """The coefficient a row label names, in any vendor spelling: ``A``, ``A:``,
    ``Coefficient A``, ``Coeff. B``, ``coef_c`` -> ``a``..``f``; ``""`` otherwise."""
    s = re.sub(r"[^a-z]", "", label.lower())
    s = re.sub(r"^(coefficients?|coeff?s?)", "", s)
    return s if len(s) == 1 and s in "abcdef" else ""


def coefficients(
    blocks: dict[str, list[Row]], dec: bool, where: str, issues: list[PlateIssue]
) -> pd.DataFrame:
    """The vendor's curve per analyte from ``Analysis Coefficients`` (and ``Analysis Types``).

    xPONENT writes ``y = A + (B - A) / (1 + (x / C) ** D) ** F`` (F absent or 1 for 4PL;
    builds that label the rows A..E use E for the asymmetry): A is the response at zero
    concentration for D < 0 ... whichever the sign, in our form
    ``y = d + (a - d) / (1 + (x / c) ** b) ** g`` that is d=A, a=B, c=C, b=D, g=F (or E).
    """
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
    if "Analysis Coefficients" not in blocks:
        return pd.DataFrame(columns=cols)
    block = blocks["Analysis Coefficients"]
    lab = per_analyte(block)
    names = lab.pop("Analyte", [])
    letters = {coefficient_letter(k): v for k, v in lab.items() if coefficient_letter(k)}
    unknown = [k for k in lab if not coefficient_letter(k)]
    if unknown or not {"a", "b", "c", "d"} <= set(letters):
        ln = block[0][0] if block else "?"
        issues.append(
            PlateIssue(
                "coefficients_not_understood",
                f"{where}: line {ln}",
                f"block 'Analysis Coefficients' rows {', '.join(repr(k) for k in lab)} not understood; "
                "expected A, B, C, D and E or F (also spelt 'A:' or 'Coefficient A'); "
                "the vendor curve is not used",
                blocking=False,
            )
        )
        return pd.DataFrame(columns=cols)
    types = per_analyte(blocks.get("Analysis Types", []))
    type_of = dict(
        zip(
            types.get("Analyte", []),
            types.get("AnalysisType", types.get("Analysis Type", [])),
            strict=False,
        )
    )
    asym = "f" if "f" in letters else ("e" if "e" in letters else "")
    out = []
    for i, a in enumerate(names):

        def cell(key: str, _i: int = i) -> str:
            vals = letters.get(key, [])
            return vals[_i] if _i < len(vals) else ""

        kind = type_of.get(a, "")
        if kind and not re.search(r"logistic|5p|4p|5pl|4pl", kind, re.I):
            issues.append(
                PlateIssue(
                    "vendor_curve_not_logistic",
                    where,
                    f"analyte {a}: analysis type {kind!r} is not "
                    "a 4PL/5PL logistic; the vendor curve is not used",
                    "",
                    a,
                    blocking=False,
                )
            )
            continue
        g_text = cell(asym) if asym else "1"
        vals = {k: to_float(cell(k), dec) for k in "abcd"}
        g = to_float(g_text, dec) if g_text else 1.0
        out.append(
            {
                "analyte": a,
                "model": kind or ("5PL" if g != 1.0 else "4PL"),
                "a": vals["b"],
                "b": vals["d"],
                "c": vals["c"],
                "d": vals["a"],
                "g": 1.0 if math.isnan(g) else g,
                "a_ulp": half_ulp(cell("b")),
                "b_ulp": half_ulp(cell("d")),
                "c_ulp": half_ulp(cell("c")),
                "d_ulp": half_ulp(cell("a")),
                "g_ulp": half_ulp(g_text) if asym else 0.0,
            }
        )
    return pd.DataFrame(out, columns=cols)
