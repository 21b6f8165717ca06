"""Evaluation of a fine-tuned classifier on a task split, next to a k-mer-spectrum baseline fitted in the same run.

Stage functions only (no argument parsing, no printing); ``genomics-lm evaluate`` (:mod:`genomics_lm.cli.evaluate`)
and the workflow call :func:`evaluate_task`.

What one evaluation writes (``out_dir``), every file under a temporary name and renamed only when all four are
complete (``metrics.json`` last), so a failed run leaves nothing that looks whole:

``metrics.json``
    ``{"task", "split", "n", "label_names", "model": {...}, "kmer_baseline": {...} | null, "rows_sha256",
    "threshold", "both_strands", "checkpoint", "attention", "checkpoint_record", "task_dir", "split_file",
    "task_source", "genomics_lm_version", "created"}``. Each method object holds, for a binary task (one label),
    ``mcc``, ``f1``, ``accuracy``, ``auroc``, ``auprc``, ``n``, ``positives``; for a multi-label task
    ``macro_auroc``, ``macro_auprc``, ``macro_mcc`` and ``per_label`` (those five, ``n`` and ``positives`` per
    label, rows with that label missing left out). A label with one class among its observed rows has null
    AUROC/AUPRC and is left out of the macro means; it is listed in ``skipped_labels`` (both shapes). Every method
    object also holds ``rows_sha256`` (a digest of the rows it scored: index, coordinates, tokens, computed from
    the very arrays the method was given, so "same rows" can be checked) and ``seconds``. The baseline object adds
    ``chosen`` (per label: k, C, the val AUPRC/MCC that chose them, train/val rows) and, for a binary task, ``k``
    and ``C``.
``predictions.tsv``
    one line per store row, in store order: ``row`` (0-based index in the split file), ``seqid``, ``start``,
    ``end``, ``strand``, then for a binary task ``label``, ``p_model``, ``p_kmer``; for a multi-label task
    ``label:NAME`` ... ``p_model:NAME`` ... ``p_kmer:NAME`` ... Missing labels are ``NA``; without a baseline
    the ``p_kmer`` columns are absent.
``roc.png``, ``pr.png``
    ROC and precision-recall curves of the model (solid) and the baseline (dashed), one colour per label.

Metrics are torchmetrics' binary metrics (``torchmetrics.functional.classification``) at a 0.5 threshold
(positive when ``p > 0.5``). One convention differs from torchmetrics' defaults: where the MCC's denominator
is zero (the predictions or the labels are all of one class) MCC is 0, as in scikit-learn's matthews_corrcoef
(which the DNABERT-2/GUE fine-tuning code uses); torchmetrics instead returns an epsilon-corrected value there,
which can be far from 0 on small sets (e.g. 0.41 for three rows predicted all negative).

The k-mer baseline (:func:`kmer_baseline`): logistic regression (scikit-learn, liblinear, L2) on k-mer spectra
of the sequences decoded from the very token rows the model reads (``genomics_lm.tokenizer.decode``; an [UNK]
token decodes to N's, and k-mers holding an N are not counted): counts of the overlapping k-mers of each
sequence divided by their total, then scaled per feature by its largest value on the label's train rows
(``MaxAbsScaler``; sparse throughout). ``k`` in 3..6 and ``C`` in a small grid are chosen per label on the val
split by AUPRC (ties: MCC, then the smaller k and C), the model being fitted on the train split only (rows with
that label observed).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from genomics_lm import __version__
from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write, check_output_path
from genomics_lm.tokenizer import N_SPECIAL, KmerTokenizer, decode, encode

THRESHOLD = 0.5
METRICS = ("mcc", "f1", "accuracy", "auroc", "auprc")
OUTPUTS = ("metrics.json", "predictions.tsv", "roc.png", "pr.png")
BASELINE_KS = (3, 4, 5, 6)
BASELINE_CS = (0.01, 0.1, 1.0, 10.0)
MAX_BASELINE_K = 6
DEFAULT_K, DEFAULT_C = 4, 1.0  # where the val split cannot choose (one class among a label's val rows)
BASELINE_FEATURES = ("overlapping k-mer counts / their total per sequence (decoded from the token rows; k-mers "
                     "with N not counted), MaxAbs-scaled on each label's train rows; "
                     "L2 logistic regression (liblinear)")


# ------------------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------------------


def _f(x) -> float:
    return float(x.item() if hasattr(x, "item") else x)


def label_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float = THRESHOLD) -> dict[str, Any]:
    """The five binary metrics of one label: ``probs`` (n,) in [0, 1], ``labels`` (n,) 0/1 with NaN = missing.

    Rows with a missing label are left out. Returns ``{"mcc", "f1", "accuracy", "auroc", "auprc", "n",
    "positives"}``; AUROC and AUPRC are None when the observed rows hold one class only (all five None without
    observed rows). MCC is 0 where its denominator is 0 (see the module docstring).
    """
    import torch
    from torchmetrics.functional.classification import (binary_accuracy, binary_auroc, binary_average_precision,
                                                        binary_f1_score, binary_matthews_corrcoef)

    probs = np.asarray(probs, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=np.float64).ravel()
    if probs.shape != labels.shape:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} differ in shape")
    keep = ~np.isnan(labels)
    p, y = probs[keep], labels[keep]
    if np.any((y != 0) & (y != 1)):
        raise ValueError(f"labels must be 0, 1 or NaN, got {sorted(set(y.tolist()) - {0.0, 1.0})[:5]}")
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1] (no NaN)")
    n, pos = int(y.size), int(y.sum())
    out: dict[str, Any] = dict.fromkeys(METRICS)
    out.update(n=n, positives=pos)
    if n == 0:
        return out
    P, Y = torch.as_tensor(p), torch.as_tensor(y.astype(np.int64))
    pred = p > threshold
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    fn, tn = pos - tp, (n - pos) - fp
    degenerate = (tp + fp) == 0 or (tn + fn) == 0 or pos == 0 or pos == n
    out["mcc"] = 0.0 if degenerate else _f(binary_matthews_corrcoef(P, Y, threshold=threshold))
    out["f1"] = _f(binary_f1_score(P, Y, threshold=threshold))
    out["accuracy"] = _f(binary_accuracy(P, Y, threshold=threshold))
    if 0 < pos < n:
        out["auroc"] = _f(binary_auroc(P, Y))
        out["auprc"] = _f(binary_average_precision(P, Y))
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def method_metrics(probs: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                   threshold: float = THRESHOLD) -> dict[str, Any]:
    """The metrics object of one method on a split: ``probs`` and ``labels`` (N, C), NaN labels = missing.

    One label: the five metrics at the top level (plus ``n``, ``positives``, ``skipped_labels``). Several:
    ``macro_auroc``, ``macro_auprc``, ``macro_mcc`` (means over the labels not skipped), ``per_label``
    ``{name: {five metrics, n, positives}}`` and ``skipped_labels`` (labels with one class, or no observed row,
    in the split: null AUROC/AUPRC, left out of the macro means).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    names = list(label_names)
    if probs.ndim == 1:
        probs = probs[:, None]
    if labels.ndim == 1:
        labels = labels[:, None]
    if probs.shape != labels.shape or probs.shape[1] != len(names):
        raise ValueError(f"probs {probs.shape}, labels {labels.shape} and {len(names)} label names do not agree")
    per = {name: label_metrics(probs[:, j], labels[:, j], threshold) for j, name in enumerate(names)}
    skipped = [name for name, m in per.items() if m["auroc"] is None]
    if len(names) == 1:
        return {**per[names[0]], "skipped_labels": skipped}
    kept = [m for name, m in per.items() if name not in skipped]
    return {"macro_auroc": _mean(m["auroc"] for m in kept), "macro_auprc": _mean(m["auprc"] for m in kept),
            "macro_mcc": _mean(m["mcc"] for m in kept), "per_label": per, "skipped_labels": skipped}


def rows_digest(rows: Sequence[np.ndarray], coords: Sequence[tuple] | None = None) -> str:
    """sha256 of evaluated rows in order: per row its index, coordinates (if given), length and token ids.

    Two methods scored on the same rows of the same store give the same digest; any other row, order,
    token or coordinate gives another one.
    """
    h = hashlib.sha256()
    for i, row in enumerate(rows):
        ids = np.ascontiguousarray(np.asarray(row), dtype="<u4")
        where = "\t".join(map(str, coords[i])) if coords is not None else ""
        h.update(f"{i}\t{where}\t{ids.size}\n".encode())
        h.update(ids.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------------
# k-mer baseline
# ------------------------------------------------------------------------------------------------------------


def _as_sequence(row, tokenizer: KmerTokenizer) -> str:
    """A row as bases: a ``str`` is taken as is, a token-id array is decoded (PAD dropped, [UNK] -> N)."""
    if isinstance(row, str):
        return row
    return decode(np.asarray(row), tokenizer.k, tokenizer.stride)


def kmer_spectrum(seqs: Sequence[str], k: int):
    """(n, 4**k) scipy CSR float64: overlapping k-mer counts of each sequence divided by their total.

    K-mers holding a base other than ACGT (N, IUPAC codes) are not counted; a sequence without any counted
    k-mer is a row of zeros. Column ``j`` is the k-mer with vocabulary id ``j + 5`` (lexicographic ACGT).
    """
    import scipy.sparse as sp

    if not 1 <= k <= MAX_BASELINE_K:
        raise ValueError(f"baseline k must be from 1 to {MAX_BASELINE_K}, got {k}")
    ids = [encode(s, k, 1) for s in seqs]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    cols = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(ids)), lengths)
    ok = cols >= N_SPECIAL
    X = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok] - N_SPECIAL)), shape=(len(ids), 4 ** k))
    X.sum_duplicates()
    total = np.asarray(X.sum(axis=1)).ravel()
    total[total == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / total) @ X)


def _fit(X, y, C: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="liblinear", max_iter=1000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def _selection_score(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, matthews_corrcoef

    return float(average_precision_score(y, p)), float(matthews_corrcoef(y, p > THRESHOLD))


def _labels2d(labels, n: int, what: str) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{what}: labels of shape {y.shape} for {n} rows")
    return y


def kmer_baseline(train_rows: Sequence, train_labels, val_rows: Sequence, val_labels, eval_rows: Sequence,
                  tokenizer: KmerTokenizer, *, ks: Sequence[int] = BASELINE_KS, Cs: Sequence[float] = BASELINE_CS,
                  label_names: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the k-mer-spectrum logistic regression on train, choose k and C on val, predict ``eval_rows``.

    Args:
        train_rows, val_rows, eval_rows: token-id rows (1-D arrays without padding; decoded with ``tokenizer``)
            or sequences as ``str``.
        train_labels, val_labels: (n, C) (or (n,) for one label) 0/1 with NaN = missing; each label is fitted
            on the rows where it is observed and chosen on the val rows where it is observed.
        ks: k-mer lengths to try (each 1..6). Cs: inverse regularisation strengths to try.
        label_names: names for the returned ``chosen`` dict (default ``label0``, ``label1``, ...).
    Returns:
        ``(probs (len(eval_rows), C) float64, params)``; ``params`` = ``{"features", "ks", "Cs", "selection",
        "chosen": {name: {"k", "C", "val_auprc", "val_mcc", "n_train", "n_val", "chosen_by"}}, "seconds"}``.
        A label whose val rows hold one class is fitted with k=4, C=1 (``chosen_by`` says so); one whose
        train rows hold one class predicts that class's train frequency.
    """
    from sklearn.preprocessing import MaxAbsScaler

    t0 = time.perf_counter()
    ks = [int(k) for k in ks]
    Cs = [float(c) for c in Cs]
    if not ks or not Cs:
        raise ValueError("the baseline needs at least one k and one C")
    for k in ks:
        if not 1 <= k <= MAX_BASELINE_K:
            raise ValueError(f"baseline k must be from 1 to {MAX_BASELINE_K}, got {k}")
    y_tr = _labels2d(train_labels, len(train_rows), "train")
    y_va = _labels2d(val_labels, len(val_rows), "val")
    if y_tr.shape[1] != y_va.shape[1]:
        raise ValueError(f"train has {y_tr.shape[1]} labels, val {y_va.shape[1]}")
    n_labels = y_tr.shape[1]
    names = list(label_names) if label_names is not None else [f"label{j}" for j in range(n_labels)]
    if len(names) != n_labels:
        raise ValueError(f"{len(names)} label names for {n_labels} labels")

    seqs = {s: [_as_sequence(r, tokenizer) for r in rows]
            for s, rows in (("train", train_rows), ("val", val_rows), ("eval", eval_rows))}
    feats: dict[int, dict[str, Any]] = {}  # k -> split -> unscaled spectra of all rows

    def features(k: int, tr: np.ndarray, va: np.ndarray) -> tuple[Any, Any, Any]:
        """Train (rows ``tr``), val (rows ``va``) and eval spectra, scaled on the train rows ``tr``."""
        if k not in feats:
            feats[k] = {s: kmer_spectrum(v, k) for s, v in seqs.items()}
        X = feats[k]
        scaler = MaxAbsScaler().fit(X["train"][tr])
        return (scaler.transform(X["train"][tr]).tocsr(), scaler.transform(X["val"][va]).tocsr(),
                scaler.transform(X["eval"]).tocsr())

    probs = np.empty((len(eval_rows), n_labels), dtype=np.float64)
    chosen: dict[str, Any] = {}
    for j, name in enumerate(names):
        tr = np.flatnonzero(~np.isnan(y_tr[:, j]))
        va = np.flatnonzero(~np.isnan(y_va[:, j]))
        ytr, yva = y_tr[tr, j].astype(int), y_va[va, j].astype(int)
        info: dict[str, Any] = {"k": None, "C": None, "val_auprc": None, "val_mcc": None,
                                "n_train": int(tr.size), "n_val": int(va.size)}
        if tr.size == 0 or ytr.min() == ytr.max():
            prior = float(ytr.mean()) if tr.size else 0.5
            probs[:, j] = prior
            info["chosen_by"] = f"none: the train rows hold one class (constant probability {prior:g})"
            chosen[name] = info
            continue
        can_choose = va.size > 0 and yva.min() != yva.max()
        grid = [(k, C) for k in ks for C in Cs] if can_choose else [(DEFAULT_K, DEFAULT_C)]
        best = None  # (key, k, C, val scores, fitted model); key = (auprc, mcc, -k, -C), maximised
        for k in dict.fromkeys(k for k, _ in grid):
            Xtr, Xva, Xev = features(k, tr, va)
            for C in (c for kk, c in grid if kk == k):
                model = _fit(Xtr, ytr, C)
                score = (_selection_score(model.predict_proba(Xva)[:, 1], yva) if can_choose
                         else (math.nan, math.nan))
                key = (score[0], score[1], -k, -C)
                if best is None or key > best[0]:
                    best = (key, k, C, score, model.predict_proba(Xev)[:, 1] if len(eval_rows) else None)
        _, k, C, score, p_eval = best
        if len(eval_rows):
            probs[:, j] = p_eval
        info.update(k=k, C=C)
        if can_choose:
            info.update(val_auprc=score[0], val_mcc=score[1], chosen_by="val AUPRC (ties: val MCC, smaller k, C)")
        else:
            info["chosen_by"] = f"default k={DEFAULT_K} C={DEFAULT_C:g}: the val rows hold one class or none"
        chosen[name] = info
    params = {"features": BASELINE_FEATURES, "ks": ks, "Cs": Cs,
              "selection": "per label on val: AUPRC, ties by MCC then the smaller k and C; fitted on train only",
              "chosen": chosen, "seconds": time.perf_counter() - t0}
    return probs, params


def baseline_cache_key(train_rows: Sequence, train_labels, val_rows: Sequence, val_labels, eval_rows: Sequence,
                       tokenizer: KmerTokenizer, ks: Sequence[int], Cs: Sequence[float]) -> str:
    """sha256 of everything :func:`kmer_baseline` depends on: the three row sets (ids and order), the labels
    (NaN included), the tokenizer, the grid, the feature definition and scikit-learn's version."""
    import sklearn

    h = hashlib.sha256()
    for rows in (train_rows, val_rows, eval_rows):
        h.update(rows_digest([np.asarray(r) for r in rows]).encode())
    for labels in (train_labels, val_labels):
        h.update(np.ascontiguousarray(np.asarray(labels, dtype=np.float64)).tobytes())
    h.update(json.dumps([tokenizer.to_dict(), [int(k) for k in ks], [float(c) for c in Cs], BASELINE_FEATURES,
                         sklearn.__version__]).encode())
    return h.hexdigest()


def _read_cached_baseline(path: Path, label_names: Sequence[str] | None) -> tuple[np.ndarray, dict] | None:
    """The probabilities and parameters kept at ``path`` for these label names, or None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            probs, record = z["probs"], json.loads(str(z["params"]))
    except (OSError, ValueError, KeyError):
        return None
    if record.get("label_names") != (list(label_names) if label_names is not None else None):
        return None
    return probs, record["params"]


def cached_kmer_baseline(cache_dir: str | os.PathLike, train_rows: Sequence, train_labels, val_rows: Sequence,
                         val_labels, eval_rows: Sequence, tokenizer: KmerTokenizer, *, ks: Sequence[int] = BASELINE_KS,
                         Cs: Sequence[float] = BASELINE_CS, label_names: Sequence[str] | None = None
                         ) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`kmer_baseline`, reusing an earlier fit on identical inputs (:func:`baseline_cache_key`).

    The baseline is deterministic, so a grid of fine-tuning runs on one task (seeds, attention types) fits it once:
    ``cache_dir/kmer_baseline/KEY.npz`` holds the probabilities and the parameters. ``params["cache"]`` says
    whether this call fitted (``"fitted"``) or read (``"read"``) them; ``params["seconds"]`` is the fit's time.
    """
    key = baseline_cache_key(train_rows, train_labels, val_rows, val_labels, eval_rows, tokenizer, ks, Cs)
    path = Path(cache_dir) / "kmer_baseline" / f"{key}.npz"
    cached = _read_cached_baseline(path, label_names)  # None: absent, unreadable or foreign (fitted again)
    if cached is not None:
        probs, params = cached
        return probs, {**params, "cache": "read", "cache_file": str(path)}
    probs, params = kmer_baseline(train_rows, train_labels, val_rows, val_labels, eval_rows, tokenizer, ks=ks, Cs=Cs,
                                  label_names=label_names)
    record = json.dumps({"label_names": list(label_names) if label_names is not None else None,
                         "params": _jsonable(params)})
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, probs=probs, params=np.array(record))
    return probs, {**params, "cache": "fitted", "cache_file": str(path)}


# ------------------------------------------------------------------------------------------------------------
# predictions table and plots
# ------------------------------------------------------------------------------------------------------------


def _col(name: str) -> str:
    return "_".join(str(name).split())  # no tabs or spaces inside a header cell


def _fmt_label(v: float) -> str:
    return "NA" if np.isnan(v) else str(int(v))


def predictions_table(coords: Sequence[tuple], labels: np.ndarray, label_names: Sequence[str],
                      methods: Mapping[str, np.ndarray]) -> str:
    """The predictions TSV text: one line per row in order (see the module docstring for the columns).

    ``methods`` maps a column prefix (``p_model``, ``p_kmer``) to probabilities (N, C).
    """
    names = list(label_names)
    single = len(names) == 1
    labels = np.asarray(labels, dtype=np.float64).reshape(len(coords), len(names))
    header = ["row", "seqid", "start", "end", "strand"]
    header += ["label"] if single else [f"label:{_col(n)}" for n in names]
    for prefix in methods:
        header += [prefix] if single else [f"{prefix}:{_col(n)}" for n in names]
    out = io.StringIO()
    out.write("\t".join(header) + "\n")
    arrays = [np.asarray(p, dtype=np.float64).reshape(len(coords), len(names)) for p in methods.values()]
    for i, (seqid, start, end, strand) in enumerate(coords):
        cells = [str(i), _col(seqid), str(start), str(end), strand]
        cells += [_fmt_label(v) for v in labels[i]]
        for p in arrays:
            cells += [f"{v:.6g}" for v in p[i]]
        out.write("\t".join(cells) + "\n")
    return out.getvalue()


METHOD_STYLE = {"model": ("model", "-", "C0"), "kmer_baseline": ("k-mer LR", "--", "C1")}


def curves_png(kind: str, labels: np.ndarray, label_names: Sequence[str], methods: Mapping[str, np.ndarray],
               title: str) -> bytes:
    """A PNG (bytes) of ROC (``kind="roc"``) or precision-recall (``"pr"``) curves of each method (the model
    solid, the baseline dashed), the area under each curve in the legend, and chance dotted. One panel for one
    label; a grid of panels, one per label, for several. A label with one class in the split gets an empty panel
    that says so.

    Uses matplotlib's Agg canvas directly (no pyplot, no change of the user's backend).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    if kind not in ("roc", "pr"):
        raise ValueError(f"kind must be 'roc' or 'pr', got {kind!r}")
    names = list(label_names)
    C = len(names)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, C)
    probs = {m: np.asarray(p, dtype=np.float64).reshape(-1, C) for m, p in methods.items()}
    ncols = 1 if C == 1 else min(C, 4 if C > 6 else 3)
    nrows = -(-C // ncols)
    size = (6.4, 5.6) if C == 1 else (3.3 * ncols, 3.1 * nrows + 0.5)
    fig = Figure(figsize=size, dpi=100 if C > 1 else 110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    small = C > 1
    for j, name in enumerate(names):
        ax = axes[j]
        keep = ~np.isnan(labels[:, j])
        y = labels[keep, j].astype(int)
        if y.size == 0 or y.min() == y.max():
            ax.text(0.5, 0.5, f"{y.size} rows, one class:\nno curve", ha="center", va="center", fontsize=8)
        else:
            for method, p in probs.items():
                what, style, colour = METHOD_STYLE.get(method, (method, ":", "C2"))
                m = label_metrics(p[keep, j], y.astype(float))
                if kind == "roc":
                    fpr, tpr, _ = roc_curve(y, p[keep, j])
                    ax.plot(fpr, tpr, style, color=colour, lw=1.3, label=f"{what} (AUROC {m['auroc']:.3f})")
                else:
                    prec, rec, _ = precision_recall_curve(y, p[keep, j])
                    ax.step(rec, prec, style, where="post", color=colour, lw=1.3,
                            label=f"{what} (AUPRC {m['auprc']:.3f})")
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance")
            else:
                ax.axhline(y.mean(), color="grey", lw=0.8, ls=":", label=f"chance ({y.mean():.3f})")
            ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=7 if small else 8,
                      framealpha=0.85)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if small:
            ax.set_title(f"{name} (n={y.size})", fontsize=9)
            ax.tick_params(labelsize=7)
        if not small or j % ncols == 0:
            ax.set_ylabel("true positive rate" if kind == "roc" else "precision", fontsize=8 if small else None)
        if not small or j >= C - ncols:
            ax.set_xlabel("false positive rate" if kind == "roc" else "recall", fontsize=8 if small else None)
    for ax in axes[C:]:
        ax.set_visible(False)
    if small:
        fig.suptitle(title, fontsize=11)
    else:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------------
# the stage
# ------------------------------------------------------------------------------------------------------------


def _open_split(task_dir: Path, split: str, tokenizer: KmerTokenizer, checkpoint: Path, label_names: list[str],
                why: str = ""):
    from genomics_lm.store import TokenStore

    path = task_dir / f"{split}.h5"
    if not path.is_file():
        have = sorted(p.name for p in task_dir.glob("*.h5"))
        raise UserError(f"{path}: no such split file{why} (the task folder holds: {', '.join(have) or 'no .h5 files'})")
    store = TokenStore(path, expect=tokenizer, expect_name=f"checkpoint {checkpoint}")
    if not store.has_labels:
        raise UserError(f"{path}: a token store without /labels, not a task store "
                        "(make one with 'genomics-lm make-task')")
    if list(store.label_names) != list(label_names):
        raise UserError(f"label names differ: checkpoint {checkpoint} has {label_names}, "
                        f"task store {path} has {list(store.label_names)}")
    return store


def _read_rows(store) -> tuple[list[np.ndarray], np.ndarray, list[tuple[str, int, int, str]]]:
    """Trimmed token rows, labels (N, C) float and coordinates of every row of a task store, in store order."""
    from genomics_lm.score import trim_padding

    f = store.h5
    tokens = f["tokens"][:]
    rows = [trim_padding(r) for r in tokens]
    labels = np.asarray(f["labels"][:], dtype=np.float64).reshape(len(rows), -1)
    seqid = [s.decode() if isinstance(s, bytes) else str(s) for s in f["seqid"][:]]
    start, end = f["start"][:], f["end"][:]
    strand = [s.decode() if isinstance(s, bytes) else str(s) for s in f["strand"][:]]
    coords = [(seqid[i], int(start[i]), int(end[i]), strand[i]) for i in range(len(rows))]
    empty = [i for i, r in enumerate(rows) if r.size == 0]
    if empty:
        raise UserError(f"{store.path}: row {empty[0]} holds no token (all [PAD])")
    return rows, labels, coords


def output_paths(out_dir: str | os.PathLike) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {name: out_dir / name for name in OUTPUTS}


def check_outputs(out_dir: str | os.PathLike, overwrite: bool) -> dict[str, Path]:
    """The four output paths; refuses an existing one without ``overwrite`` and an out-dir that is a file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir}: is a file, not a folder")
    paths = output_paths(out_dir)
    for path in paths.values():
        check_output_path(path, overwrite)
    return paths


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def evaluate_task(checkpoint: str | os.PathLike, task_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  split: str = "test", baseline: bool = True, *, both_strands: bool = False, batch_size: int = 64,
                  device: str = "cpu", overwrite: bool = False, task_name: str | None = None,
                  baseline_ks: Sequence[int] = BASELINE_KS, baseline_cs: Sequence[float] = BASELINE_CS,
                  baseline_cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """Score a fine-tuned checkpoint on ``task_dir/<split>.h5``, fit the k-mer baseline (train, val) in the same
    run, and write ``out_dir/{metrics.json, predictions.tsv, roc.png, pr.png}``.

    Args:
        checkpoint: a fine-tuned classifier (``RUN/finetuned.pt`` or a fine-tuning ``.ckpt``).
        task_dir: the ``make-task`` folder (``train.h5``, ``val.h5``, ``test.h5``).
        out_dir: where the four outputs go (created; existing outputs refused unless ``overwrite``).
        split: which split to evaluate. baseline: also fit and score the k-mer baseline (needs train and val).
        both_strands: average the model's probabilities over both strands (reverse complement of each row).
        batch_size, device: of the model's forward passes (``cpu``, ``cuda``, ``cuda:1``...).
        task_name: the ``task`` field (default: the task folder's name).
        baseline_ks, baseline_cs: the baseline's grid.
        baseline_cache: a folder where the baseline's fit is kept and reused for identical inputs
            (:func:`cached_kmer_baseline`); None = fit it in this run.
    Returns:
        the ``metrics.json`` dict.
    Raises:
        UserError: missing checkpoint / task folder / split file, a pretraining checkpoint, a task store whose
            tokenizer or label names differ from the checkpoint's, an existing output without ``overwrite``,
            an unavailable device. Nothing is written then.
    """
    import torch

    from genomics_lm.checkpoint import load_classifier
    from genomics_lm.score import predict_proba

    checkpoint, task_dir = Path(checkpoint), Path(task_dir)
    if batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device!r}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    # ---- every check before any computation or write
    model, config, record = load_classifier(checkpoint, map_location="cpu")
    label_names = list(record["label_names"])
    if not task_dir.is_dir():
        raise UserError(f"{task_dir}: no such task folder" if not task_dir.exists() else f"{task_dir}: not a folder")
    store = _open_split(task_dir, split, config.tokenizer, checkpoint, label_names)
    train_store = val_store = None
    if baseline:
        why = " (the k-mer baseline is fitted on train and chosen on val; --no-baseline skips it)"
        train_store = _open_split(task_dir, "train", config.tokenizer, checkpoint, label_names, why)
        val_store = _open_split(task_dir, "val", config.tokenizer, checkpoint, label_names, why)
    paths = check_outputs(out_dir, overwrite)

    rows, labels, coords = _read_rows(store)
    digest = rows_digest(rows, coords)
    task = task_name or task_dir.resolve().name

    # ---- the model
    model = model.to(dev)
    t0 = time.perf_counter()
    p_model = predict_proba(model, rows, add_cls=bool(record.get("add_cls", False)), batch_size=batch_size,
                            device=dev, both_strands=config.tokenizer if both_strands else None)
    model_seconds = time.perf_counter() - t0
    model_obj = {**method_metrics(p_model, labels, label_names), "rows_sha256": rows_digest(rows, coords),
                 "seconds": model_seconds, "sequences_per_s": len(rows) / model_seconds if model_seconds > 0 else None}

    # ---- the baseline, same rows, same run
    base_obj = None
    methods = {"model": p_model}
    if baseline:
        tr_rows, tr_labels, _ = _read_rows(train_store)
        va_rows, va_labels, _ = _read_rows(val_store)
        if baseline_cache is None:
            p_kmer, params = kmer_baseline(tr_rows, tr_labels, va_rows, va_labels, rows, config.tokenizer,
                                           ks=baseline_ks, Cs=baseline_cs, label_names=label_names)
        else:
            p_kmer, params = cached_kmer_baseline(baseline_cache, tr_rows, tr_labels, va_rows, va_labels, rows,
                                                  config.tokenizer, ks=baseline_ks, Cs=baseline_cs,
                                                  label_names=label_names)
        base_obj = {**method_metrics(p_kmer, labels, label_names), "rows_sha256": rows_digest(rows, coords),
                    "seconds": params.pop("seconds"), **params, "train_rows": len(tr_rows), "val_rows": len(va_rows)}
        if len(label_names) == 1:
            only = params["chosen"][label_names[0]]
            base_obj.update(k=only["k"], C=only["C"])
        methods["kmer_baseline"] = p_kmer

    metrics = {
        "task": task, "split": split, "n": len(rows), "label_names": label_names,
        "model": model_obj, "kmer_baseline": base_obj,
        "rows_sha256": digest, "threshold": THRESHOLD, "both_strands": bool(both_strands),
        "checkpoint": str(checkpoint), "attention": config.attention,
        "checkpoint_record": {key: record.get(key) for key in
                              ("task", "label_names", "pooling", "add_cls", "pretrained", "genomics_lm_version", "global_step",
                               "model_config", "data")},
        "task_dir": str(task_dir), "split_file": str(store.path), "task_source": store.source,
        "genomics_lm_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    metrics = _jsonable(metrics)

    # ---- outputs: built in memory, written under temporary names, renamed together (metrics.json last)
    title = f"{task}: {split} split (n={len(rows)})"
    prefixes = {"model": "p_model", "kmer_baseline": "p_kmer"}
    table = predictions_table(coords, labels, label_names, {prefixes[m]: p for m, p in methods.items()})
    roc = curves_png("roc", labels, label_names, methods, f"ROC - {title}")
    pr = curves_png("pr", labels, label_names, methods, f"Precision-recall - {title}")
    contents = {"metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
                "predictions.tsv": table.encode(), "roc.png": roc, "pr.png": pr}
    check_outputs(out_dir, overwrite)  # again: another process may have written meanwhile
    with contextlib.ExitStack() as stack:
        for name in OUTPUTS:  # entered first = renamed last
            tmp = stack.enter_context(atomic_write(paths[name]))
            tmp.write_bytes(contents[name])
    return metrics
