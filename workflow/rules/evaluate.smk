# Fine-tuned models -> metrics next to the k-mer baseline (genomics-lm evaluate; options under config["evaluate"]),
# RESULTS/eval/{task}/{attention}_s{seed}/, and one table per task (genomics-lm compare): mean ± spread over seeds
# per attention type, the baseline, and published figures. The baseline is fitted once per task into
# RESULTS/baseline_cache (the first evaluation of a task fits it; the others wait for it and read it).


rule evaluate:
    input:
        model=lambda wc: finetuned_model(wc.task, wc.attention, wc.seed),
        stores=lambda wc: [task_store(wc.task, s) for s in SPLITS],
        baseline_first=baseline_first,
    output:
        metrics=metrics_file("{task}", "{attention}", "{seed}"),
        predictions=f"{eval_dir('{task}', '{attention}', '{seed}')}/predictions.tsv",
        roc=f"{eval_dir('{task}', '{attention}', '{seed}')}/roc.png",
        pr=f"{eval_dir('{task}', '{attention}', '{seed}')}/pr.png",
    log:
        log_file("evaluate", "{task}.{attention}_s{seed}"),
    benchmark:
        benchmark_file("evaluate", "{task}.{attention}_s{seed}")
    wildcard_constraints:
        task=names_regex(TASKS),
        attention="bigbird|longformer|dense",
        seed=r"\d+",
    params:
        task_dir=lambda wc: task_dir(wc.task),
        out_dir=lambda wc: eval_dir(wc.task, wc.attention, wc.seed),
        options=evaluate_options(),
    threads: EVALUATE["cpus"]
    resources:
        mem_mb=EVALUATE["mem_mb"],
        runtime=by_attempt(EVALUATE["runtime"]),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm evaluate --checkpoint {input.model} --task-dir {params.task_dir} --out-dir {params.out_dir}"
        " --task-name {wildcards.task} {params.options} --overwrite > {log} 2>&1"


localrules:
    compare,


rule compare:
    input:
        metrics=lambda wc: [metrics_file(wc.task, a, s) for t, a, s in finetune_runs() if t == wc.task],
        published=published_table(),
    output:
        table=compare_table("{task}"),
    log:
        log_file("compare", "{task}"),
    benchmark:
        benchmark_file("compare", "{task}")
    wildcard_constraints:
        task=names_regex(TASKS),
    params:
        evals=lambda wc: " ".join(eval_dir(t, a, s) for t, a, s in finetune_runs() if t == wc.task),
        published=lambda wc, input: f"--published {input.published}" if input.published else "",
    conda:
        CONDA_ENV
    shell:
        "genomics-lm compare {params.evals} {params.published} --out {output.table} > {log} 2>&1"
