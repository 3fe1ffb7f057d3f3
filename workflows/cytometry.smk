# Cytometry: one job per patient, which gates that patient's tubes one after the other in
# one process (a job's start-up, imports and compiled kernels, is paid once per patient,
# not once per tube; a cluster still spreads the patients), a batch-level job for
# the spillover matrix when a panel computes it from single stains, one that ingests the
# single stains and unstained tube, and `cytometry_batch`, which links every job's files
# into the batch's cytometry/ folder and gathers the per-sample tables into the batch's
# cytometry tables. An unstimulated tube is gated inside its stimulated tube's job (it
# sets that tube's cytokine gates), which also writes its files. Each job writes into its
# own folder under .jobs/cytometry/ (a declared directory output: an interrupted job's
# folder is removed and the job rerun). Every step is an `immuno cytometry ...` command.

rule cytometry_compensation:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_control_rows(wc.batch)),
        stamps=lambda wc: stamps(wc, cytometry_control_rows(wc.batch)),
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
        "{STEP} --outputs {output:q} --expect {params.expect:q} -- cytometry compensation {params.folder:q} "
        "--out {params.matrix:q} {ROOM_OPTS} > {log:q} 2>&1"


rule cytometry_patient:
    wildcard_constraints:
        patient=r"[A-Za-z0-9_][A-Za-z0-9_.\-]*",
    input:
        unpack(compensation_inputs),
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_unit_rows(wc)),
        stamps=lambda wc: stamps(wc, cytometry_unit_rows(wc)),
    output:
        directory(f"{RESULTS}/{{batch}}/.jobs/cytometry/patients/{{patient}}"),
    log:
        f"{RESULTS}/{{batch}}/logs/cytometry/{{patient}}.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, cytometry_unit_rows(wc)),
        compensation=compensation_option,
        samples=cytometry_group_units,
    threads: 1
    resources:
        mem_mb=patient_mem_mb,
        runtime=lambda wc, input: 10 + 5 * len(cytometry_group_units(wc)),
    shell:
        "{STEP} --outputs {output:q} --expect {params.expect:q} --folder {output:q} -- cytometry process {params.folder:q} "
        "{params.samples:q} --out {output:q} {ROOM_OPTS} {params.compensation:q} > {log:q} 2>&1"


rule cytometry_controls:
    input:
        unpack(compensation_inputs),
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        fcs=lambda wc: data_files(wc, cytometry_control_rows(wc.batch)),
        stamps=lambda wc: stamps(wc, cytometry_control_rows(wc.batch)),
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
        "{STEP} --outputs {output:q} --expect {params.expect:q} --folder {output:q} -- cytometry controls {params.folder:q} "
        "--out {output:q} {ROOM_OPTS} {params.compensation:q} > {log:q} 2>&1"


rule cytometry_batch:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        jobs=cytometry_job_dirs,
        stamps=lambda wc: stamps(wc),
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
        "{STEP} --outputs {output:q} --expect {params.expect:q} --gather {input.jobs:q} --into {output:q} -- "
        "cytometry aggregate {params.folder:q} --out {output:q} {ROOM_OPTS} > {log:q} 2>&1"
