"""Summaries of pretraining runs (genomics_lm.summary, `genomics-lm summarize`): exact figures from metrics files,
the unigram baseline of real token stores, one-line errors."""

from __future__ import annotations

import csv

import pytest

from genomics_lm.cli import main as cli_main
from genomics_lm.data import mlm_baselines
from genomics_lm.errors import UserError
from genomics_lm.store import TokenStore
from genomics_lm.summary import (BASELINE_RUN, COLUMNS, metrics_path, read_metrics, series, summarize_pretraining,
                                 write_summary_tsv)

# A run validated after optimizer steps 100 and 200, killed, resumed from step 100 (step 199's validation logged
# again by the resumed run: the later row wins), then validated after 300. Training rows interleave.
METRICS = """\
epoch,step,train/acc,train/loss,train/lr,val/acc,val/loss,val/ppl
0,98,0.31,3.95,0.002,,,
0,99,,,,0.101,4.05,57.4
0,199,,,,0.112,3.98,53.5
0,149,0.33,3.90,0.0019,,,
0,199,,,,0.115,3.97,53.0
0,299,,,,0.118,3.99,54.1
"""
DENSE = """\
epoch,step,train/acc,train/loss,val/acc,val/loss
0,49,0.30,4.00,,
0,99,,,0.0975,4.0625
"""


def _run(tmp_path, name, text):
    run = tmp_path / name
    metrics_path(run).parent.mkdir(parents=True)
    metrics_path(run).write_text(text)
    return run


@pytest.fixture(scope="module")
def stores(ecoli_stores):
    return ecoli_stores("summary_k3", 3, 3, 256)


def test_series_keeps_the_last_row_of_a_repeated_step(tmp_path):
    rows = read_metrics(_run(tmp_path, "bigbird", METRICS))
    assert series(rows, "val/loss") == ([99, 199, 299], [4.05, 3.97, 3.99])
    assert series(rows, "train/loss") == ([98, 149], [3.95, 3.90])


def test_summary_has_the_final_validation_of_each_run_then_the_baseline(tmp_path, stores):
    runs = {"bigbird": _run(tmp_path, "bigbird", METRICS), "dense": _run(tmp_path, "dense", DENSE)}
    rows = summarize_pretraining(runs, stores / "train.h5", stores / "val.h5")
    assert [r["run"] for r in rows] == ["bigbird", "dense", BASELINE_RUN]
    assert rows[0] == {"run": "bigbird", "steps": 300, "val_loss": 3.99, "val_acc": 0.118, "best_val_loss": 3.97,
                       "source": str(runs["bigbird"] / "csv" / "metrics.csv")}
    assert rows[1] == {"run": "dense", "steps": 100, "val_loss": 4.0625, "val_acc": 0.0975, "best_val_loss": 4.0625,
                       "source": str(runs["dense"] / "csv" / "metrics.csv")}
    base = mlm_baselines(TokenStore(stores / "train.h5"), TokenStore(stores / "val.h5"))
    assert rows[2] == {"run": BASELINE_RUN, "steps": None, "val_loss": base["unigram_cross_entropy_val"],
                       "val_acc": base["const_acc_val"], "best_val_loss": None, "source": str(stores / "val.h5")}
    # 3-mers of E. coli: close to uniform (ln 64 = 4.16 nats), the most frequent 3-mer about 1/40 of them
    assert 3.9 < rows[2]["val_loss"] < 4.16 and 0.015 < rows[2]["val_acc"] < 0.05


def test_tsv_has_the_notes_and_reads_back(tmp_path, stores):
    rows = summarize_pretraining({"bigbird": _run(tmp_path, "bigbird", METRICS)}, stores / "train.h5",
                                 stores / "val.h5")
    out = write_summary_tsv(rows, tmp_path / "new" / "summary.tsv")
    lines = out.read_text().splitlines()
    notes = [line for line in lines if line.startswith("#")]
    assert lines[: len(notes)] == notes and any("80/10/10" in n and "[MASK]" in n for n in notes)
    table = list(csv.DictReader(lines[len(notes):], delimiter="\t"))
    assert list(table[0]) == list(COLUMNS)
    assert table[0] == {"run": "bigbird", "steps": "300", "val_loss": "3.9900", "val_acc": "0.1180",
                        "best_val_loss": "3.9700", "source": str(tmp_path / "bigbird" / "csv" / "metrics.csv")}
    assert table[1]["run"] == BASELINE_RUN and table[1]["steps"] == "NA" and table[1]["best_val_loss"] == "NA"
    assert sorted(p.name for p in out.parent.iterdir()) == ["summary.tsv"]  # no temporary file left


def test_missing_metrics_file_is_one_line_naming_it(tmp_path, stores):
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError) as exc:
        summarize_pretraining({"bigbird": tmp_path / "run"}, stores / "train.h5", stores / "val.h5")
    msg = str(exc.value)
    assert str(tmp_path / "run" / "csv" / "metrics.csv") in msg and "\n" not in msg


def test_run_that_never_validated_is_refused(tmp_path, stores):
    run = _run(tmp_path, "bigbird", "epoch,step,train/loss\n0,9,4.1\n")
    with pytest.raises(UserError, match="no validation figures"):
        summarize_pretraining({"bigbird": run}, stores / "train.h5", stores / "val.h5")


def test_cli_prints_the_table_with_the_masking_note_and_writes_the_tsv(tmp_path, stores, capsys):
    run = _run(tmp_path, "bigbird", METRICS)
    out = tmp_path / "summary.tsv"
    assert cli_main(["summarize", "--run", f"bigbird={run}", "--tokens", str(stores), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == list(COLUMNS)
    assert printed[1].split()[:5] == ["bigbird", "300", "3.9900", "0.1180", "3.9700"]
    assert printed[2].split()[0] == BASELINE_RUN
    assert any(line.startswith("note:") and "80/10/10" in line for line in printed)
    assert printed[-1] == f"wrote {out}" and out.is_file()


@pytest.mark.parametrize("argv, expected", [
    (["--run", "bigbird"], "expected NAME=RUN_DIR"),
    (["--run", "a=x", "--run", "a=y"], "given twice"),
    (["--run", "bigbird=NOWHERE"], "NOWHERE/csv/metrics.csv: no metrics file"),
])
def test_cli_errors_are_one_line(argv, expected, stores, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["summarize", *argv, "--tokens", str(stores)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and err.startswith("genomics-lm summarize: error:")
