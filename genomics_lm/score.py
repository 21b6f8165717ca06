"""Scoring: a fine-tuned classifier's probabilities for token sequences, batched, in input order.

No Lightning import: notebooks, ``genomics-lm evaluate`` and (next) ``genomics-lm score`` use it with a model from
:func:`genomics_lm.checkpoint.load_classifier`.
"""

from __future__ import annotations

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
