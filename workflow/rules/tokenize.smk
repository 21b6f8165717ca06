# FASTA -> train/val/test token stores (genomics-lm tokenize). Every option of the command is a key of
# config["tokenize"] (defaults: workflow/schemas/config.schema.yaml); tokenize_options() in common.smk spells them.


rule tokenize:
    input:
        fasta=genome_fasta,
    output:
        train=token_store("{genome}", "train"),
        val=token_store("{genome}", "val"),
        test=token_store("{genome}", "test"),
    log:
        log_file("tokenize", "{genome}"),
    benchmark:
        benchmark_file("tokenize", "{genome}")
    params:
        out_dir=lambda wc: token_dir(wc.genome),
        options=tokenize_options(),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=by_attempt(60),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm tokenize --fasta {input.fasta} --out-dir {params.out_dir} --overwrite --no-progress"
        " {params.options} > {log} 2>&1"
