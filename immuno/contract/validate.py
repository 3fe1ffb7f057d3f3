"""Whole-batch validation: the sample sheet, the panels, and every data file's contents.

Runs before any processing. The sheet checks live in :mod:`immuno.contract.batch`; each assay room
checks its own files (an FCS header has every panel channel, a plate export is readable,
a biopsy has its references) through its ``checks.check_inputs`` function. All problems
are gathered into one report.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from immuno.contract.batch import DEFAULT_VISITS, Batch, load_batch
from immuno.errors import Problem, UserError

#: the room that checks each assay's files
ROOM_CHECKS = {
    "cytometry": "immuno.cytometry.checks",
    "chemokine": "immuno.chemokines.checks",
    "chimerism": "immuno.chimerism.checks",
}


def validate_batch(
    folder: str | Path,
    visits: Sequence[str] = DEFAULT_VISITS,
    panels_dir: str | Path | None = None,
    patient_id_pattern: str | None = None,
) -> Batch:
    """Check a batch completely and return it.

    Parameters
    ----------
    folder
        The batch folder.
    visits
        Allowed visit codes.
    panels_dir
        Folder of panel files (default: the project's ``panels/``).
    patient_id_pattern
        Regular expression of patient codes (default: letters then digits, e.g. P01).

    Returns
    -------
    Batch
        The batch, when nothing is wrong.

    Raises
    ------
    UserError
        Every problem found, sheet and files together.
    """
    batch = load_batch(
        folder, visits=visits, panels_dir=panels_dir, patient_id_pattern=patient_id_pattern
    )
    problems: list[Problem] = []
    for assay, module_name in ROOM_CHECKS.items():
        rows = batch.rows(assay)
        if rows.empty:
            continue
        module = importlib.import_module(module_name)
        problems += module.check_inputs(rows, batch.root, batch.panels)
    if problems:
        raise UserError(
            problems,
            hint=f"Fix the files named above in {batch.root} and run again; nothing was processed.",
        )
    return batch
