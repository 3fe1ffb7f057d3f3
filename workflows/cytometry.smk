# Cytometry: one job per gated tube (so a cluster can spread them), a batch-level job for
# the spillover matrix when a panel computes it from single stains, one that ingests the
# single stains and unstained tube, and `cytometry_batch` gathering the per-sample files
# into the batch's cytometry tables. An unstimulated tube
# is gated inside its stimulated tube's job (it sets that tube's cytokine gates), which
# also writes its files. Every step is an `immuno cytometry ...` command; the rules only
# wire files together.

import functools

CYTOMETRY_SKIP_TUBES = ("single_stain", "unstained")  # compensation controls, not gated


def cytometry_rows(batch):
    """Validated sheet rows of the batch's gated cytometry tubes."""
    sheet = validated_sheet(batch)
    return sheet[(sheet["assay"] == "cytometry") & ~sheet["tube"].isin(CYTOMETRY_SKIP_TUBES)]


def cytometry_units(batch):
    """Gated tubes that get a job of their own: all but the controls of another gated tube."""
    rows = cytometry_rows(batch)
    ids = set(rows["sample_id"])
    return rows.loc[~rows["control_of"].isin(ids), "sample_id"].tolist()


@functools.cache
def cytometry_needs_compensation(batch):
    """True when a panel of the batch's gated tubes computes compensation from single stains."""
    from immuno.panels import load_panel, panel_index

    index = panel_index(PANELS)
    names = set(cytometry_rows(batch)["panel"]) & set(index)
    return any((load_panel(index[n]).get("compensation") or {}).get("source") == "single_stains"
               for n in sorted(names))


def cytometry_sample_inputs(wildcards):
    """The sample's FCS file, its control tube's, and the batch matrix when needed."""
    sheet = validated_sheet(wildcards.batch)
    folder = Path(batch_folder(wildcards))
    own = sheet[sheet["sample_id"] == wildcards.sample]
    control = sheet[(sheet["control_of"] == wildcards.sample) & (sheet["assay"] == "cytometry")]
    inputs = {
        "sheet": f"{RESULTS}/{wildcards.batch}/validation/samplesheet.csv",
        "fcs": [str(folder / f) for f in [*own["file"], *control["file"]]],
    }
    if cytometry_needs_compensation(wildcards.batch):
        inputs["compensation"] = f"{RESULTS}/{wildcards.batch}/cytometry/compensation.csv"
    return inputs


def cytometry_sample_tables(wildcards):
    """Every job's per-sample tables (what `cytometry_batch` gathers; a control tube's
    tables are written by its stimulated tube's job)."""
    base = f"{RESULTS}/{wildcards.batch}/cytometry/samples"
    return [f"{base}/{sid}/{name}" for sid in cytometry_units(wildcards.batch)
            for name in ("sample_measurements.parquet", "sample_qc_metrics.parquet",
                         "sample_qc_flags.parquet")]


rule cytometry_compensation:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
    output:
        f"{RESULTS}/{{batch}}/cytometry/compensation.csv",
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_compensation.log",
    params:
        folder=batch_folder,
    shell:
        "{IMMUNO} cytometry compensation {params.folder} --out {output} --panels {PANELS} "
        "--visits {VISITS} > {log} 2>&1"


rule cytometry_sample:
    wildcard_constraints:
        sample=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    input:
        unpack(cytometry_sample_inputs),
    output:
        measurements=f"{RESULTS}/{{batch}}/cytometry/samples/{{sample}}/sample_measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/cytometry/samples/{{sample}}/sample_qc_metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/cytometry/samples/{{sample}}/sample_qc_flags.parquet",
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry/{{sample}}.log",
    params:
        folder=batch_folder,
        out=lambda wc: f"{RESULTS}/{wc.batch}/cytometry",
        compensation=lambda wc, input: f"--compensation {input.compensation}" if "compensation" in input.keys() else "",
    shell:
        "{IMMUNO} cytometry process {params.folder} {wildcards.sample} --out {params.out} "
        "--panels {PANELS} --visits {VISITS} {params.compensation} > {log} 2>&1"


def cytometry_controls_inputs(wildcards):
    """The compensation controls' files and, when a panel computes it, the batch matrix."""
    sheet = validated_sheet(wildcards.batch)
    folder = Path(batch_folder(wildcards))
    controls = sheet[(sheet["assay"] == "cytometry") & sheet["tube"].isin(CYTOMETRY_SKIP_TUBES)]
    inputs = {
        "sheet": f"{RESULTS}/{wildcards.batch}/validation/samplesheet.csv",
        "fcs": [str(folder / f) for f in controls["file"]],
    }
    if cytometry_needs_compensation(wildcards.batch):
        inputs["compensation"] = f"{RESULTS}/{wildcards.batch}/cytometry/compensation.csv"
    return inputs


rule cytometry_controls:
    input:
        unpack(cytometry_controls_inputs),
    output:
        f"{RESULTS}/{{batch}}/cytometry/compensation_controls.json",
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_controls.log",
    params:
        folder=batch_folder,
        out=lambda wc: f"{RESULTS}/{wc.batch}/cytometry",
        compensation=lambda wc, input: f"--compensation {input.compensation}" if "compensation" in input.keys() else "",
    shell:
        "{IMMUNO} cytometry controls {params.folder} --out {params.out} --panels {PANELS} "
        "--visits {VISITS} {params.compensation} > {log} 2>&1"


rule cytometry_batch:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        samples=cytometry_sample_tables,
        controls=f"{RESULTS}/{{batch}}/cytometry/compensation_controls.json",
    output:
        measurements=f"{RESULTS}/{{batch}}/cytometry/cytometry_measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/cytometry/qc_metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/cytometry/qc_flags.parquet",
        populations=f"{RESULTS}/{{batch}}/cytometry/populations.h5ad",
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_batch.log",
    params:
        folder=batch_folder,
        out=lambda wc: f"{RESULTS}/{wc.batch}/cytometry",
    shell:
        "{IMMUNO} cytometry aggregate {params.folder} --out {params.out} --panels {PANELS} "
        "--visits {VISITS} > {log} 2>&1"
