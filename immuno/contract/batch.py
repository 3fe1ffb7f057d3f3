"""A batch: a folder holding ``samplesheet.csv`` and the data files it names (docs/architecture.md, 4.1).

The sample sheet has one row per sample and data file. A multi-sample export (an
xPONENT plate, a GeneMapper table) is named by every sample row on it, with
``sample_name`` giving the sample's name inside that file. This module checks the sheet
itself (columns, codes, visits, paths, panels); the assay rooms check the contents of
their files (see :func:`immuno.contract.validate.validate_batch`). Every problem is collected and
reported at once, with the sheet row and column.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from immuno.contract.panels import Panel, load_panel, panel_index
from immuno.errors import Problem, UserError
from immuno.io import write_text

SHEET_NAME = "samplesheet.csv"
REQUIRED_COLUMNS = ("sample_id", "patient_id", "visit", "assay", "file")
OPTIONAL_COLUMNS = (
    "panel",
    "tube",
    "control_of",
    "plate",
    "layout",
    "role",
    "donor_id",
    "sample_name",
    "dna_input_ng",
    "supersedes",
)
ASSAYS = ("cytometry", "chemokine", "chimerism")
TUBES = (
    "stimulated",
    "unstimulated",
    "stained",
    "fmo",
    "single_stain",
    "unstained",
    "reference_control",
)
#: cytometry tubes that belong to the batch rather than to a patient visit
BATCH_CONTROL_TUBES = ("single_stain", "unstained", "reference_control")
ROLES = ("recipient_reference", "donor_reference", "biopsy")
DEFAULT_VISITS = ("D0", "D10", "M1")
#: pseudonymous codes: letters, digits, '-', '_', '.'; no spaces, so no names slip in
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: patient codes by default: letters then digits (P01, LYS-014), so a surname never passes
DEFAULT_PATIENT_ID_PATTERN = r"^[A-Za-z]{1,10}[-_]?[0-9]{1,6}$"
#: environment variable read when no pattern is given (the workflow sets it for its steps)
PATIENT_ID_PATTERN_ENV = "IMMUNO_PATIENT_ID_PATTERN"


def compile_patient_id_pattern(pattern: str | None = None) -> re.Pattern[str]:
    """The compiled patient-code pattern: ``pattern``, else ``$IMMUNO_PATIENT_ID_PATTERN``,
    else :data:`DEFAULT_PATIENT_ID_PATTERN`.

    Raises
    ------
    UserError
        When the pattern is not a regular expression.
    """
    text = pattern or os.environ.get(PATIENT_ID_PATTERN_ENV) or DEFAULT_PATIENT_ID_PATTERN
    try:
        return re.compile(text)
    except re.error as exc:
        raise UserError.single(
            "patient_id_pattern", f"{text!r} is not a regular expression ({exc})"
        ) from None


@dataclass
class Batch:
    """A validated batch folder.

    Attributes
    ----------
    batch_id
        The folder's name; results go to ``results/<batch_id>/``.
    root
        The batch folder.
    sheet
        The sample sheet, all columns as strings (empty string where blank), with a
        ``row`` column giving each row's line number in the file.
    panels
        The panels the sheet names, by name.
    """

    batch_id: str
    root: Path
    sheet: pd.DataFrame
    panels: dict[str, Panel] = field(default_factory=dict)

    def rows(self, assay: str) -> pd.DataFrame:
        """The sheet rows of one assay (``cytometry``, ``chemokine`` or ``chimerism``)."""
        return self.sheet[self.sheet["assay"] == assay].reset_index(drop=True)

    def path_of(self, row: pd.Series | dict[str, str]) -> Path:
        """Absolute path of a row's data file."""
        return (self.root / str(row["file"])).resolve()

    @property
    def sheet_path(self) -> Path:
        """The sample sheet file."""
        return self.root / SHEET_NAME


def _read_sheet(path: Path) -> tuple[pd.DataFrame, list[Problem]]:
    """Read the sheet as strings, accepting ',', ';' or tab as delimiter."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError.single(
            str(path),
            "no sample sheet: a batch folder must hold samplesheet.csv",
            hint="Create samplesheet.csv in the batch folder (its columns: docs/running-a-batch.md).",
        ) from None
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError.single(
            f"{path}: line {line}",
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the "
            "sheet as CSV UTF-8 (in Excel: CSV UTF-8 (Comma delimited))",
        ) from None
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read the sample sheet ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise UserError.single(
            str(path), "the sample sheet is empty; expected a header row and one row per data file"
        )
    counts = {d: lines[0].count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: counts[d])
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    problems: list[Problem] = []
    records = []
    for lineno, fields in enumerate(reader, start=2):
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header) :]):
            problems.append(
                Problem(
                    f"{path}: row {lineno}",
                    f"{len(fields)} fields but the header has {len(header)}",
                )
            )
        fields = [f.strip() for f in fields[: len(header)]] + [""] * max(
            0, len(header) - len(fields)
        )
        records.append([*fields, lineno])
    df = pd.DataFrame(records, columns=[*header, "row"], dtype=object)
    return df, problems


def _check_columns(df: pd.DataFrame, path: Path) -> list[Problem]:
    problems = []
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            problems.append(
                Problem(
                    f"{path}: header",
                    f"missing required column {col!r} (required: {', '.join(REQUIRED_COLUMNS)})",
                )
            )
    for col in df.columns:
        if col == "row":
            continue
        if col not in known:
            close = difflib.get_close_matches(col, sorted(known), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f" (known: {', '.join(sorted(known))})"
            )
            problems.append(Problem(f"{path}: header", f"unknown column {col!r}{hint}"))
    dupes = [c for c in set(df.columns) if list(df.columns).count(c) > 1]
    for col in dupes:
        problems.append(Problem(f"{path}: header", f"column {col!r} appears more than once"))
    return problems


def _check_file(
    root: Path, value: str, where: str, column: str
) -> tuple[Path | None, Problem | None]:
    if not value:
        return None, Problem(
            where, f"column {column!r} is empty; expected a path relative to the batch folder"
        )
    rel = Path(value)
    if rel.is_absolute():
        return None, Problem(
            where,
            f"column {column!r}: {value!r} is absolute; paths must be relative to the batch folder",
        )
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        return None, Problem(where, f"column {column!r}: {value!r} points outside the batch folder")
    if not target.is_file():
        return None, Problem(
            where, f"column {column!r}: file {value!r} not found in the batch folder"
        )
    return target, None


def _check_rows(
    df: pd.DataFrame,
    root: Path,
    path: Path,
    visits: Sequence[str],
    panels: dict[str, Path],
    patient_code: re.Pattern[str],
) -> list[Problem]:
    problems: list[Problem] = []
    ids = df["sample_id"].tolist()
    seen: dict[str, int] = {}
    for _, r in df.iterrows():
        where = f"{path}: row {r['row']}"

        def bad(column: str, what: str, _where: str = where) -> None:
            problems.append(Problem(f"{_where}, column {column}", what))

        sid, assay = r["sample_id"], r["assay"]
        if not sid:
            bad("sample_id", "empty; every row needs a sample_id")
        elif not CODE.match(sid):
            bad("sample_id", f"{sid!r} is not a code (letters, digits, '-', '_', '.'; no spaces)")
        elif sid in seen:
            bad(
                "sample_id",
                f"{sid!r} already used on row {seen[sid]}; sample_id must be unique in the batch",
            )
        else:
            seen[sid] = r["row"]
        if assay not in ASSAYS:
            close = difflib.get_close_matches(assay.lower(), ASSAYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            bad("assay", f"{assay!r} is not an assay (expected one of {', '.join(ASSAYS)}){hint}")
        tube = r.get("tube", "")
        batch_control = assay == "cytometry" and tube in BATCH_CONTROL_TUBES
        pid, visit = r["patient_id"], r["visit"]
        if not pid and not (batch_control and tube != "reference_control"):
            bad("patient_id", "empty; expected a pseudonymous patient code")
        elif pid and not CODE.match(pid):
            bad(
                "patient_id",
                f"{pid!r} is not a pseudonymous code (letters, digits, '-', '_', '.'; no spaces)",
            )
        elif pid and not batch_control and not patient_code.fullmatch(pid):
            # the privacy rule: a code of the trial, never a name (batch controls have their own codes)
            bad(
                "patient_id",
                f"{pid!r} does not match the patient code pattern {patient_code.pattern} "
                "(a pseudonymous code such as P01 or LYS-014, never a name; the pattern is the "
                "configuration's patient_id_pattern)",
            )
        if visit and visit not in visits:
            close = difflib.get_close_matches(visit.upper(), visits, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            bad("visit", f"{visit!r} is not an allowed visit ({', '.join(visits)}){hint}")
        elif not visit and not batch_control:
            bad("visit", f"empty; expected one of {', '.join(visits)}")
        _, problem = _check_file(root, r["file"], f"{where}, column file", "file")
        if problem:
            problems.append(Problem(problem.where, problem.what))
        panel = r.get("panel", "")
        if not panel:
            bad("panel", "empty; every data file needs the panel that describes its assay")
        elif panel not in panels:
            close = difflib.get_close_matches(panel, sorted(panels), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f" (known: {', '.join(sorted(panels)) or 'none'})"
            )
            bad("panel", f"no panel named {panel!r}{hint}")
        if assay == "cytometry":
            if tube and tube not in TUBES:
                bad("tube", f"{tube!r} is not a tube type (expected one of {', '.join(TUBES)})")
            ctrl = r.get("control_of", "")
            if ctrl and ctrl not in ids:
                bad("control_of", f"{ctrl!r} is not a sample_id of this batch")
            if tube == "unstimulated" and not ctrl:
                bad(
                    "control_of", "an unstimulated tube must name the stimulated sample it controls"
                )
        if assay == "chimerism":
            role = r.get("role", "")
            if role not in ROLES:
                bad(
                    "role", f"{role!r} is not a chimerism role (expected one of {', '.join(ROLES)})"
                )
            if role in ("donor_reference", "biopsy") and not r.get("donor_id", ""):
                bad("donor_id", f"a {role} row needs the donor_id of the infused product")
            elif r.get("donor_id", "") and not CODE.match(r["donor_id"]):
                bad("donor_id", f"{r['donor_id']!r} is not a code")
        if r.get("dna_input_ng", ""):
            try:
                ok = float(r["dna_input_ng"]) > 0
            except ValueError:
                ok = False
            if not ok:
                bad("dna_input_ng", f"{r['dna_input_ng']!r} is not a positive number of nanograms")
        if r.get("supersedes", "") and not CODE.match(r["supersedes"]):
            bad(
                "supersedes",
                f"{r['supersedes']!r} is not a batch id (the results folder name of the run replaced)",
            )
        elif r.get("supersedes", "") and r["supersedes"] == root.resolve().name:
            bad(
                "supersedes",
                "a batch cannot supersede itself; name the earlier batch this sample re-runs",
            )
        if r.get("layout", ""):
            _, problem = _check_file(root, r["layout"], f"{where}, column layout", "layout")
            if problem:
                problems.append(problem)
    # a file may be named by several rows only when they are different samples inside it
    names = df["sample_name"].where(df["sample_name"] != "", df["sample_id"])
    dup = df.assign(_name=names).duplicated(["file", "_name"], keep="first")
    for _, r in df[dup].iterrows():
        problems.append(
            Problem(
                f"{path}: row {r['row']}, column file",
                f"{r['file']!r} is already named by another row for the same sample; "
                "give each sample of a multi-sample export its own sample_name",
            )
        )
    return problems


def load_batch(
    folder: str | Path,
    visits: Sequence[str] = DEFAULT_VISITS,
    panels_dir: str | Path | None = None,
    patient_id_pattern: str | None = None,
) -> Batch:
    """Read and check a batch's sample sheet and the panels it names.

    Parameters
    ----------
    folder
        The batch folder (holding ``samplesheet.csv``).
    visits
        The allowed visit codes.
    panels_dir
        Folder of panel YAML files (default: the project's ``panels/``).
    patient_id_pattern
        Regular expression every patient's code must match (see :func:`compile_patient_id_pattern`).

    Returns
    -------
    Batch

    Raises
    ------
    UserError
        Listing every problem in the sheet (row and column) and in the panels it names.
    """
    root = Path(folder)
    patient_code = compile_patient_id_pattern(patient_id_pattern)
    if not root.is_dir():
        raise UserError.single(
            str(root), "batch folder not found", hint="Give the folder that holds samplesheet.csv."
        )
    path = root / SHEET_NAME
    df, problems = _read_sheet(path)
    problems += _check_columns(df, path)
    if any("missing required column" in p.what for p in problems):
        raise UserError(problems, hint=f"Fix {path} and run again.")
    for col in OPTIONAL_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df.loc[:, ~df.columns.duplicated()]
    if df.empty:
        problems.append(Problem(str(path), "no data rows; expected one row per data file"))
    index = panel_index(panels_dir)
    problems += _check_rows(df, root, path, list(visits), index, patient_code)
    panels: dict[str, Panel] = {}
    for name in sorted(set(df["panel"]) & set(index)):
        try:
            panels[name] = load_panel(index[name])
        except UserError as exc:
            problems += exc.problems
    for _, r in df.iterrows():
        p = panels.get(r["panel"])
        if p is not None and r["assay"] in ASSAYS and p.assay != r["assay"]:
            problems.append(
                Problem(
                    f"{path}: row {r['row']}, column panel",
                    f"panel {p.name!r} is a {p.assay} panel but the row's assay is {r['assay']!r}",
                )
            )
    if problems:
        raise UserError(
            problems,
            hint=f"Fix {path} (or the panels it names) and run again; nothing was processed.",
        )
    cols = ["row", *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
    sheet = df[cols].astype({c: str for c in cols if c != "row"}).reset_index(drop=True)
    return Batch(batch_id=root.resolve().name, root=root.resolve(), sheet=sheet, panels=panels)


def write_sheet(rows: Sequence[dict[str, str]], path: str | Path) -> pd.DataFrame:
    """Write sample-sheet rows (dicts) as a CSV with the standard column order."""
    df = pd.DataFrame(list(rows)).fillna("")
    cols = [
        c
        for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        if c in df.columns or c in REQUIRED_COLUMNS
    ]
    for c in cols:
        if c not in df.columns:
            df[c] = ""
    write_text(df[cols].to_csv(index=False, lineterminator="\n"), path)
    return df[cols]


_VISIT_UNIT_DAYS = {"D": 1, "W": 7, "M": 30, "Y": 365}


def visit_sort_key(visit: str) -> tuple[float, str]:
    """Order visit codes in time: ``D0 < D10 < W2 < M1 < Y1``; unknown codes go last."""
    match = re.fullmatch(r"([DWMY])(\d+(?:\.\d+)?)", str(visit).strip().upper())
    if not match:
        return (float("inf"), str(visit))
    return (_VISIT_UNIT_DAYS[match.group(1)] * float(match.group(2)), str(visit))
