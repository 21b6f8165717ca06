# Scoring with a fine-tuned checkpoint (genomics-lm score): the FASTA, VCF and track named in config["score"] (keys
# and defaults: workflow/schemas/config.schema.yaml). Included by the Snakefile only with a `score` section. The
# checkpoint is config["score"]["checkpoint"] until the fine-tuning rules provide one.
SCORE = config["score"]


def score_dir():
    return f"{RESULTS}/score"


def score_input(key):
    """A score input: relative to the data folder, or absolute."""
    return canonical_path(os.path.join(data_dir(), SCORE[key]))


def score_options(mode):
    """config['score'] as `genomics-lm score` options of one mode (sequences, variants, track)."""
    out = [f"--batch-size {SCORE['batch_size']}", f"--device {shlex.quote(SCORE['device'])}", "--no-progress"]
    if SCORE["window"] is not None:
        out.append(f"--window {SCORE['window']}")
    if SCORE["step"] is not None and mode != "variants":
        out.append(f"--step {SCORE['step']}")
    if SCORE["both_strands"]:
        out.append("--both-strands")
    if mode == "sequences":
        out.append(f"--aggregate {SCORE['aggregate']}")
    if mode == "variants" and SCORE["strict"]:
        out.append("--strict")
    if mode != "sequences" and SCORE["chrom_prefix"]:
        out.append(f"--{SCORE['chrom_prefix']}-chr-prefix")
    if mode == "track" and SCORE["out_chrom_prefix"]:
        out.append(f"--out-{SCORE['out_chrom_prefix']}-chr-prefix")
    return " ".join(out)


def score_resources():
    res = {"mem_mb": SCORE["mem_mb"], "runtime": SCORE["runtime"]}
    if SCORE["gpus"] > 0:
        res["gpu"] = SCORE["gpus"]
    return res


def score_targets():
    """The outputs config['score'] asks for."""
    out = []
    if SCORE["fasta"]:
        out.append(f"{score_dir()}/sequences.tsv")
    if SCORE["vcf"]:
        out.append(f"{score_dir()}/effects.tsv")
    if SCORE["track"]:
        out.append(f"{score_dir()}/track")
    return out


if (SCORE["vcf"] or SCORE["track"]) and not SCORE["genome"]:
    raise WorkflowError("config score: 'vcf' and 'track' need 'genome' (the reference FASTA)")


rule score_sequences:
    input:
        checkpoint=SCORE["checkpoint"],
        fasta=lambda wc: score_input("fasta"),
    output:
        scores=f"{score_dir()}/sequences.tsv",
    log:
        log_file("score", "sequences"),
    params:
        options=score_options("sequences"),
    resources:
        **score_resources(),
    shell:
        "genomics-lm score --checkpoint {input.checkpoint} --fasta {input.fasta} --out {output.scores} --overwrite"
        " {params.options} > {log} 2>&1"


rule score_variants:
    input:
        checkpoint=SCORE["checkpoint"],
        vcf=lambda wc: score_input("vcf"),
        genome=lambda wc: score_input("genome"),
    output:
        effects=f"{score_dir()}/effects.tsv",
        skipped=f"{score_dir()}/skipped.tsv",
    log:
        log_file("score", "variants"),
    params:
        options=score_options("variants"),
    resources:
        **score_resources(),
    shell:
        "genomics-lm score --checkpoint {input.checkpoint} --vcf {input.vcf} --genome {input.genome}"
        " --out {output.effects} --skipped {output.skipped} --overwrite {params.options} > {log} 2>&1"


rule score_track:
    input:
        checkpoint=SCORE["checkpoint"],
        genome=lambda wc: score_input("genome"),
        regions=lambda wc: [score_input("regions")] if SCORE["regions"] else [],
    output:
        track=directory(f"{score_dir()}/track"),
    log:
        log_file("score", "track"),
    params:
        regions=lambda wc, input: f"--regions {input.regions}" if SCORE["regions"] else "",
        options=score_options("track"),
    resources:
        **score_resources(),
    shell:
        "mkdir -p {output.track} && genomics-lm score --checkpoint {input.checkpoint} --genome {input.genome}"
        " {params.regions} --out-prefix {output.track}/track --overwrite {params.options} > {log} 2>&1"
