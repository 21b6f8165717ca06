"""The Snakemake workflow: parses, validates its config, and runs the tokenize stage on real data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genomics_lm.store import TokenStore

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _config(tmp_path, data_dir, **tokenize):
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    cfg["results"] = str(tmp_path / "results")
    cfg["tokenize"].update(tokenize)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(*args, cwd=REPO):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)


def test_dry_run_parses(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir))
    assert res.returncode == 0, res.stderr
    assert "tokenize" in res.stdout


def test_invalid_config_is_refused(data_dir, tmp_path):
    res = _snakemake("-n", "--configfile", _config(tmp_path, data_dir, k=9))
    assert res.returncode != 0
    assert "9 is greater than the maximum of 8" in res.stdout + res.stderr


def test_tokenize_stage_runs(data_dir, tmp_path):
    cfg = _config(tmp_path, data_dir, window_tokens=2048)
    res = _snakemake("--configfile", cfg, "--profile", REPO / "workflow" / "profiles" / "default")
    assert res.returncode == 0, res.stderr[-3000:]
    store = TokenStore(tmp_path / "results" / "tokens" / "ecoli" / "val.h5", expect_k=6)
    assert store.window_tokens == 2048 and len(store) > 0
    assert (tmp_path / "results" / "logs" / "tokenize" / "ecoli.log").read_text().startswith("split")
