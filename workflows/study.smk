# Study-level tables, rebuilt from every batch's results (batches are never rewritten).


rule study_tables:
    input:
        expand(f"{RESULTS}/{{batch}}/provenance.json", batch=list(BATCHES)),
    output:
        measurements=f"{RESULTS}/study/measurements.parquet",
        metrics=f"{RESULTS}/study/qc_metrics.parquet",
        flags=f"{RESULTS}/study/qc_flags.parquet",
        dashboard=f"{RESULTS}/study/dashboard.html",
    log:
        f"{RESULTS}/logs/study_tables.log",
    shell:
        "{IMMUNO} study {RESULTS} > {log} 2>&1"
