"""genomics_lm.attention: patterns against their definitions, every backend against ``reference``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genomics_lm.attention import (
    BACKENDS,
    AttentionPattern,
    attend,
    bigbird,
    dense,
    longformer,
    make_pattern,
    resolve_backend,
)

# ----------------------------------------------------------------------------------------------- helpers


pytestmark = pytest.mark.usefixtures("one_thread")



def _inputs(B, H, T, D, seed=0, dtype=torch.float32, pad=None):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g, dtype=dtype) for _ in range(3))
    kpm = None
    if pad:
        kpm = torch.ones(B, T, dtype=torch.bool)
        for b, n in enumerate(pad):
            if n:
                kpm[b, T - n:] = False
    return q, k, v, kpm


def _fwd_bwd(q, k, v, pattern, kpm, backend, layer=0):
    q, k, v = (x.clone().requires_grad_(True) for x in (q, k, v))
    out = attend(q, k, v, pattern, key_padding_mask=kpm, backend=backend, layer=layer)
    w = torch.linspace(-1.0, 1.0, out.shape[-1], dtype=out.dtype)
    loss = (out * w).sum() + 0.5 * (out**2).sum()
    grads = torch.autograd.grad(loss, (q, k, v))
    return out.detach(), grads


def _assert_blocked_equals_reference_f64(q, k, v, pattern, kpm):
    """float64: the blocked backend equals the reference to rounding, output and dq/dk/dv."""
    ref_out, ref_grads = _fwd_bwd(q, k, v, pattern, kpm, "reference")
    out, grads = _fwd_bwd(q, k, v, pattern, kpm, "blocked")
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-10, atol=1e-12)


def _close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=lambda m: f"{what}: {m}")


# ----------------------------------------------------------------------------------------------- backends

PATTERNS = [
    bigbird(16),  # the ITC default: 3 window, 2 global, 3 random blocks
    bigbird(8, window_blocks=5, global_blocks=1, random_blocks=2, seed=3),
    bigbird(12, window_blocks=1, global_blocks=0, random_blocks=1, seed=5),  # no global blocks at all
    bigbird(16, window_blocks=3, global_blocks=3, random_blocks=0),  # two leading, one trailing global block
    longformer(16, global_tokens=(0,)),
    longformer(24, global_tokens=(0, 7, 150), block_size=16),
    longformer(10, global_tokens=(), dilation=2, block_size=8),
    longformer((8, 32), global_tokens=(3,), block_size=16),  # per-layer windows (layer 1: 32)
    dense(),
]
GRID = [
    # (B, H, T, pad per batch row)
    (1, 1, 160, None),  # a block multiple
    (2, 3, 203, (0, 41)),  # not a block multiple, one padded row
    (2, 2, 48, (5, 0)),  # short: BigBird covers every pair
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.describe())
@pytest.mark.parametrize("B,H,T,pad", GRID, ids=lambda x: str(x))
def test_blocked_matches_reference(pattern, B, H, T, pad):
    layer = 1
    q, k, v, kpm = _inputs(B, H, T, 16, seed=T, pad=pad)
    ref_out, ref_grads = _fwd_bwd(q, k, v, pattern, kpm, "reference", layer)
    out, grads = _fwd_bwd(q, k, v, pattern, kpm, "blocked", layer)
    _close(out, ref_out, "output")
    for name, g, rg in zip("qkv", grads, ref_grads):
        _close(g, rg, f"d{name}")
    assert torch.isfinite(out).all()
    if kpm is not None:  # padded query positions are exactly zero
        assert (out.masked_select(~kpm[:, None, :, None]) == 0).all()


@pytest.mark.parametrize("chunk", [4096, 30000], ids=["chunks-within-heads", "chunks-of-two-heads"])
def test_blocked_matches_reference_float64_several_chunks(monkeypatch, chunk):
    """Several chunks (within a head / of whole heads), window copies at both ends, dense rows in key chunks."""
    import genomics_lm.attention.blocked as blocked

    monkeypatch.setattr(blocked, "_CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(blocked, "_DENSE_ELEMENTS", 512)
    for pattern in (bigbird(8, random_blocks=2), longformer(20, global_tokens=(0, 99), block_size=8)):
        q, k, v, kpm = _inputs(2, 2, 250, 8, seed=1, dtype=torch.float64, pad=(0, 30))
        _assert_blocked_equals_reference_f64(q, k, v, pattern, kpm)


@pytest.mark.parametrize("chunk", [4096, 30000], ids=["per-head-units", "flat-units-of-two-heads"])
def test_blocked_parallel_units_match_reference(monkeypatch, chunk):
    """With several intra-op threads, independent units run on parallel Python threads (one intra-op each)."""
    import genomics_lm.attention.blocked as blocked

    monkeypatch.setattr(blocked, "_CHUNK_ELEMENTS", chunk)
    torch.set_num_threads(2)  # restored by the one_thread fixture
    for pattern in (bigbird(8, random_blocks=2), longformer(16, global_tokens=(0, 30), block_size=8)):
        q, k, v, kpm = _inputs(2, 3, 250, 8, seed=3, dtype=torch.float64, pad=(0, 25))
        _assert_blocked_equals_reference_f64(q, k, v, pattern, kpm)
        assert torch.get_num_threads() == 2, "intra-op threads restored"


@pytest.mark.parametrize("chunk", [None, 4096], ids=["flat", "per-head"])
def test_blocked_accepts_strided_inputs(monkeypatch, chunk):
    """q, k, v as views of one fused (B, T, 3, H, D) projection, as a model produces them (no copies per head)."""
    import genomics_lm.attention.blocked as blocked

    if chunk:
        monkeypatch.setattr(blocked, "_CHUNK_ELEMENTS", chunk)
    B, T, H, D = 2, 96, 2, 8
    for p in (bigbird(16, random_blocks=1), longformer(16, global_tokens=(0, 50), block_size=16)):
        qkv = torch.randn(B, T, 3, H, D, requires_grad=True)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D) views
        kpm = torch.ones(B, T, dtype=torch.bool)
        kpm[1, -20:] = False
        outs = {}
        for backend in ("blocked", "reference"):
            y = attend(q, k, v, p, key_padding_mask=kpm, backend=backend)
            y2 = y.transpose(1, 2).reshape(B, T, H * D)  # what a model does next
            (g,) = torch.autograd.grad((y2 * torch.arange(H * D)).sum(), qkv)
            outs[backend] = (y, g)
        _close(outs["blocked"][0], outs["reference"][0], "strided output")
        _close(outs["blocked"][1], outs["reference"][1], "strided gradient")


FLEX_CASES = [
    (bigbird(16), 2, 2, 150, (0, 30)),
    (bigbird(8, random_blocks=2), 1, 2, 128, None),  # block size below the CPU kernel's 16: grouped blocks
    (longformer(32, global_tokens=(0, 40), block_size=16), 2, 2, 150, (20, 0)),
    # dilation: every 2nd key of the band only (half-width 24 covers the diagonal 16-token blocks, which must
    # still not count as full blocks: the mask_mod applies the dilation)
    (longformer(24, global_tokens=(0, 70), dilation=2, block_size=16), 2, 2, 150, (0, 17)),
]


@pytest.mark.parametrize("pattern,B,H,T,pad", FLEX_CASES, ids=lambda x: str(x))
def test_flex_forward_matches_reference(pattern, B, H, T, pad):
    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v, kpm = _inputs(B, H, T, 16, seed=2, pad=pad)
    with torch.no_grad():
        ref = attend(q, k, v, pattern, kpm, backend="reference")
        out = attend(q, k, v, pattern, kpm, backend="flex")
    _close(out, ref, "flex forward")
    if getattr(pattern, "dilation", 1) > 1:  # the case can see a lost dilation: without it the result differs
        undilated = longformer(pattern.window, pattern.global_tokens, 1, pattern.block_size)
        with torch.no_grad():
            assert not torch.allclose(attend(q, k, v, undilated, kpm, backend="reference"), ref, atol=1e-3)


def test_flex_grouped_kernel_blocks_match_reference(monkeypatch):
    """The grouping used on CUDA (kernel blocks of 128 tokens over 64-token pattern blocks), exercised on CPU."""
    import genomics_lm.attention.flex as flex

    monkeypatch.setitem(flex._KERNEL_MULTIPLE, "cpu", 128)
    flex._block_tables.cache_clear()
    flex._MASK_CACHE.clear()
    try:
        cases = ((bigbird(64, random_blocks=2), (0, 100)), (longformer(96, global_tokens=(0, 200), block_size=64), None))
        for pattern, pad in cases:
            q, k, v, kpm = _inputs(2, 2, 600, 16, seed=6, pad=pad)
            with torch.no_grad():
                flex_out = attend(q, k, v, pattern, kpm, backend="flex")
                _close(flex_out, attend(q, k, v, pattern, kpm, backend="reference"), f"grouped flex {pattern.kind}")
    finally:
        flex._block_tables.cache_clear()
        flex._MASK_CACHE.clear()


def test_flex_block_mask_built_from_indices():
    """The BlockMask holds exactly the pattern's key blocks (no mask function evaluated on all T x T)."""
    from genomics_lm.attention.flex import build_block_mask

    p, T, H = bigbird(16), 256, 2
    bm, Tp = build_block_mask(p, T, 1, H, 0, "cpu", None)
    assert Tp == T
    dense_blocks = bm.to_dense()[0].bool()  # (H, nb, nb)
    assert torch.equal(dense_blocks, torch.from_numpy(p.block_mask(T, H)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention has no backward on CPU (torch 2.13)")
def test_flex_backward_matches_reference_cuda():
    for pattern in (bigbird(16), longformer(32, global_tokens=(0, 9), block_size=16)):
        q, k, v, kpm = (x.cuda() if x is not None else None for x in _inputs(2, 2, 256, 16, seed=4, pad=(0, 40)))
        ref_out, ref_grads = _fwd_bwd(q, k, v, pattern, kpm, "reference")
        out, grads = _fwd_bwd(q, k, v, pattern, kpm, "flex")
        _close(out, ref_out, "flex output")
        for g, rg in zip(grads, ref_grads):
            _close(g, rg, "flex grad")


def test_flex_backward_on_cpu_raises_clearly():
    q, k, v, _ = _inputs(1, 1, 256, 16)  # 16 blocks: really sparse (a complete pattern is computed by SDPA)
    q.requires_grad_(True)
    with pytest.raises(ValueError, match="no backward on CPU"):
        attend(q, k, v, bigbird(16), backend="flex")


def test_auto_backend_choice():
    q = torch.zeros(1, 1, 4, 2)
    assert resolve_backend("auto", q, needs_grad=True) == "blocked"
    assert resolve_backend("auto", q, needs_grad=False) == "blocked"  # no per-shape compile; see api docstring
    with pytest.raises(ValueError, match="auto, flex, blocked, reference"):
        attend(q, q, q, dense(), backend="fast")


def test_key_padding_is_honoured():
    """Changing padded keys/values never changes outputs at real positions, on any backend."""
    for pattern in (bigbird(8), longformer(12, global_tokens=(0, 2), block_size=8)):
        q, k, v, kpm = _inputs(2, 2, 72, 8, pad=(0, 20))
        k2, v2 = k.clone(), v.clone()
        k2[1, :, -20:] = 100.0
        v2[1, :, -20:] = -100.0
        for backend in ("reference", "blocked"):
            a = attend(q, k, v, pattern, kpm, backend=backend)
            b = attend(q, k2, v2, pattern, kpm, backend=backend)
            _close(a, b, f"{backend} padding")


def test_bad_inputs_state_the_numbers():
    q = torch.zeros(2, 1, 8, 4)
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        attend(q, q, q, dense(), key_padding_mask=torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        attend(q, q, q, dense(), key_padding_mask=torch.ones(2, 8))
    with pytest.raises(ValueError, match="same shape"):
        attend(q, q, torch.zeros(2, 1, 8, 5), dense())


def _rel_err(a, b):
    """Relative Frobenius error ||a - b|| / ||b|| in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


BF16_EPS = 2.0**-8  # bfloat16 unit roundoff (8 significant bits)


@pytest.mark.parametrize(
    "pattern",
    [bigbird(16, random_blocks=2), longformer(32, global_tokens=(0, 77), block_size=16),
     longformer(10, global_tokens=(5,), dilation=2, block_size=8)],
    ids=lambda p: p.describe(),
)
def test_blocked_bf16_autocast_matches_fp32(pattern):
    """``blocked`` under ``torch.autocast("cpu", bfloat16)`` (how bf16-mixed training calls it: q, k, v arrive
    in bf16 from autocast linears) against fp32, output and dq/dk/dv.

    Tolerance: bf16 keeps 8 significant bits (unit roundoff u = 2**-8 = 0.0039). Rounding q, k, v alone moves
    the scores, hence the softmax and the output, by a few u in relative (Frobenius) terms; measured here
    ~0.5% (output) and ~0.7% (gradients). The test asks for relative errors <= 5u (about 2%) and, so that
    the kernel adds nothing beyond the precision itself, at most 2x the error of the dense ``reference``
    backend run under the same autocast. A kernel error (a lost block, a mask overflowing in bf16, a wrong
    dtype in the backward) gives O(1) errors or a crash. Padded query rows stay exactly zero.
    """
    B, H, T, D = 2, 2, 200, 16
    q, k, v, kpm = _inputs(B, H, T, D, seed=9, pad=(0, 37))
    w = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(1))

    def run(backend, bf16):
        leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ins = [x.to(torch.bfloat16) for x in leaves] if bf16 else leaves
            out = attend(*ins, pattern, key_padding_mask=kpm, backend=backend)
        assert out.dtype == (torch.bfloat16 if bf16 else torch.float32)
        grads = torch.autograd.grad((out.float() * w).sum(), leaves)
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        return out.float().detach(), grads

    fp32_out, fp32_grads = run("reference", False)
    torch.testing.assert_close(run("blocked", False)[0], fp32_out, rtol=1e-4, atol=2e-5)
    ref_out, ref_grads = run("reference", True)
    out, grads = run("blocked", True)
    assert (out.masked_select(~kpm[:, None, :, None]) == 0).all(), "padded query rows are zero in bf16 too"
    err, ref_err = _rel_err(out, fp32_out), _rel_err(ref_out, fp32_out)
    assert err <= 5 * BF16_EPS and err <= 2 * ref_err, f"bf16 output: rel. error {err:.4f} (reference {ref_err:.4f})"
    for name, g, rg, g32 in zip("qkv", grads, ref_grads, fp32_grads):
        err, ref_err = _rel_err(g, g32), _rel_err(rg, g32)
        assert err <= 5 * BF16_EPS and err <= 2 * ref_err, (
            f"bf16 d{name}: rel. error {err:.4f} (reference {ref_err:.4f})")


# ----------------------------------------------------------------------------------------------- patterns


def _brute_longformer(T, window, globals_, dilation):
    m = torch.zeros(T, T, dtype=torch.bool)
    hw = window // 2
    for i in range(T):
        for j in range(T):
            m[i, j] = (abs(i - j) <= hw * dilation and (i - j) % dilation == 0) or i in globals_ or j in globals_
    return m


@pytest.mark.parametrize("window,globals_,dilation,T", [(8, (0,), 1, 40), (6, (0, 13, 99), 2, 37), (0, (), 1, 9)])
def test_longformer_mask_is_its_definition(window, globals_, dilation, T):
    p = longformer(window, global_tokens=globals_, dilation=dilation)
    m = p.dense_mask(T, 2)
    assert m.shape == (2, T, T)
    expect = _brute_longformer(T, window, [g for g in globals_ if g < T], dilation)
    assert torch.equal(m[0], expect) and torch.equal(m[1], expect)
    # each query sees exactly its band plus the global tokens
    i = T // 2
    band = {j for j in range(T) if abs(i - j) <= window // 2 * dilation and (i - j) % dilation == 0}
    assert set(torch.nonzero(m[0, i]).flatten().tolist()) == band | {g for g in globals_ if g < T}
    assert p.density(T) == pytest.approx(expect.float().mean().item())


def test_longformer_per_layer_windows():
    p = longformer((4, 16), global_tokens=())
    assert p.window_for(0) == 4 and p.window_for(1) == 16
    assert p.dense_mask(40, 1, layer=0)[0, 20].sum() == 5
    assert p.dense_mask(40, 1, layer=1)[0, 20].sum() == 17
    with pytest.raises(ValueError, match="2 layers"):
        p.window_for(2)


def test_bigbird_mask_is_its_definition():
    b, T, H, layer = 8, 8 * 20, 3, 2
    p = bigbird(b, window_blocks=3, global_blocks=2, random_blocks=3, seed=11)
    nb = T // b
    plan = p.random_plan(T, H, layer)
    m = p.dense_mask(T, H, layer)
    for h in range(H):
        for i in range(nb):
            rows = m[h, i * b:(i + 1) * b]
            assert (rows == rows[0]).all(), "a query block shares one key set"
            seen = {j for j in range(nb) if rows[0, j * b:(j + 1) * b].all()}
            assert not any(rows[0, j * b:(j + 1) * b].any() for j in set(range(nb)) - seen), "whole blocks only"
            if i in (0, nb - 1):  # global rows see everything
                assert seen == set(range(nb))
                continue
            window = {i - 1, i, i + 1}
            rand = set(plan[h, i].tolist())
            assert len(rand) == 3 and not rand & (window | {0, nb - 1}), "random blocks are new blocks"
            assert seen == window | {0, nb - 1} | rand
    assert p.density(T, H, layer) == pytest.approx(m.float().mean().item())


def test_bigbird_random_plan_reproducible_and_varied():
    """The plan is recomputed from the seed (cache cleared, a real miss), not read back from the first call."""
    from genomics_lm.attention import patterns

    p = bigbird(16, seed=7)
    T, H = 16 * 40, 4
    a = np.array(p.random_plan(T, H, layer=0))
    patterns._bigbird_random_plan.cache_clear()
    patterns._bigbird_layout.cache_clear()
    again = bigbird(16, seed=7).random_plan(T, H, layer=0)
    assert patterns._bigbird_random_plan.cache_info().misses == 1, "recomputed, not a cache hit"
    assert np.array_equal(a, again), "reproducible from the seed"
    assert np.array_equal(a, bigbird(16, seed=7).layout(T, H, layer=0).random.numpy()), "the kernels' layout too"
    assert not np.array_equal(a, bigbird(16, seed=8).random_plan(T, H, layer=0)), "seed matters"
    assert not np.array_equal(a, p.random_plan(T, H, layer=1)), "differs across layers"
    assert all(not np.array_equal(a[0], a[h]) for h in range(1, H)), "differs across heads"
    assert np.array_equal(a[:2], p.random_plan(T, 2, layer=0)), "a head's plan does not depend on the head count"


def test_bigbird_random_plan_same_in_a_fresh_process():
    """A checkpoint stores the seed, not the plan: a new process (another global RNG state, empty caches) must
    draw the same random blocks for every layer, or a reloaded model attends elsewhere than it was trained to."""
    import subprocess
    import sys

    p, T, H, layers = bigbird(8, random_blocks=3, seed=11), 8 * 30 + 5, 3, 3
    code = (
        "import json, sys; import numpy as np; np.random.seed(12345); "
        "from genomics_lm.attention import bigbird; p = bigbird(8, random_blocks=3, seed=11); "
        f"print(json.dumps([p.random_plan({T}, {H}, layer).tolist() for layer in range({layers})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    for layer in range(layers):
        ours = p.random_plan(T, H, layer)
        assert (ours >= 0).sum() > 0, "the plan has random blocks to compare"
        assert np.array_equal(np.array(theirs[layer]), ours), f"layer {layer}: another plan in a fresh process"


def test_bigbird_plan_same_in_train_and_eval():
    """The model's attention module in ``.train()`` (with gradients) and ``.eval()`` (no_grad) gives the same
    output, and both are its own layer's random plan (the reference backend on the same q, k, v): a module
    that switched the seed or dropped the random blocks in eval (as HF BigBird does) fails here."""
    from genomics_lm.model import ModelConfig, Rotary, SelfAttention
    from genomics_lm.tokenizer import KmerTokenizer

    config = ModelConfig(tokenizer=KmerTokenizer(2, 2), d_model=16, n_layers=4, n_heads=2, d_ff=32, dropout=0.0,
                         attention="bigbird", backend="blocked",
                         bigbird=dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=3, seed=0))
    p, layer, T = config.attention_pattern(), 3, 96  # 12 blocks > 3 + 2 + 3: random blocks in use
    assert p.density(T, 2, layer) < 1.0 and (p.random_plan(T, 2, layer) >= 0).any()
    torch.manual_seed(0)
    module = SelfAttention(config, layer, p, Rotary(config.head_dim))
    x = torch.randn(2, T, 16)
    kpm = torch.ones(2, T, dtype=torch.bool)
    kpm[1, -10:] = False

    module.train()
    with torch.enable_grad():
        train_out = module(x, kpm)
        assert train_out.requires_grad
    module.eval()
    with torch.no_grad():
        eval_out = module(x, kpm)
    assert torch.equal(train_out.detach(), eval_out), "train and eval outputs differ"

    def by_hand(plan_layer):  # the module's computation, with the reference backend and a chosen layer
        with torch.no_grad():
            q, k, v = module.qkv(x).view(2, T, 3, 2, 8).permute(2, 0, 3, 1, 4)
            y = attend(module.rotary(q), module.rotary(k), v, p, kpm, backend="reference", layer=plan_layer)
            return module.out(y.transpose(1, 2).reshape(2, T, 16))

    _close(eval_out[kpm], by_hand(layer)[kpm], "eval output vs its layer's plan")
    assert not torch.allclose(eval_out[kpm], by_hand(2)[kpm], atol=1e-4), "another layer's plan is visible"


def test_short_inputs_cover_every_pair():
    """With no more blocks than window + global + random, BigBird is every pair (by the pattern, not a switch)."""
    p = bigbird(16)  # 3 + 2 + 3 = 8 blocks
    for T in (1, 16, 100, 128):
        assert p.density(T) == 1.0
        assert p.dense_mask(T, 2).all()
    assert p.density(16 * 9) < 1.0
    assert longformer(64, global_tokens=()).density(33) == 1.0


def test_layout_kv_blocks_match_block_mask():
    p = bigbird(8, random_blocks=2, seed=1)
    T, H = 8 * 30 + 3, 2
    L = p.layout(T, H, layer=1)
    kv_num, kv_idx = L.kv_blocks(H)
    bm = p.block_mask(T, H, layer=1)
    for h in range(H):
        for i in range(L.num_blocks):
            assert sorted(kv_idx[h, i, : kv_num[h, i]].tolist()) == np.nonzero(bm[h, i])[0].tolist()


# ----------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "pattern",
    [bigbird(32, 5, 2, 1, seed=9), longformer(128, global_tokens=(0, 5), dilation=2), longformer((8, 16)), dense()],
    ids=lambda p: p.kind,
)
def test_to_dict_round_trip(pattern):
    d = json.loads(json.dumps(pattern.to_dict()))
    again = make_pattern(**d)
    assert again == pattern and isinstance(again, AttentionPattern)
    assert again.to_dict() == pattern.to_dict()


@pytest.mark.parametrize(
    "kind,params,match",
    [
        ("bigbird", {"block_size": 0}, "block_size must be >= 1, got 0"),
        ("bigbird", {"block_size": 16, "window_blocks": 2}, "window_blocks must be odd.*got 2"),
        ("bigbird", {"block_size": 16, "window_blocks": 0}, "window_blocks must be >= 1, got 0"),
        ("bigbird", {"block_size": 16, "random_blocks": -1}, "random_blocks must be >= 0, got -1"),
        ("bigbird", {"block_size": 16, "global_blocks": 1.5}, "global_blocks must be an integer"),
        ("longformer", {"window": 7}, "window must be even.*got 7"),
        ("longformer", {"window": -2}, "window must be >= 0, got -2"),
        ("longformer", {"window": 8, "dilation": 0}, "dilation must be >= 1, got 0"),
        ("longformer", {"window": 8, "global_tokens": (-1,)}, "global token must be >= 0, got -1"),
        ("sparse", {}, "unknown attention pattern kind 'sparse'.*bigbird, longformer, dense"),
        ("bigbird", {"block": 16}, "bad parameters for attention pattern 'bigbird'"),
    ],
)
def test_bad_pattern_parameters(kind, params, match):
    with pytest.raises(ValueError, match=match):
        make_pattern(kind, **params)


def test_backends_listed():
    assert BACKENDS == ("auto", "flex", "blocked", "reference")


# ----------------------------------------------------------------------------------------------- benchmark


def test_bench_table_and_plot(tmp_path):
    """The benchmark's table (ratios vs dense and HF BigBird) and plot from records, without running cases."""
    from genomics_lm.bench.attention import format_table, plot
    from genomics_lm.cli.bench_attention import build_parser

    assert build_parser().prog == "genomics-lm bench attention"
    recs = [
        {"method": "dense", "backend": "sdpa", "length": 4096, "pass": "fwd+bwd", "time_s": 1.0, "peak_mem_mb": 100.0},
        {"method": "bigbird", "backend": "blocked", "length": 4096, "pass": "fwd+bwd", "time_s": 0.1,
         "peak_mem_mb": 10.0, "tensor_peak_mb": 5.0},
        {"method": "hf-bigbird", "backend": "hf", "length": 4096, "pass": "fwd+bwd", "time_s": 0.5,
         "peak_mem_mb": 200.0, "tensor_peak_mb": 100.0},
        {"method": "bigbird", "backend": "flex", "length": 4096, "pass": "fwd+bwd", "skipped": "no CPU backward"},
    ]
    table = format_table(recs)
    row = next(line for line in table.splitlines() if "bigbird/blocked" in line)
    assert "10.0x" in row and "5.0x" in row and "0.050" in row
    assert "skipped: no CPU backward" in table
    plot(recs, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 0
