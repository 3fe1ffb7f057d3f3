"""Pre-flight checks of a batch's chemokine rows, run by batch validation before any work.

Each plate export must be readable as a supported format and sound: no well listed twice
or outside the plate, no cell that is not a number, decimal separators that can be told,
standards with expected concentrations (multiplex; a LEGENDplex plate folder: every well
file's header has the panel's bead channels and enough events), a way to normalise
(qPCR: reference genes from the panel or stated in the export). Every sample the sheet places on a plate
must be found there by its ``sample_name`` (default: ``sample_id``). Notes about an
export (a sheet left aside, decimal commas read as decimals) are not problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from immuno.chemokines.io.legendplex import read_legendplex
from immuno.chemokines.io.readers import detect_format, read_plate
from immuno.chemokines.qc.integrity import all_issues
from immuno.errors import Problem, UserError


def check_inputs(
    rows: pd.DataFrame, batch_root: str | Path, panels: dict[str, Any]
) -> list[Problem]:
    """Every problem with the chemokine rows' files, located by sheet row and column.

    Parameters
    ----------
    rows
        The batch's chemokine sheet rows (strings; a ``row`` column with line numbers).
    batch_root
        The batch folder.
    panels
        Panels by name.

    Returns
    -------
    list of Problem
    """
    root = Path(batch_root)
    problems: list[Problem] = []
    rows = rows.copy()
    for col in ("layout", "sample_name", "panel", "row"):
        if col not in rows.columns:
            rows[col] = ""
    for (file, layout), group in rows.groupby(["file", "layout"], sort=True):
        first = group["row"].iloc[0]
        where = f"samplesheet.csv: row {first}, column file ({file})"
        # a LEGENDplex plate is classified with its panel's beads (one panel per plate)
        named = group["panel"].iloc[0]
        panel = panels.get(named) if named else None
        lay = root / layout if layout else None
        try:
            if (root / file).is_dir() and detect_format(root / file) == "legendplex":
                # headers only: classifying every well's beads is the processing's work, and
                # a well whose beads cannot be told apart fails only its own samples there
                plate, _ = read_legendplex(root / file, panel, lay, headers_only=True)
            else:
                plate = read_plate(root / file, lay, panel)
        except UserError as exc:
            problems += [
                Problem(where, f"{p.where}: {p.what}" if p.where else p.what) for p in exc.problems
            ]
            continue
        problems += [Problem(where, str(i)) for i in all_issues(plate) if i.blocking]
        names = set(plate.sample_names)
        for r in group.itertuples():
            name = r.sample_name or r.sample_id
            if name not in names:
                shown = ", ".join(sorted(names)[:8]) + (" ..." if len(names) > 8 else "")
                problems.append(
                    Problem(
                        f"samplesheet.csv: row {r.row}, column sample_name",
                        f"sample {name!r} is not on plate {file} (it holds: {shown})",
                    )
                )
            panel = panels.get(r.panel) if r.panel else None
            refs = (panel.get("qpcr", {}) if panel is not None else {}).get("reference_genes")
            if plate.kind == "qpcr" and not refs and not plate.meta.get("endogenous_control"):
                problems.append(
                    Problem(
                        f"samplesheet.csv: row {r.row}, column panel",
                        f"{file} is a qPCR run that states no endogenous control; its panel must list "
                        "qpcr: reference_genes",
                    )
                )
    return problems
