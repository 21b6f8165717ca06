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


def test_describe_and_dense_exact():
    from genomics_lm.attention import dense

    assert bigbird(16).describe() == "bigbird(block_size=16, window_blocks=3, global_blocks=2, random_blocks=3, seed=0)"
    assert longformer((4, 8), global_tokens=(3, 0)).describe() == (
        "longformer(window=[4, 8], global_tokens=[0, 3], dilation=1, block_size=64)")
    assert dense().describe() == "dense()"
    m = dense().dense_mask(5, 3)
    assert m.shape == (3, 5, 5) and m.dtype == torch.bool and bool(m.all())
    assert dense().density(7, 2, layer=1) == 1.0 and dense().layout(7, 2) is None
    assert longformer((4, 8)).to_dict()["window"] == [4, 8] and longformer(4).to_dict()["window"] == 4


# -- parameters: exact messages ------------------------------------------------------------------------


@pytest.mark.parametrize("make,message", [
    (lambda: bigbird(0), "bigbird block_size must be >= 1, got 0"),
    (lambda: bigbird(True), "bigbird block_size must be an integer, got True"),
    (lambda: bigbird(4, window_blocks=0), "bigbird window_blocks must be >= 1, got 0"),
    (lambda: bigbird(4, window_blocks=4), "bigbird window_blocks must be odd (the query block plus the same "
                                          "number of blocks on each side), got 4"),
    (lambda: bigbird(4, global_blocks=-1), "bigbird global_blocks must be >= 0, got -1"),
    (lambda: bigbird(4, random_blocks=-1), "bigbird random_blocks must be >= 0, got -1"),
    (lambda: bigbird(4, seed=-1), "bigbird seed must be >= 0, got -1"),
    (lambda: bigbird(4, seed=1.0), "bigbird seed must be an integer, got 1.0"),
    (lambda: longformer(7), "longformer window must be even (the total band width: each query sees window//2 "
                            "tokens on each side), got 7"),
    (lambda: longformer((4, 5)), "longformer window[1] must be even (the total band width: each query sees "
                                 "window//2 tokens on each side), got 5"),
    (lambda: longformer((4, -2)), "longformer window[1] must be >= 0, got -2"),
    (lambda: longformer(()), "longformer window: an empty per-layer list"),
    (lambda: longformer([]), "longformer window: an empty per-layer list"),
    (lambda: longformer(4, global_tokens=(1, -3)), "longformer global token must be >= 0, got -3"),
    (lambda: longformer(4, dilation=0), "longformer dilation must be >= 1, got 0"),
    (lambda: longformer(4, block_size=0), "longformer block_size must be >= 1, got 0"),
    (lambda: bigbird(4).num_blocks(0), "seq_len must be >= 1, got 0"),
    (lambda: bigbird(4).random_plan(8, 0), "num_heads must be >= 1, got 0"),
    (lambda: bigbird(4).random_plan(8, 1, layer=-1), "layer must be >= 0, got -1"),
    (lambda: longformer(4).window_for(-1), "layer must be >= 0, got -1"),
    (lambda: longformer((4, 8)).window_for(2), "longformer has windows for 2 layers ([4, 8]), asked for layer 2"),
    (lambda: longformer(4).density(0), "seq_len must be >= 1, got 0"),
])
def test_bad_parameters_exact_messages(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_parameters_normalised():
    p = longformer([8, 4], global_tokens=[5, np.int64(2), 5], dilation=np.int64(2))
    assert p.window == (8, 4) and p.global_tokens == (2, 5) and type(p.global_tokens[0]) is int
    assert longformer(np.int64(6)).window == 6 and type(longformer(np.int64(6)).window) is int
    assert p.window_for(0) == 8 and p.window_for(1) == 4 and longformer(6).window_for(3) == 6
    assert p.global_positions(5).tolist() == [2] and p.global_positions(6).tolist() == [2, 5]
    assert longformer(0, global_tokens=()).dense_mask(4, 1)[0].tolist() == torch.eye(4, dtype=torch.bool).tolist()
    from genomics_lm.attention import make_pattern

    with pytest.raises(ValueError) as info:
        make_pattern("bigbird", block_size=4, stride=2)
    assert str(info.value).startswith("bad parameters for attention pattern 'bigbird': ")
    with pytest.raises(ValueError) as info:
        make_pattern("sparse")
    assert str(info.value) == "unknown attention pattern kind 'sparse' (choose from bigbird, longformer, dense)"
    assert make_pattern("longformer", window=[2, 4]) == longformer((2, 4))


# -- block structure, plan, density: exact ------------------------------------------------------------


def test_global_block_ids_exact():
    p3 = bigbird(4, global_blocks=3)
    assert [p3.global_block_ids(n).tolist() for n in (1, 2, 3, 4, 6)] == [[0], [0, 1], [0, 1, 2], [0, 1, 3],
                                                                           [0, 1, 5]]
    assert bigbird(4, global_blocks=4).global_block_ids(6).tolist() == [0, 1, 4, 5]
    assert bigbird(4, global_blocks=2).global_block_ids(6).tolist() == [0, 5]
    assert bigbird(4).num_blocks(1) == 1 and bigbird(4).num_blocks(8) == 2 and bigbird(4).num_blocks(9) == 3


def test_random_plan_rules():
    """Every non-global row: r distinct sorted blocks, none global or in its window; global rows all -1."""
    for w, g, r, nb, seed in [(3, 2, 3, 20, 0), (1, 0, 2, 9, 4), (5, 3, 1, 12, 2), (3, 1, 2, 8, 1)]:
        p = bigbird(2, window_blocks=w, global_blocks=g, random_blocks=r, seed=seed)
        plan = p.random_plan(2 * nb - 1, 3, layer=1)
        assert plan.shape == (3, nb, r) and plan.dtype == np.int64
        gids = set(p.global_block_ids(nb).tolist())
        for h in range(3):
            for i in range(nb):
                row = plan[h, i].tolist()
                if i in gids:
                    assert row == [-1] * r
                    continue
                assert row == sorted(set(row)) and len(row) == r
                assert not set(row) & (gids | set(range(i - w // 2, i + w // 2 + 1)))
                assert all(0 <= x < nb for x in row)


def test_short_plan_takes_every_other_block():
    """nb = 6 <= 3 + 2 + 3: each non-global row takes all blocks outside its window and the globals."""
    plan = bigbird(4).random_plan(4 * 6, 1)
    assert plan[0].tolist() == [[-1, -1, -1], [3, 4, -1], [4, -1, -1], [1, -1, -1], [1, 2, -1], [-1, -1, -1]]
    plan = bigbird(4, window_blocks=1, global_blocks=0, random_blocks=1).random_plan(4 * 2, 1)
    assert plan[0].tolist() == [[1], [0]]
    assert bigbird(4, random_blocks=0).random_plan(4 * 10, 2).tolist() == [[[]] * 10] * 2


def test_pinned_plan():
    """The seeded draw itself, pinned: a change here changes which blocks every trained model attends to."""
    plan = bigbird(4, window_blocks=3, global_blocks=2, random_blocks=2, seed=7).random_plan(4 * 10, 2, layer=1)
    want = bigbird(4, window_blocks=3, global_blocks=2, random_blocks=2, seed=7).layout(40, 2, 1).random.numpy()
    assert np.array_equal(plan, want)
    assert plan.tolist() == PINNED_PLAN


PINNED_PLAN = [  # bigbird(4, 3, 2, 2, seed=7), T=40 (10 blocks), 2 heads, layer 1
    [[-1, -1], [6, 8], [4, 7], [1, 5], [1, 2], [2, 3], [3, 8], [2, 5], [3, 5], [-1, -1]],
    [[-1, -1], [5, 7], [4, 8], [1, 5], [6, 7], [2, 3], [2, 3], [1, 4], [1, 2], [-1, -1]],
]


@pytest.mark.parametrize("pattern", [
    bigbird(4), bigbird(3, window_blocks=1, global_blocks=0, random_blocks=1, seed=3),
    bigbird(4, window_blocks=5, global_blocks=3, random_blocks=2, seed=1), bigbird(5, random_blocks=0),
    bigbird(4, window_blocks=3, global_blocks=0, random_blocks=1, seed=2),  # windows clipped at both ends
    longformer(4), longformer(6, global_tokens=(0, 9, 30), dilation=3), longformer((2, 8), global_tokens=()),
    longformer(10, global_tokens=(4,), dilation=2, block_size=3),
], ids=lambda p: p.describe())
def test_density_is_the_mask_mean(pattern):
    """density (from the block structure) equals the mean of the exact mask, per layer, heads and lengths
    including partial last blocks and sequences shorter than the band."""
    for T in (1, 5, 23, 41):
        for H, layer in ((1, 0), (3, 1)):
            m = pattern.dense_mask(T, H, layer)
            assert m.shape == (H, T, T) and m.dtype == torch.bool
            assert pattern.density(T, H, layer) == pytest.approx(m.double().mean().item(), rel=1e-12, abs=0)


def test_block_mask_and_dense_mask_exact():
    p = bigbird(2, window_blocks=1, global_blocks=1, random_blocks=1, seed=0)
    bm = p.block_mask(2 * 5 - 1, 2)  # 5 blocks, the last one a single token
    plan = p.random_plan(9, 2)
    assert bm.shape == (2, 5, 5) and bm.dtype == bool
    for h in range(2):
        want = np.eye(5, dtype=bool)
        want[0, :] = want[:, 0] = True
        for i in range(1, 5):
            want[i, plan[h, i, 0]] = True
        assert np.array_equal(bm[h], want)
        dm = p.dense_mask(9, 2)[h].numpy()
        assert np.array_equal(dm, np.repeat(np.repeat(want, 2, 0), 2, 1)[:9, :9])


def test_defaults_are_layer_zero_and_one_head():
    """Methods called without layer/num_heads use layer 0 (and one head for density): seed 1 draws plans whose
    densities differ between layers and heads (the last block has 1 token), so a wrong default shows."""
    p = bigbird(4, window_blocks=1, global_blocks=0, random_blocks=1, seed=1)
    T = 25
    assert p.density(T) == 197 / 625 and p.density(T, 1, 1) == 185 / 625 and p.density(T, 2) == 191 / 625
    assert torch.equal(p.dense_mask(T, 2), p.dense_mask(T, 2, 0))
    assert not torch.equal(p.dense_mask(T, 2, 0), p.dense_mask(T, 2, 1))
    assert torch.equal(p.layout(T, 2).random, p.layout(T, 2, 0).random)
    assert np.array_equal(p.random_plan(T, 2), p.random_plan(T, 2, 0))
    assert np.array_equal(p.block_mask(T, 2), p.block_mask(T, 2, 0))
    lf = longformer((2, 8), global_tokens=())
    assert lf.window_for() == 2
    assert lf.dense_mask(9, 1)[0, 4].sum().item() == 3 and lf.density(9) == lf.density(9, 1, 0) == 25 / 81
    assert lf.layout(9, 1).band == (1, 1) and lf.layout(9, 1, layer=1).band == (4, 1)



def test_is_complete_defaults_to_layer_zero():
    """Per-layer windows (64, 2): at 20 tokens layer 0's band covers every pair, layer 1's does not."""
    p = longformer((64, 2), global_tokens=())
    assert p.is_complete(20) is True and p.is_complete(20, 1, 0) is True
    assert p.is_complete(20, 1, 1) is False


def _layout(window_left, window_len, band, nb=8, b=4):
    from genomics_lm.attention.layout import BlockLayout

    return BlockLayout(seq_len=nb * b, block_size=b, num_blocks=nb, global_tokens=torch.zeros(0, dtype=torch.int64),
                       window_left=window_left, window_len=window_len, band=band, random=None, sparse_rows=(0, nb))


@pytest.mark.parametrize("hw,reach", [(4, 1), (6, 2), (8, 2), (9, 3)])
def test_kv_blocks_trim_a_wide_window_to_the_band(hw, reach):
    """A window of +-3 blocks (of 4 tokens) and a band of hw tokens: query block i keeps the key blocks that
    hold a key within hw tokens of one of its queries, i.e. i - ceil(hw/4) .. i + ceil(hw/4) (clipped)."""
    kv_num, kv_idx = _layout(12, 28, (hw, 1)).kv_blocks(1)
    for i in range(8):
        want = list(range(max(0, i - reach), min(7, i + reach) + 1))
        assert kv_num[0, i].item() == len(want)
        assert kv_idx[0, i, : len(want)].tolist() == want


def test_kv_blocks_keep_a_narrow_window_inside_a_wide_band():
    """Window = the query's own block, band +-6 tokens: the window bounds the listed blocks."""
    kv_num, kv_idx = _layout(0, 4, (6, 2)).kv_blocks(2)
    assert kv_num.tolist() == [[1] * 8] * 2
    assert kv_idx[:, :, 0].tolist() == [list(range(8))] * 2
