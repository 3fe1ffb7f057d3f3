# The immuno workflow: validated batches in, tidy results out (see README and DESIGN).
#
#   immuno run                 # the demo batch (generated if absent)
#   immuno run BATCH...        # real batches
#   snakemake --cores 2        # the same, for those who know Snakemake
#
# Every computation is a library function called through the `immuno` command; this file
# and workflows/*.smk are glue.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflows/schemas/config.schema.yaml")


include: "workflows/common.smk"
include: "workflows/cytometry.smk"
include: "workflows/chemokines.smk"
include: "workflows/chimerism.smk"
include: "workflows/report.smk"
include: "workflows/study.smk"


rule all:
    input:
        expand(f"{RESULTS}/{{batch}}/report.html", batch=list(BATCHES)),
        f"{RESULTS}/study/measurements.parquet",
    default_target: True
