# Study-level tables, rebuilt from every finished batch of the results folder (batches
# are never rewritten): those of this run and those finished by earlier runs, all
# declared as inputs, since the study store reads every one of them.

rule study_tables:
    input:
        [f"{RESULTS}/{batch}/{table}" for batch in study_batches() for table in STUDY_TABLES],
    output:
        measurements=f"{RESULTS}/study/measurements.parquet",
        metrics=f"{RESULTS}/study/qc_metrics.parquet",
        flags=f"{RESULTS}/study/qc_flags.parquet",
        dashboard=f"{RESULTS}/study/dashboard.html",
    log:
        f"{RESULTS}/logs/study_tables.log",
    params:
        results=lambda wc, output: str(Path(output.measurements).parent.parent),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{STEP} --outputs {output:q} -- study {params.results:q} > {log:q} 2>&1"
