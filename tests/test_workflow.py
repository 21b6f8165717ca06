"""The Snakemake workflow: parses, validates its config, and runs the tokenize and pretrain stages on real data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from genomics_lm.store import TokenStore

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _config(tmp_path, data_dir, pretrain=None, **tokenize):
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    cfg["results"] = str(tmp_path / "results")
    cfg["tokenize"].update(tokenize)
    if pretrain is False:
        del cfg["pretrain"]
    elif pretrain:
        cfg["pretrain"].update(pretrain)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(*args, cwd=REPO):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=1200)


def test_dry_run_parses(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir))
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "rule tokenize" in out
    for attention in ("bigbird", "longformer", "dense"):  # one pretraining job per attention type
        assert f"pretrain/ecoli/{attention}/pretrained.pt" in out


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
    store = TokenStore(results / "tokens" / "ecoli" / "val.h5", expect_k=3)
    assert store.window_tokens == 2048 and len(store) > 0
    assert (results / "logs" / "tokenize" / "ecoli.log").read_text().startswith("split")
    run = results / "pretrain" / "ecoli" / "bigbird"
    model = torch.load(run / "pretrained.pt", weights_only=True)
    meta = model["genomics_lm"]
    assert meta["model_config"]["attention"] == "bigbird" and meta["model_config"]["k"] == 3 and meta["global_step"] == 6
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "step 6;" in (results / "logs" / "pretrain" / "ecoli.bigbird.log").read_text()
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
