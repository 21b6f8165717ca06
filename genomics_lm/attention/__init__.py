"""Sparse attention: patterns as data (BigBird, Longformer, dense) x backends (flex, blocked, reference).

    from genomics_lm.attention import bigbird, longformer, dense, attend, AttentionPattern, make_pattern
    out = attend(q, k, v, pattern, key_padding_mask=None, backend="auto", layer=0)  # (B, H, T, D)

See :mod:`~genomics_lm.attention.patterns` for the pattern definitions (and per-layer specialisation via the
``layer`` argument) and :mod:`~genomics_lm.attention.api` for the backends.
"""

from genomics_lm.attention.api import BACKENDS, attend, resolve_backend
from genomics_lm.attention.layout import BlockLayout
from genomics_lm.attention.patterns import (
    AttentionPattern,
    BigBirdPattern,
    DensePattern,
    LongformerPattern,
    bigbird,
    dense,
    longformer,
    make_pattern,
)

__all__ = [
    "AttentionPattern",
    "BACKENDS",
    "BigBirdPattern",
    "BlockLayout",
    "DensePattern",
    "LongformerPattern",
    "attend",
    "bigbird",
    "dense",
    "longformer",
    "make_pattern",
    "resolve_backend",
]
