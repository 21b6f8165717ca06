"""The encoder and its heads: a pre-norm transformer over k-mer tokens with sparse attention.

Architecture (read top to bottom)::

    input_ids (B, T) long ─► token embedding (vocab_size x d_model) ─► dropout
        └─► optional conv stem (conv_stem > 0): x = x + Dropout(GELU(Conv1d_k(Norm(x)))), pads zeroed first
        └─► n_layers x Block:
                x = x + Dropout(OutProj(attend(RoPE(q), RoPE(k), v, pattern, layer)))   q,k,v = QKV(Norm(x))
                x = x + Dropout(FC2(GELU(FC1(Norm(x)))))
        └─► final Norm ─► hidden (B, T, d_model)

* **Positions** are rotary embeddings (RoPE) applied to queries and keys inside every attention layer;
  there is no learned position table, so any length works (1k, 8k, 100k tokens), limited only by memory.
  cos/sin tables are computed on the fly for the length seen and cached per (device, dtype).
* **Attention** is whatever pattern the config names, built by :mod:`genomics_lm.attention`:
  ``bigbird`` (block-sparse: window + global + random blocks, a fixed seeded random plan per layer and head),
  ``longformer`` (token band of ``window`` tokens, optionally one per layer, plus global tokens such as
  CLS), or ``dense``. The kernel (``backend``: flex / blocked / reference, or auto) is chosen by
  :func:`genomics_lm.attention.attend`; nothing here computes attention itself. Padding tokens are excluded
  as keys through ``key_padding_mask`` (and ``attend`` returns zeros at padded query positions).
* **Conv stem** (``conv_stem``: kernel width in tokens, 0 = none): one residual 1-D convolution over the
  embeddings before attention, a local motif detector (the inductive bias of DNA CNNs) that sparse attention
  then connects over long range. Padded positions are zeroed before the convolution, so padding never
  reaches real tokens; its weights keep PyTorch's default (Kaiming-uniform) init.
* **Pre-norm** blocks (LayerNorm or RMSNorm, ``config.norm``), a fused q/k/v projection, a GELU MLP,
  dropout on embeddings and residual branches (none on attention probabilities: the sparse kernels do not
  materialise them), and optional gradient checkpointing of each block during
  training (``torch.utils.checkpoint``, ``use_reentrant=False``).
* **Heads**: :class:`MaskedLM` (BERT-style transform + decoder tied to the token embedding) returns
  logits (B, T, vocab); :class:`SequenceClassifier` pools (CLS token or mean over real tokens) and returns
  logits (B, num_labels); :class:`MultiLabelClassifier` is the same module flagged ``multi_label=True``
  (C independent sigmoid outputs – the loss, BCE vs cross-entropy, lives in the LightningModule).
  ``forward`` returns hidden states or logits only; losses and metrics live in the LightningModules
  (:mod:`genomics_lm.pretrain`).
* **Init**: normal(0, 0.02) for embeddings and linear weights, zero biases, norms at 1; the residual output
  projections (attention out-proj and MLP fc2) get std 0.02 / sqrt(2 * n_layers) (GPT-2), or exactly zero
  with ``zero_init_residual=True`` (every block then starts as the identity).

Fine-tuning starts from a pretrained MLM with :func:`load_encoder_weights` (strict: every encoder tensor
present with the same shape, or a clear error).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from genomics_lm.attention import AttentionPattern, attend, make_pattern
from genomics_lm.errors import UserError
from genomics_lm.tokenizer import PAD_ID, KmerTokenizer, TokenizerError

AttentionKind = Literal["bigbird", "longformer", "dense"]
Backend = Literal["auto", "flex", "blocked", "reference"]
Norm = Literal["layernorm", "rmsnorm"]
ATTENTION_TYPES: tuple[str, ...] = AttentionKind.__args__
NORMS: tuple[str, ...] = Norm.__args__


class ConfigError(UserError, ValueError):
    """An inconsistent :class:`ModelConfig` (a ``ValueError``, and a one-line ``UserError`` on the CLI)."""


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


def default_bigbird() -> dict[str, Any]:
    """Parameters of :func:`genomics_lm.attention.bigbird` (the pattern's own names)."""
    return {"block_size": 64, "window_blocks": 3, "global_blocks": 2, "random_blocks": 3, "seed": 0}


def default_longformer() -> dict[str, Any]:
    """Parameters of :func:`genomics_lm.attention.longformer` (the pattern's own names)."""
    return {"window": 512, "global_tokens": [0], "dilation": 1, "block_size": 64}


@dataclass
class ModelConfig:
    """Everything that defines the encoder; JSON-able through :meth:`to_dict` / :meth:`from_dict`.

    Args:
        tokenizer: the k-mer tokenizer the model reads (k, stride); the vocabulary size follows from k.
            Must match the token stores (checked when they are opened).
        d_model: hidden width.
        n_layers: number of transformer blocks.
        n_heads: attention heads; head_dim = d_model / n_heads must be even (rotary embeddings).
        d_ff: inner width of the MLP.
        dropout: dropout on embeddings, residual branches and the classifier input (0 to <1).
        norm: layernorm or rmsnorm.
        rope_base: rotary base (theta); larger = longer wavelengths.
        zero_init_residual: zero-init the attention output projection and MLP fc2 (blocks start as identity).
        gradient_checkpointing: recompute each block in the backward pass (training only): less memory.
        conv_stem: kernel width (odd, in tokens) of a residual convolution over the embeddings before the
            first block; 0 = none. With single-base tokens (k=1) a width of 9-15 sees a motif.
        attention: which attention pattern the model uses: bigbird (block-sparse: window + global + random
            blocks), longformer (token band + global tokens) or dense (the baseline).
        backend: attention kernel: auto (flex on CUDA, blocked on CPU), flex, blocked, or reference (tests).
        bigbird: the BigBird pattern's parameters (block_size, window_blocks, global_blocks, random_blocks,
            seed), used when attention=bigbird. The random plan is fixed by the seed: the same in training
            and inference.
        longformer: the Longformer pattern's parameters (window: total band width, even, or one per layer;
            global_tokens: positions that attend everywhere, e.g. [0] for CLS; dilation; block_size: kernel
            tile only), used when attention=longformer.
    """

    # --- tokens (must match the HDF5 token store) ---
    tokenizer: KmerTokenizer = field(default_factory=lambda: KmerTokenizer(6, 6))

    # --- transformer size ---
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    norm: Norm = "layernorm"
    rope_base: float = 10000.0
    zero_init_residual: bool = False
    gradient_checkpointing: bool = False
    conv_stem: int = 0             # kernel width of the conv stem in tokens (odd); 0 = no stem

    # --- attention: the kind, the kernel, and each pattern's own parameters (genomics_lm.attention) ---
    attention: AttentionKind = "bigbird"
    backend: Backend = "auto"
    bigbird: dict[str, Any] = field(default_factory=default_bigbird)
    longformer: dict[str, Any] = field(default_factory=default_longformer)

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, Mapping):
            self.tokenizer = KmerTokenizer.from_dict(dict(self.tokenizer))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def vocab_size(self) -> int:
        """5 specials + 4**k, from the tokenizer record."""
        return self.tokenizer.vocab_size

    # --- checks -------------------------------------------------------------------------------------

    def validate(self) -> ModelConfig:
        """Raise :class:`ConfigError` (a ``ValueError``) naming the numbers that disagree; return self.

        The attention parameters are checked by the pattern itself (:meth:`attention_pattern`), once.
        """

        def bad(msg: str) -> None:
            raise ConfigError(f"ModelConfig: {msg}")

        if not isinstance(self.tokenizer, KmerTokenizer):
            bad(f"tokenizer must be a KmerTokenizer or {{'k': ..., 'stride': ...}}, got {self.tokenizer!r}")
        for name in ("d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            bad(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.head_dim % 2:
            bad(f"head_dim = d_model / n_heads = {self.d_model}/{self.n_heads} = {self.head_dim} "
                "must be even for rotary embeddings")
        if not isinstance(self.conv_stem, int) or isinstance(self.conv_stem, bool) or self.conv_stem < 0 \
                or (self.conv_stem and self.conv_stem % 2 == 0):
            bad(f"conv_stem={self.conv_stem!r} must be 0 (none) or an odd kernel width (1, 3, 5, ...)")
        if not 0.0 <= self.dropout < 1.0:
            bad(f"dropout={self.dropout} must be in [0, 1)")
        if self.norm not in NORMS:
            bad(f"norm={self.norm!r}, choose from {NORMS}")
        if not self.rope_base > 0:
            bad(f"rope_base={self.rope_base} must be > 0")
        if self.attention not in ATTENTION_TYPES:
            bad(f"attention={self.attention!r}, choose from {ATTENTION_TYPES}")
        from genomics_lm.attention import BACKENDS

        if self.backend not in BACKENDS:
            bad(f"backend={self.backend!r}, choose from {BACKENDS}")
        for kind in ("bigbird", "longformer"):
            if not isinstance(getattr(self, kind), Mapping):
                bad(f"{kind} must be a mapping of the pattern's parameters, got {getattr(self, kind)!r}")
        self.attention_pattern()
        return self

    # --- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (the tokenizer as its record); :meth:`from_dict` rebuilds the config."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["tokenizer"] = self.tokenizer.to_dict()
        d["bigbird"], d["longformer"] = _plain(self.bigbird), _plain(self.longformer)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a checkpoint from another version/model)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        d = dict(d)
        if "tokenizer" in d:
            try:
                d["tokenizer"] = KmerTokenizer.from_dict(d["tokenizer"])
            except TokenizerError as exc:
                raise ConfigError(f"ModelConfig: tokenizer: {exc}") from None
        return cls(**d).validate()

    @classmethod
    def copy_of(cls, config: ModelConfig | Mapping[str, Any]) -> ModelConfig:
        """A private, validated copy of a config or of its ``to_dict()`` (what the LightningModules keep)."""
        return cls.from_dict(config.to_dict() if isinstance(config, ModelConfig) else dict(config))

    # --- attention patterns -------------------------------------------------------------------------

    def attention_pattern(self) -> AttentionPattern:
        """The model's attention pattern, one object for all layers (``.to_dict()`` goes into checkpoints).

        Per-layer differences live inside it and are selected by the ``layer`` argument of :func:`attend`:
        BigBird's random blocks differ per layer and head (drawn from its seed, the layer, the head and the
        number of blocks), and a Longformer ``window`` list gives each layer its own band.
        """
        params = {} if self.attention == "dense" else dict(getattr(self, self.attention))
        window = params.get("window")
        if self.attention == "longformer" and isinstance(window, (list, tuple)) and len(window) != self.n_layers:
            raise ConfigError(f"ModelConfig: longformer window has {len(window)} per-layer values but "
                              f"n_layers={self.n_layers}")
        try:
            return make_pattern(self.attention, **params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"ModelConfig: {self.attention} pattern {params}: {exc}") from None


DEFAULT_CONFIG = ModelConfig()  # a signature default of the LightningModules (they copy it, never mutate it)


def _plain(x: Any) -> Any:
    """Tuples as lists, recursively (JSON and YAML friendly)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ----------------------------------------------------------------------------------------------------
# Rotary position embeddings
# ----------------------------------------------------------------------------------------------------


class Rotary(nn.Module):
    """Rotary position embeddings (RoFormer) in the "rotate half" layout, for any length.

    Channel pair (i, i + D/2) of a query/key at position t is rotated by angle t * base**(-2i/D), so that
    <rope(q, m), rope(k, n)> depends on q, k and the offset m - n only. cos/sin tables are computed in fp32
    and cached per (device, dtype), grown when a longer sequence arrives; they are not part of the state dict.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def cos_sin(self, T: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (T, D) for positions 0..T-1."""
        key = (device, dtype)
        cached = self._cache.get(key)
        if cached is None or cached[0].shape[0] < T:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors even if built under inference_mode
                cached = self._table(T, device, dtype)
            self._cache[key] = cached
        return cached[0][:T], cached[1][:T]

    def _table(self, T: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim
        inv_freq = self.base**-exponents  # (D/2,)
        t = torch.arange(T, device=device, dtype=torch.float32)
        angles = torch.outer(t, inv_freq)  # (T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, D)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., T, D) by its positions 0..T-1 along the second-to-last axis."""
        cos, sin = self.cos_sin(x.shape[-2], x.device, x.dtype)  # (T, D)
        x1, x2 = x.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return x * cos + rotated * sin


# ----------------------------------------------------------------------------------------------------
# Transformer block
# ----------------------------------------------------------------------------------------------------


def make_norm(config: ModelConfig) -> nn.Module:
    return nn.LayerNorm(config.d_model) if config.norm == "layernorm" else nn.RMSNorm(config.d_model)


class SelfAttention(nn.Module):
    """Multi-head self-attention: fused q/k/v projection, RoPE on q and k, sparse ``attend``, output projection."""

    def __init__(self, config: ModelConfig, layer: int, pattern: AttentionPattern, rotary: Rotary):
        super().__init__()
        self.layer = layer  # selects this layer's random plan / window inside the shared pattern
        self.n_heads = config.n_heads
        self.backend = config.backend
        self.pattern = pattern
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.rotary = rotary  # shared by all layers (one cos/sin cache); no parameters

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B, T, d_model); key_padding_mask: (B, T) bool, True = real token, or None (no padding)
        qkv = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.n_heads)
        q, k, v = qkv.unbind(0)  # each (B, H, T, D)
        q, k = self.rotary(q), self.rotary(k)
        # (B, H, T, D); attend returns exact zeros at padded query positions, so padding never leaks into real ones
        y = attend(q, k, v, self.pattern, key_padding_mask=key_padding_mask, backend=self.backend, layer=self.layer)
        return self.out(rearrange(y, "b h t d -> b t (h d)"))  # (B, T, d_model)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # (B, T, d_model)


class ConvStem(nn.Module):
    """Residual 1-D convolution over the embeddings: x + Dropout(GELU(Conv1d(Norm(x)))), 'same' padding.

    Positions where ``mask`` is False (padding) are zeroed before the convolution, so a real token's output does
    not depend on how far the batch is padded; their own outputs are meaningless, as everywhere in the encoder.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = make_norm(config)
        self.conv = nn.Conv1d(config.d_model, config.d_model, config.conv_stem, padding=config.conv_stem // 2)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B, T, d_model); mask: (B, T) bool, True = real token, or None (no padding)
        h = self.norm(x)
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        h = rearrange(self.conv(rearrange(h, "b t d -> b d t")), "b d t -> b t d")  # (B, T, d_model)
        return x + self.dropout(F.gelu(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(Norm(x)), then x + MLP(Norm(x)), dropout on each branch."""

    def __init__(self, config: ModelConfig, layer: int, pattern: AttentionPattern, rotary: Rotary):
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = SelfAttention(config, layer, pattern, rotary)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), key_padding_mask))
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return x  # (B, T, d_model)


# ----------------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------------


def _init_weights(module: nn.Module, config: ModelConfig) -> None:
    """normal(0, 0.02) weights, zero biases; residual projections scaled (or zeroed) – see the module doc."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.RMSNorm)):
            nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        if name.endswith(("attn.out", "mlp.fc2")):
            if config.zero_init_residual:
                nn.init.zeros_(m.weight)
            else:
                nn.init.normal_(m.weight, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))


class Encoder(nn.Module):
    """Token embedding + ``n_layers`` pre-norm blocks + final norm: (B, T) ids -> (B, T, d_model) hidden."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.stem = ConvStem(config) if config.conv_stem else None
        self.pattern = config.attention_pattern()
        self.rotary = Rotary(config.head_dim, config.rope_base)
        self.blocks = nn.ModuleList(Block(config, i, self.pattern, self.rotary) for i in range(config.n_layers))
        self.norm = make_norm(config)
        _init_weights(self, config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) long; attention_mask (B, T) bool, True = real token (default: input_ids != PAD_ID).

        Returns the hidden states (B, T, d_model). Positions where attention_mask is False are never attended
        to; their own hidden states are meaningless (ignore them downstream).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = input_ids != PAD_ID
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
            )
        attention_mask = attention_mask.bool()  # (B, T)
        # no padding at all (the usual case in pretraining): no mask, so kernels can take their unmasked path
        key_padding_mask = None if bool(attention_mask.all()) else attention_mask

        x = self.dropout(self.tok_emb(input_ids))  # (B, T, d_model)
        if self.stem is not None:
            x = self.stem(x, key_padding_mask)  # (B, T, d_model)
        use_checkpoint = self.config.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if use_checkpoint:
                x = checkpoint(block, x, key_padding_mask, use_reentrant=False)
            else:
                x = block(x, key_padding_mask)
        return self.norm(x)  # (B, T, d_model)


# ----------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------


class MaskedLM(nn.Module):
    """Encoder + BERT-style LM head (dense, GELU, norm, decoder tied to the token embedding, own bias)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.transform = nn.Linear(config.d_model, config.d_model)
        self.transform_norm = make_norm(config)
        self.decoder_bias = nn.Parameter(torch.zeros(config.vocab_size))
        _init_weights(self.transform, config)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """The output projection (vocab_size, d_model): the token embedding itself (weight tying)."""
        return self.encoder.tok_emb.weight

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on hidden states (..., d_model) -> logits (..., vocab_size).

        Pretraining applies it to the masked positions only (the vocabulary projection is the largest matmul
        of a small model); :meth:`forward` applies it everywhere.
        """
        h = self.transform_norm(F.gelu(self.transform(hidden)))  # (..., d_model)
        return F.linear(h, self.decoder_weight, self.decoder_bias)  # (..., vocab_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) long, attention_mask (B, T) bool | None -> logits (B, T, vocab_size)."""
        return self.head(self.encoder(input_ids, attention_mask))  # (B, T, vocab_size)


POOLINGS = ("cls", "mean")


class SequenceClassifier(nn.Module):
    """Encoder + pooling + linear head -> logits (B, num_labels).

    ``pooling="cls"`` takes the hidden state at position 0 (the [CLS] token the tokenizer puts first);
    ``pooling="mean"`` averages over real (non-pad) tokens. ``multi_label`` only records how the logits are
    meant: False = one class out of ``num_labels`` (softmax / cross-entropy), True = ``num_labels``
    independent binary labels (sigmoid / BCE, e.g. chromatin features). The loss lives in the LightningModule.
    """

    def __init__(self, config: ModelConfig, num_labels: int, pooling: str = "cls", multi_label: bool = False):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ConfigError(f"num_labels must be a positive integer, got {num_labels!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r}, choose from {POOLINGS}")
        self.config = config
        self.num_labels = num_labels
        self.pooling = pooling
        self.multi_label = multi_label
        self.encoder = Encoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, num_labels)
        _init_weights(self.classifier, config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) long, attention_mask (B, T) bool | None -> logits (B, num_labels)."""
        if attention_mask is None:
            attention_mask = input_ids != PAD_ID
        h = self.encoder(input_ids, attention_mask)  # (B, T, d_model)
        if self.pooling == "cls":
            pooled = h[:, 0]  # (B, d_model)
        else:
            w = attention_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled = (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)  # (B, d_model)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class MultiLabelClassifier(SequenceClassifier):
    """:class:`SequenceClassifier` with ``multi_label=True``: C independent binary labels (BCE in the LightningModule)."""

    def __init__(self, config: ModelConfig, num_labels: int, pooling: str = "cls"):
        super().__init__(config, num_labels, pooling=pooling, multi_label=True)


# ----------------------------------------------------------------------------------------------------
# Pretrained encoder -> fine-tuning model
# ----------------------------------------------------------------------------------------------------


def _encoder_state(source: nn.Module | Mapping[str, torch.Tensor], prefix: str | None) -> dict[str, torch.Tensor]:
    """The encoder's tensors from a module (Encoder or anything with ``.encoder``) or a state dict."""
    if isinstance(source, Encoder):
        return dict(source.state_dict())
    if isinstance(source, nn.Module):
        if not isinstance(getattr(source, "encoder", None), Encoder):
            raise ValueError(f"{type(source).__name__} has no .encoder to load from")
        return dict(source.encoder.state_dict())
    state = dict(source)
    candidates = [prefix] if prefix is not None else ["encoder.", "model.encoder."]
    for p in candidates:
        sub = {key[len(p):]: value for key, value in state.items() if key.startswith(p)}
        if sub:
            return sub
    sample = sorted(state)[:5]
    raise ValueError(f"no encoder weights in the state dict: no key starts with {candidates} (first keys: {sample})")


def load_encoder_weights(
    target: nn.Module, source: nn.Module | Mapping[str, torch.Tensor], prefix: str | None = None
) -> None:
    """Copy pretrained encoder weights into ``target`` (an :class:`Encoder` or a model with ``.encoder``).

    ``source`` is a pretrained :class:`MaskedLM` (or any model with ``.encoder``), an :class:`Encoder`, or a
    state dict whose encoder keys start with ``prefix`` (default: try ``"encoder."`` then ``"model.encoder."``,
    i.e. a plain model or a Lightning module holding it as ``self.model``). Strict: every encoder tensor must
    be present with the same shape, else ``ValueError`` listing what is missing, extra or mismatched. The
    MLM head's weights are not copied; the target's task head keeps its fresh init. The attention pattern is
    configuration, not weights: fine-tuning may keep or change it.
    """
    encoder = target if isinstance(target, Encoder) else getattr(target, "encoder", None)
    if not isinstance(encoder, Encoder):
        raise ValueError(f"{type(target).__name__} has no .encoder to load into")
    new = _encoder_state(source, prefix)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(new))
    unexpected = sorted(set(new) - set(own))
    mismatched = [
        f"{key}: pretrained {tuple(new[key].shape)} vs model {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(new))
        if new[key].shape != own[key].shape
    ]
    if missing or unexpected or mismatched:
        lines = ["pretrained encoder does not fit the model (compare the two ModelConfigs: d_model, n_layers, k, ...)"]
        if mismatched:
            lines.append("shape mismatch: " + "; ".join(mismatched))
        if missing:
            lines.append(f"missing in pretrained: {missing}")
        if unexpected:
            lines.append(f"not in model: {unexpected}")
        raise ValueError("\n  ".join(lines))
    encoder.load_state_dict(new, strict=True)


def num_parameters(model: nn.Module) -> int:
    """Number of distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
