# FASTA -> train/val/test token stores (genomics-lm tokenize; options under config["tokenize"]).


rule tokenize:
    input:
        fasta=genome_fasta,
    output:
        train=f"{RESULTS}/tokens/{{genome}}/train.h5",
        val=f"{RESULTS}/tokens/{{genome}}/val.h5",
        test=f"{RESULTS}/tokens/{{genome}}/test.h5",
    log:
        f"{RESULTS}/logs/tokenize/{{genome}}.log",
    params:
        k=config["tokenize"]["k"],
        stride=config["tokenize"].get("stride") or config["tokenize"]["k"],
        window=config["tokenize"]["window_tokens"],
        max_n=config["tokenize"]["max_n_frac"],
        val=config["tokenize"]["val_frac"],
        test=config["tokenize"]["test_frac"],
        seed=config["tokenize"]["seed"],
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "genomics-lm tokenize --fasta {input.fasta} --out-dir $(dirname {output.train}) --overwrite --no-progress"
        " --k {params.k} --stride {params.stride} --window-tokens {params.window} --max-n-frac {params.max_n}"
        " --val-frac {params.val} --test-frac {params.test} --seed {params.seed} > {log} 2>&1"
