# Chimerism: one job per batch. A biopsy's estimate needs its recipient and donor
# references, and 100 biopsies are estimated in well under a second, so
# `chimerism_batch` reads every genotyping export of the batch and writes the room's
# folder (tables, AnnData, plots), a declared directory output. The work is
# `immuno chimerism process`.

rule chimerism_batch:
    input:
        sheet=f"{RESULTS}/{{batch}}/validation/samplesheet.csv",
        exports=lambda wc: data_files(wc, chimerism_rows(wc)),
        stamps=lambda wc: stamps(wc, chimerism_rows(wc)),
    output:
        directory(f"{RESULTS}/{{batch}}/chimerism"),
    log:
        f"{RESULTS}/{{batch}}/logs/chimerism_batch.log",
    params:
        folder=batch_folder,
        expect=lambda wc: expect(wc, chimerism_rows(wc)),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{STEP} --outputs {output:q} --expect {params.expect:q} --folder {output:q} -- chimerism process {params.folder:q} "
        "--out {output:q} {ROOM_OPTS} > {log:q} 2>&1"
