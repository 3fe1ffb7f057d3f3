# The batch's own rules: the demo batch, validation (a checkpoint) and the merge of the
# rooms' tables into the batch's results with its provenance.

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
        stamps=lambda wc: stamps(wc),
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
        "{STEP} --outputs {output:q} --expect {params.expect:q} -- validate {params.folder:q} {ROOM_OPTS} "
        "--write {output.sheet:q} > {log:q} 2>&1"


rule collect_batch:
    input:
        sheet=rules.validate_batch.output.sheet,
        rooms=room_dirs,
        stamps=lambda wc: stamps(wc, validated_sheet(wc)),
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
        "{STEP} --outputs {output:q} -- collect {params.folder:q} {params.out:q} {ROOM_OPTS} "
        "--parameters {params.parameters:q} --expect {params.expect:q} > {log:q} 2>&1"
