"""``attend``: one entry point over patterns x backends.

Backends
--------
``reference``  dense masked attention from ``pattern.dense_mask`` (tests only; O(T^2) memory).
``blocked``    pure-PyTorch block-sparse kernel (:mod:`~genomics_lm.attention.blocked`), CPU and GPU, autograd.
``flex``       torch FlexAttention with a BlockMask built from block indices (:mod:`~genomics_lm.attention.flex`).
               No backward on CPU (torch 2.13): a CPU call that needs gradients raises.
``auto``       ``flex`` on CUDA; ``blocked`` on CPU, for training (flex has no CPU backward) and for inference.
               Measured on the 2-core CPU (torch 2.13, one layer, 8 heads x 32, fp32, ``genomics-lm bench
               attention``): for Longformer(512) blocked is about 2x faster than compiled flex from 4k tokens
               on (16k: 0.30 s vs 0.66 s); for BigBird they are within about 5-20% of each other with two
               threads (16k: blocked 0.40 s, flex 0.39 s; 4k: 0.100 s vs 0.107 s) and blocked is faster with
               one thread (16k: 0.33 s vs 0.59 s). Flex also compiles for several seconds per new shape, so
               ``auto`` keeps ``blocked`` on CPU; ask for ``backend="flex"`` explicitly for CPU inference.

The ``dense`` pattern is computed by ``scaled_dot_product_attention`` with the key padding mask on every
backend except ``reference`` (it *is* one dense block), and so is any pattern that covers every pair at the
length given (``pattern.is_complete``: short inputs, e.g. 27 tokens under BigBird blocks of 32). The result is
the same attention; only the kernel is the one that fits.

Outputs at padded query positions (``key_padding_mask`` False) are exactly zero on every backend. The returned
tensor is (B, H, T, D) but not necessarily contiguous: for long sequences ``blocked`` writes it in (B, T, H, D)
memory order, so the usual ``out.transpose(1, 2).reshape(B, T, H * D)`` is free.
"""

from __future__ import annotations

import torch

from genomics_lm.attention.blocked import blocked_attention, dense_sdpa
from genomics_lm.attention.patterns import AttentionPattern
from genomics_lm.attention.reference import reference_attention

BACKENDS = ("auto", "flex", "blocked", "reference")


def resolve_backend(backend: str, q: torch.Tensor, needs_grad: bool) -> str:
    """The concrete backend ``attend`` uses for ``backend`` on q's device."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    return "flex" if q.is_cuda else "blocked"


def _check(q, k, v, key_padding_mask):
    if q.dim() != 4:
        raise ValueError(f"q must be (B, H, T, D), got shape {tuple(q.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not q.is_floating_point():
        raise ValueError(f"q, k, v must be floating point, got {q.dtype}")
    B, _, T, _ = q.shape
    if key_padding_mask is not None:
        if key_padding_mask.shape != (B, T):
            raise ValueError(
                f"key_padding_mask must be (B, T) = ({B}, {T}), got {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be bool (True = real token), got {key_padding_mask.dtype}")


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: AttentionPattern,
    key_padding_mask: torch.Tensor | None = None,
    backend: str = "auto",
    layer: int = 0,
) -> torch.Tensor:
    """Attention of ``pattern`` (specialised to ``layer``) with scale 1/sqrt(D).

    q, k, v: (B, H, T, D) float; key_padding_mask: (B, T) bool, True = real token, False = padding.
    Returns (B, H, T, D) (possibly a strided view); outputs at padded query positions are zero.
    Raises ValueError for unknown backends, bad shapes or dtypes, and for ``flex`` with gradients on CPU.
    """
    _check(q, k, v, key_padding_mask)
    if not isinstance(pattern, AttentionPattern):
        raise ValueError(
            f"pattern must be an AttentionPattern (bigbird/longformer/dense), got {type(pattern).__name__}"
        )
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    name = resolve_backend(backend, q, needs_grad)
    if key_padding_mask is not None and bool(key_padding_mask.all()):
        key_padding_mask = None
    if name == "reference":
        return reference_attention(q, k, v, pattern, key_padding_mask, layer)
    B, H, T, D = q.shape
    if pattern.is_complete(T, H, layer):  # dense, or a pattern that covers every pair at this length
        return dense_sdpa(q, k, v, key_padding_mask)
    layout = pattern.layout(T, H, layer)
    if name == "flex":
        from genomics_lm.attention.flex import flex_block_attention

        return flex_block_attention(q, k, v, pattern, layout, key_padding_mask, layer, needs_grad)
    return blocked_attention(q, k, v, layout, key_padding_mask)
