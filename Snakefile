# genomics_lm workflow: FASTA -> k-mer token stores (HDF5) -> MLM pretraining -> a summary table.
# Thin: the config, the rule files, and the targets. No science lives here; each rule calls `genomics-lm`.
#
#   snakemake --profile workflow/profiles/default --configfile configs/demo.yaml      # laptop / CI
#   snakemake --profile workflow/profiles/slurm   --configfile configs/full.yaml      # SLURM cluster
# There is no default configfile (Snakemake would merge it into yours, genomes included): pass --configfile.
# Config keys and their defaults: workflow/schemas/config.schema.yaml.


include: "workflow/rules/common.smk"
include: "workflow/rules/tokenize.smk"


if PRETRAIN:

    include: "workflow/rules/pretrain.smk"
    include: "workflow/rules/summary.smk"


if config.get("score"):

    include: "workflow/rules/score.smk"


rule all:
    input:
        all_targets(),
        score_targets() if config.get("score") else [],
    default_target: True
