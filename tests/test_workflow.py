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


def _config(tmp_path, data_dir, pretrain=None, name="config.yaml", **tokenize):
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    cfg["results"] = str(tmp_path / "results")
    cfg["tokenize"].update(tokenize)
    if pretrain is False:
        del cfg["pretrain"]
    elif pretrain:
        cfg["pretrain"].update(pretrain)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(*args, cwd=REPO, env=None):
    """Snakemake in a subprocess; $GENOMICS_LM_DATA is unset unless ``env`` sets it (the config's data_dir rules)."""
    env = {k: v for k, v in os.environ.items() if k != "GENOMICS_LM_DATA"} | (env or {})
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=1200)


def _shell_commands(out, tool):
    return [line for line in out.splitlines() if f"{tool} " in line and not line.startswith(("rule", "["))]


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
    for env in spellings:
        res = _snakemake("-n", "-p", "--configfile", cfg, env=env)
        assert res.returncode == 0, res.stderr
        (cmd,) = _shell_commands(res.stdout + res.stderr, "genomics-lm")
        assert f"--fasta {fasta} " in cmd, (env, cmd)
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
    assert "gpu=4" in out and "nodes=2" in out and "tasks_per_node=4" in out and "mpi=srun" in out
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


def test_cluster_config_dry_runs_on_the_slurm_executor(data_dir, tmp_path):
    """configs/full.yaml with the slurm profile: planned as SLURM jobs with the GPU resources (nothing submitted)."""
    cfg = yaml.safe_load((REPO / "configs" / "full.yaml").read_text())
    cfg["data_dir"], cfg["results"] = str(data_dir), str(tmp_path / "results")
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _snakemake("-n", "-p", "--configfile", path, "--profile", REPO / "workflow" / "profiles" / "slurm")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert out.count("rule pretrain:") == 3 and "gpu=4" in out and "tasks_per_node=4" in out


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
