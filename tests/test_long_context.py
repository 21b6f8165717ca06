"""genomics_lm.long_context / ``genomics-lm context-table`` and scripts/long_context.sh, on real K562 peak tasks
(hg19 chr22:20-21 Mb) built at two context lengths plus the N-masked control."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genomics_lm.cli import main as cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tasks(data_dir, tmp_path_factory):
    """c300, c600 and c600_mask300: one K562 task (H3K4me3, POLR2A) on the same rows (--select-bp 600)."""
    root = tmp_path_factory.mktemp("lc_tasks")
    p = data_dir / "chromatin" / "k562_hg19_peaks"
    base = ["--genome", str(data_dir / "genomes" / "hg19_chr22_20-21Mb.fa"), "--peaks",
            f"H3K4me3={p / 'histone_broad' / 'wgEncodeBroadHistoneK562H3k4me3StdPk.txt.gz'}",
            f"POLR2A={p / 'other' / 'POLR2A.K562.bed.gz'}", "--strip-chr-prefix", "--select-bp", "600",
            "--neg-per-pos", "1", "--k", "3", "--stride", "3", "--seed", "1"]
    for name, extra in (("c300", ["--context-bp", "300"]), ("c600", ["--context-bp", "600"]),
                        ("c600_mask300", ["--context-bp", "600", "--mask-outside-bp", "300"]),
                        ("other_rows", ["--context-bp", "300", "--seed", "5"])):
        assert cli(["make-task", "--out-dir", str(root / name), *base, *extra]) == 0
    return root


def fake_eval(path: Path, task_dir: Path, attention: str, auroc: float, auprc: float, base: tuple[float, float],
              task: str = "k562"):
    """A metrics.json as 'genomics-lm evaluate' writes it (the fields the table reads), on a real task store."""
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "task": task, "split": "test", "n": 100, "label_names": ["H3K4me3", "POLR2A"], "rows_sha256": "x",
        "attention": attention, "split_file": str(task_dir / "test.h5"), "task_dir": str(task_dir),
        "model": {"macro_auroc": auroc, "macro_auprc": auprc},
        "kmer_baseline": {"macro_auroc": base[0], "macro_auprc": base[1], "seconds": 2.5}}))
    return path


def bench_json(path: Path) -> Path:
    rec = [{"length_bp": 300, "attention": "bigbird", "train_step_s": 0.1, "eval_seqs_per_s": 50.0, "peak_rss_mb": 500.0},
           {"length_bp": 300, "attention": "dense", "train_step_s": 0.05, "eval_seqs_per_s": 80.0, "peak_rss_mb": 450.0},
           {"length_bp": 600, "attention": "bigbird", "train_step_s": 0.2, "eval_seqs_per_s": 25.0, "peak_rss_mb": 600.0},
           {"length_bp": 600, "attention": "dense", "error": "out of memory"}]
    path.write_text(json.dumps({"settings": {"batch": 8, "threads": 1, "steps": 3}, "config": "context.yaml",
                                "records": rec}))
    return path


def test_table_groups_seeds_baseline_control_and_timing(tasks, tmp_path, capsys):
    ev = tmp_path / "ev"
    e = [fake_eval(ev / "a", tasks / "c300", "bigbird", 0.70, 0.50, (0.65, 0.45)),
         fake_eval(ev / "b", tasks / "c300", "bigbird", 0.74, 0.52, (0.65, 0.45)),
         fake_eval(ev / "c", tasks / "c300", "dense", 0.60, 0.40, (0.65, 0.45)),
         fake_eval(ev / "d", tasks / "c600", "bigbird", 0.80, 0.60, (0.66, 0.47)),
         fake_eval(ev / "e", tasks / "c600_mask300", "bigbird", 0.71, 0.51, (0.64, 0.44))]
    out = tmp_path / "summary"
    assert cli(["context-table", *map(str, e), "--bench", str(bench_json(tmp_path / "bench.json")),
                "--out-dir", str(out)]) == 0
    assert "not run: k562 300 bp longformer; k562 600 bp longformer; k562 600 bp dense" in capsys.readouterr().out
    lines = (out / "context.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    rows = [dict(zip(head, l.split("\t"))) for l in lines[1:]]
    key = [(r["context_bp"], r["input"], r["method"]) for r in rows]
    assert key == [("300", "full", "k-mer baseline"), ("300", "full", "bigbird"), ("300", "full", "dense"),
                   ("600", "full", "k-mer baseline"), ("600", "full", "bigbird"),
                   ("600", "central 300 bp", "k-mer baseline"), ("600", "central 300 bp", "bigbird")]
    bb300 = rows[1]
    assert bb300["runs"] == "2" and bb300["macro_auroc"] == "0.720 ± 0.028" and bb300["macro_auprc"] == "0.510 ± 0.014"
    assert bb300["s_per_step"] == "0.100" and bb300["step_vs_dense"] == "2.00x" and bb300["peak_rss_mb"] == "500"
    assert rows[0]["macro_auroc"] == "0.650" and rows[0]["baseline_s"] == "2.5" and rows[0]["s_per_step"] == "-"
    assert rows[4]["s_per_step"] == "0.200" and rows[4]["step_vs_dense"] == "-"  # dense 600 failed in the bench
    assert rows[6]["s_per_step"] == "0.200"  # the control has the same length, so the same cost
    for name in ("metric_vs_context.png", "time_vs_context.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert (out / "context.md").read_text().startswith("| task | context_bp | input | method |")
    # the outputs exist: refused without --overwrite, one line
    assert cli(["context-table", str(e[0]), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds context.tsv" in err[0] and "--overwrite" in err[0]


def test_different_rows_are_refused(tasks, tmp_path, capsys):
    a = fake_eval(tmp_path / "a", tasks / "c300", "bigbird", 0.7, 0.5, (0.6, 0.4))
    b = fake_eval(tmp_path / "b", tasks / "other_rows", "bigbird", 0.7, 0.5, (0.6, 0.4))
    assert cli(["context-table", str(a), str(b), "--out-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluated on different rows" in err[0] and str(b / "metrics.json") in err[0]
    assert not (tmp_path / "s" / "context.tsv").exists()


def _table(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:]]


def test_task_name_makes_tasks_named_per_context_one_experiment(tasks, tmp_path, capsys):
    """The workflow names a task per context (k562_300, k562_600, k562_600_mask300): --task-name groups them as one
    task, seeds of one context together, and the baseline once per context and input."""
    ev = tmp_path / "ev"
    e = [fake_eval(ev / "a", tasks / "c300", "bigbird", 0.70, 0.50, (0.65, 0.45), task="k562_300"),
         fake_eval(ev / "b", tasks / "c300", "bigbird", 0.74, 0.52, (0.65, 0.45), task="k562_300"),
         fake_eval(ev / "c", tasks / "c600", "bigbird", 0.80, 0.60, (0.66, 0.47), task="k562_600"),
         fake_eval(ev / "d", tasks / "c600", "dense", 0.78, 0.58, (0.66, 0.47), task="k562_600"),
         fake_eval(ev / "e", tasks / "c600_mask300", "bigbird", 0.71, 0.51, (0.64, 0.44), task="k562_600_mask300")]
    out = tmp_path / "summary"
    assert cli(["context-table", *map(str, e), "--task-name", "k562_lc", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not run: k562_lc 300 bp longformer; k562_lc 300 bp dense; k562_lc 600 bp longformer" in printed
    rows = _table(out / "context.tsv")
    assert [(r["task"], r["context_bp"], r["input"], r["method"], r["runs"]) for r in rows] == [
        ("k562_lc", "300", "full", "k-mer baseline", "1"), ("k562_lc", "300", "full", "bigbird", "2"),
        ("k562_lc", "600", "full", "k-mer baseline", "1"), ("k562_lc", "600", "full", "bigbird", "1"),
        ("k562_lc", "600", "full", "dense", "1"),
        ("k562_lc", "600", "central 300 bp", "k-mer baseline", "1"),
        ("k562_lc", "600", "central 300 bp", "bigbird", "1")]
    assert rows[1]["macro_auroc"] == "0.720 ± 0.028" and rows[4]["macro_auroc"] == "0.780"
    assert rows[5]["macro_auroc"] == "0.640" and rows[6]["macro_auroc"] == "0.710"
    md = (out / "context.md").read_text()
    assert md.count("| task | context_bp |") == 1 and "k562_300" not in md  # one table: one task
    assert not (out / "time_vs_context.png").exists()
    # without --task-name: three tasks of one context each
    assert cli(["context-table", *map(str, e), "--out-dir", str(out), "--overwrite"]) == 0
    assert {r["task"] for r in _table(out / "context.tsv")} == {"k562_300", "k562_600", "k562_600_mask300"}


def test_task_name_checks_the_rows_across_the_renamed_tasks(tasks, tmp_path, capsys):
    """Named apart, tasks on different rows pass; under one --task-name they are one task: refused, one line."""
    a = fake_eval(tmp_path / "a", tasks / "c300", "bigbird", 0.7, 0.5, (0.6, 0.4), task="k562_300")
    b = fake_eval(tmp_path / "b", tasks / "other_rows", "bigbird", 0.7, 0.5, (0.6, 0.4), task="k562_300_seed5")
    assert cli(["context-table", str(a), str(b), "--out-dir", str(tmp_path / "apart")]) == 0
    capsys.readouterr()
    assert cli(["context-table", str(a), str(b), "--task-name", "k562_lc", "--out-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task 'k562_lc' evaluated on different rows" in err[0]
    assert str(b / "metrics.json") in err[0]
    assert not (tmp_path / "s" / "context.tsv").exists()


def test_overwrite_without_bench_removes_an_old_time_plot(tasks, tmp_path):
    """The workflow reruns a table into the same folder: a time plot from an earlier benchmark must not stay."""
    a = fake_eval(tmp_path / "a", tasks / "c300", "bigbird", 0.7, 0.5, (0.6, 0.4))
    out = tmp_path / "s"
    assert cli(["context-table", str(a), "--bench", str(bench_json(tmp_path / "bench.json")), "--out-dir",
                str(out)]) == 0
    assert (out / "time_vs_context.png").exists()
    assert cli(["context-table", str(a), "--out-dir", str(out), "--overwrite"]) == 0
    assert (out / "context.tsv").exists() and not (out / "time_vs_context.png").exists()


def test_help_names_task_name_and_the_workflow_section(capsys):
    with pytest.raises(SystemExit):
        cli(["context-table", "--help"])
    out = capsys.readouterr().out
    assert "--task-name NAME" in out and "treat every EVAL as one task named NAME" in out
    assert "long_context:" in out and "RESULTS/context/NAME/" in out


def test_task_not_from_a_genome_is_refused(data_dir, tmp_path, capsys):
    d = data_dir / "promoters" / "ecoli_sigma70"
    task = tmp_path / "sigma70"
    assert cli(["make-task", "--out-dir", str(task), "--pos", str(d / "promoters.fa"), "--neg",
                str(d / "non_promoters.fa"), "--k", "3"]) == 0
    a = fake_eval(tmp_path / "a", task, "bigbird", 0.7, 0.5, (0.6, 0.4))
    capsys.readouterr()
    assert cli(["context-table", str(a), "--out-dir", str(tmp_path / "s")]) == 2
    assert "is not from a genome (no context_bp)" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_script_end_to_end(data_dir, tmp_path, pytestconfig):
    """scripts/long_context.sh on a tiny budget: tasks at 300 and 600 bp + the control, fits, evaluations with
    the baseline, the benchmark and the table; every cell is in the table."""
    root = pytestconfig.rootpath
    cfg = (root / "configs" / "finetune" / "context.yaml").read_text()
    cfg = cfg.replace("limit_train_batches: 120", "limit_train_batches: 3")
    cfg = cfg.replace("d_model: 128", "d_model: 32")
    cfg = cfg.replace("d_ff: 512", "d_ff: 64").replace("n_layers: 2", "n_layers: 1")
    (tmp_path / "cfg.yaml").write_text(cfg)
    p = data_dir / "chromatin" / "k562_hg19_peaks"
    exe = shutil.which("genomics-lm", path=os.path.dirname(sys.executable))
    out = tmp_path / "lc"
    cmd = ["bash", str(root / "scripts" / "long_context.sh"), "--out", str(out), "--name", "k562",
           "--contexts", "300 600", "--attention", "bigbird dense", "--skip", "dense@600", "--control", "600",
           "--control-attention", "bigbird",
           "--control-bp", "300", "--config", str(tmp_path / "cfg.yaml"), "--bench-steps", "1", "--", "--genome",
           str(data_dir / "genomes" / "hg19_chr22_20-21Mb.fa"), "--peaks",
           f"H3K4me3={p / 'histone_broad' / 'wgEncodeBroadHistoneK562H3k4me3StdPk.txt.gz'}", "--strip-chr-prefix",
           "--neg-per-pos", "0.5", "--k", "3", "--stride", "3", "--seed", "1"]
    env = {**os.environ, "GENOMICS_LM": exe, "GENOMICS_LM_DATA": str(data_dir)}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (out / "summary" / "context.tsv").read_text().splitlines()
    cells = {tuple(l.split("\t")[1:4]) for l in lines[1:]}
    assert cells == {("300", "full", "k-mer baseline"), ("300", "full", "bigbird"), ("300", "full", "dense"),
                     ("600", "full", "k-mer baseline"), ("600", "full", "bigbird"),
                     ("600", "central 300 bp", "k-mer baseline"), ("600", "central 300 bp", "bigbird")}
    assert "k562 600 bp dense" in next(l for l in res.stdout.splitlines() if l.startswith("not run: "))
    assert (out / "summary" / "time_vs_context.png").read_bytes()[:8] == PNG
