"""A LEGENDplex plate: a folder of per-well FCS files, read into the room's plate model.

Bead arrays acquired on a flow cytometer (BioLegend LEGENDplex) have no plate export: the
cytometer writes one FCS file per well. A plate is therefore a folder; a file in it is a
well when it starts as an FCS file does, and its well is the ``$WELLID`` / ``WELL ID``
keyword (plate loaders write it) or else the last well-like token of the file name
(``K2-C07-A7.fcs`` -> A7). Each well's beads are classified by
:func:`~immuno.chemokines.io.beads.classify_events` with the panel's ``beads:`` section,
and every bead becomes one (well, analyte) row of :class:`~immuno.chemokines.io.plate.PlateData`
with the reporter median as MFI and the bead's events as bead count, so that the curve
fits, QC and quantification of the room run on it as on a Luminex plate. The plate
layout (:func:`~immuno.chemokines.io.layout.read_layout`) names the sample of each well;
standards without an expected concentration get the panel's ``standard_top`` divided by
``standard_dilution`` per level (level 1 the top standard).

A well that cannot be classified (not a bead file, too few events, a bead population
missing or two merged) keeps its rows without a value, its reason in ``problem``, and
one blocking :class:`~immuno.chemokines.io.plate.PlateIssue` naming the well; the other
wells are read as usual. A plate none of whose wells could be read is refused.

This is the one module of the room that imports another room: FCS reading is
:mod:`immuno.cytometry.io.fcs`, the project's only FCS reader (every FCS version and
vendor quirk the cytometry room handles, which bead files share), rather than a second
reader kept here (tests/test_chemokines_layout.py allows this import, here only).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.io.beads import BEAD_COLUMNS, BeadMap, check_header, classify_events
from immuno.chemokines.io.layout import apply_layout, read_layout
from immuno.chemokines.io.plate import (
    PlateData,
    PlateIssue,
    finish_wells,
    infer_role,
    normal_well,
    slug,
)
from immuno.cytometry.io.fcs import read_fcs, read_fcs_header
from immuno.errors import Problem, UserError

_WELL = re.compile(r"(?:^|[^A-Za-z0-9])([A-Pa-p])0?(\d{1,2})$")
#: keywords plate loaders write the well in
_WELL_KEYWORDS = ("$WELLID", "WELL ID", "WELLID", "$SMNO_WELL")


def is_fcs(path: Path) -> bool:
    """Whether a file starts as an FCS file does (``FCS2.0``, ``FCS3.x``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return head.startswith((b"FCS2.", b"FCS3."))


def sniff_folder(path: str | Path) -> bool:
    """Whether a folder holds a LEGENDplex plate (at least one FCS file)."""
    folder = Path(path)
    return folder.is_dir() and any(is_fcs(p) for p in well_files(folder))


def well_files(folder: Path) -> list[Path]:
    """The folder's files in name order (hidden files left out)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def well_name(path: Path, keywords: dict[str, str]) -> str:
    """The well of one FCS file: its well keyword, else the file name's last well token."""
    for key in _WELL_KEYWORDS:
        value = keywords.get(key, "").strip()
        if value:
            return normal_well(value)
    m = _WELL.search(path.stem)
    return f"{m.group(1).upper()}{int(m.group(2))}" if m else ""


def _expected(wells: pd.DataFrame, bead_spec: dict[str, Any]) -> pd.DataFrame:
    top, factor = bead_spec.get("standard_top"), bead_spec.get("standard_dilution")
    if not top or not factor:
        return wells
    fill = (wells["role"] == "standard") & wells["expected_conc"].isna()
    fill &= wells["standard_level"].notna()
    wells.loc[fill, "expected_conc"] = float(top) / float(factor) ** (
        wells.loc[fill, "standard_level"] - 1.0
    )
    return wells


def read_legendplex(
    path: str | Path,
    panel: Any,
    layout: str | Path | None = None,
    seed: int = 0,
    headers_only: bool = False,
) -> tuple[PlateData, pd.DataFrame]:
    """Read a LEGENDplex plate folder.

    Parameters
    ----------
    path
        The folder of per-well FCS files.
    panel
        The chemokine panel with a ``beads:`` section.
    layout
        Plate layout naming each well's sample and role (standards, blanks).
    seed
        Seed of the bead classification (see :func:`classify_events`).
    headers_only
        Read only each file's HEADER and TEXT and check that it has the panel's channels
        and enough events, without classifying (for ``immuno validate``: fast, and a well
        whose beads cannot be told apart still fails only its own samples when the plate
        is processed). The rows then carry no MFI.

    Returns
    -------
    (PlateData, pandas.DataFrame)
        The plate (format ``legendplex``) and the bead populations of every well read
        (well, file and :data:`~immuno.chemokines.io.beads.BEAD_COLUMNS`).

    Raises
    ------
    UserError
        When the folder holds no FCS file, the panel has no ``beads:`` section, or no
        well could be read (each well's reason listed).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UserError.single(str(folder), "a LEGENDplex plate is a folder of per-well FCS files")
    bead_map = BeadMap.from_panel(panel, where=f"{folder}: panel")
    files = [p for p in well_files(folder) if is_fcs(p)]
    if not files:
        raise UserError.single(str(folder), "no FCS file in the folder; expected one per well")
    records: list[dict[str, Any]] = []
    beads: list[pd.DataFrame] = []
    issues: list[PlateIssue] = []
    seen: dict[str, str] = {}
    starts: dict[str, str] = {}
    meta: dict[str, str] = {}
    for file in files:
        try:
            fcs = read_fcs_header(file) if headers_only else read_fcs(file)
        except UserError as exc:
            well = well_name(file, {}) or file.stem
            where = f"well {well} ({file.name})"
            reason = "; ".join(p.what for p in exc.problems)
            issues.append(PlateIssue("well_unreadable", where, reason, well=well))
            records += _rows(bead_map, well, file.stem, None, reason)
            continue
        well = well_name(file, fcs.keywords) or file.stem
        where = f"well {well} ({file.name})"
        if well in seen:
            issues.append(
                PlateIssue("duplicate_well", where, f"well already read from {seen[well]}", well)
            )
            continue
        seen[well] = file.name
        starts[well] = fcs.keywords.get("$BTIM", "")
        for key, name in (("$CYT", "instrument"), ("$CYTSN", "serial_number")):
            if fcs.keywords.get(key):
                meta.setdefault(name, fcs.keywords[key].strip())
        try:
            if headers_only:
                check_header(fcs.channels, fcs.n_events, bead_map, where)
                records += _rows(bead_map, well, file.stem, None, "")
                continue
            assert fcs.events is not None
            found = classify_events(fcs.events, fcs.channels, bead_map, seed=seed, where=where)
        except UserError as exc:
            reason = "; ".join(p.what for p in exc.problems)
            issues.append(PlateIssue("well_unreadable", where, reason, well=well))
            records += _rows(bead_map, well, file.stem, None, reason)
            continue
        beads.append(found.table.assign(well=well, file=file.name))
        records += _rows(bead_map, well, file.stem, found.table, "")
    if not records or all(r["problem"] for r in records):
        raise UserError(
            [Problem(f"{folder}: {i.where}", i.what) for i in issues],
            hint="No well of the plate could be read: check the files and the panel's beads.",
        )
    order = {w: i + 1 for i, w in enumerate(sorted(starts, key=lambda w: (starts[w], w)))}
    wells = pd.DataFrame(records)
    wells["acquisition_order"] = wells["well"].map(order)
    wells["plate_id"] = slug(folder.name)
    if layout is not None:
        wells = apply_layout(wells, read_layout(layout))
    wells = _expected(wells, panel.get("beads"))
    unit = str(panel.get("unit", "pg/mL"))
    plate = PlateData(
        plate_id=slug(folder.name),
        format="legendplex",
        kind="multiplex",
        wells=finish_wells(wells),
        meta=meta,
        units={a: unit for a in dict.fromkeys(b[2] for b in bead_map.beads)},
        issues=issues,
    )
    columns = ["well", "file", *BEAD_COLUMNS]
    table = pd.concat(beads, ignore_index=True)[columns] if beads else pd.DataFrame(columns=columns)
    return plate, table


def _rows(
    bead_map: BeadMap,
    well: str,
    name: str,
    table: pd.DataFrame | None,
    problem: str,
) -> list[dict[str, Any]]:
    role, level = infer_role(name)
    found = table.set_index("bead") if table is not None else None
    rows = []
    for _group, bead, analyte in bead_map.beads:
        mfi = float(found.loc[bead, "reporter_median"]) if found is not None else np.nan
        count = float(found.loc[bead, "events"]) if found is not None else np.nan
        rows.append(
            {
                "well": well,
                "acquisition_order": np.nan,  # set once every well's start time is known
                "sample_name": name,
                "role": role,
                "standard_level": level,
                "expected_conc": np.nan,
                "dilution": np.nan,
                "analyte": analyte,
                "mfi": mfi,
                "bead_count": count,
                "vendor_flag": "",
                "problem": problem,
            }
        )
    return rows
