# Common rules: demo generation, batch validation (a checkpoint), the merge of assay
# tables into the batch's results, and helpers the assay rules use.

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pandas as pd

# every rule calls the library through the CLI of the Python running Snakemake, so the
# workflow works from an unactivated virtual environment too
IMMUNO = f"{shlex.quote(sys.executable)} -m immuno"
# ... and plain `immuno` in a rule resolves to the same environment's command
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

RESULTS = config["results"]
# panels: relative paths are taken from the project folder, so runs from elsewhere work
PANELS = str(Path(workflow.basedir) / config["panels"]) if not Path(config["panels"]).is_absolute() else config["panels"]
VISITS = " ".join(config["visits"])
BATCHES = {Path(folder).resolve().name: folder for folder in config["batches"]}
DEMO = config.get("demo", {})
ASSAY_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}

wildcard_constraints:
    batch="|".join(re.escape(b) for b in BATCHES) or "NOBATCH",


def batch_folder(batch):
    """The batch folder of a batch id (accepts wildcards objects too)."""
    return BATCHES[getattr(batch, "batch", batch)]


def validated_sheet(batch):
    """The validated sample sheet (waits for the validate_batch checkpoint)."""
    batch = getattr(batch, "batch", batch)
    return pd.read_csv(checkpoints.validate_batch.get(batch=batch).output.sheet, dtype=str,
                       keep_default_na=False)


def sample_ids(batch, assay):
    """Sample ids of one assay in a batch, in sheet order."""
    sheet = validated_sheet(batch)
    return sheet.loc[sheet["assay"] == assay, "sample_id"].tolist()


def batch_assays(batch):
    """Assays present in a batch."""
    return sorted(set(validated_sheet(batch)["assay"]))


def assay_tables(wildcards):
    """The per-assay tables the merge step reads, for the assays the batch holds."""
    files = []
    for assay in batch_assays(wildcards.batch):
        d = ASSAY_DIRS[assay]
        base = f"{RESULTS}/{wildcards.batch}/{d}"
        files += [f"{base}/{d}_measurements.parquet", f"{base}/qc_metrics.parquet", f"{base}/qc_flags.parquet"]
    return files


if DEMO.get("make") and DEMO.get("folder") in config["batches"]:

    rule demo_batch:
        output:
            sheet=f"{DEMO['folder']}/samplesheet.csv",
            truth=f"{DEMO['folder']}/truth.csv",
        log:
            f"{RESULTS}/logs/demo_batch.log",
        params:
            folder=DEMO["folder"],
            seed=DEMO.get("seed", 20261126),
            patients=DEMO.get("patients", 4),
            events=DEMO.get("events", 20000),
        shell:
            "{IMMUNO} demo {params.folder} --overwrite --seed {params.seed} "
            "--patients {params.patients} --events {params.events} > {log} 2>&1"


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
    shell:
        "{IMMUNO} validate {params.folder} --panels {PANELS} --visits {VISITS} "
        "--write {output.sheet} > {log} 2>&1"


rule collect_batch:
    input:
        sheet=rules.validate_batch.output.sheet,
        tables=assay_tables,
    output:
        measurements=f"{RESULTS}/{{batch}}/measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/qc/metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/qc/flags.parquet",
        provenance=f"{RESULTS}/{{batch}}/provenance.json",
    log:
        f"{RESULTS}/{{batch}}/logs/collect_batch.log",
    params:
        folder=batch_folder,
        parameters=shlex.quote(json.dumps(config, sort_keys=True)),
    shell:
        "{IMMUNO} collect {params.folder} {RESULTS}/{wildcards.batch} --panels {PANELS} "
        "--visits {VISITS} --parameters {params.parameters} > {log} 2>&1"
