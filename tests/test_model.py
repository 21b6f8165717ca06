"""Tests of genomics_lm.model: shapes, padding invariance, weight tying, config, RoPE, checkpointing, 1k/8k runs."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch
import torch.nn.functional as F

from genomics_lm.attention import attend, longformer, make_pattern
from genomics_lm.tokenizer import KmerTokenizer
from genomics_lm.model import (
    ConfigError,
    Encoder,
    MaskedLM,
    ModelConfig,
    ConvStem,
    MultiLabelClassifier,
    Rotary,
    SequenceClassifier,
    load_encoder_weights,
    num_parameters,
)

ATTENTIONS = ["bigbird", "longformer", "dense"]
PAD, UNK, CLS, SEP, MASK = range(5)


def tiny(attention: str = "dense", **overrides) -> ModelConfig:
    """A tiny model; BigBird blocks of 8 and a Longformer band of 16 so that short inputs are really sparse."""
    cfg = dict(
        tokenizer=KmerTokenizer(2, 2), d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, attention=attention,
        bigbird=dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=1, seed=0),
        longformer=dict(window=16, global_tokens=[0], dilation=1, block_size=8),
    )
    cfg.update(overrides)
    return ModelConfig(**cfg)


def tiny_lf(**params) -> dict:
    """The tiny Longformer parameters with some replaced."""
    return {**dict(window=16, global_tokens=[0], dilation=1, block_size=8), **params}


def tiny_bb(**params) -> dict:
    return {**dict(block_size=8, window_blocks=3, global_blocks=2, random_blocks=1, seed=0), **params}


def random_ids(config: ModelConfig, B: int, T: int, seed: int = 0) -> torch.Tensor:
    """Random k-mer ids with [CLS] first: (B, T) long."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.vocab_size, (B, T), generator=g)
    ids[:, 0] = CLS
    return ids


# ---------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_shapes_every_head(attention):
    torch.manual_seed(0)
    config = tiny(attention)
    ids = random_ids(config, 2, 50)
    ids[1, 37:] = PAD  # second row padded
    assert Encoder(config)(ids).shape == (2, 50, 32)
    assert MaskedLM(config)(ids).shape == (2, 50, config.vocab_size)
    for pooling in ("cls", "mean"):
        assert SequenceClassifier(config, num_labels=2, pooling=pooling)(ids).shape == (2, 2)
        multi = MultiLabelClassifier(config, num_labels=7, pooling=pooling)
        assert multi.multi_label and multi(ids).shape == (2, 7)
    assert not SequenceClassifier(config, 3).multi_label
    rms = Encoder(tiny(attention, norm="rmsnorm"))
    assert isinstance(rms.norm, torch.nn.RMSNorm) and torch.isfinite(rms(ids)).all()


def test_explicit_mask_equals_default_mask():
    torch.manual_seed(0)
    model = Encoder(tiny("longformer")).eval()
    ids = random_ids(model.config, 2, 40)
    ids[0, 30:] = PAD
    assert torch.equal(model(ids), model(ids, ids != PAD))
    with pytest.raises(ValueError, match="attention_mask shape"):
        model(ids, torch.ones(2, 39, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------------
# Padding invariance
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", [0, 5])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padding_invariance(attention, stem):
    """Appending [PAD]s (alone or batched with a longer row) leaves the real positions' outputs unchanged.

    BigBird's random plan depends on the number of blocks, so the padded lengths here (90 -> 96 with blocks
    of 8) keep the same block count (12); padding into more blocks legitimately changes the random blocks.
    The 12 blocks exceed window + global + random blocks, so the pattern is genuinely sparse.
    """
    torch.manual_seed(0)
    config = tiny(attention, conv_stem=stem)  # the conv stem zeroes padding before convolving
    model = Encoder(config).eval()
    assert (model.stem is None) == (stem == 0)
    L, T = 90, 96
    ids = random_ids(config, 1, L, seed=1)
    alone = model(ids)  # (1, L, d)

    padded = F.pad(ids, (0, T - L), value=PAD)  # (1, T)
    out = model(padded)
    torch.testing.assert_close(out[:, :L], alone, rtol=1e-5, atol=1e-5)

    # batched with a full-length row: the short row still sees only its own tokens
    batch = torch.cat([padded, random_ids(config, 1, T, seed=2)])
    out = model(batch)
    torch.testing.assert_close(out[:1, :L], alone, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out).all()

    # the heads too: mean pooling ignores the padding
    clf = SequenceClassifier(config, 3, pooling="mean").eval()
    torch.testing.assert_close(clf(padded), clf(ids), rtol=1e-5, atol=1e-5)


def test_conv_stem_sees_its_kernel_width_and_not_padding():
    """A width-5 stem: a change at token 10 reaches tokens 8..12 only; a padded token's value reaches none."""
    torch.manual_seed(0)
    stem = ConvStem(tiny(conv_stem=5)).eval()
    x = torch.randn(1, 20, 32)  # (B, T, d_model)
    x2 = x.clone()
    x2[0, 10] += 1.0
    changed = ((stem(x2, None) - stem(x, None)).abs().sum(-1)[0] > 0).nonzero().flatten().tolist()
    assert changed == [8, 9, 10, 11, 12]
    mask = torch.ones(1, 20, dtype=torch.bool)
    mask[0, 10] = False
    torch.testing.assert_close(stem(x2, mask)[0, mask[0]], stem(x, mask)[0, mask[0]], rtol=0, atol=0)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_backends_agree_at_model_level(attention):
    """The default CPU kernel (auto = blocked) gives the reference (dense-mask) result, padding included."""
    torch.manual_seed(0)
    ref = MaskedLM(tiny(attention, backend="reference")).eval()
    blocked = MaskedLM(tiny(attention, backend="blocked")).eval()
    blocked.load_state_dict(ref.state_dict())
    ids = random_ids(ref.config, 2, 100)
    ids[1, 70:] = PAD
    real = ids != PAD
    torch.testing.assert_close(blocked(ids)[real], ref(ids)[real], rtol=1e-4, atol=1e-4)


def test_each_layer_gets_its_own_index(monkeypatch):
    """attend is called with layer=0..n_layers-1 (BigBird's random plan differs per layer) and the backend."""
    import genomics_lm.model as model_module

    calls = []
    real_attend = model_module.attend

    def spy(q, k, v, pattern, key_padding_mask=None, backend="auto", layer=0):
        calls.append((pattern.kind, backend, layer, tuple(q.shape)))
        return real_attend(q, k, v, pattern, key_padding_mask=key_padding_mask, backend=backend, layer=layer)

    monkeypatch.setattr(model_module, "attend", spy)
    model = Encoder(tiny("bigbird", n_layers=3, backend="blocked"))
    model(random_ids(model.config, 2, 40))
    assert calls == [("bigbird", "blocked", layer, (2, 4, 40, 8)) for layer in range(3)]


def _spy_attend(monkeypatch, keep=lambda layer: True):
    """Record every ``attend`` call of the model: (q, k, v, key_padding_mask, pattern, layer, output), detached."""
    import genomics_lm.model as model_module

    calls = []
    real_attend = model_module.attend

    def spy(q, k, v, pattern, key_padding_mask=None, backend="auto", layer=0):
        out = real_attend(q, k, v, pattern, key_padding_mask=key_padding_mask, backend=backend, layer=layer)
        if keep(layer):
            calls.append(tuple(x.detach() if torch.is_tensor(x) else x
                               for x in (q, k, v, key_padding_mask, pattern, layer, out)))
        return out

    monkeypatch.setattr(model_module, "attend", spy)
    return calls


@pytest.mark.parametrize("attention,checkpointing", [("bigbird", False), ("bigbird", True), ("longformer", False)])
def test_train_and_eval_give_the_same_outputs(attention, checkpointing):
    """Dropout 0: the model in ``.train()`` (gradients on, the training path, gradient checkpointing or not) and
    in ``.eval()`` (no_grad) computes the same logits. BigBird must keep the random plan it was trained with in
    eval (HF BigBird drops its random blocks in eval mode), Longformer its band and global tokens."""
    torch.manual_seed(0)
    config = tiny(attention, n_layers=3, gradient_checkpointing=checkpointing,
                  longformer=tiny_lf(global_tokens=[0, 41]))
    model = MaskedLM(config)
    T = 100  # 13 blocks of 8 > window + global + random blocks: the pattern is sparse, random blocks in use
    ids = random_ids(config, 2, T)
    ids[1, 77:] = PAD
    real = ids != PAD
    pattern = model.encoder.pattern
    for layer in range(config.n_layers):
        assert pattern.density(T, config.n_heads, layer) < 0.6
        if attention == "bigbird":
            assert (pattern.random_plan(T, config.n_heads, layer) >= 0).any()
    model.train()
    train_logits = model(ids)
    train_logits[real].sum().backward()  # a real training step's graph
    model.eval()
    with torch.no_grad():
        eval_logits = model(ids)
    assert torch.equal(train_logits.detach()[real], eval_logits[real]), "train and eval logits differ"


def test_longformer_dilation_end_to_end(monkeypatch):
    """Dilation 2 from the config to every CPU backend: ModelConfig(longformer={"dilation": 2}) -> the pattern
    (also after a JSON round trip, as in a checkpoint) -> every layer's ``attend`` equals the reference backend on
    the same q, k, v: ``blocked`` output and gradients, ``flex`` forward (no CPU backward). Without the dilation
    the reference gives another result, so a lost dilation is visible."""
    lf = tiny_lf(window=24, global_tokens=[0, 70], dilation=2, block_size=16)
    config = tiny("longformer", d_model=32, n_heads=2, longformer=lf)  # head_dim 16: flex's shapes in test_attention
    pattern = config.attention_pattern()
    assert pattern.dilation == 2
    assert pattern == longformer(24, global_tokens=(0, 70), dilation=2, block_size=16)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))).attention_pattern() == pattern
    undilated = longformer(24, global_tokens=(0, 70), dilation=1, block_size=16)
    ids = random_ids(config, 2, 150)
    ids[1, 133:] = PAD

    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
        backends = ["blocked", "flex"]
    except ImportError:
        backends = ["blocked"]
    for backend in backends:
        torch.manual_seed(0)
        model = Encoder(dataclasses.replace(config, backend=backend))
        assert all(block.attn.pattern == pattern for block in model.blocks)
        calls = _spy_attend(monkeypatch)
        if backend == "flex":  # forward only on CPU
            with torch.no_grad():
                model.eval()(ids)
        else:
            model.train()(ids)
        assert [c[5] for c in calls] == list(range(config.n_layers))
        for q, k, v, kpm, p, layer, out in calls:
            assert p == pattern and kpm is not None
            with torch.no_grad():
                ref = attend(q, k, v, p, kpm, backend="reference", layer=layer)
                torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-5,
                                           msg=lambda m: f"{backend} layer {layer}: {m}")
                assert not torch.allclose(attend(q, k, v, undilated, kpm, backend="reference", layer=layer), ref,
                                          atol=1e-3), "dilation 1 would give the same result: the test is blind"
            if backend == "blocked":  # gradients too
                w = torch.randn(out.shape, generator=torch.Generator().manual_seed(layer))
                grads = {}
                for name in ("blocked", "reference"):
                    leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
                    y = attend(*leaves, p, kpm, backend=name, layer=layer)
                    grads[name] = torch.autograd.grad((y * w).sum(), leaves)
                for g, rg in zip(grads["blocked"], grads["reference"]):
                    torch.testing.assert_close(g, rg, rtol=1e-4, atol=2e-5)


BF16_EPS = 2.0**-8  # bfloat16 unit roundoff (8 significant bits)


@pytest.mark.parametrize("attention", ["bigbird", "longformer"])
def test_bf16_autocast_matches_fp32(attention):
    """A bf16-mixed step on CPU (``torch.autocast("cpu", bfloat16)``, as ``configs/pretrain/base.yaml`` trains)
    with the ``blocked`` kernel: hidden states and every parameter gradient against the fp32 model.

    Tolerance: bf16 keeps 8 significant bits (u = 2**-8 = 0.0039); autocast runs the linears, RoPE and attention
    in bf16, so each layer adds a few u of relative error (measured: hidden ~0.15%, gradients <= ~0.9% for
    2 layers). Required: relative (Frobenius) errors <= 5u (about 2%), and at most 2x (+ u) the error of the
    same model on the dense ``reference`` backend under the same autocast, i.e. the sparse kernel adds nothing
    beyond bf16 rounding. Kernel errors (a lost block, a bf16 mask overflow, a dtype mix-up) give O(1)
    differences or a crash.
    """
    config = tiny(attention, longformer=tiny_lf(global_tokens=[0, 41]))
    ids = random_ids(config, 2, 150)
    ids[1, 120:] = PAD
    real = ids != PAD
    w = torch.randn(2, 150, config.d_model, generator=torch.Generator().manual_seed(1))
    results = {}
    for backend in ("blocked", "reference"):
        torch.manual_seed(0)
        model = Encoder(dataclasses.replace(config, backend=backend)).train()
        for bf16 in (False, True):
            model.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hidden = model(ids)
            ((hidden.float() * w)[real]).sum().backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters()}
            assert all(torch.isfinite(g).all() for g in grads.values())
            results[backend, bf16] = (hidden.detach().float()[real], grads)

    def rel(a, b):
        a, b = a.double(), b.double()
        return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()

    h32, g32 = results["reference", False]
    torch.testing.assert_close(results["blocked", False][0], h32, rtol=1e-4, atol=1e-4)
    (h, g), (h_ref, g_ref) = results["blocked", True], results["reference", True]
    pairs = [("hidden", h, h_ref, h32)] + [(n, g[n], g_ref[n], g32[n]) for n in g32]
    for name, ours, ref, exact in pairs:
        err, ref_err = rel(ours, exact), rel(ref, exact)
        assert err <= 5 * BF16_EPS and err <= 2 * ref_err + BF16_EPS, (
            f"{name}: bf16 relative error {err:.4f} (reference backend {ref_err:.4f})")


def test_mean_pooling_is_mean_over_real_tokens():
    torch.manual_seed(0)
    config = tiny("dense")
    clf = SequenceClassifier(config, 2, pooling="mean").eval()
    ids = random_ids(config, 2, 20)
    ids[0, 12:] = PAD
    h = clf.encoder(ids)
    expected = torch.stack([h[0, :12].mean(0), h[1].mean(0)])
    torch.testing.assert_close(clf(ids), clf.classifier(expected))
    cls = SequenceClassifier(config, 2, pooling="cls").eval()
    cls.encoder.load_state_dict(clf.encoder.state_dict())
    cls.classifier.load_state_dict(clf.classifier.state_dict())
    torch.testing.assert_close(cls(ids), clf.classifier(h[:, 0]))


# ---------------------------------------------------------------------------------------------------
# MLM weight tying
# ---------------------------------------------------------------------------------------------------


def test_mlm_weight_tying():
    torch.manual_seed(0)
    config = tiny("dense")
    mlm = MaskedLM(config)
    assert mlm.decoder_weight is mlm.encoder.tok_emb.weight
    # counted once: the decoder adds only its bias (and the transform) on top of the encoder
    extra = sum(p.numel() for n, p in mlm.named_parameters() if not n.startswith("encoder."))
    assert extra == config.d_model * config.d_model + config.d_model + 2 * config.d_model + config.vocab_size
    assert num_parameters(mlm) == num_parameters(mlm.encoder) + extra
    # the output projection IS the embedding: a change of one embedding row changes that token's logit
    ids = random_ids(config, 1, 16)
    ids[ids == 9] = 10  # token 9 absent from the input
    mlm.eval()
    before = mlm(ids)
    with torch.no_grad():
        mlm.encoder.tok_emb.weight[9] += 1.0  # ... so only its logit column can move
    changed = (mlm(ids) - before).abs().amax(dim=(0, 1)) > 0
    assert changed.nonzero().flatten().tolist() == [9]
    # one state-dict entry, one gradient
    assert not any("decoder.weight" in key for key in mlm.state_dict())
    mlm(ids).sum().backward()
    assert mlm.encoder.tok_emb.weight.grad is not None


# ---------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------


def test_config_defaults_and_vocab():
    config = ModelConfig()
    assert config.vocab_size == 5 + 4**6
    assert ModelConfig(tokenizer=KmerTokenizer(3)).vocab_size == 69
    assert ModelConfig(tokenizer={"k": 3, "stride": 1}).tokenizer == KmerTokenizer(3, 1)
    config.validate()


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        tiny("longformer", longformer=tiny_lf(window=[8, 32], global_tokens=[0, 5]), rope_base=5000.0, norm="rmsnorm"),
        tiny("bigbird", bigbird=tiny_bb(seed=7), gradient_checkpointing=True, backend="blocked"),
    ],
)
def test_config_round_trip(config):
    d = json.loads(json.dumps(config.to_dict()))  # plain JSON
    again = ModelConfig.from_dict(d)
    assert again == config
    assert again.to_dict() == config.to_dict()
    # the attention pattern is plain data too, and rebuilds
    pattern = json.loads(json.dumps(config.attention_pattern().to_dict()))
    assert pattern["kind"] == config.attention
    assert make_pattern(**pattern).to_dict() == config.attention_pattern().to_dict()


def test_per_layer_longformer_windows():
    config = tiny("longformer", longformer=tiny_lf(window=[8, 32]))
    assert config.attention_pattern().to_dict()["window"] == [8, 32]
    model = Encoder(config)
    assert [(b.attn.pattern.window_for(b.attn.layer)) for b in model.blocks] == [8, 32]
    # a per-layer window really changes the output (the first layer sees less context)
    ids = random_ids(config, 1, 64)
    torch.manual_seed(0)
    narrow = Encoder(tiny("longformer", longformer=tiny_lf(window=[8, 8]))).eval()
    wide = Encoder(tiny("longformer", longformer=tiny_lf(window=[8, 32]))).eval()
    wide.load_state_dict(narrow.state_dict())
    assert not torch.allclose(narrow(ids), wide(ids))


def test_from_dict_unknown_key():
    d = ModelConfig().to_dict()
    d["n_layer"] = 3
    with pytest.raises(ValueError, match=r"unknown keys \['n_layer'\]"):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_model=30, n_heads=4), "d_model=30 is not divisible by n_heads=4"),
        (dict(d_model=36, n_heads=12), "head_dim = d_model / n_heads = 36/12 = 3 must be even"),
        (dict(attention="performer"), "attention='performer'"),
        (dict(backend="triton"), "backend='triton'"),
        (dict(norm="batchnorm"), "norm='batchnorm'"),
        (dict(dropout=1.0), "dropout=1.0"),
        (dict(n_layers=0), "n_layers must be a positive integer, got 0"),
        (dict(attention="longformer", longformer=tiny_lf(window=[8, 16, 32])), "3 per-layer values but n_layers=2"),
        (dict(attention="longformer", longformer=tiny_lf(window=-2)), "longformer window must be >= 0, got -2"),
        (dict(attention="longformer", longformer=tiny_lf(global_tokens=[-1])), "global token must be >= 0"),
        (dict(attention="longformer", longformer=tiny_lf(windw=8)), "unexpected keyword argument 'windw'"),
        (dict(tokenizer="k6"), "tokenizer must be a KmerTokenizer"),
        (dict(conv_stem=4), "conv_stem=4 must be 0 \\(none\\) or an odd kernel width"),
        (dict(conv_stem=-1), "conv_stem=-1 must be 0"),
    ],
)
def test_validate_errors(overrides, message):
    config = tiny(**{"attention": "dense", **overrides})
    with pytest.raises(ValueError, match=message):
        config.validate()
    with pytest.raises(ConfigError):  # also a UserError: one line on the command line
        Encoder(config)


def test_validate_surfaces_pattern_errors():
    """Parameters the attention package rejects fail at config time, not in the first forward."""
    with pytest.raises(ValueError, match="bigbird pattern .*window_blocks must be odd"):
        tiny("bigbird", bigbird=tiny_bb(window_blocks=2)).validate()
    with pytest.raises(ValueError, match="must be even"):
        tiny("longformer", longformer=tiny_lf(window=15)).validate()


def test_classifier_arguments():
    with pytest.raises(ValueError, match="pooling='max'"):
        SequenceClassifier(tiny(), 2, pooling="max")
    with pytest.raises(ValueError, match="num_labels"):
        SequenceClassifier(tiny(), 0)


# ---------------------------------------------------------------------------------------------------
# Rotary embeddings
# ---------------------------------------------------------------------------------------------------


def test_rotary_depends_only_on_offset():
    """<rope(q, m), rope(k, n)> is a function of m - n: the score matrix of fixed q, k is Toeplitz."""
    torch.manual_seed(0)
    D, T = 16, 1024
    rope = Rotary(D, base=10000.0)
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    Q = rope(q.expand(T, D))  # q placed at every position 0..T-1
    K = rope(k.expand(T, D))
    S = Q @ K.T  # S[m, n] = <rope(q, m), rope(k, n)>
    torch.testing.assert_close(S[1:, 1:], S[:-1, :-1], rtol=0, atol=1e-3)  # shift both: unchanged
    torch.testing.assert_close(S[0, 0], q @ k)  # offset 0 = no rotation at all
    for offset in (1, 17, 500):  # every pair with the same offset gives the same score
        diag = torch.diagonal(S, offset=-offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), rtol=0, atol=1e-3)
    assert not torch.allclose(S[10, 0], S[10, 5])  # ... and different offsets do differ
    torch.testing.assert_close(Q.norm(dim=-1), q.norm().expand(T))  # a rotation: norms kept


def test_rotary_cache_grows_and_survives_inference_mode():
    rope = Rotary(8)
    with torch.inference_mode():
        rope(torch.randn(1, 1, 10, 8))  # the table built here must still be usable in training
    x = torch.randn(1, 1, 10, 8, requires_grad=True)
    rope(x).sum().backward()
    assert x.grad is not None
    y = rope(torch.randn(1, 1, 100, 8))  # longer than the cache: it grows
    assert y.shape == (1, 1, 100, 8)
    cos, sin = rope.cos_sin(100, torch.device("cpu"), torch.float32)
    assert cos.shape == (100, 8)
    assert not any("rotary" in key for key in Encoder(tiny()).state_dict())


# ---------------------------------------------------------------------------------------------------
# Gradient checkpointing
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_gradient_checkpointing_same_gradients(attention, dropout):
    torch.manual_seed(0)
    plain = MaskedLM(tiny(attention, dropout=dropout))
    ckpt = MaskedLM(tiny(attention, dropout=dropout, gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    ids = random_ids(plain.config, 2, 64)
    ids[1, 50:] = PAD
    target = random_ids(plain.config, 2, 64, seed=3)
    grads = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(123)  # same dropout masks (checkpoint replays the RNG state in recomputation)
        loss = F.cross_entropy(model(ids).flatten(0, 1), target.flatten())
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------------
# Pretrained MLM -> classifier
# ---------------------------------------------------------------------------------------------------


def test_load_encoder_weights_from_mlm():
    torch.manual_seed(0)
    config = tiny("bigbird")
    mlm = MaskedLM(config)
    clf = SequenceClassifier(config, 2)
    head_before = clf.classifier.weight.clone()
    load_encoder_weights(clf, mlm)
    for key, value in mlm.encoder.state_dict().items():
        assert torch.equal(clf.encoder.state_dict()[key], value)
    assert torch.equal(clf.classifier.weight, head_before)  # the task head keeps its init
    ids = random_ids(config, 1, 40)
    torch.testing.assert_close(clf.eval().encoder(ids), mlm.eval().encoder(ids))

    # from a state dict, plain or as saved by a LightningModule holding the model as self.model
    clf2 = MultiLabelClassifier(config, 5)
    load_encoder_weights(clf2, {f"model.{k}": v for k, v in mlm.state_dict().items()})
    assert torch.equal(clf2.encoder.tok_emb.weight, mlm.encoder.tok_emb.weight)
    enc = Encoder(config)
    load_encoder_weights(enc, mlm.state_dict())
    assert torch.equal(enc.tok_emb.weight, mlm.encoder.tok_emb.weight)


def test_load_encoder_weights_shape_mismatch():
    mlm = MaskedLM(tiny("dense", d_model=32))
    expected = r"shape mismatch: .*tok_emb.weight: pretrained \(21, 32\) vs model \(21, 64\)"
    with pytest.raises(ValueError, match=expected):
        load_encoder_weights(SequenceClassifier(tiny("dense", d_model=64), 2), mlm)
    with pytest.raises(ValueError, match="missing in pretrained"):
        load_encoder_weights(SequenceClassifier(tiny("dense", n_layers=3), 2), mlm)
    with pytest.raises(ValueError, match="no encoder weights"):
        load_encoder_weights(SequenceClassifier(tiny("dense"), 2), {"foo.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------------
# Init
# ---------------------------------------------------------------------------------------------------


def test_init():
    torch.manual_seed(0)
    config = ModelConfig(tokenizer=KmerTokenizer(3), d_model=128, n_layers=4, n_heads=4, d_ff=256)
    model = MaskedLM(config)
    assert abs(model.encoder.tok_emb.weight.std().item() - 0.02) < 0.002
    assert abs(model.encoder.blocks[0].attn.qkv.weight.std().item() - 0.02) < 0.002
    residual_std = 0.02 / (2 * config.n_layers) ** 0.5
    assert abs(model.encoder.blocks[0].attn.out.weight.std().item() - residual_std) < 0.001
    assert model.encoder.blocks[0].attn.qkv.bias.abs().max() == 0
    zero = Encoder(ModelConfig(tokenizer=KmerTokenizer(3), d_model=64, n_layers=2, n_heads=4, d_ff=128,
                               zero_init_residual=True))
    assert all(b.attn.out.weight.abs().max() == 0 and b.mlp.fc2.weight.abs().max() == 0 for b in zero.blocks)


# ---------------------------------------------------------------------------------------------------
# Long inputs: forward + backward at 1k and 8k tokens on CPU, every attention type (DESIGN / issue)
# ---------------------------------------------------------------------------------------------------


def _dense_rows(q, k, v, pattern, layer, rows):
    """Attention of the query ``rows`` only, (B, H, R, D) in float64, computed densely from the pattern's
    definition (BigBird: its block mask; Longformer: band, dilation and global tokens; dense: all keys).
    Memory O(R * T): usable at 8k tokens where a T x T reference is not."""
    B, H, T, D = q.shape
    rows = torch.as_tensor(rows)
    keys = torch.arange(T)
    if pattern.kind == "bigbird":
        b = pattern.block_size
        bm = torch.from_numpy(pattern.block_mask(T, H, layer))  # (H, nb, nb)
        allowed = bm[:, rows // b][:, :, keys // b]  # (H, R, T)
    elif pattern.kind == "longformer":
        hw = pattern.window_for(layer) // 2 * pattern.dilation
        rel = keys[None, :] - rows[:, None]
        allowed = (rel.abs() <= hw) & (rel % pattern.dilation == 0)
        g = torch.tensor([t for t in pattern.global_tokens if t < T], dtype=torch.long)
        allowed = allowed | torch.isin(rows, g)[:, None] | torch.isin(keys, g)[None, :]
        allowed = allowed.expand(H, -1, -1)
    else:
        allowed = torch.ones(H, len(rows), T, dtype=torch.bool)
    q, k, v = (x.double() for x in (q, k, v))
    scores = q[:, :, rows] @ k.transpose(-1, -2) * D**-0.5  # (B, H, R, T)
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("T", [1024, 8192])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_long_forward_backward(attention, T, monkeypatch):
    """Forward + backward of a small MLM at 1k and 8k tokens (the default CPU kernel), and the last layer's
    attention checked against an independent computation on the same q, k, v: at 1k the full output and the
    input gradients against the reference backend, at 8k query rows at both ends and in the middle (global
    blocks/tokens, window, random blocks) computed densely from the pattern's definition."""
    torch.manual_seed(0)
    config = ModelConfig(
        tokenizer=KmerTokenizer(6), d_model=64, n_layers=2, n_heads=4, d_ff=128, dropout=0.1, attention=attention,
        bigbird=dict(block_size=64, window_blocks=3, global_blocks=2, random_blocks=3),
        longformer=dict(window=256, global_tokens=[0], block_size=64),
    )
    model = MaskedLM(config).train()
    last = config.n_layers - 1  # layer 1: BigBird's plan of a layer other than 0
    calls = _spy_attend(monkeypatch, keep=lambda layer: layer == last)
    ids = random_ids(config, 1, T)
    target = random_ids(config, 1, T, seed=1)
    start = time.perf_counter()
    logits = model(ids)  # (1, T, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
    loss.backward()
    elapsed = time.perf_counter() - start
    assert logits.shape == (1, T, config.vocab_size)
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
    print(f"{attention} T={T}: forward+backward {elapsed:.2f}s")

    (q, k, v, kpm, pattern, layer, out), = calls
    assert kpm is None and layer == last and out.shape == (1, 4, T, 16)
    if T <= 1024:  # the whole layer against the reference backend, output and gradients
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
        results = {}
        for backend in ("blocked", "reference"):
            leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
            y = attend(*leaves, pattern, backend=backend, layer=layer)
            results[backend] = (y.detach(), torch.autograd.grad((y * w).sum(), leaves))
        ref_out, ref_grads = results["reference"]
        torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=2e-5)
        torch.testing.assert_close(results["blocked"][0], ref_out, rtol=1e-4, atol=2e-5)
        for name, g, rg in zip("qkv", results["blocked"][1], ref_grads):
            torch.testing.assert_close(g, rg, rtol=1e-4, atol=2e-5, msg=lambda m: f"d{name}: {m}")
    else:  # a T x T reference would need 1 GiB: check a slice of query rows
        mid = T // 2 - 96
        rows = torch.cat([torch.arange(0, 80), torch.arange(mid, mid + 192), torch.arange(T - 80, T)])
        expected = _dense_rows(q, k, v, pattern, layer, rows)
        torch.testing.assert_close(out[:, :, rows].double(), expected, rtol=1e-4, atol=2e-5)
