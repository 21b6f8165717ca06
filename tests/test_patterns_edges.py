"""Attention patterns and block layouts at their edges, with exact expected values (block size 1, no global
blocks, random block 0, the kernels' key-block lists). Fast: small sequences only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genomics_lm.attention import bigbird, longformer


def _kv_lists(layout, H=1):
    kv_num, kv_idx = layout.kv_blocks(H)
    return kv_num, kv_idx


def test_longformer_kv_blocks_exact():
    """window 8 (4 each side), global token 0, blocks of 4, T=20: 5 blocks; row 0 (global) sees all, every
    row sees block 0 (global) and its neighbours; the rest of each row is filler in ascending order."""
    L = longformer(8, global_tokens=(0,), block_size=4).layout(20, 1)
    assert (L.window_left, L.window_len, L.band, L.sparse_rows) == (4, 12, (4, 1), (0, 5))
    kv_num, kv_idx = L.kv_blocks(2)
    assert kv_num.dtype == torch.int32 and kv_idx.dtype == torch.int32
    assert kv_num.tolist() == [[5, 3, 4, 4, 3]] * 2
    assert kv_idx[0].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 2, 3, 4, 1], [0, 3, 4, 1, 2]]
    assert torch.equal(kv_idx[0], kv_idx[1])


def test_longformer_kv_blocks_block_size_one():
    """Blocks of one token: the window of row i is exactly i-1..i+1 (clipped at both ends)."""
    L = longformer(2, global_tokens=(), block_size=1).layout(5, 1)
    assert (L.window_left, L.window_len, L.band) == (1, 3, (1, 1))
    kv_num, kv_idx = L.kv_blocks(1)
    assert kv_num.tolist() == [[2, 3, 3, 3, 2]]
    assert kv_idx[0].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [1, 2, 3, 0, 4], [2, 3, 4, 0, 1], [3, 4, 0, 1, 2]]


def test_longformer_dilated_layout_exact():
    """dilation 2, window 4: half width 2*2 = 4 tokens; blocks of 4 -> one block each side."""
    p = longformer(4, global_tokens=(9,), dilation=2, block_size=4)
    L = p.layout(16, 1)
    assert (L.window_left, L.window_len, L.band, L.num_blocks) == (4, 12, (4, 2), 4)
    assert L.global_tokens.tolist() == [9]
    kv_num, kv_idx = L.kv_blocks(1)
    # global token 9 is in block 2: row 2 sees all, every row sees block 2 besides its neighbours
    assert kv_num.tolist() == [[3, 3, 4, 2]]
    assert kv_idx[0].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [2, 3, 0, 1]]
    # the token-level band: query 8 sees keys 4, 6, 8, 10, 12 and the global token 9
    assert torch.nonzero(p.dense_mask(16, 1)[0, 8]).flatten().tolist() == [4, 6, 8, 9, 10, 12]


def test_bigbird_kv_blocks_without_global_blocks_keep_random_block_zero():
    """No global blocks: block 0 may be drawn as a random block, and the kernels' list must keep it."""
    p = bigbird(2, window_blocks=1, global_blocks=0, random_blocks=1, seed=0)
    T, H = 2 * 8, 4
    plan = p.random_plan(T, H)
    assert (plan == 0).any(), "precondition: some row drew block 0"
    L = p.layout(T, H)
    assert L.global_tokens.numel() == 0 and L.sparse_rows == (0, 8)
    kv_num, kv_idx = L.kv_blocks(H)
    for h in range(H):
        for i in range(8):
            want = sorted({i} | set(plan[h, i].tolist()))
            assert kv_num[h, i].item() == len(want) == 2
            assert kv_idx[h, i, :2].tolist() == want


def test_kv_blocks_with_128_blocks_or_more():
    """Found by mutation testing: the sort key was int8, (~mask).to(int8) * nb overflowed from 128 blocks on
    (8k tokens in blocks of 64), and FlexAttention got wrong key blocks."""
    p = bigbird(1, window_blocks=1, global_blocks=0, random_blocks=0)
    L = p.layout(130, 1)
    kv_num, kv_idx = L.kv_blocks(1)
    assert kv_num[0].tolist() == [1] * 130
    assert kv_idx[0, :, 0].tolist() == list(range(130))


def test_bigbird_layout_fields_exact():
    """bigbird(4, window 3, 3 global blocks): globals are the first two and the last block."""
    p = bigbird(4, window_blocks=3, global_blocks=3, random_blocks=1, seed=2)
    T = 4 * 9 + 2  # 10 blocks, the last one partial (2 tokens)
    L = p.layout(T, 2)
    assert (L.num_blocks, L.block_size, L.window_left, L.window_len, L.band) == (10, 4, 4, 12, None)
    assert L.sparse_rows == (2, 9)
    assert L.global_tokens.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 36, 37]
    assert L.padded_len == 40
    assert L.random.shape == (2, 10, 1)
    assert torch.equal(L.random, torch.from_numpy(np.array(p.random_plan(T, 2))))
    assert p.global_block_ids(10).tolist() == [0, 1, 9]
    assert p.global_block_ids(1).tolist() == [0]
    assert bigbird(4, global_blocks=0).global_block_ids(5).tolist() == []
    assert bigbird(4, global_blocks=1).global_block_ids(5).tolist() == [0]
