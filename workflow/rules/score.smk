# Scoring with a fine-tuned checkpoint (genomics-lm score): the FASTA, VCF and track named in config["score"] (keys
# and defaults: workflow/schemas/config.schema.yaml; options built in common.smk). The checkpoint is a model the
# workflow fine-tunes (score.checkpoint TASK/ATTENTION/SEED, or by default the first task x attention x seed) or an
# explicit path. Included by the Snakefile only with a `score` section.


rule score_sequences:
    input:
        checkpoint=SCORE_CHECKPOINT,
        fasta=SCORE_INPUTS.get("fasta", []),
    output:
        scores=f"{score_dir()}/sequences.tsv",
    log:
        log_file("score", "sequences"),
    benchmark:
        benchmark_file("score", "sequences")
    params:
        options=score_options("sequences"),
    threads: 1
    resources:
        **score_resources(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm score --checkpoint {input.checkpoint} --fasta {input.fasta} --out {output.scores} --overwrite"
        " {params.options} > {log} 2>&1"


rule score_variants:
    input:
        checkpoint=SCORE_CHECKPOINT,
        vcf=SCORE_INPUTS.get("vcf", []),
        genome=SCORE_INPUTS.get("genome", []),
    output:
        effects=f"{score_dir()}/effects.tsv",
        skipped=f"{score_dir()}/skipped.tsv",
    log:
        log_file("score", "variants"),
    benchmark:
        benchmark_file("score", "variants")
    params:
        options=score_options("variants"),
    threads: 1
    resources:
        **score_resources(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm score --checkpoint {input.checkpoint} --vcf {input.vcf} --genome {input.genome}"
        " --out {output.effects} --skipped {output.skipped} --overwrite {params.options} > {log} 2>&1"


rule score_track:
    input:
        checkpoint=SCORE_CHECKPOINT,
        genome=SCORE_INPUTS.get("genome", []),
        regions=SCORE_INPUTS.get("regions", []),
    output:
        track=directory(f"{score_dir()}/track"),
    log:
        log_file("score", "track"),
    benchmark:
        benchmark_file("score", "track")
    params:
        regions=lambda wc, input: f"--regions {input.regions}" if input.regions else "",
        prefix=f"{score_dir()}/track/track",
        options=score_options("track"),
    threads: 1
    resources:
        **score_resources(),
    conda:
        CONDA_ENV
    shell:
        "mkdir -p {output.track} && genomics-lm score --checkpoint {input.checkpoint} --genome {input.genome}"
        " {params.regions} --out-prefix {params.prefix} --overwrite {params.options} > {log} 2>&1"
