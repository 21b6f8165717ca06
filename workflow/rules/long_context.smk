# The long-context experiment (config["long_context"]; keys and defaults: workflow/schemas/config.schema.yaml):
# does a longer input help, and which attention type pays for it? Each experiment NAME names tasks of `tasks` that
# build ONE genome task at several context_bp with one select_bp (the same bins or TSSs, labels and splits at every
# length), optionally with the N-masked control (mask_outside_bp: only the central M bp are bases). Their
# fine-tuning runs and evaluations are the ordinary ones (finetune.smk, evaluate.smk: every attention x seed, with the
# k-mer baseline); this file adds, per experiment:
#   context_bench   genomics-lm bench finetune at the tasks' context lengths (bench: true): seconds per training step
#                   and peak memory per attention type, fp32 on the CPU (the command has no GPU path, so the job
#                   asks for none), the finetune model config, threads, mem_mb and runtime
#                   -> RESULTS/context/NAME/bench.json
#   context_table   (local) genomics-lm context-table --task-name NAME over every evaluation of the tasks (the
#                   tasks are named per context; --task-name makes them one task, whose rows must agree)
#                   -> RESULTS/context/NAME/{context.tsv, context.md, metric_vs_context.png, time_vs_context.png}
#                   (`context_table_untimed`: the same rule without the benchmark and its time plot, bench: false)
# The report shows every RESULTS/context/NAME/ folder (common.smk report_options). The tasks are checked in common.smk
# at parse time (genome tasks of `tasks`, one select_bp, the same row settings). Included by the Snakefile only with
# a long_context section and a finetune section.


rule context_bench:
    input:
        model_config=FINETUNE["model_config"],
        data=lambda wc: CONTEXT_BENCH[wc.name][0],
    output:
        json=context_bench_json("{name}"),
    log:
        log_file("context", "{name}.bench"),
    benchmark:
        benchmark_file("context", "{name}.bench")
    wildcard_constraints:
        name=names_regex(CONTEXT_BENCH),
    params:
        options=lambda wc: context_bench_options(wc.name),
    threads: FINETUNE["cpus"]
    resources:
        **context_bench_resources(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm bench finetune --config {input.model_config} {params.options} --json {output.json} > {log} 2>&1"


# the table reads small files (metrics.json, the test splits' coordinates and labels): not worth a cluster job
localrules:
    context_table,
    context_table_untimed,


rule context_table:
    input:
        metrics=lambda wc: [metrics_file(*r) for r in context_runs(wc.name)],
        bench=lambda wc: [context_bench_json(wc.name)] if wc.name in CONTEXT_BENCH else [],
    output:
        tsv=context_table_file("{name}"),
        md=context_md("{name}"),
        metric_plot=context_metric_plot("{name}"),
        time_plot=context_time_plot("{name}"),
    log:
        log_file("context", "{name}.table"),
    benchmark:
        benchmark_file("context", "{name}.table")
    wildcard_constraints:
        name=names_regex(CONTEXT_BENCH),
    params:
        evals=lambda wc: " ".join(eval_dir(*r) for r in context_runs(wc.name)),
        bench=lambda wc, input: f"--bench {input.bench}" if input.bench else "",
        out_dir=lambda wc: context_dir(wc.name),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm context-table {params.evals} --task-name {wildcards.name} {params.bench}"
        " --out-dir {params.out_dir} --overwrite > {log} 2>&1"


# bench: false: no benchmark input, no time plot
use rule context_table as context_table_untimed with:
    output:
        tsv=context_table_file("{name}"),
        md=context_md("{name}"),
        metric_plot=context_metric_plot("{name}"),
    wildcard_constraints:
        name=names_regex([n for n in LONG_CONTEXT if n not in CONTEXT_BENCH]),
