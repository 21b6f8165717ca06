"""The workflow's long-context experiment (config `long_context:`, workflow/rules/long_context.smk): the benchmark and
the table of an experiment's tasks planned with their exact commands and included in the report, every bad
experiment refused before any job with a one-line message, and one real run on the E. coli TSSs at two contexts."""

import json
import re

import pytest
import yaml

from test_workflow import REPO, _shell_commands, _snakemake

TSS = {"genome": "ecoli", "tss": "promoters/ecoli_regulondb/PromoterSet.txt", "tss_format": "regulondb",
       "select_bp": 512, "neg_per_pos": 0.25}

# a very small fine-tuning model on non-overlapping 3-mers (the tokenize section's): 512 bp = 171 tokens
MODEL = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  precision: 32-true
  max_epochs: 1
  log_every_n_steps: 1
  num_sanity_val_steps: 0
model:
  arch:
    tokenizer: {k: 3, stride: 3}
    d_model: 32
    n_layers: 1
    n_heads: 2
    d_ff: 64
    dropout: 0.1
    conv_stem: 3
    attention: bigbird
    backend: auto
    bigbird: {block_size: 16, window_blocks: 3, global_blocks: 1, random_blocks: 1, seed: 0}
    longformer: {window: 32, global_tokens: [0], dilation: 1, block_size: 16}
  pretrained: null
  pooling: mean
  lr: 1.0e-3
data:
  task_dir: null
  batch_size: 16
  num_workers: 0
"""


def _config(tmp_path, data_dir, edit=None):
    """E. coli TSS tasks at 256 and 512 bp and the control (512 bp, central 256 bp), one select_bp; a sigma-70 FASTA
    pair; two experiments: `tss` (with the benchmark) and `tss_untimed` (bench: false)."""
    model = tmp_path / "model.yaml"
    model.write_text(MODEL)
    cfg = {
        "data_dir": str(data_dir), "results": str(tmp_path / "results"),
        "genomes": {"ecoli": {"fasta": "genomes/ecoli_k12_mg1655.fna.gz"}},
        "tokenize": {"k": 3, "stride": 3},
        "tasks": {
            "sigma70": {"pos": "promoters/ecoli_sigma70/promoters.fa",
                        "neg": "promoters/ecoli_sigma70/non_promoters.fa"},
            "tss_256": {**TSS, "context_bp": 256},
            "tss_512": {**TSS, "context_bp": 512},
            "tss_512_mask256": {**TSS, "context_bp": 512, "mask_outside_bp": 256},
        },
        "finetune": {"model_config": str(model), "attention": ["dense", "longformer"], "seeds": [0, 1],
                     "pretrained": False, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1},
        "evaluate": {"published": None},
        "report": {"context": ["lc/made_by_hand"]},
        "long_context": {"tss": {"tasks": ["tss_256", "tss_512", "tss_512_mask256"]},
                         "tss_untimed": {"tasks": ["tss_256", "tss_512"], "bench": False}},
    }
    if edit:
        edit(cfg)
    path = tmp_path / "lc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_dry_run_plans_the_benchmark_the_tables_and_the_report(data_dir, tmp_path):
    res = _snakemake("-n", "-p", "--configfile", _config(tmp_path, data_dir))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert stats["context_bench"] == "1" and stats["context_table"] == "1" and stats["context_table_untimed"] == "1"
    assert stats["make_task"] == "4" and stats["evaluate"] == "16" and stats["report"] == "1"
    r = tmp_path / "results"
    commands = _shell_commands(out, "genomics-lm")
    (bench,) = [c for c in commands if c.startswith("genomics-lm bench finetune")]
    assert bench == (f"genomics-lm bench finetune --config {tmp_path / 'model.yaml'} --lengths 256,512"
                     f" --attentions dense,longformer --threads 1 --data-dir {r / 'inputs'} --steps 3 --warmup 1"
                     " --eval-rows 16 --eval-repeats 1 --no-baseline --baseline-rows 32,8,16 --batch-size 16"
                     f" --json {r / 'context' / 'tss' / 'bench.json'}"
                     f" > {r / 'logs' / 'context' / 'tss.bench.log'} 2>&1")
    tables = {c.split("--task-name ")[1].split()[0]: c for c in commands if c.startswith("genomics-lm context-table")}
    assert set(tables) == {"tss", "tss_untimed"}
    evals = [r / "eval" / t / f"{a}_s{s}" for t in ("tss_256", "tss_512", "tss_512_mask256")
             for a in ("dense", "longformer") for s in (0, 1)]
    assert tables["tss"] == (f"genomics-lm context-table {' '.join(map(str, evals))} --task-name tss --bench"
                             f" {r / 'context' / 'tss' / 'bench.json'} --out-dir {r / 'context' / 'tss'} --overwrite"
                             f" > {r / 'logs' / 'context' / 'tss.table.log'} 2>&1")
    assert tables["tss_untimed"] == (f"genomics-lm context-table {' '.join(map(str, evals[:8]))}"
                                     f" --task-name tss_untimed  --out-dir {r / 'context' / 'tss_untimed'} --overwrite"
                                     f" > {r / 'logs' / 'context' / 'tss_untimed.table.log'} 2>&1")
    # the timed table declares the time plot, the untimed one neither the plot nor the benchmark
    jobs = {j.split("rule ", 1)[1].split(":", 1)[0]: j for j in out.split("\n\n") if "\nrule context_table" in j}
    assert f"{r / 'context' / 'tss' / 'time_vs_context.png'}" in jobs["context_table"]
    untimed = jobs["context_table_untimed"]
    assert "time_vs_context.png" not in untimed and "bench.json" not in untimed
    assert "gpu=" not in out.split("rule context_bench:", 1)[1].split("\n\n", 1)[0]
    (report,) = [c for c in commands if c.startswith("genomics-lm report")]
    assert f"--context lc/made_by_hand {r / 'context' / 'tss'} {r / 'context' / 'tss_untimed'} --" in report
    # the report waits for the tables: they are its inputs
    report_job = out.split("rule report:", 1)[1].split("\n\n", 1)[0]
    assert str(r / "context" / "tss" / "time_vs_context.png") in report_job
    assert str(r / "context" / "tss_untimed" / "context.tsv") in report_job


def test_the_experiment_is_a_target_of_all_without_a_report(data_dir, tmp_path):
    def edit(cfg):
        del cfg["report"]
        cfg["long_context"] = {"tss": {"tasks": ["tss_256", "tss_512"], "bench": False}}

    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir, edit))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert stats["context_table_untimed"] == "1" and "context_bench" not in stats and "report" not in stats


def test_lint_is_clean_with_a_long_context_section(data_dir, tmp_path):
    res = _snakemake("--lint", "--configfile", _config(tmp_path, data_dir))
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[-3000:]


def _set(task, **values):
    return lambda cfg: cfg["tasks"][task].update(values)


def _experiment(**values):
    return lambda cfg: cfg["long_context"]["tss"].update(values)


@pytest.mark.parametrize("edit, message", [
    pytest.param(_experiment(tasks=["tss_256", "tss_1024"]),
                 "config long_context: tss: tasks: 'tss_1024' is not a task of `tasks` (sigma70, tss_256, tss_512,"
                 " tss_512_mask256)", id="unknown-task"),
    pytest.param(_experiment(tasks=["tss_256", "sigma70"]),
                 "config long_context: tss: tasks: 'sigma70' is not a genome task (genome + peaks or genome + tss): it"
                 " has no context_bp to vary", id="not-a-genome-task"),
    pytest.param(_set("tss_512", select_bp=1024),
                 "config long_context: tss: select_bp differs between the tasks (tss_256 512, tss_512 1,024,"
                 " tss_512_mask256 512): give every task the same select_bp, at least the largest context_bp (512), so"
                 " every context has the same rows", id="select-bp-differs"),
    pytest.param(_set("tss_256", select_bp=None),
                 "config long_context: tss: select_bp is not set on tss_256: give every task the same select_bp",
                 id="select-bp-unset"),
    pytest.param(lambda cfg: [cfg["tasks"][t].update(select_bp=256) for t in ("tss_256", "tss_512", "tss_512_mask256")],
                 "config long_context: tss: select_bp 256 is smaller than the context_bp of tss_512 (512)",
                 id="select-bp-too-small"),
    pytest.param(_set("tss_512", neg_per_pos=1),
                 "config long_context: tss: neg_per_pos differs between tasks tss_256 (0.25) and tss_512 (1): only"
                 " context_bp and mask_outside_bp may differ (the same rows at every context)",
                 id="row-setting-differs"),
    pytest.param(_set("tss_512_mask256", mask_outside_bp=None),
                 "config long_context: tss: tasks tss_512 and tss_512_mask256 are the same cell (context_bp 512, full"
                 " input)", id="same-cell"),
    pytest.param(_experiment(bnech=False), "'bnech' was unexpected", id="unknown-key"),
    pytest.param(_experiment(tasks=["tss_256"]), "['tss_256'] is too short", id="one-task"),
    pytest.param(lambda cfg: cfg["long_context"].update({"bad name": {"tasks": ["tss_256", "tss_512"]}}),
                 "'bad name' does not match", id="bad-name"),
    pytest.param(lambda cfg: [cfg.pop("finetune"), cfg.pop("report")],
                 "config long_context: the long-context experiment needs a finetune section", id="no-finetune"),
    pytest.param(lambda cfg: cfg["finetune"].update(model_config="configs/finetune/tiny.yaml"),
                 "config long_context: tss: bench: finetune.model_config configs/finetune/tiny.yaml reads k=1 stride=1,"
                 " the tokenize section k=3 stride=3: the benchmark would time other tokens than the runs",
                 id="bench-tokenizer"),
])
def test_bad_experiment_is_refused_before_any_job(data_dir, tmp_path, edit, message):
    res = _snakemake("--configfile", _config(tmp_path, data_dir, edit))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and message in out, out[-3000:]
    if message.startswith("config long_context"):  # one line: the message is the whole line
        (line,) = [line for line in out.splitlines() if message in line]
        assert line.startswith(message)
    assert not (tmp_path / "results").exists()


def test_bench_inputs_agree_with_the_benchmark():
    """common.smk declares the real data `genomics-lm bench finetune` reads (70 bp, 300 bp, any other length)."""
    from genomics_lm.bench import finetune as bf

    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    promoters = ", ".join(f'{k}: "promoters/{v}"' for k, v in bf.PROMOTER_SETS.items())
    assert f"BENCH_FINETUNE_PROMOTERS = {{{promoters}}}" in text
    assert f"BENCH_FINETUNE_SPLITS = {json.dumps(list(bf.SPLIT_FILES.values()))}" in text
    assert f'BENCH_FINETUNE_GENOME = "genomes/{bf.GENOME}"' in text


@pytest.mark.slow
def test_real_run_tabulates_both_contexts_next_to_the_baseline(data_dir, tmp_path):
    """E. coli TSSs at 256 and 512 bp (select_bp 512), dense attention from scratch, 2 training steps, evaluated with
    the k-mer baseline, tabulated as one experiment; only the table is asked for (no genome tokenization)."""
    def edit(cfg):
        for t in ("sigma70", "tss_512_mask256"):
            del cfg["tasks"][t]
        del cfg["report"]
        cfg["finetune"].update(attention=["dense"], seeds=[0])
        cfg["long_context"] = {"tss": {"tasks": ["tss_256", "tss_512"], "bench": False}}

    r = tmp_path / "results"
    res = _snakemake(r / "context" / "tss" / "context.tsv", "--configfile", _config(tmp_path, data_dir, edit))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    lines = (r / "context" / "tss" / "context.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    rows = [dict(zip(head, line.split("\t"))) for line in lines[1:]]
    assert [(x["task"], x["context_bp"], x["input"], x["method"], x["runs"]) for x in rows] == [
        ("tss", "256", "full", "k-mer baseline", "1"), ("tss", "256", "full", "dense", "1"),
        ("tss", "512", "full", "k-mer baseline", "1"), ("tss", "512", "full", "dense", "1")]
    for x in rows:
        assert 0 <= float(x["auroc"].split()[0]) <= 1 and int(x["n"]) > 100
    assert rows[0]["n"] == rows[2]["n"]  # the same test rows at both contexts
    assert (r / "context" / "tss" / "metric_vs_context.png").read_bytes()[:4] == b"\x89PNG"
    assert not (r / "context" / "tss" / "time_vs_context.png").exists()
    assert not (r / "tokens").exists()  # only what the table needs ran
    log = (r / "logs" / "context" / "tss.table.log").read_text()
    assert "| tss | 256 | full | k-mer baseline |" in log
