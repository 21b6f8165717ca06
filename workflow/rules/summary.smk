# Pretraining runs -> one table per genome (genomics-lm summarize): the final validation loss and accuracy of each
# attention type next to the context-free unigram baseline of the token stores. Included only with a `pretrain`
# section. A local rule: it reads a few small files, not worth a cluster job.


localrules:
    summarize_pretraining,


rule summarize_pretraining:
    input:
        models=lambda wc: [pretrained_model(wc.genome, a) for a in ATTENTIONS],
        train=lambda wc: token_store(wc.genome, "train"),
        val=lambda wc: token_store(wc.genome, "val"),
    output:
        summary=pretrain_summary("{genome}"),
    log:
        log_file("summary", "{genome}"),
    benchmark:
        benchmark_file("summary", "{genome}")
    params:
        runs=summary_runs,
        tokens=lambda wc: token_dir(wc.genome),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm summarize {params.runs} --tokens {params.tokens} --out {output.summary} > {log} 2>&1"
