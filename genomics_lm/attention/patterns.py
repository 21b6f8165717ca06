"""Sparse-attention patterns as data: BigBird (ITC), Longformer, dense.

A pattern says *which* query/key pairs may interact; a backend (see :mod:`genomics_lm.attention.api`) says
*how* that is computed. Every pattern offers:

* ``pattern.dense_mask(seq_len, num_heads, layer=0) -> (H, T, T) bool`` – the exact definition, for tests;
* ``pattern.layout(seq_len, num_heads, layer=0) -> BlockLayout`` – block indices for kernels
  (see :mod:`genomics_lm.attention.layout`);
* ``pattern.density(seq_len, num_heads=1, layer=0) -> float`` – fraction of the T x T pairs allowed,
  averaged over heads, computed from the block structure (no T x T mask is built);
* ``pattern.to_dict()`` / ``make_pattern(**d)`` – a plain dict for configs and checkpoints.

Per-layer specialisation: every method takes a ``layer`` index (default 0) and so does
:func:`genomics_lm.attention.attend`. BigBird draws its random blocks per (layer, head) from
``numpy.random.default_rng([seed, layer, head, num_blocks])``: the plan is a pure function of the pattern
parameters, the layer, the head and the number of blocks. It is therefore the same in training and
evaluation, reproducible from ``seed`` and different across layers and heads; no global RNG is touched.
Longformer accepts one window for all layers or a tuple with one window per layer (``window=(64, 128, 512)``).

Short inputs: when a sequence has no more blocks than ``window_blocks + global_blocks + random_blocks``, the
BigBird pattern is defined to give every query block *all* blocks outside its window and the global blocks as
its "random" set, so the pattern covers every pair and :meth:`density` says 1.0 (likewise a Longformer band at
least as wide as the sequence). :meth:`AttentionPattern.is_complete` says so, and :func:`attend` then computes
the pattern as what it is, one dense block (SDPA): an explicit, tested rule, not a hidden switch of mode.

Semantics
---------
``bigbird(block_size, window_blocks=3, global_blocks=2, random_blocks=3, seed=0)``:
    tokens are grouped in blocks of ``block_size`` (the last block may be partial: it is padded explicitly
    by the kernels and the padding masked). Global blocks are the first ``ceil(g/2)`` and the last
    ``floor(g/2)`` blocks (``g=2``: first and last block); their queries see every key and every query sees
    their keys. Any other query block ``i`` sees the key blocks ``i - w//2 .. i + w//2`` (clipped at the ends,
    no wrap-around), the global blocks and ``random_blocks`` random blocks drawn uniformly without
    replacement from the blocks that are neither global nor in its window.
``longformer(window, global_tokens=(0,), dilation=1, block_size=64)``:
    ``window`` is the *total* width of the band: query ``i`` sees key ``j`` iff ``|i - j| <= window//2 * dilation``
    and ``(i - j) % dilation == 0`` (``window=512``: 256 tokens on each side plus itself; the same as Hugging
    Face's ``attention_window=512``). ``window`` must be even. Global tokens (positions >= 0; positions beyond
    a sequence's length are ignored) attend to every key and are attended by every query. ``block_size`` only
    sets the tiling used by the kernels; it does not change the pattern.
``dense()``: every pair.

Key padding (``key_padding_mask`` in :func:`attend`) is applied on top of every pattern by the backends.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genomics_lm.attention.layout import BlockLayout


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class AttentionPattern(abc.ABC):
    """Abstract base class of the patterns. Subclasses are frozen dataclasses (hashable, usable as cache keys)."""

    kind: str = "abstract"

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able dict; ``make_pattern(**pattern.to_dict())`` rebuilds the pattern."""
        ...

    @abc.abstractmethod
    def dense_mask(self, seq_len: int, num_heads: int, layer: int = 0) -> torch.Tensor:
        """(H, T, T) bool, True where query t may attend to key s. For tests and small T only."""
        ...

    @abc.abstractmethod
    def layout(self, seq_len: int, num_heads: int, layer: int = 0) -> BlockLayout | None:
        """Block layout for kernels; None for :func:`dense` (computed as one dense block)."""
        ...

    @abc.abstractmethod
    def density(self, seq_len: int, num_heads: int = 1, layer: int = 0) -> float:
        """Fraction of the ``seq_len**2`` query/key pairs the pattern allows (mean over heads)."""
        ...

    def is_complete(self, seq_len: int, num_heads: int = 1, layer: int = 0) -> bool:
        """True when the pattern allows every query/key pair at this length (its density is exactly 1.0).

        Short inputs: a BigBird sequence with no more blocks than window + global + random blocks, or a
        Longformer band (dilation 1) at least as wide as the sequence. :func:`genomics_lm.attention.attend`
        computes such a pattern as what it is, one dense block (SDPA): the same result, without block
        machinery.
        """
        return _is_complete(self, int(seq_len), int(num_heads), int(layer))

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.to_dict().items() if k != "kind")
        return f"{self.kind}({params})"


@functools.lru_cache(maxsize=1024)
def _is_complete(pattern: AttentionPattern, seq_len: int, num_heads: int, layer: int) -> bool:
    return pattern.density(seq_len, num_heads, layer) >= 1.0  # exact: pairs and seq_len**2 are integers


# --------------------------------------------------------------------------------------------- dense


@dataclass(frozen=True)
class DensePattern(AttentionPattern):
    kind: str = field(default="dense", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "dense"}

    def dense_mask(self, seq_len: int, num_heads: int, layer: int = 0) -> torch.Tensor:
        return torch.ones(num_heads, seq_len, seq_len, dtype=torch.bool)

    def layout(self, seq_len: int, num_heads: int, layer: int = 0) -> None:
        return None

    def density(self, seq_len: int, num_heads: int = 1, layer: int = 0) -> float:
        return 1.0


def dense() -> DensePattern:
    """Full attention (the baseline)."""
    return DensePattern()


# --------------------------------------------------------------------------------------------- BigBird


@dataclass(frozen=True)
class BigBirdPattern(AttentionPattern):
    block_size: int
    window_blocks: int = 3
    global_blocks: int = 2
    random_blocks: int = 3
    seed: int = 0
    kind: str = field(default="bigbird", init=False)

    def __post_init__(self) -> None:
        _check_int("bigbird block_size", self.block_size, 1)
        _check_int("bigbird window_blocks", self.window_blocks, 1)
        if self.window_blocks % 2 == 0:
            raise ValueError(
                f"bigbird window_blocks must be odd (the query block plus the same number of blocks on each "
                f"side), got {self.window_blocks}"
            )
        _check_int("bigbird global_blocks", self.global_blocks, 0)
        _check_int("bigbird random_blocks", self.random_blocks, 0)
        _check_int("bigbird seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bigbird",
            "block_size": self.block_size,
            "window_blocks": self.window_blocks,
            "global_blocks": self.global_blocks,
            "random_blocks": self.random_blocks,
            "seed": self.seed,
        }

    # -- block structure -------------------------------------------------------------------------
    def num_blocks(self, seq_len: int) -> int:
        _check_int("seq_len", seq_len, 1)
        return -(-seq_len // self.block_size)

    def global_block_ids(self, num_blocks: int) -> np.ndarray:
        """Sorted ids of the global blocks: the first ceil(g/2) and the last floor(g/2) blocks."""
        first = -(-self.global_blocks // 2)
        last = self.global_blocks // 2
        ids = set(range(min(first, num_blocks))) | set(range(max(num_blocks - last, 0), num_blocks))
        return np.array(sorted(ids), dtype=np.int64)

    def random_plan(self, seq_len: int, num_heads: int, layer: int = 0) -> np.ndarray:
        """(H, nb, r) int64 random key-block ids per head and query block, -1 where none.

        Rows of global query blocks are all -1 (they see every block). Each row holds ``r`` distinct blocks,
        sorted ascending, drawn without replacement from the blocks that are neither global nor in the row's
        window. Short sequences (nb <= window + global + random blocks) take all those blocks instead (the
        last axis then grows to the largest such set, padded with -1).
        """
        _check_int("num_heads", num_heads, 1)
        _check_int("layer", layer, 0)
        nb = self.num_blocks(seq_len)
        plan = _bigbird_random_plan(
            nb, num_heads, layer, self.window_blocks, self.global_blocks, self.random_blocks, self.seed
        )
        return plan

    def block_mask(self, seq_len: int, num_heads: int, layer: int = 0) -> np.ndarray:
        """(H, nb, nb) bool block-level mask (query block, key block)."""
        nb = self.num_blocks(seq_len)
        gids = self.global_block_ids(nb)
        half = self.window_blocks // 2
        idx = np.arange(nb)
        base = np.abs(idx[:, None] - idx[None, :]) <= half
        base[:, gids] = True
        base[gids, :] = True
        mask = np.repeat(base[None], num_heads, axis=0)
        plan = self.random_plan(seq_len, num_heads, layer)
        h, i, j = np.nonzero(plan >= 0)
        mask[h, i, plan[h, i, j]] = True
        return mask

    def dense_mask(self, seq_len: int, num_heads: int, layer: int = 0) -> torch.Tensor:
        bm = torch.from_numpy(self.block_mask(seq_len, num_heads, layer))
        b = self.block_size
        full = bm.repeat_interleave(b, dim=1).repeat_interleave(b, dim=2)
        return full[:, :seq_len, :seq_len].contiguous()

    def density(self, seq_len: int, num_heads: int = 1, layer: int = 0) -> float:
        nb = self.num_blocks(seq_len)
        b = self.block_size
        sizes = np.full(nb, b, dtype=np.int64)
        sizes[-1] = seq_len - (nb - 1) * b
        gids = self.global_block_ids(nb)
        is_g = np.zeros(nb, dtype=bool)
        is_g[gids] = True
        half = self.window_blocks // 2
        csum = np.concatenate([[0], np.cumsum(sizes)])
        csum_g = np.concatenate([[0], np.cumsum(sizes * is_g)])
        idx = np.arange(nb)
        lo, hi = np.clip(idx - half, 0, nb), np.clip(idx + half + 1, 0, nb)
        # keys per query block: window (minus globals inside it) + globals + random blocks
        keys = (csum[hi] - csum[lo]) - (csum_g[hi] - csum_g[lo]) + sizes[gids].sum()
        plan = self.random_plan(seq_len, num_heads, layer)  # (H, nb, r)
        rand = np.where(plan >= 0, sizes[np.clip(plan, 0, None)], 0).sum(-1)  # (H, nb)
        keys = np.where(is_g[None], seq_len, keys[None] + rand)  # (H, nb)
        pairs = (keys * sizes[None]).sum(-1)
        return float(pairs.mean() / seq_len**2)

    def layout(self, seq_len: int, num_heads: int, layer: int = 0) -> BlockLayout:
        return _bigbird_layout(self, seq_len, num_heads, layer)


@functools.lru_cache(maxsize=256)
def _bigbird_random_plan(nb: int, H: int, layer: int, w: int, g: int, r: int, seed: int) -> np.ndarray:
    pattern = BigBirdPattern(1, w, g, r, seed)
    gids = pattern.global_block_ids(nb)
    is_g = np.zeros(nb, dtype=bool)
    is_g[gids] = True
    half = w // 2
    plan = np.full((H, nb, r), -1, dtype=np.int64)
    rows = np.nonzero(~is_g)[0]
    if rows.size == 0 or (r == 0 and nb > w + g):
        plan.setflags(write=False)
        return plan
    # excluded key blocks per row: its window and the global blocks (sorted, padded with nb)
    win = rows[:, None] + np.arange(-half, half + 1)[None, :]
    win = np.where((win >= 0) & (win < nb), win, nb)
    excl = np.concatenate([win, np.broadcast_to(gids, (rows.size, gids.size))], axis=1)
    excl = np.sort(excl, axis=1)
    dup = np.zeros_like(excl, dtype=bool)
    dup[:, 1:] = excl[:, 1:] == excl[:, :-1]
    excl = np.sort(np.where(dup, nb, excl), axis=1)
    n_excl = (excl < nb).sum(1)
    n_cand = nb - n_excl  # (R,)
    if nb <= w + g + r:
        # short sequence: every query block takes all remaining blocks, so the pattern is every pair
        width = max(r, int(n_cand.max()))
        plan = np.full((H, nb, width), -1, dtype=np.int64)
        allc = np.broadcast_to(np.arange(width)[None, :], (rows.size, width))
        chosen = np.where(allc < n_cand[:, None], allc, -1)
        plan[:, rows] = _skip_excluded(chosen, excl)[None]
        plan.setflags(write=False)
        return plan
    for h in range(H):
        rng = np.random.default_rng([seed, layer, h, nb])
        u = rng.random((rows.size, r))
        chosen = np.full((rows.size, r), -1, dtype=np.int64)
        # Floyd's algorithm, vectorised over rows: a uniform r-subset of range(n_cand) (n_cand > r here)
        for j in range(r):
            t = n_cand - r + j  # the candidate range grows to t + 1
            x = np.floor(u[:, j] * (t + 1)).astype(np.int64)
            seen = (chosen[:, :j] == x[:, None]).any(1)
            chosen[:, j] = np.where(seen, t, x)
        plan[h, rows] = np.sort(_skip_excluded(chosen, excl), axis=1)
    plan.setflags(write=False)
    return plan


def _skip_excluded(chosen: np.ndarray, excl: np.ndarray) -> np.ndarray:
    """Map candidate ranks (R, k) (-1 = none) to block ids by skipping each row's sorted excluded blocks."""
    blocks = chosen.copy()
    for c in range(excl.shape[1]):
        blocks = blocks + ((blocks >= excl[:, c : c + 1]) & (chosen >= 0))
    return np.where(chosen >= 0, blocks, -1)


@functools.lru_cache(maxsize=256)
def _bigbird_layout(p: BigBirdPattern, seq_len: int, H: int, layer: int) -> BlockLayout:
    nb = p.num_blocks(seq_len)
    b = p.block_size
    gids = p.global_block_ids(nb)
    first = -(-p.global_blocks // 2)
    last = p.global_blocks // 2
    row0, row1 = min(first, nb), max(min(nb - last, nb), min(first, nb))
    gtok = (gids[:, None] * b + np.arange(b)[None, :]).reshape(-1)
    gtok = gtok[gtok < seq_len]
    half = p.window_blocks // 2
    plan = p.random_plan(seq_len, H, layer)
    return BlockLayout(
        seq_len=seq_len,
        block_size=b,
        num_blocks=nb,
        global_tokens=torch.from_numpy(gtok.copy()),
        window_left=half * b,
        window_len=p.window_blocks * b,
        band=None,
        random=torch.from_numpy(plan.copy()) if plan.shape[-1] > 0 else None,
        sparse_rows=(row0, row1),
    )


def bigbird(
    block_size: int, window_blocks: int = 3, global_blocks: int = 2, random_blocks: int = 3, seed: int = 0
) -> BigBirdPattern:
    """BigBird ITC pattern (see the module docstring)."""
    return BigBirdPattern(block_size, window_blocks, global_blocks, random_blocks, seed)


# --------------------------------------------------------------------------------------------- Longformer


@dataclass(frozen=True)
class LongformerPattern(AttentionPattern):
    window: int | tuple[int, ...]
    global_tokens: tuple[int, ...] = (0,)
    dilation: int = 1
    block_size: int = 64
    kind: str = field(default="longformer", init=False)

    def __post_init__(self) -> None:
        windows = self.window if isinstance(self.window, (tuple, list)) else (self.window,)
        if len(windows) == 0:
            raise ValueError("longformer window: an empty per-layer list")
        for i, w in enumerate(windows):
            name = "longformer window" if len(windows) == 1 else f"longformer window[{i}]"
            _check_int(name, w, 0)
            if w % 2:
                raise ValueError(
                    f"{name} must be even (the total band width: each query sees window//2 tokens on each "
                    f"side), got {w}"
                )
        per_layer = isinstance(self.window, (tuple, list))
        object.__setattr__(self, "window", tuple(int(w) for w in windows) if per_layer else int(self.window))
        gt = tuple(int(_check_int("longformer global token", t, 0)) for t in self.global_tokens)
        object.__setattr__(self, "global_tokens", tuple(sorted(set(gt))))
        _check_int("longformer dilation", self.dilation, 1)
        _check_int("longformer block_size", self.block_size, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "longformer",
            "window": list(self.window) if isinstance(self.window, tuple) else self.window,
            "global_tokens": list(self.global_tokens),
            "dilation": self.dilation,
            "block_size": self.block_size,
        }

    def window_for(self, layer: int = 0) -> int:
        """The band width used by ``layer``."""
        _check_int("layer", layer, 0)
        if isinstance(self.window, tuple):
            if layer >= len(self.window):
                raise ValueError(
                    f"longformer has windows for {len(self.window)} layers ({list(self.window)}), "
                    f"asked for layer {layer}"
                )
            return self.window[layer]
        return self.window

    def global_positions(self, seq_len: int) -> np.ndarray:
        return np.array([t for t in self.global_tokens if t < seq_len], dtype=np.int64)

    def dense_mask(self, seq_len: int, num_heads: int, layer: int = 0) -> torch.Tensor:
        hw = self.window_for(layer) // 2 * self.dilation
        pos = torch.arange(seq_len)
        rel = pos[None, :] - pos[:, None]  # key - query
        mask = (rel.abs() <= hw) & (rel % self.dilation == 0)
        g = torch.from_numpy(self.global_positions(seq_len))
        mask[g, :] = True
        mask[:, g] = True
        return mask[None].expand(num_heads, seq_len, seq_len).clone()

    def density(self, seq_len: int, num_heads: int = 1, layer: int = 0) -> float:
        _check_int("seq_len", seq_len, 1)
        d = self.dilation
        hw = self.window_for(layer) // 2
        pos = np.arange(seq_len)
        # band keys of query i: i + d*m for m in [-hw, hw] inside [0, T)
        lo = np.maximum(-hw, -(pos // d))
        hi = np.minimum(hw, (seq_len - 1 - pos) // d)
        keys = (hi - lo + 1).astype(np.int64)
        g = self.global_positions(seq_len)
        for t in g:  # global columns not already in the band
            rel = t - pos
            in_band = (np.abs(rel) <= hw * d) & (rel % d == 0)
            keys += ~in_band
        keys[g] = seq_len
        return float(keys.sum() / seq_len**2)

    def layout(self, seq_len: int, num_heads: int, layer: int = 0) -> BlockLayout:
        return _longformer_layout(self, seq_len, layer)


@functools.lru_cache(maxsize=256)
def _longformer_layout(p: LongformerPattern, seq_len: int, layer: int) -> BlockLayout:
    _check_int("seq_len", seq_len, 1)
    b = p.block_size
    nb = -(-seq_len // b)
    hw = p.window_for(layer) // 2 * p.dilation
    left = -(-hw // b) * b
    return BlockLayout(
        seq_len=seq_len,
        block_size=b,
        num_blocks=nb,
        global_tokens=torch.from_numpy(p.global_positions(seq_len)),
        window_left=left,
        window_len=b + 2 * left,
        band=(hw, p.dilation),
        random=None,
        sparse_rows=(0, nb),
    )


def longformer(
    window: int | tuple[int, ...] | list[int], global_tokens=(0,), dilation: int = 1, block_size: int = 64
) -> LongformerPattern:
    """Longformer pattern: band of total width ``window`` (per-layer tuple allowed) plus global tokens."""
    if isinstance(window, list):
        window = tuple(window)
    return LongformerPattern(window, tuple(global_tokens), dilation, block_size)


# --------------------------------------------------------------------------------------------- factory

_FACTORIES = {"bigbird": bigbird, "longformer": longformer, "dense": dense}


def make_pattern(kind: str, **params: Any) -> AttentionPattern:
    """Build a pattern from a config dict: ``make_pattern("bigbird", block_size=64)`` or ``make_pattern(**d)``."""
    if kind not in _FACTORIES:
        raise ValueError(f"unknown attention pattern kind {kind!r} (choose from {', '.join(_FACTORIES)})")
    try:
        return _FACTORIES[kind](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for attention pattern {kind!r}: {exc}") from None
