"""genomics_lm.evaluate and ``genomics-lm evaluate``: metrics against scikit-learn, label masking, the k-mer
baseline on real E. coli sigma-70 promoters, the outputs (same rows for model and baseline, predictions in store
order, plots) and bad input (one line, exit 2, nothing written).

Task stores are built here from the real promoter FASTA pair (first records of each file), so these tests do not
depend on ``make-task``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from genomics_lm import evaluate as ev
from genomics_lm.checkpoint import make_record, save_model
from genomics_lm.model import MaskedLM, ModelConfig, MultiLabelClassifier
from genomics_lm.score import predict_proba, trim_padding
from genomics_lm.store import TokenStore, TokenStoreWriter
from genomics_lm.tokenizer import PAD_ID, KmerTokenizer, encode

TOK = KmerTokenizer(3, 3)
SIZES = {"train": (0, 150), "val": (150, 200), "test": (200, 250)}  # records of each FASTA per split


def read_fasta(path, n):
    """The first ``n`` records of a FASTA as (id, sequence) (a reader of our own: no dependency on tasks.py)."""
    out, name, seq = [], None, []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if name is not None:
                    out.append((name, "".join(seq)))
                    if len(out) == n:
                        return out
                name, seq = line[1:].split()[0], []
            elif line:
                seq.append(line)
    if name is not None and len(out) < n:
        out.append((name, "".join(seq)))
    return out


@pytest.fixture(scope="module")
def sigma70(data_dir):
    d = data_dir / "promoters" / "ecoli_sigma70"
    n = SIZES["test"][1]
    return read_fasta(d / "promoters.fa", n), read_fasta(d / "non_promoters.fa", n)


def write_store(path, records, labels, label_names, tokenizer=TOK, L=None, split="test"):
    """A task store of ``records`` [(id, seq)] with ``labels`` (n, C) float32 (NaN = missing), right-padded."""
    ids = [encode(s, tokenizer.k, tokenizer.stride) for _, s in records]
    L = L or max(len(x) for x in ids)
    toks = np.full((len(ids), L), PAD_ID, dtype=tokenizer.dtype)
    for i, x in enumerate(ids):
        toks[i, : len(x)] = x
    with TokenStoreWriter(path, tokenizer=tokenizer, window_tokens=L, source={"kind": "test"}, split=split,
                          label_names=label_names) as w:
        w.append(toks, seqid=[r for r, _ in records], start=np.zeros(len(ids)),
                 end=[len(s) for _, s in records], labels=np.asarray(labels, np.float32))
    return path


def make_task(folder, sigma70, tokenizer=TOK, label_names=("promoter",), labeller=None):
    """train/val/test.h5 of the sigma-70 subset, rows shuffled (seeded) so that store order is not pos-then-neg."""
    pos, neg = sigma70
    rng = np.random.default_rng(7)
    for split, (a, b) in SIZES.items():
        recs = [(r, s, 1.0) for r, s in pos[a:b]] + [(r, s, 0.0) for r, s in neg[a:b]]
        recs = [recs[i] for i in rng.permutation(len(recs))]
        y = np.array([[lab] for _, _, lab in recs], np.float32)
        if labeller is not None:
            y = labeller(split, y, rng)
        write_store(folder / f"{split}.h5", [(r, s) for r, s, _ in recs], y, list(label_names), tokenizer,
                    L=27, split=split)
    return folder


def tiny_config(tokenizer=TOK):
    return ModelConfig(tokenizer=tokenizer, d_model=32, n_layers=1, n_heads=2, d_ff=64, attention="dense",
                       dropout=0.0)


def save_classifier(path, label_names, tokenizer=TOK, seed=0):
    torch.manual_seed(seed)
    config = tiny_config(tokenizer)
    model = MultiLabelClassifier(config, num_labels=len(label_names), pooling="mean")
    with torch.no_grad():  # a random model's logits hover at 0: spread them so the threshold metrics vary
        model.classifier.weight.mul_(20.0)
    save_model(model, make_record(config, "classify", label_names=list(label_names), pooling="mean", add_cls=False),
               path)
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory, sigma70):
    return make_task(tmp_path_factory.mktemp("sigma70"), sigma70)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("run") / "finetuned.pt", ["promoter"])


def store_rows(path):
    s = TokenStore(path)
    rows = [trim_padding(s[i]) for i in range(len(s))]
    return rows, np.asarray(s.labels(slice(None)), np.float64), [s.coords(i) for i in range(len(s))]


def read_tsv(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


# ---------------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------------


def sk_metrics(p, y):
    from sklearn import metrics as skm

    pred = (p > 0.5).astype(int)
    return {"mcc": skm.matthews_corrcoef(y, pred), "f1": skm.f1_score(y, pred),
            "accuracy": skm.accuracy_score(y, pred), "auroc": skm.roc_auc_score(y, p),
            "auprc": skm.average_precision_score(y, p)}


def test_binary_metrics_equal_sklearn_on_a_fixed_vector():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.35 * y + rng.uniform(0, 0.7, 200), 0, 1)
    p[:20] = np.round(p[:20], 1)  # ties, and values exactly at the 0.5 threshold (negative in both)
    p[5] = 0.5
    got = ev.label_metrics(p, y.astype(float))
    want = sk_metrics(p, y)
    assert got["n"] == 200 and got["positives"] == int(y.sum())
    for name in ev.METRICS:
        assert abs(got[name] - want[name]) < 1e-6, (name, got[name], want[name])
    obj = ev.method_metrics(p[:, None], y[:, None].astype(float), ["promoter"])
    assert {k: obj[k] for k in ev.METRICS} == {k: got[k] for k in ev.METRICS} and obj["skipped_labels"] == []


def test_mcc_is_zero_where_its_denominator_is_zero_as_in_sklearn():
    from sklearn.metrics import matthews_corrcoef
    from torchmetrics.functional.classification import binary_matthews_corrcoef

    p, y = np.array([0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0])  # everything predicted negative
    assert ev.label_metrics(p, y)["mcc"] == 0.0 == matthews_corrcoef(y, p > 0.5)
    # torchmetrics' own edge-case correction would report 0.41 here: the reason for the convention
    assert float(binary_matthews_corrcoef(torch.tensor(p), torch.tensor(y).long())) > 0.4
    one_class = ev.label_metrics(np.array([0.7, 0.9]), np.array([1.0, 1.0]))
    assert one_class["mcc"] == 0.0 and one_class["auroc"] is None and one_class["auprc"] is None


def test_multilabel_metrics_mask_missing_labels_per_label():
    rng = np.random.default_rng(1)
    N = 120
    y = rng.integers(0, 2, (N, 3)).astype(float)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, (N, 3)), 0, 1)
    y[rng.random(N) < 0.3, 0] = np.nan  # label a: about a third missing
    y[:, 2] = np.where(rng.random(N) < 0.5, np.nan, 0.0)  # label c: observed rows all negative
    y[7, 1] = np.nan
    m = ev.method_metrics(p, y, ["a", "b", "c"])
    for j, name in enumerate("abc"):
        keep = ~np.isnan(y[:, j])
        assert m["per_label"][name]["n"] == int(keep.sum())
        assert m["per_label"][name]["positives"] == int(np.nansum(y[:, j]))
        if name != "c":
            want = sk_metrics(p[keep, j], y[keep, j].astype(int))
            for metric in ev.METRICS:
                assert abs(m["per_label"][name][metric] - want[metric]) < 1e-6
    assert m["per_label"]["b"]["n"] == N - 1
    assert m["skipped_labels"] == ["c"]
    assert m["per_label"]["c"]["auroc"] is None and m["per_label"]["c"]["auprc"] is None
    assert m["macro_auroc"] == pytest.approx((m["per_label"]["a"]["auroc"] + m["per_label"]["b"]["auroc"]) / 2)
    assert m["macro_auprc"] == pytest.approx((m["per_label"]["a"]["auprc"] + m["per_label"]["b"]["auprc"]) / 2)


def test_kmer_spectrum_counts_exactly():
    X = ev.kmer_spectrum(["ACGTA", "ACNGT", "NNNN"], 2).toarray()
    col = {km: i for i, km in enumerate(a + b for a in "ACGT" for b in "ACGT")}
    assert X.shape == (3, 16)
    want0 = np.zeros(16)
    want0[[col["AC"], col["CG"], col["GT"], col["TA"]]] = 0.25
    want1 = np.zeros(16)
    want1[[col["AC"], col["GT"]]] = 0.5  # k-mers holding N are not counted
    np.testing.assert_allclose(X, [want0, want1, np.zeros(16)])


def test_rows_digest_tells_rows_apart():
    rows = [np.array([5, 6, 7]), np.array([8, 9])]
    coords = [("a", 0, 9, "+"), ("b", 0, 6, "+")]
    d = ev.rows_digest(rows, coords)
    assert d == ev.rows_digest([r.astype(np.uint16) for r in rows], coords)
    assert d != ev.rows_digest(rows[::-1], coords[::-1])
    assert d != ev.rows_digest([rows[0], np.array([8, 10])], coords)
    assert d != ev.rows_digest(rows, [coords[0], ("b", 1, 7, "+")])


# ---------------------------------------------------------------------------------------------------------------
# the k-mer baseline on real data
# ---------------------------------------------------------------------------------------------------------------


def test_kmer_baseline_beats_chance_on_ecoli_sigma70(task):
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    tr, ytr, _ = store_rows(task / "train.h5")
    va, yva, _ = store_rows(task / "val.h5")
    te, yte, _ = store_rows(task / "test.h5")
    probs, params = ev.kmer_baseline(tr, ytr, va, yva, te, TOK, label_names=["promoter"])
    assert probs.shape == (100, 1) and ((probs >= 0) & (probs <= 1)).all()
    auroc = roc_auc_score(yte[:, 0], probs[:, 0])
    mcc = matthews_corrcoef(yte[:, 0], probs[:, 0] > 0.5)
    # measured: AUROC 0.938, AUPRC 0.938, MCC 0.725 (k=6, C=0.01) on these 300 train / 100 val / 100 test rows
    assert auroc > 0.85 and mcc > 0.5, (auroc, mcc, params)
    chosen = params["chosen"]["promoter"]
    assert chosen["k"] in ev.BASELINE_KS and chosen["C"] in ev.BASELINE_CS
    assert chosen["n_train"] == 300 and chosen["n_val"] == 100 and 0 < chosen["val_auprc"] <= 1
    # sequences given as text are the same as the token rows decoded (81 bp = 27 non-overlapping 3-mers)
    again, _ = ev.kmer_baseline(tr, ytr, va, yva, [TOK.decode(r) for r in te], TOK)
    np.testing.assert_allclose(again, probs)


def test_kmer_baseline_multilabel_masks_rows_and_handles_one_class_labels(task):
    tr, ytr, _ = store_rows(task / "train.h5")
    va, yva, _ = store_rows(task / "val.h5")
    te, _, _ = store_rows(task / "test.h5")
    rng = np.random.default_rng(3)
    Ytr = np.c_[ytr, np.where(rng.random(len(tr)) < 0.5, np.nan, ytr[:, 0]), np.zeros(len(tr))]
    Yva = np.c_[yva, yva, np.zeros(len(va))]
    Yva[:, 1][: len(va) // 2] = np.nan
    probs, params = ev.kmer_baseline(tr, Ytr, va, Yva, te, TOK, ks=(3, 4), Cs=(0.1, 1.0),
                                     label_names=["p", "p_half", "never"])
    c = params["chosen"]
    assert c["p"]["n_train"] == 300 and c["p_half"]["n_train"] == int((~np.isnan(Ytr[:, 1])).sum())
    assert c["p_half"]["n_val"] == len(va) - len(va) // 2
    assert c["never"]["k"] is None and "one class" in c["never"]["chosen_by"]
    assert (probs[:, 2] == 0.0).all()
    # the masked label fitted alone on its observed rows gives the same probabilities
    keep = ~np.isnan(Ytr[:, 1])
    keepv = ~np.isnan(Yva[:, 1])
    alone, _ = ev.kmer_baseline([tr[i] for i in np.flatnonzero(keep)], Ytr[keep, 1],
                                [va[i] for i in np.flatnonzero(keepv)], Yva[keepv, 1], te, TOK,
                                ks=(3, 4), Cs=(0.1, 1.0))
    np.testing.assert_allclose(alone[:, 0], probs[:, 1])


# ---------------------------------------------------------------------------------------------------------------
# evaluate_task and the command line
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(task, ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "EVAL"
    return out, ev.evaluate_task(ckpt, task, out, split="test", batch_size=16)


def test_metrics_json_layout_and_same_rows(evaluated, task, ckpt):
    out, m = evaluated
    assert sorted(p.name for p in out.iterdir()) == sorted(ev.OUTPUTS)
    assert json.loads((out / "metrics.json").read_text()) == m
    assert m["task"] == task.name and m["split"] == "test" and m["n"] == 100 and m["label_names"] == ["promoter"]
    assert m["attention"] == "dense" and m["checkpoint"] == str(ckpt) and m["task_dir"] == str(task)
    for method in ("model", "kmer_baseline"):
        assert set(ev.METRICS) <= set(m[method]) and m[method]["n"] == 100 and m[method]["positives"] == 50
    base = m["kmer_baseline"]
    assert base["k"] == base["chosen"]["promoter"]["k"] and base["C"] == base["chosen"]["promoter"]["C"]
    assert base["train_rows"] == 300 and base["val_rows"] == 100
    # same rows: every method's digest, and one recomputed here from the store
    rows, labels, coords = store_rows(task / "test.h5")
    assert m["rows_sha256"] == m["model"]["rows_sha256"] == base["rows_sha256"] == ev.rows_digest(rows, coords)
    # the baseline in metrics.json is the baseline fitted on train/val and scored on these rows
    tr, ytr, _ = store_rows(task / "train.h5")
    va, yva, _ = store_rows(task / "val.h5")
    probs, _ = ev.kmer_baseline(tr, ytr, va, yva, rows, TOK)
    want = ev.method_metrics(probs, labels, ["promoter"])
    for name in ev.METRICS:
        assert base[name] == pytest.approx(want[name], abs=1e-9)
    assert base["auroc"] > 0.85  # real signal (the random model: near chance)


def test_predictions_tsv_one_line_per_row_in_store_order(evaluated, task, ckpt):
    from genomics_lm.checkpoint import load_classifier

    out, m = evaluated
    header, lines = read_tsv(out / "predictions.tsv")
    assert header == ["row", "seqid", "start", "end", "strand", "label", "p_model", "p_kmer"]
    rows, labels, coords = store_rows(task / "test.h5")
    assert len(lines) == len(rows) == 100
    model, _, _ = load_classifier(ckpt)
    p_model = predict_proba(model, rows)[:, 0]
    for i, cells in enumerate(lines):
        assert cells[0] == str(i)
        assert (cells[1], int(cells[2]), int(cells[3]), cells[4]) == coords[i]
        assert cells[5] == str(int(labels[i, 0]))
        assert float(cells[6]) == pytest.approx(p_model[i], rel=1e-5, abs=1e-9)
    got = ev.method_metrics(np.array([float(c[6]) for c in lines]), labels, ["promoter"])
    assert got["auroc"] == pytest.approx(m["model"]["auroc"], abs=1e-6)
    for name in ("roc.png", "pr.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multilabel_task_end_to_end(tmp_path, sigma70):
    def labeller(split, y, rng):  # promoter; promoter with a third missing; a label all-negative in test
        half = np.where(rng.random(len(y)) < 1 / 3, np.nan, y[:, 0])
        third = np.zeros(len(y)) if split == "test" else rng.integers(0, 2, len(y)).astype(float)
        return np.c_[y, half, third].astype(np.float32)

    names = ["promoter", "promoter half", "noise"]
    task = make_task(tmp_path / "ml", sigma70, label_names=names, labeller=labeller)
    ckpt = save_classifier(tmp_path / "ml.pt", names)
    m = ev.evaluate_task(ckpt, task, tmp_path / "out", baseline_ks=(3, 4), baseline_cs=(0.1, 1.0))
    labels = np.asarray(TokenStore(task / "test.h5").labels(slice(None)), np.float64)
    for method in ("model", "kmer_baseline"):
        obj = m[method]
        assert obj["skipped_labels"] == ["noise"]
        assert [obj["per_label"][n]["n"] for n in names] == [100, int((~np.isnan(labels[:, 1])).sum()), 100]
        assert obj["macro_auroc"] == pytest.approx(np.mean([obj["per_label"][n]["auroc"] for n in names[:2]]))
        assert obj["per_label"]["noise"]["auroc"] is None
    assert set(m["kmer_baseline"]["chosen"]) == set(names) and "k" not in m["kmer_baseline"]
    header, lines = read_tsv(tmp_path / "out" / "predictions.tsv")
    assert header[5:] == ["label:promoter", "label:promoter_half", "label:noise", "p_model:promoter",
                          "p_model:promoter_half", "p_model:noise", "p_kmer:promoter", "p_kmer:promoter_half",
                          "p_kmer:noise"]
    assert [c[6] for c in lines] == ["NA" if np.isnan(v) else str(int(v)) for v in labels[:, 1]]


def test_cli_no_baseline_both_strands_and_overwrite(tmp_path, task, ckpt, capsys):
    from genomics_lm.checkpoint import load_classifier
    from genomics_lm.cli import main

    only_test = tmp_path / "only_test"
    only_test.mkdir()
    shutil.copy(task / "test.h5", only_test / "test.h5")  # no train/val: fine without the baseline
    out = tmp_path / "E"
    argv = ["evaluate", "--checkpoint", str(ckpt), "--task-dir", str(only_test), "--out-dir", str(out),
            "--no-baseline", "--both-strands", "--batch-size", "7"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "model" in printed and "AUROC" in printed and "wrote" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["kmer_baseline"] is None and m["both_strands"] is True
    header, lines = read_tsv(out / "predictions.tsv")
    assert header[-2:] == ["label", "p_model"]
    rows, _, _ = store_rows(only_test / "test.h5")
    model, _, _ = load_classifier(ckpt)
    both = predict_proba(model, rows, both_strands=TOK)[:, 0]
    np.testing.assert_allclose([float(c[6]) for c in lines], both, rtol=1e-5, atol=1e-9)
    # an existing output is refused without --overwrite (nothing touched) and replaced with it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output exists" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(argv + ["--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(ev.OUTPUTS)


def test_a_failure_while_writing_leaves_nothing(tmp_path, task, ckpt, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(ev, "curves_png", boom)
    with pytest.raises(RuntimeError):
        ev.evaluate_task(ckpt, task, tmp_path / "new" / "EVAL", baseline=False)
    assert not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, task, sigma70):
    root = tmp_path_factory.mktemp("bad")
    config = tiny_config()
    save_model(MaskedLM(config), make_record(config, "mlm"), root / "pretrained.pt")
    save_classifier(root / "tata.pt", ["tata"])
    k4 = root / "k4"
    k4.mkdir()
    pos, neg = sigma70
    write_store(k4 / "test.h5", pos[:3] + neg[:3], [[1], [1], [1], [0], [0], [0]], ["promoter"], KmerTokenizer(4, 4))
    return root


@pytest.mark.parametrize("case, expect", [
    ("missing_checkpoint", "no such checkpoint"),
    ("pretraining_checkpoint", "a pretraining checkpoint"),
    ("missing_task_dir", "no such task folder"),
    ("missing_split", "no such split file"),
    ("missing_train_for_baseline", "train.h5: no such split file"),
    ("other_tokenizer", "has k=4 stride=4, checkpoint"),
    ("other_label_names", "label names differ"),
    pytest.param("no_cuda", "CUDA is not available", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                             reason="this machine has CUDA")),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, expect, bad_inputs, task, ckpt, tmp_path, capsys):
    from genomics_lm.cli import main

    args = {"checkpoint": ckpt, "task-dir": task, "split": "test"}
    if case == "missing_checkpoint":
        args["checkpoint"] = tmp_path / "nope.pt"
    elif case == "pretraining_checkpoint":
        args["checkpoint"] = bad_inputs / "pretrained.pt"
    elif case == "missing_task_dir":
        args["task-dir"] = tmp_path / "no_task"
    elif case == "missing_split":
        args["split"] = "holdout"
    elif case == "missing_train_for_baseline":
        args["task-dir"] = bad_inputs / "k4"
        args["checkpoint"] = save_classifier(tmp_path / "k4.pt", ["promoter"], KmerTokenizer(4, 4))
    elif case == "other_tokenizer":
        args["task-dir"] = bad_inputs / "k4"
    elif case == "other_label_names":
        args["checkpoint"] = bad_inputs / "tata.pt"
    elif case == "no_cuda":
        args["device"] = "cuda"
    out = tmp_path / "out" / "EVAL"
    argv = ["evaluate", "--out-dir", str(out)] + [x for key, v in args.items() for x in (f"--{key}", str(v))]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    if case == "other_tokenizer":
        assert "k=3 stride=3" in err  # both sides named
    if case == "other_label_names":
        assert "['tata']" in err and "['promoter']" in err
    assert not (tmp_path / "out").exists()


def test_baseline_cache_reuses_identical_fits_only(tmp_path):
    """The cached baseline equals a fresh fit; a changed label, row or grid is a new key (fitted again)."""
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(60)]
    rows = [encode(s, TOK.k, TOK.stride) for s in seqs]
    y = (np.array([s.count("GC") for s in seqs]) > 2).astype(np.float64)[:, None]
    args = (rows[:40], y[:40], rows[40:50], y[40:50], rows[50:], TOK)
    fresh, _ = ev.kmer_baseline(*args, ks=[2, 3], Cs=[1.0], label_names=["gc"])
    first, p1 = ev.cached_kmer_baseline(tmp_path, *args, ks=[2, 3], Cs=[1.0], label_names=["gc"])
    again, p2 = ev.cached_kmer_baseline(tmp_path, *args, ks=[2, 3], Cs=[1.0], label_names=["gc"])
    assert p1["cache"] == "fitted" and p2["cache"] == "read" and p1["cache_file"] == p2["cache_file"]
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(again, fresh)
    assert p2["chosen"] == p1["chosen"] and len(list((tmp_path / "kmer_baseline").iterdir())) == 1
    y2 = y.copy()
    y2[0, 0] = np.nan
    _, p3 = ev.cached_kmer_baseline(tmp_path, rows[:40], y2[:40], *args[2:], ks=[2, 3], Cs=[1.0], label_names=["gc"])
    _, p4 = ev.cached_kmer_baseline(tmp_path, *args, ks=[2], Cs=[1.0], label_names=["gc"])
    assert p3["cache"] == p4["cache"] == "fitted" and len(list((tmp_path / "kmer_baseline").iterdir())) == 3
    Path(p1["cache_file"]).write_bytes(b"not an npz")  # a damaged cache file is fitted again and replaced
    fixed, p5 = ev.cached_kmer_baseline(tmp_path, *args, ks=[2, 3], Cs=[1.0], label_names=["gc"])
    assert p5["cache"] == "fitted" and np.array_equal(fixed, fresh)
    assert ev.cached_kmer_baseline(tmp_path, *args, ks=[2, 3], Cs=[1.0], label_names=["gc"])[1]["cache"] == "read"
