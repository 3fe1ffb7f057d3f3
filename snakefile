# The immuno workflow: validated batches in, tidy results out (see README and docs/architecture.md).
#
#   immuno run                 # the demo batch (generated if absent)
#   immuno run BATCH...        # real batches
#   snakemake --cores 2        # the same, for those who know Snakemake
#
# The workflow itself is workflows/Snakefile with one .smk file per concern beside it.
# Those files are shipped inside the installed package (as immuno/workflows/), so that
# `immuno run` works from any folder without this checkout; this file is the entry point
# for running Snakemake from the project folder, and includes them unchanged.


include: "workflows/Snakefile"


# Snakemake takes its default target from the main file only: ask for what `rule all` asks.
rule default:
    input:
        rules.all.input,
    default_target: True
