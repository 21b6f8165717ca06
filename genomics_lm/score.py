"""Scoring: a fine-tuned classifier's probabilities for token rows and DNA sequences, batched, in input order.

No Lightning import: notebooks, ``genomics-lm evaluate`` and ``genomics-lm score`` use it.

* Token rows: :func:`predict_proba` (what ``evaluate`` calls), :func:`trim_padding`, :func:`pad_batch`.
* Python API: :func:`load_model` (``checkpoint.load_classifier``, ``weights_only=True``) and
  :func:`score_sequences` (strings in, (N, C) float64 out; long sequences tiled and aggregated)::

      from genomics_lm.score import load_model, score_sequences
      model = load_model("results/finetune/tiny/finetuned.pt")
      probs = score_sequences(model, ["ACGT...", "TTGACA..."], batch_size=64, device="cpu")
      dict(zip(model.label_names, probs[0]))

* The FASTA stage of ``genomics-lm score``: :func:`score_fasta`. Tracks: :mod:`genomics_lm.tracks`; variant
  effects: :mod:`genomics_lm.variants`.

Numbers depend only on the inputs, the batch size and the device: rows are sorted by length (stable) into
batches. With BigBird attention a row's probabilities can move in the 6th decimal with the length its batch is
padded to (the pattern is laid out over the padded length), so scores of the same rows with the same batch size
are identical (``genomics-lm evaluate``'s included), other batch sizes agree to about 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from genomics_lm.tokenizer import CLS_ID, PAD_ID, KmerTokenizer, reverse_complement_ids


def trim_padding(row: np.ndarray) -> np.ndarray:
    """A task-store row without its trailing [PAD] ids: (L,) -> (n,), n = position after the last non-PAD id."""
    nz = np.flatnonzero(row != PAD_ID)
    return row[: int(nz[-1]) + 1] if nz.size else row[:0]


def pad_batch(rows: Sequence[np.ndarray], add_cls: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows to the longest: ``(input_ids (B, T) long, attention_mask (B, T) bool)``.

    ``add_cls`` puts [CLS] in front of every row (never padding)."""
    lengths = [len(r) + int(add_cls) for r in rows]
    T = max(lengths)
    ids = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        if add_cls:
            ids[i, 0] = CLS_ID
        ids[i, int(add_cls): lengths[i]] = torch.as_tensor(np.asarray(r, dtype=np.int64))
    mask = torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]  # (B, T)
    return ids, mask


@torch.no_grad()
def predict_proba(model: torch.nn.Module, rows: Sequence[np.ndarray], *, add_cls: bool = False,
                  batch_size: int = 64, device: str | torch.device = "cpu",
                  both_strands: KmerTokenizer | None = None) -> np.ndarray:
    """Sigmoid probabilities (N, C) float64 of ``model`` for token rows (each (n_i,) ids, no padding).

    Rows are sorted by length into batches (less padding) and the output is in input order. With
    ``both_strands`` (the tokenizer of the rows) the probabilities of the reverse-complement strand are averaged
    in (per-logit mean of the two strands' probabilities). The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        order = np.argsort([len(r) for r in rows], kind="stable")
        out: np.ndarray | None = None
        for a in range(0, len(rows), batch_size):
            idx = order[a: a + batch_size]
            batch = [rows[i] for i in idx]
            probs = _probs(model, batch, add_cls, device)
            if both_strands is not None:
                rc = [reverse_complement_ids(r, both_strands.k) for r in batch]
                probs = 0.5 * (probs + _probs(model, rc, add_cls, device))
            if out is None:
                out = np.empty((len(rows), probs.shape[1]), dtype=np.float64)
            out[idx] = probs
        return out if out is not None else np.empty((0, 0))
    finally:
        model.train(was_training)


def _probs(model, batch, add_cls, device) -> np.ndarray:
    ids, mask = pad_batch(batch, add_cls)
    logits = model(ids.to(device), mask.to(device))  # (B, C)
    return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)


# ------------------------------------------------------------------------------------------------------------
# Scoring DNA sequences: the Python API and the FASTA stage of ``genomics-lm score``
# ------------------------------------------------------------------------------------------------------------
# Everything below reads bases, not token rows: sequences are checked (IUPAC letters; others are an error that
# names the sequence and the 1-based position), encoded with the checkpoint's own tokenizer, tiled into windows
# when longer than the model's input, and scored through predict_proba (batches sorted by length, results in input
# order). Coordinates are 0-based, half-open.

AGGREGATES = ("max", "mean")
DEFAULT_AGGREGATE = "max"
DEFAULT_WINDOW_TOKENS = 1024  # the window where a checkpoint records no training length (see default_window_bp)
CHUNK_BATCHES = 16  # batches handed to predict_proba at a time (progress granularity; results do not depend on it)


def load_model(path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A fine-tuned classifier from its checkpoint, ready for :func:`score_sequences` (no Lightning import).

    Reads ``path`` with :func:`genomics_lm.checkpoint.load_classifier` (``torch.load(weights_only=True)``: a file
    that would need arbitrary unpickling is refused, never executed). The returned module is in eval mode on
    ``device`` and carries the checkpoint's facts as attributes: ``label_names`` (list of C str), ``add_cls``
    (bool), ``record`` (the checkpoint's ``genomics_lm`` dict), ``config`` (the ModelConfig, tokenizer included).

    Raises:
        UserError: missing, truncated or foreign file; a pretraining (masked-LM) export, with a pointer to
            ``genomics-lm finetune``; a classifier without label names.
    """
    from genomics_lm.checkpoint import load_classifier

    model, _config, record = load_classifier(path, map_location=device)
    model.label_names = list(record["label_names"])
    model.add_cls = bool(record.get("add_cls", False))
    model.record = dict(record)
    return model


def model_facts(model: torch.nn.Module) -> tuple[KmerTokenizer, bool, list[str], dict]:
    """``(tokenizer, add_cls, label_names, record)`` of a model from :func:`load_model` (or any classifier with a
    ``config``: then no [CLS] and labels ``label0..``)."""
    tokenizer = model.config.tokenizer
    n = int(getattr(model, "num_labels", 1))
    names = list(getattr(model, "label_names", [f"label{i}" for i in range(n)]))
    return tokenizer, bool(getattr(model, "add_cls", False)), names, dict(getattr(model, "record", {}) or {})


def default_window_bp(record: dict, tokenizer: KmerTokenizer) -> tuple[int, str]:
    """The window (bp) a checkpoint was trained on, and where that figure comes from.

    In order: the record's ``data.window_bp``; ``data.window_tokens`` or ``data.seq_len`` (tokens, converted with
    the checkpoint's tokenizer: ``(n - 1) * stride + k``); else :data:`DEFAULT_WINDOW_TOKENS` tokens (fine-tuning
    checkpoints of this version record the task folder but not its window length: pass ``--window`` then).
    """
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    bp = data.get("window_bp")
    if isinstance(bp, int) and bp > 0:
        return bp, "checkpoint data.window_bp"
    for key in ("window_tokens", "seq_len"):
        n = data.get(key)
        if isinstance(n, int) and n > 0:
            return tokenizer.window_bp(n), f"checkpoint data.{key} = {n} tokens"
    return tokenizer.window_bp(DEFAULT_WINDOW_TOKENS), (f"default {DEFAULT_WINDOW_TOKENS} tokens (the checkpoint "
                                                        "records no training length)")


def resolve_window(record: dict, tokenizer: KmerTokenizer, window: int | None, step: int | None
                   ) -> tuple[int, int, str]:
    """``(window_bp, step_bp, where the window comes from)``: given values checked, else the checkpoint's window
    (:func:`default_window_bp`) and a step of half the window."""
    from genomics_lm.errors import UserError

    if window is None:
        window, where = default_window_bp(record, tokenizer)
    else:
        where = "--window"
    if window < tokenizer.k:
        raise UserError(f"window {window} bp is shorter than one k-mer (k={tokenizer.k})")
    step = max(1, window // 2) if step is None else step
    if step < 1:
        raise UserError(f"step must be a positive number of bases, got {step}")
    return int(window), int(step), where


def tile_starts(length: int, window: int, step: int) -> np.ndarray:
    """Window starts (int64, 0-based) tiling a sequence of ``length`` bases with windows ``[s, s + window)``.

    ``length <= window``: one window, the whole sequence (``[0]``). Otherwise ``0, step, 2*step, ...`` while the
    window fits, plus a last window ending exactly at ``length`` when the regular ones stop short of it, so every
    base is in at least one window. E.g. ``tile_starts(10, 4, 3) -> [0, 3, 6]``, ``tile_starts(11, 4, 3) ->
    [0, 3, 6, 7]``.
    """
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - window + 1, step, dtype=np.int64)
    if starts[-1] + window < length:
        starts = np.append(starts, np.int64(length - window))
    return starts


def check_bases(seq: str, tokenizer: KmerTokenizer, where: str) -> str:
    """``seq`` upper-cased after the IUPAC check of :func:`genomics_lm.tasks.check_sequence` (IUPAC codes are kept:
    they encode to [UNK]; any other character is a one-line UserError naming ``where`` and the 1-based position);
    a sequence shorter than one k-mer is an error too."""
    from genomics_lm.errors import UserError
    from genomics_lm.tasks import check_sequence

    seq = check_sequence(seq, where)
    if len(seq) < tokenizer.k:
        raise UserError(f"{where}: {len(seq)} bp is shorter than one k-mer of the model (k={tokenizer.k})")
    return seq


def _order_and_chunks(lengths: Sequence[int], batch_size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices sorted by length (stable) and cut into chunks of whole batches: predict_proba on each chunk forms
    exactly the batches one call on all rows would form."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    size = batch_size * CHUNK_BATCHES
    return order, [order[a: a + size] for a in range(0, len(order), size)]


def score_rows(model: torch.nn.Module, rows: Sequence[np.ndarray], *, add_cls: bool, batch_size: int = 64,
               device: str | torch.device = "cpu", rc_rows: Sequence[np.ndarray] | None = None,
               progress: bool = False, desc: str = "score") -> np.ndarray:
    """Probabilities (N, C) float64 of token rows, in input order, exactly as one :func:`predict_proba` call.

    ``rc_rows`` (the rows of the reverse-complement sequences, same lengths) are averaged in: ``0.5 * (p + p_rc)``.
    Rows are sorted by length and handed to predict_proba a few batches at a time, so a progress bar can move
    (stderr, ``progress``); the batches, and so the numbers, are those of a single call.
    """
    if not len(rows):
        return np.empty((0, int(getattr(model, "num_labels", 0))), dtype=np.float64)
    order, chunks = _order_and_chunks([len(r) for r in rows], batch_size)
    bar = _bar(len(rows) * (2 if rc_rows is not None else 1), progress, desc)
    out = None
    try:
        for idx in chunks:
            p = predict_proba(model, [rows[i] for i in idx], add_cls=add_cls, batch_size=batch_size, device=device)
            bar.update(len(idx))
            if rc_rows is not None:
                p_rc = predict_proba(model, [rc_rows[i] for i in idx], add_cls=add_cls, batch_size=batch_size,
                                     device=device)
                p = 0.5 * (p + p_rc)
                bar.update(len(idx))
            if out is None:
                out = np.empty((len(rows), p.shape[1]), dtype=np.float64)
            out[idx] = p
    finally:
        bar.close()
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool, desc: str):
    """A tqdm bar on stderr (``progress``), else a no-op with the same two methods."""
    if not progress:
        return _NoBar()
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="seq", file=sys.stderr, dynamic_ncols=True)


@dataclass
class Tiled:
    """Sequences cut into model windows: ``rows`` (W,) token-id arrays (the windows of every sequence, in sequence
    order), ``rc_rows`` (W,) the reverse-complement windows or None, ``owner`` (W,) int64 the sequence of each
    window, ``starts`` (W,) int64 each window's start in its sequence (bp)."""

    rows: list[np.ndarray]
    rc_rows: list[np.ndarray] | None
    owner: np.ndarray
    starts: np.ndarray


def tile_sequences(seqs: Sequence[str], tokenizer: KmerTokenizer, window: int, step: int, *,
                   both_strands: bool = False, names: Sequence[str] | None = None, what: str = "sequence") -> Tiled:
    """Check, tile (:func:`tile_starts`) and encode sequences (see :class:`Tiled`).

    The reverse-complement window of ``seq[s:e]`` is the encoding of ``reverse_complement(seq[s:e])`` (exact for
    any k and stride). Errors name ``what`` and ``names[i]`` (or the 1-based index).
    """
    from genomics_lm.tokenizer import reverse_complement

    rows, rc_rows, owner, starts = [], [] if both_strands else None, [], []
    for i, seq in enumerate(seqs):
        where = f"{what} {names[i]!r}" if names is not None else f"{what} {i + 1}"
        seq = check_bases(seq, tokenizer, where)  # the whole sequence checked once (position = 1-based in it)
        for s in tile_starts(len(seq), window, step).tolist():
            piece = seq[s: s + window]
            rows.append(tokenizer.encode(piece))
            if rc_rows is not None:
                rc_rows.append(tokenizer.encode(reverse_complement(piece)))
            owner.append(i)
            starts.append(s)
    return Tiled(rows, rc_rows, np.asarray(owner, np.int64), np.asarray(starts, np.int64))


def aggregate_windows(probs: np.ndarray, owner: np.ndarray, n: int, how: str = DEFAULT_AGGREGATE) -> np.ndarray:
    """Per-sequence probabilities (n, C) float64 from per-window ones ``probs`` (W, C): ``max`` or ``mean`` over the
    windows of each sequence (``owner`` (W,) int64 in 0..n-1, every sequence with at least one window)."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    C = probs.shape[1]
    if how == "max":
        out = np.full((n, C), -np.inf)
        np.maximum.at(out, owner, probs)
        return out
    sums = np.zeros((n, C))
    np.add.at(sums, owner, probs)
    return sums / np.bincount(owner, minlength=n)[:, None]


def score_sequences(model: torch.nn.Module, seqs: Sequence[str], *, batch_size: int = 64,
                    device: str | torch.device | None = None, window: int | None = None, step: int | None = None,
                    aggregate: str = DEFAULT_AGGREGATE, both_strands: bool = False, progress: bool = False,
                    names: Sequence[str] | None = None) -> np.ndarray:
    """Probabilities (N, C) float64 of a classifier from :func:`load_model` for DNA strings, in input order.

    Args:
        model: from :func:`load_model` (its tokenizer, [CLS] use and label names come with it).
        seqs: N strings of IUPAC letters, any case (IUPAC codes other than ACGT become [UNK]; any other
            character is a UserError naming the sequence and the 1-based position).
        batch_size: windows per forward pass (sequences are sorted by length into batches, less padding; shorter
            ones are padded and the padding masked).
        device: where to run (None: where the model is); the model is moved there and back.
        window, step: sequences longer than ``window`` bp are tiled with windows every ``step`` bp (the last one
            ending at the sequence's end) and their probabilities aggregated by ``aggregate`` (max | mean);
            defaults: the checkpoint's training window (:func:`default_window_bp`) and half of it.
        both_strands: average each window's probabilities with those of its reverse complement.
    Returns:
        (N, C) float64, column j = ``model.label_names[j]``. The model's train/eval mode (and device) are restored.
    """
    tokenizer, add_cls, label_names, record = model_facts(model)
    window, step, _ = resolve_window(record, tokenizer, window, step)
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs must be a sequence of strings (wrap a single sequence in a list)")
    seqs = [s.decode("ascii", "replace") if isinstance(s, bytes) else str(s) for s in seqs]
    tiled = tile_sequences(seqs, tokenizer, window, step, both_strands=both_strands, names=names)
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    dev = torch.device(device) if device is not None else home
    was_training = model.training
    try:
        model.to(dev)
        p = score_rows(model, tiled.rows, add_cls=add_cls, batch_size=batch_size, device=dev,
                       rc_rows=tiled.rc_rows, progress=progress)
    finally:
        model.to(home)
        model.train(was_training)
    if not len(seqs):
        return np.empty((0, len(label_names)), dtype=np.float64)
    return aggregate_windows(p, tiled.owner, len(seqs), aggregate)


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU; otherwise the named device (a UserError if unusable)."""
    from genomics_lm.errors import UserError

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"--device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available here (use cpu or auto)")
    return dev


def fmt_prob(v: float) -> str:
    """A probability as written in every table (``%.6g``, as ``genomics-lm evaluate``'s predictions.tsv)."""
    return f"{v:.6g}"


def score_fasta(checkpoint, fasta, out, *, window: int | None = None, step: int | None = None,
                aggregate: str = DEFAULT_AGGREGATE, both_strands: bool = False, batch_size: int = 64,
                device: str | None = "auto", overwrite: bool = False, progress: bool = False) -> dict:
    """The FASTA stage of ``genomics-lm score``: one TSV row per record, in input order.

    Columns: ``id`` (first word of the header), ``length`` (bp), then one probability per label name of the
    checkpoint (``%.6g``). Every output check happens before any scoring; the table is written to a temporary name
    and renamed when complete.

    Returns:
        ``{"records", "windows", "tiled" (records longer than the window), "window", "step", "window_from",
        "aggregate", "label_names", "device", "seconds", "out"}``.
    Raises:
        UserError: checkpoint problems (see :func:`load_model`), empty FASTA, a non-IUPAC character (record and
            position named), an existing output without ``overwrite``, an output folder that does not exist.
    """
    import time

    from genomics_lm.files import atomic_write, check_output_path
    from genomics_lm.tasks import read_fasta

    out = check_output_path(out, overwrite)
    _check_out_folder(out)
    dev = resolve_device(device)
    model = load_model(checkpoint, device=dev)
    tokenizer, add_cls, names, record = model_facts(model)
    window, step, where = resolve_window(record, tokenizer, window, step)
    records = read_fasta(fasta)
    tiled = tile_sequences([r.seq for r in records], tokenizer, window, step, both_strands=both_strands,
                           names=[r.id for r in records], what=f"{fasta}: record")
    t0 = time.perf_counter()
    p = score_rows(model, tiled.rows, add_cls=add_cls, batch_size=batch_size, device=dev, rc_rows=tiled.rc_rows,
                   progress=progress)
    probs = aggregate_windows(p, tiled.owner, len(records), aggregate)
    seconds = time.perf_counter() - t0
    lines = ["\t".join(["id", "length"] + [_col(n) for n in names])]
    for r, row in zip(records, probs):
        lines.append("\t".join([r.id, str(len(r.seq))] + [fmt_prob(v) for v in row]))
    with atomic_write(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return {"records": len(records), "windows": len(tiled.rows),
            "tiled": int(np.count_nonzero(np.bincount(tiled.owner, minlength=len(records)) > 1)),
            "window": window, "step": step, "window_from": where, "aggregate": aggregate, "label_names": names,
            "device": str(dev), "seconds": seconds, "out": str(out), "both_strands": bool(both_strands)}


def _col(name: str) -> str:
    return "_".join(str(name).split())  # no tabs or spaces inside a header cell (as evaluate's tables)


def _check_out_folder(path) -> None:
    """A UserError when the folder an output goes into does not exist (outputs never create folders here)."""
    from pathlib import Path

    from genomics_lm.errors import UserError

    parent = Path(path).parent
    if not parent.is_dir():
        raise UserError(f"{path}: output folder {parent} does not exist")
