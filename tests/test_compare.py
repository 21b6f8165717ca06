"""Comparison tables (genomics_lm.compare, `genomics-lm compare`): exact means and spreads, the baseline row from
the same files, one set of rows per task, published figures marked, one-line errors.

The metrics.json files are written by hand (mechanics of the table); real evaluations are tested in
test_evaluate.py."""

from __future__ import annotations

import json

import pytest

from genomics_lm.cli import main as cli_main
from genomics_lm.compare import (BASELINE, compare, markdown, mean_sd, method_name, read_evaluation, read_published,
                                 to_records)
from genomics_lm.errors import UserError


def _metrics(task="sigma70", mcc=0.5, auroc=0.8, auprc=0.6, attention="dense", pretrained=None, both=False,
             sha="a" * 64, base=(0.7, 0.9, 0.85), labels=("label",)):
    if len(labels) == 1:
        model = {"mcc": mcc, "auroc": auroc, "auprc": auprc}
        baseline = dict(zip(("mcc", "auroc", "auprc"), base))
    else:
        model = {"macro_auroc": auroc, "macro_auprc": auprc, "macro_mcc": mcc}
        baseline = dict(zip(("macro_mcc", "macro_auroc", "macro_auprc"), base))
    return {"task": task, "split": "test", "n": 384, "label_names": list(labels), "rows_sha256": sha,
            "model": model, "kmer_baseline": None if both else baseline, "both_strands": both,
            "attention": attention, "checkpoint_record": {"pretrained": pretrained}}


def _write(tmp_path, name, **kw):
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(_metrics(**kw)))
    return d


def test_mean_and_sample_sd():
    assert mean_sd([0.5, 0.7]) == pytest.approx((0.6, 0.1414213562))
    assert mean_sd([0.5]) == (0.5, None)


def test_method_name_says_attention_start_and_strands():
    assert method_name(_metrics()) == "dense scratch"
    assert method_name(_metrics(attention="bigbird", pretrained="/x/pre/hg19/bigbird/pretrained.pt")) == \
        "bigbird pretrained hg19/bigbird"
    assert method_name(_metrics(pretrained="runs/e.pt", both=True)) == "dense pretrained e +both strands"


def test_runs_of_one_method_are_averaged_next_to_the_baseline(tmp_path):
    evs = [read_evaluation(_write(tmp_path, "rc", mcc=0.55, both=True)),  # listed first, shown after its method
           read_evaluation(_write(tmp_path, "s0", mcc=0.5, auroc=0.8)),
           read_evaluation(_write(tmp_path, "s1", mcc=0.7, auroc=0.9)),
           read_evaluation(_write(tmp_path, "lf", mcc=0.6, attention="longformer"))]
    recs = to_records(compare(evs))
    assert [(r["method"], r["runs"]) for r in recs] == [
        (BASELINE, "1"), ("dense scratch", "2"), ("dense scratch +both strands", "1"), ("longformer scratch", "1")]
    # the baseline: one cached fit scored in 3 single-strand evaluations, shown once (not "0.700 ± 0.000")
    assert recs[0]["mcc"] == "0.700" and recs[0]["auroc"] == "0.900"
    assert recs[0]["note"] == "one fit, identical in all 3 evaluations"
    assert recs[1]["mcc"] == "0.600 ± 0.141" and recs[1]["auroc"] == "0.850 ± 0.071"
    assert recs[3]["mcc"] == "0.600" and recs[2]["n"] == "384"


def test_baselines_that_differ_are_shown_with_their_spread(tmp_path):
    evs = [read_evaluation(_write(tmp_path, "s0", base=(0.7, 0.9, 0.85))),
           read_evaluation(_write(tmp_path, "s1", base=(0.6, 0.9, 0.85)))]
    base = to_records(compare(evs))[0]
    assert base["method"] == BASELINE and base["runs"] == "2" and base["note"] == ""
    assert base["mcc"] == "0.650 ± 0.071" and base["auroc"] == "0.900 ± 0.000"


def test_multi_label_tasks_use_the_macro_metrics(tmp_path):
    ev = read_evaluation(_write(tmp_path, "m", labels=("H3", "H4"), auroc=0.75, auprc=0.4, mcc=0.3))
    recs = to_records(compare([ev]))
    assert recs[1]["macro_auroc"] == "0.750" and "mcc" not in recs[1]
    assert "| task | method | runs | n | macro_auroc | macro_auprc | macro_mcc | note |" in markdown(compare([ev]))


def test_evaluations_of_one_task_on_other_rows_are_refused(tmp_path):
    a = read_evaluation(_write(tmp_path, "a"))
    b = read_evaluation(_write(tmp_path, "b", sha="b" * 64))
    with pytest.raises(UserError, match=r"task 'sigma70': .*b/metrics.json is on other rows than .*a/metrics.json"):
        compare([a, b])
    other_task = read_evaluation(_write(tmp_path, "c", task="tata", sha="c" * 64))
    assert {r.task for r in compare([a, other_task])} == {"sigma70", "tata"}


def test_published_rows_are_marked_and_kept_to_their_task(tmp_path):
    pub = tmp_path / "pub.tsv"
    pub.write_text("# comment\ntask\tmethod\tmetric\tvalue\tsource\n"
                   "sigma70\tDNABERT\tmcc\t0.616\tpaper A\ntata\tNT\tauroc\t0.8\tpaper B\n")
    rows = compare([read_evaluation(_write(tmp_path, "a"))], read_published(pub))
    last = to_records(rows)[-1]
    assert last["method"] == "DNABERT (published, not reproduced)" and last["mcc"] == "0.616"
    assert last["auroc"] == "NA" and last["note"] == "paper A" and last["runs"] == "" and len(rows) == 3
    bad = tmp_path / "bad.tsv"
    bad.write_text("task\tmethod\tmetric\tvalue\tsource\nsigma70\tX\tmcc\thigh\tp\n")
    with pytest.raises(UserError, match=r"bad.tsv: row 2: value 'high' is not a number"):
        read_published(bad)


def test_the_shipped_published_table_reads(pytestconfig):
    rows = read_published(pytestconfig.rootpath / "data" / "published.tsv")
    assert {r["task"] for r in rows} >= {"gue_prom_300_tata", "gue_human_tf", "gue_yeast_histone"}


def test_cli_names_writes_tsv_and_errors_in_one_line(tmp_path, capsys):
    a = _write(tmp_path, "a", mcc=0.4)
    b = _write(tmp_path, "b", mcc=0.6)
    out = tmp_path / "t.tsv"
    assert cli_main(["compare", f"mine={a}", f"mine={b}", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["task", "method", "runs", "n", "mcc", "auroc", "auprc", "note"]
    assert lines[2].split("\t")[:5] == ["sigma70", "mine", "2", "384", "0.500 ± 0.141"]
    assert "| sigma70 | mine | 2 | 384 | 0.500 ± 0.141 |" in capsys.readouterr().out
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metrics.json").write_text("{not json")
    assert cli_main(["compare", str(tmp_path / "junk")]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk/metrics.json: not a metrics.json of 'genomics-lm evaluate'" in err and len(err.splitlines()) == 1
    assert cli_main(["compare", str(tmp_path / "none")]) == 2
    assert "/none: no such file" in capsys.readouterr().err
