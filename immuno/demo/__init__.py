"""The demo batch: a complete synthetic batch with its ground truth (docs/architecture.md, 4.5).

``make_demo_batch(out)`` writes, for several patients at D0/D10/M1, FCS files (ICS pairs,
surface tubes, single stains, an unstained tube, a reference control), an xPONENT plate
export, GeneMapper STR exports and NGS marker counts, the sample sheet, and ``truth.csv``
holding every simulated true value the pipeline reports. Same seed, same bytes.

The analysis rooms never import this package: they must not see the simulator's truth.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from immuno.contract.batch import DEFAULT_VISITS, SHEET_NAME, write_sheet
from immuno.errors import UserError
from immuno.io import write_text

TRUTH_COLUMNS = ["sample_id", "assay", "panel", "feature", "value", "unit", "flag"]
DEFAULT_SEED = 20261126
DEFAULT_PATIENTS = 4
DEFAULT_EVENTS = 20_000

__all__ = ["make_demo_batch", "patient_codes", "TRUTH_COLUMNS"]


def patient_codes(n: int) -> list[str]:
    """Pseudonymous demo patient codes P01, P02, ..."""
    return [f"P{i:02d}" for i in range(1, n + 1)]


def make_demo_batch(out: str | Path, seed: int = DEFAULT_SEED, patients: int = DEFAULT_PATIENTS,
                    events: int = DEFAULT_EVENTS, assays: tuple[str, ...] = ("cytometry", "chemokine", "chimerism"),
                    overwrite: bool = False) -> Path:
    """Write the demo batch folder.

    Parameters
    ----------
    out
        The batch folder to create; its name becomes the batch id.
    seed
        Random seed; the same seed gives identical files.
    patients
        Number of patients (each with visits D0, D10, M1).
    events
        Events per cytometry tube.
    assays
        Which assays to simulate.
    overwrite
        Replace an existing folder.

    Returns
    -------
    pathlib.Path
        The batch folder.
    """
    from immuno.demo import chemokines, chimerism, cytometry  # heavy; only when generating

    out = Path(out)
    if patients < 1:
        raise UserError.single("--patients", f"got {patients}; expected at least 1")
    if events < 1000:
        raise UserError.single("--events", f"got {events}; expected at least 1000 events per tube")
    if out.exists() and not overwrite:
        raise UserError.single(str(out), "already exists; choose a new folder or pass --overwrite")
    codes = patient_codes(patients)
    visits = list(DEFAULT_VISITS)
    out.parent.mkdir(parents=True, exist_ok=True)
    # build in a sibling temporary folder, then rename: no half-written batch ever
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows: list[dict[str, str]] = []
        truth: list[dict[str, object]] = []
        simulators = {"cytometry": cytometry, "chemokine": chemokines, "chimerism": chimerism}
        for assay in assays:
            r, t = simulators[assay].simulate(tmp, seed, codes, visits, events)
            rows += r
            truth += t
        write_sheet(rows, tmp / SHEET_NAME)
        table = pd.DataFrame(truth)
        for col in TRUTH_COLUMNS:
            if col not in table.columns:
                table[col] = ""
        table = table[TRUTH_COLUMNS]
        write_text(table.to_csv(index=False, lineterminator="\n", float_format="%.10g"), tmp / "truth.csv")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
