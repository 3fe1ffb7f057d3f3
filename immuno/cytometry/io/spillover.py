"""Spillover matrices from where a lab keeps them: FCS keywords, matrix files, control files.

- :func:`spillover_from_keywords`: the acquisition-time matrix an FCS file stores
  (``$SPILLOVER``, ``$SPILL``, ``$COMP`` or ``$DFCiTOj``, see
  :mod:`immuno.cytometry.io.spill_keywords`);
- :func:`read_spillover_file` / :func:`write_spillover_file`: a CSV matrix (a header row of
  channel names, each row starting with its source channel), e.g. the batch's
  ``compensation.csv``;
- :func:`spillover_from_control_files`: reads a batch's single-stain and unstained files and
  computes the matrix with
  :func:`immuno.cytometry.engine.compensation.spillover_from_single_stains`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from immuno.cytometry.engine.compensation import (
    Spillover,
    primary_channel,
    spillover_from_single_stains,
)
from immuno.cytometry.io.fcs import FCSData, read_fcs
from immuno.cytometry.io.spill_keywords import keyword_matrix
from immuno.errors import Problem, UserError
from immuno.io import write_text

__all__ = ["read_spillover_file", "spillover_from_control_files", "spillover_from_keywords",
           "write_spillover_file"]


def spillover_from_keywords(fcs: FCSData) -> Spillover | None:
    """The acquisition-time matrix stored in an FCS file, or None when it has none.

    ``$SPILLOVER``/``$SPILL``/``SPILL`` first, then ``$COMP``, then ``$DFCiTOj`` (see
    :mod:`immuno.cytometry.io.spill_keywords`); matrices covering only some channels are fine.

    Raises
    ------
    UserError
        If the keyword is malformed or names a channel the file does not have.
    """
    found = keyword_matrix(fcs)
    if found is None:
        return None
    return Spillover(list(found.channels), found.matrix, source=f"{found.keyword} of {fcs.path.name}")



def read_spillover_file(path: str | os.PathLike[str]) -> Spillover:
    """Read a matrix file: a header row of channel names; each row starts with its source
    channel. Comma, semicolon or tab delimited; rows may come in any order.

    Raises
    ------
    UserError
        Naming the file and line when the matrix is not square, names differ, or a value
        is not a number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read spillover matrix file ({exc.strerror})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise UserError.single(str(path), "expected a header row of channel names and one row per channel")
    delim = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    table = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    header = [h.strip() for h in table[0][1:]]
    while header and not header[-1]:
        header.pop()  # trailing delimiters after an Excel save
    problems: list[Problem] = []
    rows: dict[str, list[float]] = {}
    for lineno, row in enumerate(table[1:], start=2):
        name = row[0].strip() if row else ""
        cells = [c.strip() for c in row[1:1 + len(header)]]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            problems.append(Problem(f"{path}: line {lineno}", f"values of {name!r} must be numbers, got {cells}"))
            continue
        if len(values) != len(header):
            problems.append(Problem(f"{path}: line {lineno}", f"{name!r} has {len(values)} values, expected {len(header)}"))
        elif name in rows:
            problems.append(Problem(f"{path}: line {lineno}", f"channel {name!r} appears twice"))
        else:
            rows[name] = values
    if not problems and set(rows) != set(header):
        problems.append(Problem(str(path), f"row channels ({', '.join(rows)}) must be the header's "
                                f"channels ({', '.join(header)})"))
    if problems:
        raise UserError(problems, hint="A spillover file has a header row of channel names and one row per source channel.")
    return Spillover(header, np.array([rows[c] for c in header]), source=f"file {path.name}")


def write_spillover_file(spill: Spillover, path: str | os.PathLike[str]) -> Path:
    """Write the matrix as CSV (the format :func:`read_spillover_file` reads), atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *spill.channels])
    for name, row in zip(spill.channels, spill.matrix, strict=True):
        writer.writerow([name, *(repr(float(v)) for v in row)])
    return write_text(out.getvalue(), path)



def spillover_from_control_files(single_stains: Sequence[str | os.PathLike[str]],
                                 unstained: str | os.PathLike[str] | None,
                                 channels: Sequence[str],
                                 scatter_gate: Mapping[str, Sequence[float]] | None = None) -> Spillover:
    """Read a batch's single-stain files, find each one's primary detector, and compute
    the matrix over ``channels`` (see :func:`spillover_from_single_stains`).

    A control's primary detector is searched among all fluorescence detectors of its file,
    so a control for a fluorochrome the panels do not use is recognised and left out
    rather than mistaken for the channel it spills into most.

    Raises
    ------
    UserError
        If two controls are brightest in the same detector, or a channel has no control.
    """
    blank = read_fcs(unstained, dtype=np.float64) if unstained is not None else None
    controls: dict[str, FCSData] = {}
    problems: list[Problem] = []
    for path in single_stains:
        fcs = read_fcs(path, dtype=np.float64)
        missing = [c for c in channels if c not in fcs.channels]
        if missing:
            problems.append(Problem(str(path), f"single-stain control lacks channel(s) {', '.join(missing)}"))
            continue
        detectors = [c for c in fcs.channels if not c.upper().startswith(("FSC", "SSC", "TIME"))]
        if blank is not None:
            detectors = [c for c in detectors if c in blank.channels]
        primary = primary_channel(fcs, detectors, blank)
        if primary not in channels:
            continue  # a control for a fluorochrome no panel of the batch reads
        if primary in controls:
            problems.append(Problem(str(path), f"is brightest in {primary}, like {controls[primary].path}; "
                                    "expected one single stain per fluorochrome"))
            continue
        controls[primary] = fcs
    lacking = [c for c in channels if c not in controls]
    if lacking and not problems:
        problems.append(Problem("single-stain controls", f"no control is brightest in {', '.join(lacking)}; "
                                "add a single stain for each fluorochrome"))
    if problems:
        raise UserError(problems, hint="Each fluorochrome of the panel needs one single-stain control.")
    return spillover_from_single_stains({c: controls[c] for c in channels}, blank, scatter_gate)
