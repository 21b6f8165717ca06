"""``reference`` backend: dense masked attention from ``pattern.dense_mask`` (tests only, O(T^2) memory)."""

from __future__ import annotations

import torch

from genomics_lm.attention.patterns import AttentionPattern


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: AttentionPattern,
    key_padding_mask: torch.Tensor | None = None,
    layer: int = 0,
) -> torch.Tensor:
    """Softmax(q k^T / sqrt(D) restricted to the pattern and the real keys) v.

    q, k, v: (B, H, T, D); key_padding_mask: (B, T) bool, True = real token. Returns (B, H, T, D) with zeros at
    padded query positions (and on any row with no allowed key).
    """
    B, H, T, D = q.shape
    mask = pattern.dense_mask(T, H, layer).to(q.device)[None]  # (1, H, T, T)
    if key_padding_mask is not None:
        mask = mask & key_padding_mask[:, None, None, :]  # (B, H, T, T)
    row_any = mask.any(-1, keepdim=True)  # (B, H, T, 1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * D**-0.5  # (B, H, T, T)
    scores = scores.masked_fill(~(mask | ~row_any), float("-inf"))
    out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, H, T, D)
    keep = row_any
    if key_padding_mask is not None:
        keep = keep & key_padding_mask[:, None, :, None]
    return out * keep
