# Common rules: demo generation, batch validation (a checkpoint), the merge of assay
# tables into the batch's results, and the helpers every rule uses.
#
# How a rule calls the library: `{STEP} --expect {params.expect:q} -- COMMAND ...` runs the
# `immuno` COMMAND after checking that every file the step reads still has the SHA-256
# that `immuno run` recorded when the run started (immuno.steps). The hashes are params,
# so a file edited with its modification time kept still reruns the jobs that read it.
# Every file a rule writes is a declared output, or lies inside a declared directory
# output; per-job folders live under <results>/<batch>/.jobs/ and are linked into the
# room folders by the room's batch rule.

import json
import re
import shlex
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from immuno.panels import default_panels_dir


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
    """The validated sample sheet (waits for the validate_batch checkpoint)."""
    batch = getattr(batch, "batch", batch)
    sheet = pd.read_csv(checkpoints.validate_batch.get(batch=batch).output.sheet, dtype=str,
                        keep_default_na=False)
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


def expect(wildcards, rows=None, panels=True, sheet=True):
    """`SHA256=PATH` of the sheet, the rows' data files and their panels, as hashed when
    the run started (empty without `immuno run`'s hashes)."""
    entry = MANIFEST.get(wildcards.batch)
    if not entry:
        return []
    folder = Path(entry["folder"])
    names = ["samplesheet.csv"] if sheet else []
    if rows is not None:
        names += list(rows["file"]) + ([x for x in rows["layout"] if x] if "layout" in rows else [])
    found = [f"{entry['inputs'][n]['sha256']}={folder / n}" for n in names if n in entry["inputs"]]
    if rows is not None and panels:
        found += [f"{entry['panels'][p]['sha256']}={entry['panels'][p]['path']}"
                  for p in set(rows["panel"]) if p in entry["panels"]]
    return sorted(set(found))


def room_dirs(wildcards):
    """The room folders the merge step reads, for the assays the batch holds."""
    return [f"{RESULTS}/{wildcards.batch}/{ASSAY_DIRS[a]}" for a in batch_assays(wildcards.batch)]


if DEMO.get("make") and DEMO.get("folder") in config["batches"]:

    # For `snakemake` run by hand on the default configuration. `immuno run` generates the
    # demo itself before the run starts (atomically, so its files can be hashed first).
    # The rule declares the sheet and the truth table only: the FCS and export files it
    # writes beside them are inputs of the per-sample rules, which a directory output
    # could not provide.
    rule demo_batch:
        output:
            sheet=f"{BATCHES[Path(DEMO['folder']).absolute().name]}/samplesheet.csv",
            truth=f"{BATCHES[Path(DEMO['folder']).absolute().name]}/truth.csv",
        log:
            f"{RESULTS}/logs/demo_batch.log",
        params:
            folder=lambda wc: BATCHES[Path(DEMO["folder"]).absolute().name],
            seed=DEMO.get("seed", 20261126),
            patients=DEMO.get("patients", 4),
            events=DEMO.get("events", 20000),
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "{IMMUNO} demo {params.folder:q} --overwrite --seed {params.seed:q} "
            "--patients {params.patients:q} --events {params.events:q} > {log:q} 2>&1"


# The checkpoint declares only the sheet, though `immuno validate` reads the data files'
# headers too: a changed data file reruns the jobs that read it, not every job of the
# batch (and `immuno run` has validated every file before the run started).
checkpoint validate_batch:
    input:
        sheet=lambda wc: f"{batch_folder(wc)}/samplesheet.csv",
    output:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
    log:
        # outside results/<batch>/: a batch that fails validation gets no results folder
        f"{RESULTS}/logs/validate_batch.{{batch}}.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "{STEP} --expect {params.expect:q} -- validate {params.folder:q} {ROOM_OPTS} "
        "--write {output.sheet:q} > {log:q} 2>&1"


rule collect_batch:
    input:
        sheet=rules.validate_batch.output.sheet,
        rooms=room_dirs,
    output:
        measurements=f"{RESULTS}/{{batch}}/measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/qc/metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/qc/flags.parquet",
        provenance=f"{RESULTS}/{{batch}}/provenance.json",
    log:
        f"{RESULTS}/{{batch}}/logs/collect_batch.log",
    params:
        folder=batch_folder,
        out=batch_dir,
        expect=lambda wc: expect(wc, validated_sheet(wc)),
        # what shapes this batch's numbers (not the list of batches of this run: adding
        # a batch must not rewrite the provenance of another)
        parameters=lambda wc: json.dumps({"visits": VISITS, "patient_id_pattern": PATIENT_ID_PATTERN,
                                          "panels": PANELS}, sort_keys=True),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{STEP} -- collect {params.folder:q} {params.out:q} {ROOM_OPTS} "
        "--parameters {params.parameters:q} --expect {params.expect:q} > {log:q} 2>&1"
