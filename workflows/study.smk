# Study-level tables, rebuilt from every finished batch of the results folder (batches
# are never rewritten): those of this run and those finished by earlier runs, all
# declared as inputs, since the study store reads every one of them.

STUDY_TABLES = ("measurements.parquet", "qc/metrics.parquet", "qc/flags.parquet", "provenance.json")


def study_batches():
    """Batch ids of this run, and of every batch an earlier run finished in the results folder."""
    finished = {p.parent.name for p in Path(RESULTS).glob("*/provenance.json") if p.parent.name != "study"}
    return sorted(finished | set(BATCHES))


rule study_tables:
    input:
        [f"{RESULTS}/{batch}/{table}" for batch in study_batches() for table in STUDY_TABLES],
    output:
        measurements=f"{RESULTS}/study/measurements.parquet",
        metrics=f"{RESULTS}/study/qc_metrics.parquet",
        flags=f"{RESULTS}/study/qc_flags.parquet",
    log:
        f"{RESULTS}/logs/study_tables.log",
    params:
        results=RESULTS,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{STEP} -- study {params.results:q} > {log:q} 2>&1"
