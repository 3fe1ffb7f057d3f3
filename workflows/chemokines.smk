# Chemokines: one job per batch. Plates are small (a 30-analyte plate is fitted and
# quantified in well under a second), so `chemokines_batch` reads every plate export of
# the batch, fits the standard curves, quantifies, tracks controls and curve EC50 across
# the batch's plates and writes the room's folder (tables, AnnData, curve plots), a
# declared directory output. The work is `immuno chemokines process`.

rule chemokines_batch:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        plates=lambda wc: data_files(wc, chemokine_rows(wc)),
        stamps=lambda wc: stamps(wc, chemokine_rows(wc)),
    output:
        directory(f"{RESULTS}/{{batch}}/chemokines"),
    log:
        f"{RESULTS}/{{batch}}/logs/chemokines_batch.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, chemokine_rows(wc)),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{STEP} --outputs {output:q} --expect {params.expect:q} --folder {output:q} -- chemokines process {params.folder:q} "
        "--out {output:q} {ROOM_OPTS} > {log:q} 2>&1"
