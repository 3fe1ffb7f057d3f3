# Chemokines: one job per batch. Plates are small (a 30-analyte plate is fitted and
# quantified in well under a second), so `chemokines_batch` reads every plate export of
# the batch, fits the standard curves, quantifies, tracks controls and curve EC50 across
# the batch's plates and writes the room's tables. The rule only wires files together;
# the work is `immuno chemokines process`.


def chemokine_inputs(wildcards):
    """The validated sheet and every chemokine plate export (and layout) of the batch."""
    sheet = validated_sheet(wildcards.batch)
    folder = Path(batch_folder(wildcards))
    rows = sheet[sheet["assay"] == "chemokine"]
    files = sorted(set(rows["file"]) | (set(rows["layout"]) - {""} if "layout" in rows else set()))
    return {"sheet": f"{RESULTS}/{wildcards.batch}/validation/samplesheet.csv",
            "plates": [str(folder / f) for f in files]}


rule chemokines_batch:
    input:
        unpack(chemokine_inputs),
    output:
        measurements=f"{RESULTS}/{{batch}}/chemokines/chemokines_measurements.parquet",
        metrics=f"{RESULTS}/{{batch}}/chemokines/qc_metrics.parquet",
        flags=f"{RESULTS}/{{batch}}/chemokines/qc_flags.parquet",
        wells=f"{RESULTS}/{{batch}}/chemokines/wells.parquet",
        curves=f"{RESULTS}/{{batch}}/chemokines/curves.parquet",
        concentrations=f"{RESULTS}/{{batch}}/chemokines/concentrations.h5ad",
    log:
        f"{RESULTS}/{{batch}}/logs/chemokines_batch.log",
    params:
        folder=batch_folder,
        out=lambda wildcards: f"{RESULTS}/{wildcards.batch}/chemokines",
    shell:
        "{IMMUNO} chemokines process {params.folder} --out {params.out} --panels {PANELS} "
        "--visits {VISITS} > {log} 2>&1"
