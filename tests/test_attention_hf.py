"""Independent references: Hugging Face transformers' BigBird and Longformer attention.

Where the semantics agree, the comparison is exact (same projection weights, same inputs, same random plan):

* BigBird (``BigBirdBlockSparseAttention``, ITC): HF hard-codes 3 window blocks and 2 global blocks (first and
  last), exactly our ``bigbird(b, 3, 2, r)``; its second and second-last query blocks see blocks 0-2 / the last
  three plus the other global block and their random blocks, which is the same key *set* as our clipped window
  + globals. HF draws its random blocks from the global numpy RNG; we feed it our plan by replacing its
  ``_bigbird_block_rand_mask_with_head`` (train mode). HF masks with an additive -10000 where we use a large
  finite negative: identical in fp32 after the softmax.
  Difference that cannot be configured away: in **eval mode HF drops the random blocks** by setting every
  random index to 0, i.e. each query block then attends to global block 0 (1 + r) times in its softmax. Our
  plan is fixed for the model and identical in train and eval (tested below); the test documents that HF's
  eval output differs from its train output.
* Longformer (``LongformerSelfAttention``): HF's ``attention_window=w`` is one-sided ``w//2``, the same as our
  ``longformer(window=w)``; HF removes global tokens from the band and adds them as extra keys, like ours.
  HF uses separate q/k/v projections for global tokens: we set them equal to the local ones. HF needs the
  length to be a multiple of the window and has no dilation in PyTorch, so only dilation 1 is compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genomics_lm.attention import attend, bigbird, longformer

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")


def _x_and_mask(B, T, C, seed, pad):
    """Hidden states (B, T, C), a key padding mask (B, T) (True = real; ``pad`` = padded tokens per row) and the
    seeded generator that drew them, for further draws."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g)
    kpm = torch.ones(B, T, dtype=torch.bool)
    for i, n in enumerate(pad or ()):
        if n:
            kpm[i, T - n:] = False
    return x, kpm, g


def _heads(x, H):  # (B, T, H*D) -> (B, H, T, D)
    B, T, C = x.shape
    return x.view(B, T, H, C // H).transpose(1, 2)


def _merge(x):  # (B, H, T, D) -> (B, T, H*D)
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


# ----------------------------------------------------------------------------------------------- BigBird


def _hf_bigbird(H, D, b, r):
    from transformers import BigBirdConfig
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    cfg = BigBirdConfig(
        hidden_size=H * D,
        num_attention_heads=H,
        block_size=b,
        num_random_blocks=r,
        attention_type="block_sparse",
        use_bias=True,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return BigBirdBlockSparseAttention(cfg, seed=0)


def _hf_bigbird_forward(attn, x, mask, plan=None):
    from transformers.models.big_bird.modeling_big_bird import BigBirdModel

    if plan is not None:  # feed HF our random plan (rows 1 .. nb-2, as HF indexes them)
        rows = [plan[h, 1:-1].astype(np.int32) for h in range(len(plan))]
        attn._bigbird_block_rand_mask_with_head = lambda *a, **k: rows
    blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(
        mask.float(), attn.block_size
    )
    out, _ = attn(x, band_mask=band, from_mask=from_mask, to_mask=to_mask,
                  from_blocked_mask=blocked, to_blocked_mask=blocked)
    return out


def _our_forward(attn, x, pattern, kpm, backend, layer=0):
    H = attn.num_attention_heads if hasattr(attn, "num_attention_heads") else attn.num_heads
    q, k, v = (_heads(proj(x), H) for proj in (attn.query, attn.key, attn.value))
    return _merge(attend(q, k, v, pattern, key_padding_mask=kpm, backend=backend, layer=layer))


@pytest.mark.parametrize("b,r,nb,pad", [(16, 3, 12, None), (8, 2, 14, (0, 21)), (16, 1, 9, (16, 5))])
@pytest.mark.parametrize("backend", ["blocked", "reference"])
def test_bigbird_matches_hf_block_sparse(b, r, nb, pad, backend):
    """Same weights, inputs and random plan: HF BigBird (train mode) == ours, outputs and input gradients."""
    H, D, B, layer = 2, 8, 2, 1
    T = nb * b
    attn = _hf_bigbird(H, D, b, r).train()
    pattern = bigbird(b, window_blocks=3, global_blocks=2, random_blocks=r, seed=5)
    plan = np.asarray(pattern.random_plan(T, H, layer))
    x, kpm, g = _x_and_mask(B, T, H * D, seed=nb, pad=pad)

    xh = x.clone().requires_grad_(True)
    hf = _hf_bigbird_forward(attn, xh, kpm, plan)
    xo = x.clone().requires_grad_(True)
    ours = _our_forward(attn, xo, pattern, kpm if pad else None, backend, layer)
    torch.testing.assert_close(ours, hf, rtol=1e-4, atol=1e-5)
    w = torch.randn(hf.shape, generator=g)
    (gh,) = torch.autograd.grad((hf * w).sum(), xh)
    (go,) = torch.autograd.grad((ours * w).sum(), xo)
    torch.testing.assert_close(go, gh, rtol=1e-4, atol=1e-5)


def _our_module(attn, pattern, layer=0):
    """Our model's :class:`~genomics_lm.model.SelfAttention` holding HF's q/k/v weights (fused), an identity
    output projection and no rotary embedding (HF's block-sparse layer has none): the same function as HF's."""
    from genomics_lm.model import ModelConfig, Rotary, SelfAttention
    from genomics_lm.tokenizer import KmerTokenizer

    H = attn.num_attention_heads
    C = attn.query.weight.shape[0]
    params = {name: value for name, value in pattern.to_dict().items() if name != "kind"}
    config = ModelConfig(tokenizer=KmerTokenizer(2, 2), d_model=C, n_layers=layer + 1, n_heads=H, d_ff=C,
                         dropout=0.0, attention="bigbird", backend="blocked", bigbird=params)
    assert config.attention_pattern() == pattern
    module = SelfAttention(config, layer, config.attention_pattern(), Rotary(C // H))
    module.rotary = torch.nn.Identity()
    with torch.no_grad():
        module.qkv.weight.copy_(torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]))
        module.qkv.bias.copy_(torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]))
        module.out.weight.copy_(torch.eye(C))
        module.out.bias.zero_()
    return module


def test_bigbird_eval_mode_hf_drops_random_blocks_ours_does_not():
    """Our attention module computes the same in ``.train()`` and ``.eval()``: HF's train-mode output (fed our
    plan) in both modes. HF's eval mode replaces every random block by block 0, so its eval output differs."""
    H, D, b, r, nb, layer = 2, 8, 16, 3, 12, 1
    T = nb * b
    attn = _hf_bigbird(H, D, b, r)
    pattern = bigbird(b, random_blocks=r, seed=5)
    ours = _our_module(attn, pattern, layer)
    x = torch.randn(1, T, H * D, generator=torch.Generator().manual_seed(0))
    kpm = torch.ones(1, T, dtype=torch.bool)
    plan = np.asarray(pattern.random_plan(T, H, layer))
    with torch.no_grad():
        attn.train()
        hf_train = _hf_bigbird_forward(attn, x, kpm, plan)
        del attn._bigbird_block_rand_mask_with_head  # HF's own eval behaviour
        attn.eval()
        hf_eval = _hf_bigbird_forward(attn, x, kpm)
    ours.train()
    ours_train = ours(x, None)  # with gradients, as in training
    ours.eval()
    with torch.no_grad():
        ours_eval = ours(x, None)
    torch.testing.assert_close(ours_train.detach(), hf_train, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_eval, hf_train, rtol=1e-4, atol=1e-5, msg=lambda m: f"ours in eval mode: {m}")
    assert torch.equal(ours_train.detach(), ours_eval)
    assert not torch.allclose(hf_eval, hf_train, atol=1e-3), "HF eval mode changes the random blocks"
    # global rows (first and last block) do not use random blocks: they agree in every mode
    torch.testing.assert_close(hf_eval[:, :b], ours_eval[:, :b], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------- Longformer


def _hf_longformer(H, D, window):
    from transformers import LongformerConfig
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    cfg = LongformerConfig(
        hidden_size=H * D, num_attention_heads=H, attention_window=[window], attention_probs_dropout_prob=0.0
    )
    torch.manual_seed(0)
    attn = LongformerSelfAttention(cfg, layer_id=0)
    with torch.no_grad():  # HF's separate global projections := the local ones
        for name in ("query", "key", "value"):
            getattr(attn, f"{name}_global").load_state_dict(getattr(attn, name).state_dict())
    return attn


def _hf_longformer_forward(attn, x, kpm, global_tokens):
    mask = torch.zeros(x.shape[:2])
    mask[:, list(global_tokens)] = 10000.0
    mask[~kpm] = -10000.0
    is_index_masked = mask < 0
    is_index_global = mask > 0
    return attn(
        x,
        attention_mask=mask,
        is_index_masked=is_index_masked,
        is_index_global_attn=is_index_global,
        is_global_attn=bool(is_index_global.any()),
    )[0]


@pytest.mark.parametrize(
    "window,T,global_tokens,pad",
    [(16, 96, (0,), None), (32, 128, (0, 45), (0, 19)), (8, 64, (), (3, 0)), (24, 120, (5, 6, 100), None)],
)
@pytest.mark.parametrize("backend", ["blocked", "reference"])
def test_longformer_matches_hf(window, T, global_tokens, pad, backend):
    """Same weights (global projections = local ones), window and global mask: HF Longformer == ours."""
    H, D, B = 2, 8, 2
    attn = _hf_longformer(H, D, window).eval()
    pattern = longformer(window, global_tokens=global_tokens, block_size=16)
    x, kpm, g = _x_and_mask(B, T, H * D, seed=T, pad=pad)
    xh = x.clone().requires_grad_(True)
    hf = _hf_longformer_forward(attn, xh, kpm, global_tokens)
    xo = x.clone().requires_grad_(True)
    ours = _our_forward(attn, xo, pattern, kpm if pad else None, backend)
    torch.testing.assert_close(ours, hf, rtol=1e-4, atol=1e-5)
    w = torch.randn(hf.shape, generator=g)
    (gh,) = torch.autograd.grad((hf * w).sum(), xh)
    (go,) = torch.autograd.grad((ours * w).sum(), xo)
    torch.testing.assert_close(go, gh, rtol=1e-4, atol=1e-5)
