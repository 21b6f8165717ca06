# Task stores -> fine-tuned classifiers (genomics-lm finetune fit; options under config["finetune"], built in
# common.smk). One run per task x attention x seed: RESULTS/finetune/{task}/{attention}_s{seed}/ holds checkpoints/,
# csv/metrics.csv and finetuned.pt (the model-only export of the best checkpoint, the rule's output). The seed is
# seed_everything and data.seed. With `pretrained: true` a run starts from the task's pretrain_genome model of the
# same attention type. Always --resume: a killed job continues from its last checkpoint when it runs again.


rule finetune:
    input:
        train=lambda wc: task_store(wc.task, "train"),
        val=lambda wc: task_store(wc.task, "val"),
        model_config=FINETUNE["model_config"],
        pretrained=finetune_pretrained,
    output:
        model=finetuned_model("{task}", "{attention}", "{seed}"),
    log:
        log_file("finetune", "{task}.{attention}_s{seed}"),
    benchmark:
        benchmark_file("finetune", "{task}.{attention}_s{seed}")
    wildcard_constraints:
        task=names_regex(TASKS),
        attention="bigbird|longformer|dense",
        seed=r"\d+",
    params:
        run_dir=lambda wc: finetune_run(wc.task, wc.attention, wc.seed),
        task_dir=lambda wc: task_dir(wc.task),
        pretrained=lambda wc, input: f"--model.pretrained {input.pretrained}" if input.pretrained else "",
        options=finetune_options(),
    threads: FINETUNE["cpus"]
    resources:
        **finetune_resources(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm finetune fit --config {input.model_config} --data.task_dir {params.task_dir}"
        " --model.arch.attention {wildcards.attention} --seed_everything {wildcards.seed} --data.seed {wildcards.seed}"
        " {params.pretrained} --trainer.default_root_dir {params.run_dir} {params.options} --resume > {log} 2>&1"
