# Token stores -> masked-LM pretraining (genomics-lm pretrain fit; options under config["pretrain"], whose keys and
# defaults are in workflow/schemas/config.schema.yaml; the option string and resources are built in common.smk).
#
# One run per genome x attention type: RESULTS/pretrain/{genome}/{attention}/ holds checkpoints/, csv/metrics.csv
# (one file per run, appended on resume) and pretrained.pt, the model-only export written when the run completes
# (the rule's output). The command always passes --resume: a job killed by a time limit, preemption or a crash
# continues from its last checkpoint when it runs again. The model's tokenizer (k, stride) is config["tokenize"]'s,
# so the model always matches its token stores. Included by the Snakefile only with a `pretrain` section.


rule pretrain:
    input:
        train=lambda wc: token_store(wc.genome, "train"),
        val=lambda wc: token_store(wc.genome, "val"),
        model_config=PRETRAIN["model_config"],
    output:
        model=pretrained_model("{genome}", "{attention}"),
    log:
        log_file("pretrain", "{genome}.{attention}"),
    benchmark:
        benchmark_file("pretrain", "{genome}.{attention}")
    wildcard_constraints:
        attention="bigbird|longformer|dense",
    params:
        run_dir=lambda wc: pretrain_run(wc.genome, wc.attention),
        launcher=pretrain_launcher(),
        options=pretrain_options(),
    threads: PRETRAIN["cpus"]
    resources:
        **pretrain_resources(),
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} genomics-lm pretrain fit --config {input.model_config}"
        " --data.train_path {input.train} --data.val_path {input.val} --model.arch.attention {wildcards.attention}"
        " --trainer.default_root_dir {params.run_dir} {params.options} --resume > {log} 2>&1"
