# Tasks (config["tasks"]) -> RESULTS/tasks/{task}/{train,val,test}.h5 (genomics-lm make-task). The inputs, the
# options and the checks (one kind of input per task, files present, genome names) are built in common.smk; k and
# stride are config["tokenize"]'s, so the pretrained models read the same tokens.


rule make_task:
    input:
        task_inputs,
    output:
        train=task_store("{task}", "train"),
        val=task_store("{task}", "val"),
        test=task_store("{task}", "test"),
    log:
        log_file("tasks", "{task}"),
    benchmark:
        benchmark_file("tasks", "{task}")
    wildcard_constraints:
        task=names_regex(TASKS),
    params:
        out_dir=lambda wc: task_dir(wc.task),
        options=make_task_options,
    threads: 1
    resources:
        mem_mb=lambda wc: TASKS[wc.task]["mem_mb"],
        runtime=lambda wc, attempt: TASKS[wc.task]["runtime"] * attempt,
    conda:
        CONDA_ENV
    shell:
        "genomics-lm make-task --out-dir {params.out_dir} --overwrite {params.options} > {log} 2>&1"
