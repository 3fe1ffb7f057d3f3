"""A batch's cytometry tubes processed in one go, and its compensation controls.

:func:`process_batch` runs every unit of work of a batch (:func:`process_unit`), writes each
sample's files and gathers them into the batch's tables; the workflow runs the same steps
as separate jobs (``immuno cytometry process``, ``controls`` and ``aggregate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from immuno.cytometry.engine.compensation import Spillover
from immuno.cytometry.io.spillover import write_spillover_file
from immuno.cytometry.pipeline.outputs import aggregate_batch, write_sample_outputs
from immuno.cytometry.pipeline.sample import SampleOutcome, fail_outcome, ingest_only, process_unit
from immuno.cytometry.pipeline.tubes import (
    SampleInfo,
    batch_samples,
    batch_spillover,
    compensation_tubes,
    needs_single_stains,
    sample_table,
)
from immuno.errors import UserError

__all__ = ["process_batch", "run_unit", "write_compensation_tubes"]


def run_unit(info: SampleInfo, out_dir: str | Path, spill: Spillover | None = None, *,
             failure: UserError | None = None, plots: bool = True, gatingml: bool = True,
             events: bool = True) -> list[SampleOutcome]:
    """Process one unit of work (a tube and its control) and write each tube's files as
    soon as it is complete (:func:`~immuno.cytometry.pipeline.outputs.write_sample_outputs`).

    Parameters
    ----------
    info
        The unit's tube (with its control).
    out_dir
        The batch's cytometry results folder.
    spill
        The batch's single-stain spillover, for panels that use it.
    failure
        A reason the unit cannot be processed (e.g. the batch's matrix could not be
        computed): both tubes are written as failed with it.
    plots, gatingml, events
        As for :func:`~immuno.cytometry.pipeline.outputs.write_sample_outputs`.

    Returns
    -------
    list of SampleOutcome
        ``[tube, control]`` (their per-event data released).
    """
    def write(outcome: SampleOutcome) -> None:
        write_sample_outputs(outcome, out_dir, plots=plots, gatingml=gatingml, events=events)

    if failure is not None:
        failed = [fail_outcome(i, failure) for i in (info, info.control) if i is not None]
        for outcome in failed:
            write(outcome)
        return failed
    return process_unit(info, spill, emit=write)


def write_compensation_tubes(batch: Any, out_dir: str | Path, spill: Spillover | None) -> list[SampleInfo]:
    """Ingest the batch's compensation tubes and write their per-sample files.

    Returns
    -------
    list of SampleInfo
        The tubes written (for :func:`immuno.cytometry.pipeline.outputs.aggregate_batch`).
    """
    tubes = compensation_tubes(batch)
    for info in tubes:
        write_sample_outputs(ingest_only(info, spill), out_dir, plots=False, gatingml=False)
    return tubes


def process_batch(batch: Any, out_dir: str | Path, *, sample_ids: list[str] | None = None,
                  plots: bool = True, gatingml: bool = True, events: bool = True,
                  progress: bool = False) -> pd.DataFrame:
    """Process every gated cytometry tube of a batch and write the batch's cytometry files.

    Parameters
    ----------
    batch
        A loaded batch (:func:`immuno.contract.batch.load_batch`).
    out_dir
        The batch's cytometry results folder (``results/<batch>/cytometry``).
    sample_ids
        Only these samples (default: all).
    plots, gatingml, events
        Also write gating figures, GatingML files and per-event AnnData.
    progress
        Show a progress bar (notebooks render it).

    Returns
    -------
    pandas.DataFrame
        The cytometry measurement table (also written as
        ``cytometry_measurements.parquet``).
    """
    from tqdm.auto import tqdm  # (only a batch run shows a progress bar)

    out = Path(out_dir)
    infos = batch_samples(batch, sample_ids)
    units = batch_samples(batch, sample_ids, units=True)
    spill: Spillover | None = None
    spill_error: UserError | None = None
    if needs_single_stains(batch):
        try:
            spill = batch_spillover(batch)
            write_spillover_file(spill, out / "compensation.csv")
        except UserError as exc:
            spill_error = exc  # only the samples whose panel needs it fail
    for info in tqdm(units, desc="cytometry samples", disable=not progress):
        uses = (info.panel.get("compensation") or {}).get("source") == "single_stains"
        run_unit(info, out, spill, failure=spill_error if uses else None, plots=plots, gatingml=gatingml,
                 events=events)
    if sample_ids is None:
        infos += write_compensation_tubes(batch, out, spill)
    return aggregate_batch(out, sample_table(infos))
