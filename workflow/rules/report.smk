# One HTML report of the whole run (genomics-lm report): every evaluation (with the compare tables' published
# figures), the pretraining and fine-tuning runs, the attention patterns (genomics-lm draw-pattern, drawn from the
# fine-tuning model config for each attention type) and optionally the attention benchmark. Included by the
# Snakefile only with a `report` section (which needs tasks and a finetune section).


localrules:
    draw_patterns,
    report,


rule draw_patterns:
    input:
        model_config=FINETUNE["model_config"],
    output:
        patterns=directory(patterns_dir()),
    log:
        log_file("report", "patterns"),
    benchmark:
        benchmark_file("report", "patterns")
    params:
        attention=" ".join(f"--attention {a}" for a in FINETUNE["attention"]),
        length=REPORT["pattern_length"],
    conda:
        CONDA_ENV
    shell:
        "genomics-lm draw-pattern --config {input.model_config} {params.attention} --length {params.length}"
        " --out-dir {output.patterns} --overwrite > {log} 2>&1"


rule report:
    input:
        report_inputs(),
    output:
        html=report_file(),
    log:
        log_file("report", "report"),
    benchmark:
        benchmark_file("report", "report")
    params:
        title=REPORT["title"],
        options=report_options(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm report --out {output.html} --title {params.title:q} {params.options} --overwrite > {log} 2>&1"
