"""Checks of a batch's cytometry files before anything runs.

Only FCS headers are read (fast, even for hundreds of million-event files). Every problem
is returned, each naming the sample sheet row and the file, so the lab sees one list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from immuno.contract.panels import Panel
from immuno.cytometry.io.fcs import FCSData, read_fcs_header
from immuno.cytometry.io.markers import marker_error
from immuno.cytometry.io.spillover import read_spillover_file, spillover_from_keywords
from immuno.cytometry.pipeline.panel_checks import panel_problems
from immuno.cytometry.pipeline.tubes import COMPENSATION_TUBES, fcs_dataset
from immuno.errors import Problem, UserError

SHEET_NAME = "samplesheet.csv"


def _where(batch_root: Path, row: pd.Series, index: int) -> str:
    line = row.get("row", "") or index + 2  # the header is line 1
    return f"{batch_root / SHEET_NAME}: row {line}"


def _stained_channel(fcs: FCSData) -> str | None:
    """The one fluorescence channel a single-stain file labels in $PnS, if exactly one."""
    labelled = [c for c, m in zip(fcs.channels, fcs.markers, strict=True)
                if m and not c.upper().startswith(("FSC", "SSC", "TIME"))]
    return labelled[0] if len(labelled) == 1 else None


def check_inputs(rows: pd.DataFrame, batch_root: Path, panels: Mapping[str, Panel]) -> list[Problem]:
    """Every problem with a batch's cytometry files, found from their headers.

    Checks that each FCS file is readable and complete (and, when it holds several data
    sets, that its panel chooses one), that it has every channel its panel names (the
    message lists the channels the file has), that the file's ``$PnS`` agree with the
    panel's markers (stained tubes; naming channel, panel marker and file marker), that
    the compensation the
    panel asks for is available (the file's keyword, a readable matrix file, or single-stain
    controls covering every stained channel plus an unstained tube), that ``control_of``
    names a stimulated cytometry sample of the batch, and that each panel's gates,
    populations and headline features refer to names it defines (with the panel line).

    Parameters
    ----------
    rows
        The batch's cytometry sheet rows (strings; optional ``row`` = line in the sheet).
    batch_root
        The batch folder (files are relative to it).
    panels
        Panels by name.

    Returns
    -------
    list of Problem
        Empty when everything is in order.
    """
    batch_root = Path(batch_root)
    problems: list[Problem] = []
    headers: dict[str, FCSData] = {}
    used_panels: dict[str, Panel] = {}
    tubes = dict(zip(rows["sample_id"], rows.get("tube", pd.Series([""] * len(rows))), strict=True))
    for i, (_, row) in enumerate(rows.iterrows()):
        where = _where(batch_root, row, i)
        path = batch_root / str(row["file"])
        panel = panels.get(str(row.get("panel", "")))
        if panel is not None and panel.assay == "cytometry":
            used_panels[panel.name] = panel
        ctrl = str(row.get("control_of", "") or "")
        if ctrl and ctrl not in tubes:
            problems.append(Problem(f"{where}, column control_of", f"{ctrl!r} is not a cytometry sample of this batch"))
        elif ctrl and tubes[ctrl] not in ("stimulated", "reference_control", ""):
            problems.append(Problem(f"{where}, column control_of", f"{ctrl!r} is a {tubes[ctrl]} tube; "
                                    "a control must name the stimulated sample it controls"))
        if not path.is_file():
            continue  # the sheet check reports missing files
        try:
            fcs = read_fcs_header(path, dataset=fcs_dataset(panel) if panel is not None else None)
        except UserError as err:
            problems += [Problem(f"{where}, file {row['file']}", p.what) for p in err.problems]
            continue
        headers[str(row["sample_id"])] = fcs
        if panel is None or panel.assay != "cytometry":
            continue
        wanted = [c["channel"] for c in panel.get("channels") or []]
        missing = [c for c in wanted if c not in fcs.channels]
        if missing:
            problems.append(Problem(f"{where}, file {row['file']}",
                                    f"lacks channel(s) {', '.join(missing)} of panel {panel.name!r}; "
                                    f"the file has: {', '.join(fcs.channels)}"))
            continue
        if row.get("tube", "") not in COMPENSATION_TUBES:
            # compensation controls label only their one stain; stained tubes must agree
            wrong = marker_error(fcs, panel)
            problems += [Problem(f"{where}, file {row['file']}", p.what) for p in (wrong.problems if wrong else [])]
        source = (panel.get("compensation") or {"source": "keyword"}).get("source", "keyword")
        if source == "keyword" and row.get("tube", "") not in ("single_stain", "unstained"):
            try:
                if spillover_from_keywords(fcs) is None:
                    problems.append(Problem(f"{where}, file {row['file']}", "has no $SPILLOVER/$SPILL keyword, "
                                            f"but panel {panel.name!r} compensates from it"))
            except UserError as err:
                problems += [Problem(f"{where}, file {row['file']}", p.what) for p in err.problems]
    for panel in used_panels.values():
        # channels, gates, populations and headline: what a sample's processing runs
        problems += panel_problems(panel)
        problems += _compensation_problems(panel, rows, headers, batch_root)
    return problems


def _compensation_problems(panel: Panel, rows: pd.DataFrame, headers: Mapping[str, FCSData],
                           batch_root: Path) -> list[Problem]:
    comp = panel.get("compensation") or {"source": "keyword"}
    source = comp.get("source", "keyword")
    stained = [c["channel"] for c in panel.get("channels") or [] if c.get("marker")]
    if source == "file":
        try:
            spill = read_spillover_file(Path(panel.path).parent / comp["file"])
        except UserError as err:
            return list(err.problems)
        out = [Problem(f"{panel.path}: compensation.file", f"matrix lacks stained channel {c} of the panel")
               for c in stained if c not in spill.channels]
        # the matrix is applied to every file of the panel: each must have its channels
        for i, (_, row) in enumerate(rows.iterrows()):
            fcs = headers.get(str(row["sample_id"]))
            lacking = [c for c in spill.channels if fcs is not None and c not in fcs.channels]
            if row.get("panel", "") == panel.name and lacking:
                out.append(Problem(f"{_where(batch_root, row, i)}, file {row['file']}",
                                   f"lacks channel(s) {', '.join(lacking)} of the spillover matrix "
                                   f"{comp['file']}; the file has: {', '.join(fcs.channels)}"))  # type: ignore[union-attr]
        return out
    if source != "single_stains":
        return []
    tube = rows.get("tube", pd.Series([""] * len(rows)))
    single = rows.loc[tube == "single_stain", "sample_id"].astype(str).tolist()
    problems: list[Problem] = []
    if not (tube == "unstained").any():
        problems.append(Problem(f"panel {panel.name}", "uses single-stain compensation but the batch has no "
                                "unstained tube (a row with tube 'unstained')"))
    if len(single) < len(stained):
        problems.append(Problem(f"panel {panel.name}", f"uses single-stain compensation: {len(stained)} stained "
                                f"channels need one single-stain control each, the batch has {len(single)}"))
        return problems
    # when each control labels its stained detector in $PnS, name the uncovered channels
    labelled = [_stained_channel(headers[s]) for s in single if s in headers]
    if labelled and all(labelled):
        found = sorted({str(c) for c in labelled})
        uncovered = [c for c in stained if c not in found]
        if uncovered:
            problems.append(Problem(f"panel {panel.name}", "no single-stain control for "
                                    f"{', '.join(uncovered)} (the controls stain: {', '.join(found)})"))
    return problems
