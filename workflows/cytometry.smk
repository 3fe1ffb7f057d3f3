# Cytometry: one job per gated tube (so a cluster can spread them), a batch-level job for
# the spillover matrix when a panel computes it from single stains, one that ingests the
# single stains and unstained tube, and `cytometry_batch`, which links every job's files
# into the batch's cytometry/ folder and gathers the per-sample tables into the batch's
# cytometry tables. An unstimulated tube is gated inside its stimulated tube's job (it
# sets that tube's cytokine gates), which also writes its files. Each job writes into its
# own folder under .jobs/cytometry/ (a declared directory output: an interrupted job's
# folder is removed and the job rerun). Every step is an `immuno cytometry ...` command.

import functools

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
    """Gated tubes that get a job of their own: all but the controls of another gated tube."""
    rows = cytometry_rows(batch)
    ids = set(rows["sample_id"])
    return rows.loc[~rows["control_of"].isin(ids), "sample_id"].tolist()


def cytometry_unit_rows(wildcards):
    """Sheet rows a tube's job reads: the tube and the tube it is the control of."""
    sheet = validated_sheet(wildcards.batch)
    return sheet[(sheet["assay"] == "cytometry") & ((sheet["sample_id"] == wildcards.sample)
                                                    | (sheet["control_of"] == wildcards.sample))]


@functools.cache
def cytometry_needs_compensation(batch):
    """True when a panel of the batch's gated tubes computes compensation from single stains."""
    from immuno.panels import load_panel, panel_index

    index = panel_index(PANELS)
    names = set(cytometry_rows(batch)["panel"]) & set(index)
    return any((load_panel(index[n]).get("compensation") or {}).get("source") == "single_stains"
               for n in sorted(names))


def cytometry_jobs(wildcards):
    """Where the jobs write: .jobs/cytometry/{samples/<tube>, controls, compensation}."""
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
    dirs = [f"{jobs}/samples/{sid}" for sid in cytometry_units(wildcards.batch)]
    dirs.append(f"{jobs}/controls")
    if cytometry_needs_compensation(wildcards.batch):
        dirs.append(f"{jobs}/compensation")
    return dirs


def fcs_mem_mb(wildcards, input):
    """Memory of a job reading FCS files: the events three times over (raw, compensated,
    transformed) in float32 beside the float64 reads, plus the interpreter."""
    return int(1000 + 8 * input.size_mb)


rule cytometry_compensation:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_control_rows(wc.batch)),
    output:
        directory(f"{RESULTS}/{{batch}}/.jobs/cytometry/compensation"),
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_compensation.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, cytometry_control_rows(wc.batch)),
        matrix=lambda wc, output: f"{output[0]}/compensation.csv",
    threads: 1
    resources:
        mem_mb=fcs_mem_mb,
        runtime=30,
    shell:
        "{STEP} --expect {params.expect:q} -- cytometry compensation {params.folder:q} "
        "--out {params.matrix:q} {ROOM_OPTS} > {log:q} 2>&1"


rule cytometry_sample:
    input:
        unpack(compensation_inputs),
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_unit_rows(wc)),
    output:
        directory(f"{RESULTS}/{{batch}}/.jobs/cytometry/samples/{{sample}}"),
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry/{{sample}}.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, cytometry_unit_rows(wc)),
        compensation=compensation_option,
    threads: 1
    resources:
        mem_mb=fcs_mem_mb,
        runtime=30,
    shell:
        "{STEP} --expect {params.expect:q} --folder {output:q} -- cytometry process {params.folder:q} "
        "{wildcards.sample:q} --out {output:q} {ROOM_OPTS} {params.compensation:q} > {log:q} 2>&1"


rule cytometry_controls:
    input:
        unpack(compensation_inputs),
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_control_rows(wc.batch)),
    output:
        directory(f"{RESULTS}/{{batch}}/.jobs/cytometry/controls"),
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_controls.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, cytometry_control_rows(wc.batch)),
        compensation=compensation_option,
    threads: 1
    resources:
        mem_mb=fcs_mem_mb,
        runtime=30,
    shell:
        "{STEP} --expect {params.expect:q} --folder {output:q} -- cytometry controls {params.folder:q} "
        "--out {output:q} {ROOM_OPTS} {params.compensation:q} > {log:q} 2>&1"


rule cytometry_batch:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        jobs=cytometry_job_dirs,
    output:
        directory(f"{RESULTS}/{{batch}}/cytometry"),
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry_batch.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{STEP} --expect {params.expect:q} --gather {input.jobs:q} --into {output:q} -- "
        "cytometry aggregate {params.folder:q} --out {output:q} {ROOM_OPTS} > {log:q} 2>&1"
