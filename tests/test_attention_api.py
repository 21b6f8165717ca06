"""genomics_lm.attention.api: a pattern that covers every pair at the given length is computed as one dense block.

Short inputs are common in fine-tuning (a 300 bp promoter is 100 3-mers): BigBird with blocks of 32 then has 4
blocks, no more than its window + global + random blocks, and Longformer's band is wider than the sequence.
``is_complete`` says so, ``attend`` takes SDPA, and the result equals the reference of the pattern itself.
"""

from __future__ import annotations

import pytest
import torch

import genomics_lm.attention.api as api
from genomics_lm.attention import attend, bigbird, dense, longformer


def qkv(T, H=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, H, T, D, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("pattern, T, complete", [
    (bigbird(block_size=8, window_blocks=3, global_blocks=2, random_blocks=1), 48, True),   # 6 blocks <= 3+2+1
    (bigbird(block_size=8, window_blocks=3, global_blocks=2, random_blocks=1), 49, False),  # 7 blocks
    (bigbird(block_size=32, window_blocks=3, global_blocks=2, random_blocks=2), 27, True),  # one block
    (longformer(window=16, global_tokens=(0,)), 9, True),    # band of 8 each side covers 9 tokens
    (longformer(window=16, global_tokens=(0,)), 10, True),   # the one pair 9 apart involves global token 0
    (longformer(window=16, global_tokens=(0,)), 11, False),  # (1, 10) is 9 apart
    (longformer(window=16, global_tokens=(0,), dilation=2), 9, False),  # dilation skips pairs
    (dense(), 5, True),
])
def test_complete_patterns_take_sdpa_and_agree_with_the_reference(monkeypatch, pattern, T, complete):
    assert pattern.is_complete(T, 2) is complete
    assert (pattern.density(T, 2) == 1.0) is complete
    calls = []
    real = api.dense_sdpa
    monkeypatch.setattr(api, "dense_sdpa", lambda *a: calls.append(1) or real(*a))
    q, k, v = qkv(T)
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[1, T - 3:] = False  # padding in the second sequence
    for qq in (q, k, v):
        qq.requires_grad_(True)
    out = attend(q, k, v, pattern, key_padding_mask=mask, backend="blocked")
    assert bool(calls) is complete  # SDPA exactly when the pattern covers every pair
    ref = attend(q, k, v, pattern, key_padding_mask=mask, backend="reference")
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g_out = torch.autograd.grad(out.sum(), (q, k, v))
    g_ref = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
