# genomics_lm workflow: FASTA -> k-mer token stores (HDF5) -> MLM pretraining -> tasks -> fine-tuning per task x
# attention x seed -> evaluation next to the k-mer baseline -> compare tables (and long-context tables) -> scoring
# -> one HTML report.
# Thin: the config, the rule files, and the targets. No science lives here; each rule calls `genomics-lm`.
#
#   snakemake --profile workflow/profiles/default --configfile configs/demo.yaml      # laptop / CI
#   snakemake --profile workflow/profiles/slurm   --configfile configs/full.yaml      # SLURM cluster
#   snakemake ... bench                                                               # + the attention benchmark
# There is no default configfile (Snakemake would merge it into yours, genomes included): pass --configfile.
# Config keys and their defaults: workflow/schemas/config.schema.yaml. Inputs and their sha256: data/MANIFEST.tsv.


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/tokenize.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/bench.smk"


if PRETRAIN:

    include: "workflow/rules/pretrain.smk"
    include: "workflow/rules/summary.smk"


if FINETUNE:

    include: "workflow/rules/finetune.smk"
    include: "workflow/rules/evaluate.smk"


if FINETUNE and LONG_CONTEXT:

    include: "workflow/rules/long_context.smk"


if REPORT:

    include: "workflow/rules/report.smk"


if SCORE:

    include: "workflow/rules/score.smk"


rule all:
    input:
        all_targets(),
    default_target: True
