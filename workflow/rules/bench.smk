# The attention benchmark (genomics-lm bench attention; options under config["bench"]): the optional target `bench`
# -> RESULTS/bench/attention.json (and its .png plot), not part of `all` unless report.bench asks for it. The times
# are only meaningful on an otherwise idle machine: the benchmark takes every core of its job.


rule bench_attention:
    output:
        json=bench_json(),
    log:
        log_file("bench", "attention"),
    benchmark:
        benchmark_file("bench", "attention")
    params:
        options=bench_options(),
    threads: BENCH["threads"]
    resources:
        **bench_resources(),
    conda:
        CONDA_ENV
    shell:
        "genomics-lm bench attention {params.options} --out {output.json} > {log} 2>&1"


rule bench:
    input:
        bench_json(),
