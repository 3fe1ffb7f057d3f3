# The batch QC report (self-contained HTML), read from the batch's result files only.


rule report_batch:
    input:
        measurements=f"{RESULTS}/{{batch}}/measurements.parquet",
        provenance=f"{RESULTS}/{{batch}}/provenance.json",
    output:
        f"{RESULTS}/{{batch}}/report.html",
    log:
        f"{RESULTS}/{{batch}}/logs/report_batch.log",
    shell:
        "{IMMUNO} report {RESULTS}/{wildcards.batch} > {log} 2>&1"
