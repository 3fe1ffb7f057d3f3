"""Batch validation of chimerism rows: readable files, expected columns, complete references.

Called by :func:`immuno.contract.validate.validate_batch` before anything runs, so a lab scientist
sees every problem at once: a GeneMapper export without an Area column, a sample name
missing from its export, a biopsy without its recipient or donor reference, a panel
without a genotyping method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from immuno.chimerism.pipeline.inputs import METHODS, NEEDS_REFERENCES, FileCache, references
from immuno.errors import Problem, UserError


def check_inputs(
    rows: pd.DataFrame, batch_root: str | Path, panels: Mapping[str, Any]
) -> list[Problem]:
    """Every problem with a batch's chimerism rows.

    Parameters
    ----------
    rows
        The sheet's chimerism rows (strings; a ``row`` column gives the sheet line).
    batch_root
        The batch folder.
    panels
        Loaded panels by name.

    Returns
    -------
    list of Problem
        Empty when every file reads with its expected columns and sample, and every
        biopsy has the references its method needs.
    """
    problems: list[Problem] = []
    cache = FileCache.for_rows(batch_root, rows)
    sheet = Path(batch_root) / "samplesheet.csv"
    for _, row in rows.iterrows():
        where = f"{sheet}: row {row.get('row', '?')}"
        panel = panels.get(row.get("panel", ""))
        if panel is None:
            problems.append(
                Problem(
                    f"{where}, column panel",
                    f"a chimerism row needs a chimerism panel (got {row.get('panel', '')!r})",
                )
            )
            continue
        method = str(panel.get("method", ""))
        if method not in METHODS:
            problems.append(
                Problem(
                    f"{where}, column panel",
                    f"panel {panel.name!r} has no genotyping method "
                    f"(expected method: one of {', '.join(METHODS)})",
                )
            )
            continue
        try:
            cache.sample(row, method)
        except UserError as exc:
            problems.extend(
                Problem(f"{where}, column file: {p.where}", p.what) for p in exc.problems
            )
        if row.get("role") == "biopsy":
            refs = references(rows, row)
            for role in NEEDS_REFERENCES.get(method, ()):
                if refs[role] is None:
                    what = (
                        f"no donor_reference row with donor_id {row.get('donor_id', '')!r} and panel {row['panel']!r}"
                        if role == "donor_reference"
                        else f"no recipient_reference row for patient {row['patient_id']!r} with panel {row['panel']!r}"
                    )
                    problems.append(
                        Problem(
                            f"{where} ({row['sample_id']})",
                            f"{what}; a biopsy needs both references",
                        )
                    )
    return problems
