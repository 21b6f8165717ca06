"""The Snakemake workflow: parses, validates its config (defaults from the schema, unknown keys refused), resolves its
inputs to one path however the data folder is named, and runs the tokenize, pretrain and summary stages on real data."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from genomics_lm.store import TokenStore

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


PIPELINE_SECTIONS = ("tasks", "finetune", "evaluate", "score", "bench", "report")


def _config(tmp_path, data_dir, pretrain=None, name="config.yaml", pipeline=False, **tokenize):
    """configs/demo.yaml with this test's data folder and results; without ``pipeline`` only its tokenize and pretrain
    stages (the tasks, fine-tuning, evaluation, scoring and report sections removed)."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    cfg["results"] = str(tmp_path / "results")
    cfg["tokenize"].update(tokenize)
    if not pipeline:
        for section in PIPELINE_SECTIONS:
            cfg.pop(section, None)
    if pretrain is False:
        del cfg["pretrain"]
    elif pretrain:
        cfg["pretrain"].update(pretrain)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _full_config(tmp_path, data_dir):
    """configs/full.yaml with this test's data folder and results: (its path, the config)."""
    cfg = yaml.safe_load((REPO / "configs" / "full.yaml").read_text())
    cfg["data_dir"], cfg["results"] = str(data_dir), str(tmp_path / "results")
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def _snakemake(*args, cwd=REPO, env=None):
    """Snakemake in a subprocess; $GENOMICS_LM_DATA is unset unless ``env`` sets it (the config's data_dir rules)."""
    env = {k: v for k, v in os.environ.items() if k != "GENOMICS_LM_DATA"} | (env or {})
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=1200)


def _shell_commands(out, tool):
    """The printed shell commands (snakemake -p) that run ``tool``, without Snakemake's "Shell command: " prefix."""
    return [line.removeprefix("Shell command: ") for line in out.splitlines()
            if f"{tool} " in line and not line.startswith(("rule", "["))]


def test_dry_run_parses(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir))
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "rule tokenize" in out
    for attention in ("bigbird", "longformer", "dense"):  # one pretraining job per attention type
        assert f"pretrain/ecoli/{attention}/pretrained.pt" in out
    assert "rule summarize_pretraining" in out and "pretrain/ecoli/summary.tsv" in out


def test_every_rule_has_a_log_and_one_genomics_lm_call(data_dir, tmp_path):
    res = _snakemake("-n", "-p", "--configfile", _config(tmp_path, data_dir))
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    commands = _shell_commands(out, "genomics-lm")
    assert len(commands) == 5  # tokenize, 3 x pretrain, summarize
    for cmd in commands:
        assert cmd.count("genomics-lm ") == 1 and f"> {tmp_path / 'results' / 'logs'}/" in cmd and cmd.endswith("2>&1")
    summarize = next(c for c in commands if "genomics-lm summarize" in c)
    for attention in ("bigbird", "longformer", "dense"):
        assert f"--run {attention}={tmp_path / 'results' / 'pretrain' / 'ecoli' / attention}" in summarize


def test_schema_fills_in_the_defaults(data_dir, tmp_path):
    """A config with only the required keys: the schema's defaults reach the commands."""
    cfg = {"results": str(tmp_path / "results"), "genomes": {"lambda": {"fasta": "genomes/lambda_phage.fa"}},
           "pretrain": {}}
    path = tmp_path / "minimal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _snakemake("-n", "-p", "--configfile", path, env={"GENOMICS_LM_DATA": str(data_dir)})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    tokenize = next(c for c in _shell_commands(out, "genomics-lm") if "genomics-lm tokenize" in c)
    assert ("--k 6 --window-tokens 4096 --max-n-frac 0.1 --split-mode auto --val-frac 0.1 --test-frac 0.1"
            " --seed 0 --compression none") in tokenize
    assert "--stride" not in tokenize and "--softmask" not in tokenize and "--val-chroms" not in tokenize
    pretrain = [c for c in _shell_commands(out, "genomics-lm") if "genomics-lm pretrain" in c]
    assert len(pretrain) == 1 and "/bigbird " in pretrain[0]  # attention: [bigbird]
    assert "--config configs/pretrain/tiny.yaml" in pretrain[0]
    assert ("--model.arch.tokenizer.k 6 --model.arch.tokenizer.stride 6 --trainer.devices 1 --trainer.num_nodes 1"
            in pretrain[0])
    assert "--trainer.max_steps" not in pretrain[0] and "--trainer.accelerator" not in pretrain[0]
    assert "mem_mb=8000" in out and "runtime=120" in out


def test_every_tokenize_option_reaches_the_command(data_dir, tmp_path):
    cfg = _config(tmp_path, data_dir, pretrain=False, step_tokens=512, split_mode="regions", block_bp=200000,
                  gap_bp=4000, compression="lzf", softmask=True, val_chroms=["NC_000913.3"], test_chroms=None)
    res = _snakemake("-n", "-p", "--configfile", cfg)
    assert res.returncode == 0, res.stderr
    (cmd,) = _shell_commands(res.stdout + res.stderr, "genomics-lm")
    for option in ("--k 1", "--stride 1", "--window-tokens 1024", "--step-tokens 512", "--split-mode regions",
                   "--block-bp 200000", "--gap-bp 4000", "--compression lzf", "--softmask",
                   "--val-chroms NC_000913.3"):
        assert option in cmd, option
    assert "--test-chroms" not in cmd


def test_tokenize_rule_covers_every_option_of_the_command():
    """Each `genomics-lm tokenize` option that is not about files or the terminal is a config key."""
    res = subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--help"], capture_output=True,
                         text=True, env=dict(os.environ, COLUMNS="1000"))  # no option names wrapped at a hyphen
    assert res.returncode == 0, res.stderr
    options = {o.replace("-", "_") for o in re.findall(r"(?<![\w-])--([a-z][a-z-]*)", res.stdout)}
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = set(schema["properties"]["tokenize"]["properties"])
    assert options - {"help", "fasta", "out_dir", "out", "split", "overwrite", "cache_dir", "no_progress"} == keys


@pytest.mark.parametrize("section, key", [(None, "result"), ("tokenize", "kmer"), ("pretrain", "max_step"),
                                          ("genomes.ecoli", "gff")])
def test_unknown_config_keys_are_refused(data_dir, tmp_path, section, key):
    """A typo is an error naming the key, not a silently ignored setting, at every level of the config."""
    cfg = yaml.safe_load(_config(tmp_path, data_dir).read_text())
    where = cfg
    for name in section.split(".") if section else []:
        where = where[name]
    where[key] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _snakemake("-n", "--configfile", path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Additional properties are not allowed" in out and repr(key) in out


def test_same_fasta_however_the_data_folder_is_named(data_dir, tmp_path):
    """The demo exports an absolute $GENOMICS_LM_DATA while the config says ../shared/data: the same FASTA must be
    the same input path, or Snakemake plans to redo every job ("set of input files has changed")."""
    relative = os.path.relpath(data_dir.resolve(), REPO)
    link = tmp_path / "data_link"  # a third name of the same folder: through a symbolic link
    link.symlink_to(data_dir.resolve(), target_is_directory=True)
    cfg = _config(tmp_path, relative, pretrain=False, window_tokens=256)
    spellings = [{}, {"GENOMICS_LM_DATA": str(data_dir.resolve())}, {"GENOMICS_LM_DATA": str(link)},
                 {"GENOMICS_LM_DATA": relative + "/"}]
    fasta = str(data_dir.resolve() / "genomes" / "ecoli_k12_mg1655.fna.gz")
    copy = tmp_path / "results" / "inputs" / "genomes" / "ecoli_k12_mg1655.fna.gz"  # the checked copy
    for env in spellings:
        res = _snakemake("-n", "-p", "--configfile", cfg, env=env)
        assert res.returncode == 0, res.stderr
        (cmd,) = _shell_commands(res.stdout + res.stderr, "genomics-lm")
        assert f"--fasta {copy} " in cmd, (env, cmd)
        (fetch,) = _shell_commands(res.stdout + res.stderr, "sha256sum")
        assert fetch.startswith(f"( cat {fasta} ) > {copy}.part"), (env, fetch)
    res = _snakemake("--configfile", cfg, env=spellings[1])  # tokenize (about 1 s for 3-mers)
    assert res.returncode == 0, res.stderr[-3000:]
    for env in spellings:  # nothing to redo, whichever way the data folder is named
        res = _snakemake("-n", "--configfile", cfg, env=env)
        assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, (env, res.stdout[-2000:])


def test_dry_run_without_pretrain_section_only_tokenizes(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir, pretrain=False))
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "rule tokenize" in out and "rule pretrain" not in out


def test_pretrain_rule_declares_gpus_and_srun_launch(data_dir, tmp_path):
    cfg = _config(tmp_path, data_dir, pretrain={"gpus": 4, "devices": 4, "nodes": 2, "launcher": "srun",
                                                "accelerator": "gpu", "attention": ["bigbird"]})
    res = _snakemake("-n", "-p", "--configfile", cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "gres=gpu:4" in out and "nodes=2" in out and "tasks_per_node=4" in out and "mpi=srun" in out
    assert "srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=2 --kill-on-bad-exit=1 genomics-lm pretrain fit" in out
    assert "--trainer.devices 4 --trainer.num_nodes 2" in out and "--trainer.accelerator gpu" in out


def test_invalid_pretrain_config_is_refused(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir, pretrain={"attention": ["performer"]}))
    assert res.returncode != 0
    assert "performer" in res.stdout + res.stderr


def test_invalid_config_is_refused(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir, k=9))
    assert res.returncode != 0
    assert "9 is greater than the maximum of 8" in res.stdout + res.stderr


def test_tokenize_and_pretrain_stages_run(data_dir, tmp_path):
    cfg = _config(tmp_path, data_dir, window_tokens=2048,
                  pretrain={"attention": ["bigbird"], "max_steps": 6, "extra": "--trainer.val_check_interval 3"})
    res = _snakemake("--configfile", cfg, "--profile", REPO / "workflow" / "profiles" / "default")
    assert res.returncode == 0, res.stderr[-3000:]
    results = tmp_path / "results"
    store = TokenStore(results / "tokens" / "ecoli" / "val.h5")
    assert store.tokenizer.k == 1 and store.window_tokens == 2048 and len(store) > 0  # demo.yaml: single bases
    assert (results / "logs" / "tokenize" / "ecoli.log").read_text().startswith("split")
    # the three stores the rule wrote (no gap in the config: the default): windows of different splits are at least
    # the split plan's gap_bp apart, and that gap is one window (2,048 bp), the documented default
    import numpy as np

    spans = {}
    for split in ("train", "val", "test"):
        st = TokenStore(results / "tokens" / "ecoli" / f"{split}.h5")
        plan = st.config["split_plan"]
        assert plan["mode"] == "regions" and plan["params"]["gap_bp"] == st.attrs["window_bp"] == 2048, split
        coords = [st.coords(i) for i in range(len(st))]
        assert len(coords) > 0 and {c[0] for c in coords} == {"NC_000913.3"}  # one sequence
        spans[split] = np.array([c[1:3] for c in coords])
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        x, y = spans[a], spans[b]
        dist = np.maximum(y[None, :, 0] - x[:, None, 1], x[:, None, 0] - y[None, :, 1])  # every pair of windows
        assert dist.min() >= 2048, (a, b, int(dist.min()))
    run = results / "pretrain" / "ecoli" / "bigbird"
    model = torch.load(run / "pretrained.pt", weights_only=True)
    meta = model["genomics_lm"]
    assert meta["model_config"]["attention"] == "bigbird" and meta["global_step"] == 6
    assert meta["model_config"]["tokenizer"]["k"] == 1 and meta["model_config"]["conv_stem"] == 15
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "step 6;" in (results / "logs" / "pretrain" / "ecoli.bigbird.log").read_text()
    # the summary table: the run's last validation (after step 6) next to the unigram baseline
    lines = (results / "pretrain" / "ecoli" / "summary.tsv").read_text().splitlines()
    assert any(line.startswith("#") and "80/10/10" in line for line in lines)
    table = [line.split("\t") for line in lines if not line.startswith("#")]
    assert table[0][:4] == ["run", "steps", "val_loss", "val_acc"]
    assert [row[0] for row in table[1:]] == ["bigbird", "unigram"] and table[1][1] == "6"
    assert table[1][-1] == str(run / "csv" / "metrics.csv")
    assert (results / "logs" / "summary" / "ecoli.log").read_text().startswith("run ")
    # a second run has nothing to do
    res = _snakemake("-n", "--configfile", cfg)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def test_no_configfile_is_a_clear_error(tmp_path):
    res = _snakemake("-n")
    assert res.returncode != 0
    assert "no configuration: pass --configfile" in res.stdout + res.stderr


@pytest.mark.slow
def test_workflow_on_slurm_with_two_ddp_ranks(data_dir, tmp_path, slurm_cluster):
    """The slurm profile on a real (local, CPU) SLURM cluster: tokenize and pretrain run as SLURM jobs, and the
    pretrain job launches two DDP ranks with srun (gloo on CPU)."""
    cfg = _config(tmp_path, data_dir, pretrain={
        "attention": ["bigbird"], "max_steps": 4, "accelerator": "cpu", "devices": 2, "launcher": "srun", "cpus": 1,
        "mem_mb": 3000, "runtime": 15, "extra": "--trainer.val_check_interval 2 --trainer.strategy ddp"})
    res = _snakemake("--configfile", cfg, "--profile", REPO / "workflow" / "profiles" / "slurm")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "submitted with SLURM jobid" in out
    log = (tmp_path / "results" / "logs" / "pretrain" / "ecoli.bigbird.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log, log[-3000:]
    meta = torch.load(tmp_path / "results" / "pretrain" / "ecoli" / "bigbird" / "pretrained.pt", weights_only=True)
    assert meta["genomics_lm"]["world_size"] == 2 and meta["genomics_lm"]["global_step"] == 4


# ------------------------------------------------------------------------------------------------ the whole pipeline

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
TARGET_RULES = {"all", "bench"}  # targets only: no command


def _pipeline(tmp_path, data_dir, name="pipeline.yaml", edit=None, **top):
    """configs/demo.yaml whole (tasks, fine-tuning, evaluation, scoring, report) with this test's folders."""
    path = _config(tmp_path, data_dir, name=name, pipeline=True)
    cfg = yaml.safe_load(path.read_text())
    cfg.update(top)
    if edit:
        edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rules():
    """{rule name: its text} of every rule in workflow/rules/*.smk."""
    rules = {}
    for path in RULE_FILES:
        text = path.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, re.S | re.M):
            rules[m.group(1)] = m.group(2)
    return rules


def test_every_rule_has_a_log_a_benchmark_and_one_genomics_lm_call():
    """Rules are thin: named outputs, a log, a benchmark file, one `genomics-lm` command (the input copy: none)."""
    rules = _rules()
    assert {"fetch_input", "tokenize", "pretrain", "summarize_pretraining", "make_task", "finetune", "evaluate",
            "compare", "score_sequences", "score_variants", "score_track", "bench_attention", "draw_patterns",
            "report", "bench"} <= set(rules)
    for name, body in rules.items():
        if name in TARGET_RULES:
            assert "shell:" not in body, name
            continue
        for directive in ("output:", "log:", "benchmark:", "shell:", "conda:"):
            assert f"\n    {directive}" in f"\n{body}", (name, directive)
        assert "run:" not in body and "script:" not in body, name
        shell = body.split("    shell:\n", 1)[1]
        assert shell.count("genomics-lm ") == (0 if name == "fetch_input" else 1), name
        assert "{log}" in shell, name
        outputs = body.split("    output:\n", 1)[1].split("\n    log:", 1)[0]
        assert all(re.match(r"\s*\w+=", line) for line in outputs.strip().splitlines()), (name, outputs)  # named


@pytest.mark.parametrize("name", ["demo", "full"])
def test_lint_is_clean(data_dir, tmp_path, name):
    """--lint with each shipped config (the full one includes the long-context and GPU rules)."""
    if name == "demo":
        path = _pipeline(tmp_path, data_dir)
    else:
        path, _ = _full_config(tmp_path, data_dir)
    res = _snakemake("--lint", "--configfile", path)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[-3000:]


def test_demo_config_dry_runs_the_whole_pipeline(data_dir, tmp_path):
    res = _snakemake("-n", "-p", "--configfile", _pipeline(tmp_path, data_dir))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert {k: int(v) for k, v in stats.items() if k != "total"} == {
        "fetch_input": 12, "tokenize": 1, "pretrain": 3, "summarize_pretraining": 1, "make_task": 3, "finetune": 9,
        "evaluate": 9, "compare": 3, "score_sequences": 1, "score_variants": 1, "draw_patterns": 1, "report": 1,
        "all": 1}
    res_dir = tmp_path / "results"
    commands = _shell_commands(out, "genomics-lm")
    assert len(commands) == 1 + 3 + 1 + 3 + 9 + 9 + 3 + 2 + 1 + 1
    for cmd in commands:
        assert cmd.count("genomics-lm ") == 1 and f"> {res_dir / 'logs'}/" in cmd and cmd.endswith("2>&1"), cmd
    for attention in ("bigbird", "longformer", "dense"):
        for task in ("ecoli_sigma70", "gue_prom_300_tata", "k562_chr22"):
            run = res_dir / "finetune" / task / f"{attention}_s0"
            (fit,) = [c for c in commands if f"--trainer.default_root_dir {run} " in c]
            assert fit.startswith("genomics-lm finetune fit --config configs/finetune/tiny.yaml")
            assert f"--data.task_dir {res_dir / 'tasks' / task} " in fit
            assert f"--model.arch.attention {attention} --seed_everything 0 --data.seed 0" in fit
            assert f"--model.pretrained {res_dir / 'pretrain' / 'ecoli' / attention / 'pretrained.pt'}" in fit
            assert "--model.arch.tokenizer.k 1 --model.arch.tokenizer.stride 1" in fit and "--resume" in fit
            assert "--trainer.max_epochs 1" in fit and "--trainer.limit_train_batches 12" in fit
            (ev,) = [c for c in commands if f"--checkpoint {run}/finetuned.pt --task-dir" in c]
            assert f"--out-dir {res_dir / 'eval' / task / (attention + '_s0')} --task-name {task}" in ev
            assert f"--baseline-cache {res_dir / 'baseline_cache'}" in ev
    # make-task: inputs are the checked copies, k/stride the token stores'
    tasks = {c.split("--out-dir ")[1].split()[0].rsplit("/", 1)[1]: c for c in commands if "make-task" in c}
    inputs = res_dir / "inputs"
    assert f"--pos {inputs}/promoters/ecoli_sigma70/promoters.fa --neg {inputs}/promoters/ecoli_sigma70/" in tasks[
        "ecoli_sigma70"]
    assert f"--table {inputs}/promoters/gue_prom_300_tata/train.csv --dev " in tasks["gue_prom_300_tata"]
    k562 = tasks["k562_chr22"]
    assert f"--genome {inputs}/genomes/hg19_chr22_20-21Mb.fa --peaks CTCF={inputs}/chromatin/" in k562
    assert "--strip-chr-prefix" in k562 and "--bin-bp 200 --context-bp 1000" in k562 and "--neg-per-pos 2" in k562
    assert all("--k 1 --stride 1" in c for c in tasks.values())
    (compare,) = [c for c in commands if "compare" in c and "ecoli_sigma70" in c]
    assert compare.startswith(f"genomics-lm compare {res_dir / 'eval' / 'ecoli_sigma70' / 'bigbird_s0'} ")
    assert "--published data/published.tsv --out" in compare
    # scoring with a model the workflow trains (score.checkpoint TASK/ATTENTION/SEED)
    model = res_dir / "finetune" / "k562_chr22" / "bigbird_s0" / "finetuned.pt"
    score = [c for c in commands if "genomics-lm score" in c]
    assert len(score) == 2 and all(c.startswith(f"genomics-lm score --checkpoint {model} ") for c in score)
    assert any(f"--vcf {inputs}/variants/" in c and "--strip-chr-prefix" in c for c in score)
    # the attention patterns and the report, by their command contracts
    (draw,) = [c for c in commands if "draw-pattern" in c]
    assert draw.startswith("genomics-lm draw-pattern --config configs/finetune/tiny.yaml --attention bigbird"
                           " --attention longformer --attention dense --length 256"
                           f" --out-dir {res_dir / 'patterns'} --overwrite")
    (report,) = [c for c in commands if "genomics-lm report" in c]
    assert report.startswith(f"genomics-lm report --out {res_dir / 'report.html'} --title ")
    assert f"--evals {res_dir / 'eval' / 'ecoli_sigma70' / 'bigbird_s0'} " in report
    assert "--published data/published.tsv" in report and "--bench-attention" not in report
    assert f"--pretrain-runs ecoli/bigbird={res_dir / 'pretrain' / 'ecoli' / 'bigbird'} " in report
    assert f"k562_chr22/dense_s0={res_dir / 'finetune' / 'k562_chr22' / 'dense_s0'} " in report
    assert f"--patterns {res_dir / 'patterns'} --overwrite" in report
    assert "bench_attention" not in out  # the benchmark is its own target


def test_bench_is_an_optional_target(data_dir, tmp_path):
    res = _snakemake("-n", "-p", "bench", "--configfile", _pipeline(tmp_path, data_dir))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    (cmd,) = _shell_commands(out, "genomics-lm")
    assert cmd.startswith("genomics-lm bench attention --lengths 256,512,1024 --methods")
    assert f"--out {tmp_path / 'results' / 'bench' / 'attention.json'}" in cmd


def test_full_config_dry_runs_on_the_slurm_executor_with_gpus(data_dir, tmp_path):
    """configs/full.yaml with the slurm profile, planned (nothing submitted): every task x 3 attention types x 3 seeds,
    GPU resources on pretrain (per node, 4 srun tasks), finetune and score."""
    path, cfg = _full_config(tmp_path, data_dir)
    res = _snakemake("-n", "-p", "--configfile", path, "--profile", REPO / "workflow" / "profiles" / "slurm")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    n_tasks = len(cfg["tasks"])
    assert int(stats["make_task"]) == n_tasks and int(stats["finetune"]) == int(stats["evaluate"]) == n_tasks * 9
    assert int(stats["compare"]) == n_tasks and stats["report"] == "1" and stats["bench_attention"] == "1"
    assert out.count("rule pretrain:") == 3 and "gres=gpu:4" in out and "tasks_per_node=4" in out  # per node
    jobs = out.split("\n\n")
    finetune = [j for j in jobs if "rule finetune:" in j]
    assert len(finetune) == n_tasks * 9 and all("gpu=1" in j and "runtime=360" in j for j in finetune)
    assert all("gpu=1" in j for j in jobs if "rule score_" in j)
    assert not any("gpu=" in j for j in jobs if "rule evaluate:" in j or "rule make_task:" in j)
    assert "--config configs/finetune/base.yaml" in out and "--model.arch.tokenizer.k 6" in out
    assert stats["context_bench"] == stats["context_table"] == "1"  # the long_context experiment, in the report
    assert not any("gpu=" in j for j in jobs if "rule context_bench:" in j)
    report = next(j for j in jobs if "rule report:" in j)
    assert f"--context {tmp_path / 'results' / 'context' / 'ecoli_tss'}" in report


def _write_manifest(tmp_path, change):
    """data/MANIFEST.tsv with ``change(row)`` applied to every row (a dict); returns its path."""
    import csv

    with open(REPO / "data" / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t"))
    path = tmp_path / "MANIFEST.tsv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            change(row)
            writer.writerow(row)
    return path


def test_wrong_checksum_stops_the_run_before_any_job(data_dir, tmp_path):
    wrong = "0" * 64
    target = "promoters/ecoli_sigma70/promoters.fa"

    def change(row):
        if row["path"] == target:
            row["sha256"] = wrong

    manifest = _write_manifest(tmp_path, change)
    res = _snakemake("--configfile", _pipeline(tmp_path, data_dir, manifest=str(manifest)))  # a real run
    out = res.stdout + res.stderr
    right = "1712f385e357491d309bd14f8fd4e8de3d018bd418402cab3c6014232197ce5e"
    assert res.returncode != 0
    assert f"checksum mismatch: {target}" in out and f"sha256 {right}, expected {wrong}" in out, out[-3000:]
    assert "config tasks: ecoli_sigma70" in out
    assert not (tmp_path / "results").exists()  # nothing ran


def test_fetch_checks_the_bytes_it_copies_or_downloads(data_dir, tmp_path):
    """download: true takes inputs the data folder lacks from their URL (here file:// mirrors) and checks them: a
    wrong file stops its job with both hashes, and nothing that reads it runs."""
    data = tmp_path / "data"
    (data / "promoters" / "ecoli_sigma70").mkdir(parents=True)
    (data / "genomes").symlink_to(data_dir / "genomes", target_is_directory=True)
    good = data_dir / "promoters" / "ecoli_sigma70" / "non_promoters.fa"
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nACGT\n")
    urls = {"promoters/ecoli_sigma70/promoters.fa": f"file://{bad}",
            "promoters/ecoli_sigma70/non_promoters.fa": f"file://{good}"}

    def change(row):
        row["url"] = urls.get(row["path"], row["url"])

    manifest = _write_manifest(tmp_path, change)

    def edit(cfg):
        cfg["tasks"] = {"ecoli_sigma70": cfg["tasks"]["ecoli_sigma70"]}
        cfg["finetune"]["attention"] = ["dense"]
        cfg["score"]["checkpoint"] = "ecoli_sigma70/dense/0"
        cfg["score"].update(vcf=None, genome=None, fasta="promoters/ecoli_sigma70/promoters.fa")
        del cfg["report"]

    cfg = _pipeline(tmp_path, data, manifest=str(manifest), download=True, edit=edit)
    res_dir = tmp_path / "results"
    res = _snakemake(res_dir / "tasks" / "ecoli_sigma70" / "train.h5", "--keep-going", "--configfile", cfg)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert ("checksum mismatch: promoters/ecoli_sigma70/promoters.fa" in out and f"expected {right_sigma70()}" in out
            and "sha256 " + __import__("hashlib").sha256(bad.read_bytes()).hexdigest() in out), out[-3000:]
    inputs = res_dir / "inputs" / "promoters" / "ecoli_sigma70"
    assert (inputs / "non_promoters.fa").read_bytes() == good.read_bytes()  # downloaded and checked
    assert not (inputs / "promoters.fa").exists() and not (inputs / "promoters.fa.part").exists()
    assert not (res_dir / "tasks").exists()  # make_task never ran


def right_sigma70():
    return "1712f385e357491d309bd14f8fd4e8de3d018bd418402cab3c6014232197ce5e"


def test_missing_input_is_an_error_before_any_job(data_dir, tmp_path):
    """A task naming a file that is neither in the data folder nor in the manifest, or a manifest input the data
    folder lacks without download: a clear error at parse time."""
    def edit(cfg):
        cfg["tasks"]["ecoli_sigma70"]["pos"] = "promoters/ecoli_sigma70/no_such.fa"

    res = _snakemake("--configfile", _pipeline(tmp_path, data_dir, edit=edit))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "config tasks: ecoli_sigma70: input 'promoters/ecoli_sigma70/no_such.fa' not found" in out, out[-3000:]
    assert not (tmp_path / "results").exists()

    data = tmp_path / "data"  # a data folder without the GUE tables
    data.mkdir()
    for name in ("genomes", "chromatin", "variants"):
        (data / name).symlink_to(data_dir / name, target_is_directory=True)
    (data / "promoters").mkdir()
    (data / "promoters" / "ecoli_sigma70").symlink_to(data_dir / "promoters" / "ecoli_sigma70")
    res = _snakemake("--configfile", _pipeline(tmp_path, data, name="p2.yaml"))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "config tasks: gue_prom_300_tata: input 'promoters/gue_prom_300_tata/train.csv' is missing" in out
    assert "download is off" in out and not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["tasks"]["ecoli_sigma70"].update(bin_size=200), "'bin_size' was unexpected"),
    (lambda c: c["finetune"].update(seed=[0]), "'seed' was unexpected"),
    (lambda c: c["finetune"].update(max_epochs="one"), "'one' is not of type 'integer', 'null'"),
    (lambda c: c["finetune"].update(seeds=0), "0 is not of type 'array'"),
    (lambda c: c["finetune"].update(attention=["performer"]), "'performer' is not one of"),
    (lambda c: c["tasks"]["ecoli_sigma70"].update(table="promoters/gue_prom_300_tata/train.csv"),
     "config tasks: ecoli_sigma70: give one kind of input"),
    (lambda c: c["tasks"]["ecoli_sigma70"].update(bin_bp=200), "bin_bp only apply to genome tasks"),
    (lambda c: c["tasks"]["k562_chr22"].pop("genome"), "config tasks: k562_chr22: peaks needs a genome"),
    (lambda c: c["tasks"]["k562_chr22"].update(pretrain_genome="hg19"), "pretrain_genome 'hg19' is not a genome"),
    (lambda c: c.update(download="yes"), "'yes' is not of type 'boolean'"),
])
def test_invalid_pipeline_config_is_refused_before_any_job(data_dir, tmp_path, edit, message):
    res = _snakemake("--configfile", _pipeline(tmp_path, data_dir, edit=edit))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and message in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_killed_run_finishes_on_rerun_without_redoing_completed_jobs(data_dir, tmp_path):
    """Kill Snakemake (and its jobs) while a fine-tuning job runs; the rerun with --rerun-incomplete finishes the
    pipeline and redoes neither the inputs nor the task stores that were complete."""
    import signal
    import time

    def edit(cfg):
        cfg["tasks"] = {"ecoli_sigma70": cfg["tasks"]["ecoli_sigma70"]}
        cfg["finetune"].update(attention=["dense"], pretrained=False, limit_train_batches=6, limit_val_batches=2)
        for section in ("score", "report"):
            del cfg[section]

    cfg = _pipeline(tmp_path, data_dir, edit=edit)
    cfg_dict = yaml.safe_load(cfg.read_text())
    del cfg_dict["pretrain"]
    # its own working directory: the killed run's lock (.snakemake/locks) is removed there with --unlock
    cfg_dict["manifest"] = str(REPO / "data" / "MANIFEST.tsv")
    cfg_dict["finetune"]["model_config"] = str(REPO / "configs" / "finetune" / "tiny.yaml")
    cfg_dict["evaluate"]["published"] = str(REPO / "data" / "published.tsv")
    cfg.write_text(yaml.safe_dump(cfg_dict))
    workdir = tmp_path / "work"
    workdir.mkdir()
    res_dir = tmp_path / "results"
    target = res_dir / "eval" / "ecoli_sigma70" / "compare.tsv"  # the fine-tuning branch (no tokenize)
    env = {k: v for k, v in os.environ.items() if k != "GENOMICS_LM_DATA"}
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    args = [str(target), "-s", str(REPO / "Snakefile"), "--configfile", str(cfg)]
    proc = subprocess.Popen([*SNAKEMAKE, *args, "--cores", "2"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fit_log = res_dir / "logs" / "finetune" / "ecoli_sigma70.dense_s0.log"
    deadline = time.time() + 300
    while not (fit_log.is_file() and "fit dense" in fit_log.read_text()) and time.time() < deadline:
        assert proc.poll() is None, "snakemake ended before the fine-tuning job started"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job it runs, mid-run
    proc.wait()
    store = res_dir / "tasks" / "ecoli_sigma70" / "train.h5"
    copy = res_dir / "inputs" / "promoters" / "ecoli_sigma70" / "promoters.fa"
    assert store.is_file() and copy.is_file()
    assert not (res_dir / "finetune" / "ecoli_sigma70" / "dense_s0" / "finetuned.pt").exists()
    before = {p: p.stat().st_mtime_ns for p in (store, copy)}
    assert _snakemake(*args, "--unlock", cwd=workdir).returncode == 0
    res = _snakemake(*args, "--rerun-incomplete", cwd=workdir)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "rule make_task" not in out and "rule fetch_input" not in out and "rule finetune" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert target.is_file()
    res = _snakemake(*args, "-n", cwd=workdir)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def _scontrol_job(jobid):
    """``scontrol show job -o``'s fields of one job ({"JobState": "COMPLETED", "Comment": ..., ...})."""
    res = subprocess.run(["scontrol", "show", "job", "-o", str(jobid)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return dict(f.split("=", 1) for f in res.stdout.split() if "=" in f)


@pytest.mark.slow
def test_whole_pipeline_on_slurm_with_gpu_requests(data_dir, tmp_path, slurm_cluster):
    """A small config of the whole pipeline (inputs, tokenize, pretrain, tasks, fine-tuning, evaluation, compare,
    patterns, report) with the slurm profile on the local SLURM cluster: every rule that is not a local rule is a
    SLURM job, submitted with sbatch and completed, and the pretraining and fine-tuning jobs request a GPU (the test
    cluster's device-less gres: they are scheduled as GPU jobs and compute on the CPU)."""
    from conftest import FAKE_GPUS

    def edit(cfg):
        cfg["manifest"] = str(REPO / "data" / "MANIFEST.tsv")
        cfg["tasks"] = {"ecoli_sigma70": cfg["tasks"]["ecoli_sigma70"]}
        cfg["pretrain"].update(attention=["longformer", "dense"], max_steps=4, cpus=1, mem_mb=3000, runtime=15,
                               gpus=1, extra="--trainer.val_check_interval 2",
                               model_config=str(REPO / "configs" / "pretrain" / "tiny.yaml"))
        cfg["finetune"].update(attention=["longformer", "dense"], limit_train_batches=4, limit_val_batches=2,
                               gpus=1, runtime=15, model_config=str(REPO / "configs" / "finetune" / "tiny.yaml"))
        cfg["evaluate"].update(published=str(REPO / "data" / "published.tsv"), cpus=1, mem_mb=3000, runtime=15)
        del cfg["score"]

    assert FAKE_GPUS >= 1
    cfg = _pipeline(tmp_path, data_dir, edit=edit)
    workdir = tmp_path / "work"  # Snakemake's .snakemake/ (and slurm_logs/) for this run only
    workdir.mkdir()
    res = _snakemake("-s", REPO / "Snakefile", "--configfile", cfg, "--profile",
                     REPO / "workflow" / "profiles" / "slurm", cwd=workdir)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    results = tmp_path / "results"
    assert (results / "report.html").is_file() and (results / "eval" / "ecoli_sigma70" / "compare.tsv").is_file()

    submitted = {int(j): int(s) for j, s in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out)}
    finished = {int(j): r for j, r in re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", out)}
    local = {int(j): r for r, j in re.findall(r"^localrule (\w+):\n(?:    .*\n)*?    jobid: (\d+)", out, re.M)}
    remote = {j: r for j, r in finished.items() if j not in local}
    assert set(local.values()) == {"fetch_input", "summarize_pretraining", "compare", "draw_patterns", "report", "all"}
    assert sorted(remote.values()) == sorted(["tokenize", "pretrain", "pretrain", "make_task", "finetune",
                                              "finetune", "evaluate", "evaluate"]), finished
    assert set(submitted) == set(remote), (submitted, finished)  # every other job went through sbatch
    for job, slurm_id in submitted.items():
        info = _scontrol_job(slurm_id)
        assert info["JobState"] == "COMPLETED", info
        assert info["Comment"].startswith(f"rule_{remote[job]}"), info
        # fine-tuning: sbatch --gpus=1 (per job); pretraining: --gres=gpu:1 (per node); the others no GPU
        assert (info.get("TresPerJob") == "gres:gpu:1") == (remote[job] == "finetune"), info
        assert (info.get("TresPerNode") == "gres:gpu:1") == (remote[job] == "pretrain"), info
    for attention in ("longformer", "dense"):
        assert (results / "finetune" / "ecoli_sigma70" / f"{attention}_s0" / "finetuned.pt").is_file()
