# What the rules share: the configuration as constants, and the functions that find a
# job's files in the validated sample sheet (one section per room). No rules here.
#
# How the rules call the library. `{STEP} --outputs ... --expect ... -- COMMAND ...` runs the
# `immuno` COMMAND after checking that every file the step reads still has the SHA-256
# that `immuno run` recorded when the run started (immuno.run.steps). Each rule also takes the
# content stamps of the files it reads as inputs (`stamps`, immuno.run.stamps): a file edited
# with its modification time kept reruns exactly the jobs that read it.
# Every file a rule writes is a declared output, or lies inside a declared directory
# output; per-job folders live under <results>/<batch>/.jobs/ and are linked into the
# room folders by the room's batch rule.

import functools
import io
import json
import re
import shlex
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from immuno.contract.panels import default_panels_dir
from immuno.run.stamps import stamp_path


def q(text):
    """Quoted for the shell exactly as Snakemake's `:q` does (for constants made here)."""
    return shlex.quote(str(text))


# every rule calls the library through the CLI of the Python running Snakemake, so the
# workflow works from an unactivated virtual environment too
IMMUNO = f"{q(sys.executable)} -m immuno"
RESULTS = str(Path(config["results"]).absolute())
PANELS = str(Path(config.get("panels") or default_panels_dir()).absolute())
VISITS = list(config["visits"])
PATIENT_ID_PATTERN = config["patient_id_pattern"]
BATCHES = {Path(folder).absolute().name: str(Path(folder).absolute()) for folder in config["batches"]}
DEMO = config.get("demo", {})
ASSAY_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}
# absolute: validated_sheet() runs after parsing, when relative paths have no base
SHEET_SCHEMA = str(Path(workflow.current_basedir) / "schemas" / "samplesheet.schema.yaml")

# the start of every rule's command, and the options every room command takes
STEP = f"{IMMUNO} step --patient-id-pattern {q(PATIENT_ID_PATTERN)}"
ROOM_OPTS = f"--panels {q(PANELS)} --visits {' '.join(map(q, VISITS))}"


def _manifest():
    """The input hashes `immuno run` recorded when the run started, by batch id."""
    if not config.get("inputs"):
        return {}
    return json.loads(Path(config["inputs"]).read_text(encoding="utf-8"))["batches"]


MANIFEST = _manifest()
# the content stamps `immuno run` keeps beside the manifest (immuno.run.stamps)
STAMPS = str(Path(config["inputs"]).parent / "stamps") if config.get("inputs") else None

wildcard_constraints:
    batch="|".join(re.escape(b) for b in BATCHES) or "NOBATCH",
    sample=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",


def batch_folder(batch):
    """The batch folder of a batch id (accepts wildcards objects too)."""
    return BATCHES[getattr(batch, "batch", batch)]


def batch_dir(wildcards):
    """<results>/<batch>."""
    return f"{RESULTS}/{wildcards.batch}"


def validated_sheet(batch):
    """The validated sample sheet (waits for the validate_batch checkpoint). Read only:
    callers select from it, never change it (one copy serves every rule)."""
    batch = getattr(batch, "batch", batch)
    path = checkpoints.validate_batch.get(batch=batch).output.sheet
    return _read_validated_sheet(path, Path(path).read_bytes())


@functools.cache
def _read_validated_sheet(path, content):
    """The sheet as written by validation, checked against its schema once per content of
    the file (input functions ask for it many times per job while the DAG is built). Keyed
    by the bytes, not the file's time and size: a sheet rewritten within the clock's
    resolution, with the same length, must not be served from the cache."""
    sheet = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)
    validate(sheet, SHEET_SCHEMA, set_default=False)
    return sheet


def batch_assays(batch):
    """Assays present in a batch."""
    return sorted(set(validated_sheet(batch)["assay"]))


def data_files(wildcards, rows):
    """Absolute paths of the data files (and plate layouts) named by sheet rows."""
    folder = Path(batch_folder(wildcards))
    names = set(rows["file"]) | (set(rows["layout"]) - {""} if "layout" in rows else set())
    return [str(folder / name) for name in sorted(names)]


def _hashed_inputs(wildcards, rows=None, panels=True, sheet=True):
    """(sha256, path, stamp) of the sheet, the rows' data files and their panels, as hashed
    when the run started (nothing without `immuno run`'s hashes)."""
    entry = MANIFEST.get(wildcards.batch)
    if not entry:
        return []
    folder = Path(entry["folder"])
    names = ["samplesheet.csv"] if sheet else []
    if rows is not None:
        names += list(rows["file"]) + ([x for x in rows["layout"] if x] if "layout" in rows else [])
    found = [(entry["inputs"][n]["sha256"], str(folder / n), stamp_path(STAMPS, wildcards.batch, "inputs", n))
             for n in names if n in entry["inputs"]]
    if rows is not None and panels:
        found += [(entry["panels"][p]["sha256"], entry["panels"][p]["path"],
                   stamp_path(STAMPS, wildcards.batch, "panels", p))
                  for p in set(rows["panel"]) if p in entry["panels"]]
    return found


def expect(wildcards, rows=None, panels=True, sheet=True):
    """`SHA256=PATH` of the files a job reads (see `_hashed_inputs`): the step checks them."""
    return sorted({f"{digest}={path}" for digest, path, _ in _hashed_inputs(wildcards, rows, panels, sheet)})


def stamps(wildcards, rows=None, panels=True, sheet=True):
    """The content stamps of the files a job reads (see `_hashed_inputs`): its rerun
    triggers, newer than its outputs exactly when one of the files changed content since
    (immuno.run.stamps)."""
    return sorted({str(stamp) for _, _, stamp in _hashed_inputs(wildcards, rows, panels, sheet)})


def room_dirs(wildcards):
    """The room folders the merge step reads, for the assays the batch holds."""
    return [f"{RESULTS}/{wildcards.batch}/{ASSAY_DIRS[a]}" for a in batch_assays(wildcards.batch)]


# --- cytometry ---

CYTOMETRY_SKIP_TUBES = ("single_stain", "unstained")  # compensation controls, not gated


def cytometry_rows(batch):
    """Validated sheet rows of the batch's gated cytometry tubes."""
    sheet = validated_sheet(batch)
    return sheet[(sheet["assay"] == "cytometry") & ~sheet["tube"].isin(CYTOMETRY_SKIP_TUBES)]


def cytometry_control_rows(batch):
    """Validated sheet rows of the compensation controls (single stains, unstained tube)."""
    sheet = validated_sheet(batch)
    return sheet[(sheet["assay"] == "cytometry") & sheet["tube"].isin(CYTOMETRY_SKIP_TUBES)]


def cytometry_units(batch):
    """Units of work: the gated tubes but the controls of another gated tube (a control is
    gated with the tube it controls)."""
    rows = cytometry_rows(batch)
    ids = set(rows["sample_id"])
    return rows.loc[~rows["control_of"].isin(ids), "sample_id"].tolist()


#: the job name of the gated tubes that belong to no patient (the batch's reference
#: control); a patient code starts with a letter or digit, so it cannot clash
CYTOMETRY_NO_PATIENT = "_batch"


def cytometry_group(patient_id):
    """The job a patient's gated tubes are processed in (one per patient)."""
    return patient_id or CYTOMETRY_NO_PATIENT


def cytometry_unit_jobs(batch):
    """``{unit: job}`` for the batch's units of work (see `cytometry_units`), in the sheet's
    order: a unit's job is its patient's."""
    patients = cytometry_rows(batch).set_index("sample_id")["patient_id"]
    return {sid: cytometry_group(patients[sid]) for sid in cytometry_units(batch)}


def cytometry_groups(batch):
    """The batch's cytometry jobs: one per patient, in the sheet's order."""
    return list(dict.fromkeys(cytometry_unit_jobs(batch).values()))


def cytometry_group_units(wildcards):
    """The units of work of one patient's job."""
    return [sid for sid, job in cytometry_unit_jobs(wildcards.batch).items() if job == wildcards.patient]


def cytometry_unit_rows(wildcards):
    """Sheet rows a patient's job reads: its tubes and the tubes they are the controls of."""
    sheet = validated_sheet(wildcards.batch)
    units = cytometry_group_units(wildcards)
    return sheet[(sheet["assay"] == "cytometry") & (sheet["sample_id"].isin(units)
                                                    | sheet["control_of"].isin(units))]


@functools.cache
def cytometry_needs_compensation(batch):
    """True when a panel of the batch's gated tubes computes compensation from single stains."""
    from immuno.contract.panels import load_panel, panel_index

    index = panel_index(PANELS)
    names = set(cytometry_rows(batch)["panel"]) & set(index)
    return any((load_panel(index[n]).get("compensation") or {}).get("source") == "single_stains"
               for n in sorted(names))


def cytometry_jobs(wildcards):
    """Where the jobs write: .jobs/cytometry/{patients/<patient>, controls, compensation}."""
    return f"{RESULTS}/{wildcards.batch}/.jobs/cytometry"


def compensation_inputs(wildcards):
    """The batch's spillover matrix, when a panel computes it (else nothing)."""
    if not cytometry_needs_compensation(wildcards.batch):
        return {}
    return {"compensation": f"{cytometry_jobs(wildcards)}/compensation"}


def compensation_option(wildcards, input):
    """`--compensation FILE` when the job reads the batch's spillover matrix."""
    if "compensation" not in input.keys():
        return []
    return ["--compensation", f"{input.compensation}/compensation.csv"]


def cytometry_job_dirs(wildcards):
    """Every job folder `cytometry_batch` links into the batch's cytometry/ folder."""
    jobs = cytometry_jobs(wildcards)
    dirs = [f"{jobs}/patients/{group}" for group in cytometry_groups(wildcards.batch)]
    dirs.append(f"{jobs}/controls")
    if cytometry_needs_compensation(wildcards.batch):
        dirs.append(f"{jobs}/compensation")
    return dirs


def fcs_mem_mb(wildcards, input):
    """Memory of a job reading a set of FCS files together (the single stains): the events
    three times over (raw, compensated, transformed) in float32 beside the float64 reads,
    plus the interpreter."""
    return int(1000 + 8 * input.size_mb)


def patient_mem_mb(wildcards, input):
    """Memory of a patient's cytometry job: the interpreter, plus the largest two files (an
    ICS pair is processed together; the job's tubes one after the other, each released
    when written) at three times their size (the float32 event matrix beside a block of
    raw events, the per-event file's buffers)."""
    sizes = sorted((Path(f).stat().st_size for f in input.fcs if Path(f).is_file()), reverse=True)
    return int(1000 + 3 * sum(sizes[:2]) / 1e6)


# --- chemokines ---

def chemokine_rows(wildcards):
    """Validated sheet rows of the batch's chemokine samples."""
    sheet = validated_sheet(wildcards.batch)
    return sheet[sheet["assay"] == "chemokine"]


# --- chimerism ---

def chimerism_rows(wildcards):
    """Validated sheet rows of the batch's chimerism samples."""
    sheet = validated_sheet(wildcards.batch)
    return sheet[sheet["assay"] == "chimerism"]


# --- study ---

STUDY_TABLES = ("measurements.parquet", "qc/metrics.parquet", "qc/flags.parquet", "provenance.json")


def study_batches():
    """Batch ids of this run, and of every batch an earlier run finished in the results folder."""
    finished = {p.parent.name for p in Path(RESULTS).glob("*/provenance.json") if p.parent.name != "study"}
    return sorted(finished | set(BATCHES))
