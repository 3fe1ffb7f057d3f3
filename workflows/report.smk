# The batch QC report (self-contained HTML), read from the batch's result files only.


rule report_batch:
    input:
        measurements=f"{RESULTS}/{{batch}}/measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/qc/metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/qc/flags.parquet",
        provenance=f"{RESULTS}/{{batch}}/provenance.json",
        rooms=room_dirs,  # the report embeds the rooms' plots
    output:
        f"{RESULTS}/{{batch}}/report.html",
    log:
        f"{RESULTS}/{{batch}}/logs/report_batch.log",
    params:
        out=batch_dir,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{STEP} --outputs {output:q} -- report {params.out:q} > {log:q} 2>&1"
