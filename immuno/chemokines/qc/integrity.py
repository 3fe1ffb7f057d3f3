"""Plate integrity: what makes a plate's wells untrustworthy before any curve is fitted.

Checked on every plate, by ``immuno validate`` (as problems to fix before a batch runs)
and by quantification (as flags, the wells concerned left out of fits and replicate
means): a well listed twice for one analyte, a well outside the plate's geometry, a cell
that is not a number, standards missing or without expected concentrations. The readers
report what only the raw text shows (unreadable cells, decimal commas); this module adds
what the wells table shows.
"""

from __future__ import annotations

import pandas as pd

from immuno.chemokines.io.plate import PlateData, PlateIssue, member_wells, well_position


def well_issues(plate: PlateData) -> list[PlateIssue]:
    """Duplicated wells and wells outside the plate, one issue per well (and analyte)."""
    w = plate.wells
    where = f"plate {plate.plate_id}"
    issues: list[PlateIssue] = []
    target = "analyte" if plate.kind == "multiplex" else "target"
    # a replicate group written "A1,B1" stands for both wells
    members = w[["well", target]].assign(member=w["well"].map(member_wells)).explode("member")
    outside = sorted(
        {m for m in members["member"].dropna() if not _inside(m, plate.rows, plate.columns)}
    )
    for m in outside:
        issues.append(
            PlateIssue(
                "outside_plate",
                where,
                f"well {m} is outside a {plate.rows * plate.columns}-well "
                f"plate (rows A-{chr(64 + plate.rows)}, columns 1-{plate.columns})",
                m,
            )
        )
    counts = members.groupby(["member", target]).size()
    for (m, analyte), n in counts[counts > 1].items():
        issues.append(
            PlateIssue(
                "duplicate_well",
                where,
                f"well {m} appears {n} times for {analyte}; expected one "
                "reading per well and analyte (an edited or merged export?)",
                m,
                analyte,
            )
        )
    return issues


def _inside(well: str, rows: int, columns: int) -> bool:
    pos = well_position(well)
    return pos is not None and 0 <= pos[0] < rows and 1 <= pos[1] <= columns


def standards_issues(plate: PlateData) -> list[PlateIssue]:
    """A multiplex plate without standards, or whose standards have no expected
    concentration, can give no concentration at all."""
    if plate.kind != "multiplex":
        return []
    w = plate.wells[~plate.wells["analyte"].isin(plate.negative_beads)]
    std = w[w["role"] == "standard"]
    where = f"plate {plate.plate_id}"
    if std.empty:
        return [
            PlateIssue(
                "missing_standards",
                where,
                "no standard wells on the plate; expected standards named "
                "Standard1.., S1.. (or a layout naming them)",
            )
        ]
    issues = []
    for analyte, s in std.groupby("analyte", sort=False):
        if not (s["expected_conc"] > 0).any():
            issues.append(
                PlateIssue(
                    "missing_standards",
                    where,
                    f"{analyte}: the standards have no expected "
                    "concentration; expected them in the export (or in a plate layout with an "
                    "expected_conc column)",
                    "",
                    str(analyte),
                )
            )
    return issues


def all_issues(plate: PlateData) -> list[PlateIssue]:
    """The reader's issues and the wells-table checks together."""
    return [*plate.issues, *well_issues(plate), *standards_issues(plate)]


def mark_wells(plate: PlateData, issues: list[PlateIssue]) -> pd.DataFrame:
    """The wells table with the ``problem`` column filled for duplicated wells and wells
    outside the plate (the readers already fill it for unreadable values): the rows
    quantification must leave out."""
    w = plate.wells.copy()
    target = "analyte" if plate.kind == "multiplex" else "target"
    members = w["well"].map(member_wells)
    for issue in issues:
        if issue.kind not in ("duplicate_well", "outside_plate") or not issue.well:
            continue
        hit = members.map(lambda ms, _w=issue.well: _w in ms)
        if issue.analyte:
            hit &= w[target] == issue.analyte
        w.loc[hit & (w["problem"] == ""), "problem"] = issue.what
    return w
