# Chimerism: one job per batch. A biopsy's estimate needs its recipient and donor
# references, and 100 biopsies are estimated in well under a second, so
# `chimerism_batch` reads every genotyping export of the batch and writes the room's
# tables, the AnnData and the plots. The rule only wires files together; the work is
# `immuno chimerism process`.


def chimerism_inputs(wildcards):
    """The validated sheet and every chimerism export of the batch."""
    sheet = validated_sheet(wildcards.batch)
    folder = Path(batch_folder(wildcards))
    rows = sheet[sheet["assay"] == "chimerism"]
    return {"sheet": f"{RESULTS}/{wildcards.batch}/validation/samplesheet.csv",
            "exports": [str(folder / f) for f in sorted(set(rows["file"]))]}


rule chimerism_batch:
    input:
        unpack(chimerism_inputs),
    output:
        measurements=f"{RESULTS}/{{batch}}/chimerism/chimerism_measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/chimerism/qc_metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/chimerism/qc_flags.parquet",
        genotypes=f"{RESULTS}/{{batch}}/chimerism/genotypes.parquet",
        anndata=f"{RESULTS}/{{batch}}/chimerism/chimerism.h5ad",
        summary=f"{RESULTS}/{{batch}}/chimerism/chimerism_summary.tsv",
    log:
        f"{RESULTS}/{{batch}}/logs/chimerism_batch.log",
    params:
        folder=batch_folder,
        out=lambda wildcards: f"{RESULTS}/{wildcards.batch}/chimerism",
    shell:
        "{IMMUNO} chimerism process {params.folder} --out {params.out} --panels {PANELS} "
        "--visits {VISITS} > {log} 2>&1"
