"""K-mer tokenizer: DNA bytes <-> token ids, fully vectorised with numpy.

Vocabulary (the contract of DESIGN.md): 5 special tokens, then all 4**k k-mers in lexicographic ACGT order::

    [PAD]=0  [UNK]=1  [CLS]=2  [SEP]=3  [MASK]=4  AA..A=5  AA..C=6  ...  TT..T=4**k+4

* Case-insensitive: soft-masked (lower-case) repeats are ordinary bases.
* A k-mer that contains ``N`` or any other non-ACGT byte (IUPAC codes such as R or Y included) is ``[UNK]``.
* ``stride == k`` gives non-overlapping k-mers (long context per token); ``stride == 1`` the overlapping
  DNABERT style. K-mer ``i`` covers bases ``[i*stride, i*stride + k)`` (0-based, half-open); a trailing
  remainder shorter than ``k`` is dropped.

Token arrays are ``uint16`` for k <= 7 and ``uint32`` for k = 8 (4**8 + 5 = 65,541 ids do not fit 16 bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from genomics_lm.errors import UserError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)
MIN_K, MAX_K = 1, 8

_COMPLEMENT = bytes.maketrans(b"ACGTNacgtnRYKMSWBDHVrykmswbdhv", b"TGCANtgcanYRMKSWVHDByrmkswvhdb")


def check_k(k: int) -> int:
    """Return ``k`` if it is an int in 1..8, else raise ``ValueError`` naming the value."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not MIN_K <= int(k) <= MAX_K:
        raise ValueError(f"k must be an integer from {MIN_K} to {MAX_K}, got {k!r}")
    return int(k)


def vocab_size(k: int) -> int:
    """Number of token ids for k-mers of length ``k``: 5 specials + 4**k."""
    return N_SPECIAL + 4 ** check_k(k)


def token_dtype(k: int) -> np.dtype:
    """Smallest unsigned dtype holding every id: uint16 for k <= 7, uint32 for k = 8."""
    return np.dtype(np.uint16) if vocab_size(k) <= 2**16 else np.dtype(np.uint32)


def _as_bytes(seq) -> np.ndarray:
    """A sequence (str, bytes, bytearray or uint8 array) as a 1-D uint8 array (no copy where possible)."""
    if isinstance(seq, np.ndarray):
        if seq.dtype != np.uint8 or seq.ndim != 1:
            raise TypeError(f"expected a 1-D uint8 array of ASCII bases, got {seq.dtype} with shape {seq.shape}")
        return seq
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")  # non-ASCII characters become '?', i.e. [UNK]
    return np.frombuffer(seq, dtype=np.uint8)


def num_tokens(length_bp: int, k: int, stride: int) -> int:
    """How many k-mers ``encode`` returns for a sequence of ``length_bp`` bases."""
    return 0 if length_bp < k else (length_bp - k) // stride + 1


def window_bp(n_tokens: int, k: int, stride: int) -> int:
    """Bases spanned by ``n_tokens`` consecutive k-mers: ``(n_tokens - 1) * stride + k``."""
    return 0 if n_tokens <= 0 else (n_tokens - 1) * stride + k


# byte -> 2-bit base code (A=0 C=1 G=2 T=3, either case); every other byte -> 4. A bytes.translate table:
# one C pass over the sequence, several times faster than a numpy gather.
_CODE_TABLE = bytearray([4] * 256)
for _i, _b in enumerate(b"ACGT"):
    _CODE_TABLE[_b] = _CODE_TABLE[_b + 32] = _i
_CODE_TABLE = bytes(_CODE_TABLE)


def encode(seq, k: int, stride: int | None = None) -> np.ndarray:
    """Token ids of the k-mers of ``seq``.

    Args:
        seq: bases as ``str``, ``bytes`` or a 1-D ``uint8`` array of ASCII codes; any case.
        k: k-mer length, 1..8.
        stride: step between k-mer starts, 1..k (default ``k``: non-overlapping).

    Returns:
        ``(num_tokens(len(seq), k, stride),)`` array of ``token_dtype(k)``; token ``i`` is the k-mer at
        ``[i*stride, i*stride + k)``. K-mers with any non-ACGT byte are ``UNK_ID``.

    Vectorised: base codes by one ``bytes.translate`` pass, k-mer values by whole-array shifts over the k
    columns of a strided view; k-mers holding a non-ACGT byte are located (only when there is one) by a cumulative count.
    """
    k = check_k(k)
    stride = k if stride is None else int(stride)
    if not 1 <= stride <= k:
        raise ValueError(f"stride must be from 1 to k={k}, got {stride}")
    if isinstance(seq, np.ndarray):
        seq = _as_bytes(seq)
    elif not isinstance(seq, (str, bytes)):
        seq = bytes(seq)
    n = num_tokens(len(seq), k, stride)  # str: one byte per character (non-ASCII become '?')
    dtype = token_dtype(k)
    ids = np.empty(n, dtype=dtype)
    # work through ~256 kB pieces so that every temporary stays in cache (and its memory is reused)
    chunk = max(1, _CHUNK_BYTES // stride)
    for t0 in range(0, n, chunk):
        t1 = min(n, t0 + chunk)
        piece = seq[t0 * stride : (t1 - 1) * stride + k]
        if isinstance(piece, str):
            piece = piece.encode("ascii", errors="replace")
        elif isinstance(piece, np.ndarray):
            piece = piece.tobytes()
        _encode_piece(piece, k, stride, ids[t0:t1])
    return ids


_CHUNK_BYTES = 1 << 18


def _encode_piece(raw: bytes, k: int, stride: int, out: np.ndarray) -> None:
    """Token ids of the ``len(out)`` k-mers of ``raw`` written into ``out`` (see :func:`encode`)."""
    n = out.shape[0]
    codes = np.frombuffer(raw.translate(_CODE_TABLE), dtype=np.uint8)  # (L,) in 0..4
    # (n, k) strided view: row i = codes[i*stride : i*stride + k]; a loop over the k columns, never positions
    win = np.lib.stride_tricks.as_strided(codes, shape=(n, k), strides=(stride, 1))
    out[:] = win[:, 0]
    for j in range(1, k):
        out <<= 2
        out |= win[:, j]
    out += N_SPECIAL  # k-mers holding a code 4 come out wrong here and are set to [UNK] below
    if codes.max() > 3:  # some non-ACGT byte (usually none): find the k-mers that hold one
        bad = np.zeros(len(raw) + 1, dtype=np.int64)
        np.cumsum(codes > 3, out=bad[1:])
        starts = np.arange(n, dtype=np.int64) * stride
        out[bad[starts + k] > bad[starts]] = UNK_ID


def softmask_flags(seq, k: int, stride: int | None = None) -> np.ndarray:
    """Per-token soft-mask flag: 1 where the k-mer holds any lower-case (soft-masked, repeat) base.

    Same shape and coordinates as :func:`encode` (``(num_tokens,)``), dtype uint8. The token ids
    themselves are case-insensitive; this optional track keeps the repeat annotation.
    """
    k = check_k(k)
    stride = k if stride is None else int(stride)
    arr = _as_bytes(seq)
    n = num_tokens(arr.shape[0], k, stride)
    lower = (arr >= ord("a")) & (arr <= ord("z"))
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    win = np.lib.stride_tricks.as_strided(lower, shape=(n, k), strides=(stride * lower.strides[0], lower.strides[0]))
    return win.any(axis=1).astype(np.uint8)


@lru_cache(maxsize=MAX_K)
def _kmer_table(k: int) -> np.ndarray:
    """(4**k, k) uint8 ASCII bases of every k-mer id - N_SPECIAL, in vocabulary order."""
    idx = np.arange(4**k, dtype=np.uint32)
    shifts = 2 * np.arange(k - 1, -1, -1, dtype=np.uint32)
    return np.frombuffer(b"ACGT", dtype=np.uint8)[(idx[:, None] >> shifts) & 3]


def decode(ids, k: int, stride: int | None = None) -> str:
    """Bases of a token-id array (the inverse of :func:`encode` for ACGT input).

    ``[UNK]`` and ``[MASK]`` decode to ``k`` N's (their bases are unknown), ``[PAD]``/``[CLS]``/``[SEP]``
    to nothing. For ``stride < k`` consecutive k-mers overlap and each one after the first adds its last
    ``stride`` bases; strides above ``k`` leave gaps and cannot be decoded.

    Args:
        ids: 1-D integer array (or list) of token ids.
        k: k-mer length; stride: as in :func:`encode` (default ``k``).
    Returns:
        the sequence as an upper-case ``str``.
    """
    k = check_k(k)
    stride = k if stride is None else int(stride)
    if not 1 <= stride <= k:
        raise ValueError(f"stride must be from 1 to k={k}, got {stride}")
    ids = np.asarray(ids).astype(np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size(k)):
        raise ValueError(f"token ids must lie in 0..{vocab_size(k) - 1} for k={k}; got {ids.min()}..{ids.max()}")
    ids = ids[(ids != PAD_ID) & (ids != CLS_ID) & (ids != SEP_ID)]
    if ids.size == 0:
        return ""
    table = np.concatenate([np.full((N_SPECIAL, k), ord("N"), dtype=np.uint8), _kmer_table(k)])
    kmers = table[ids]  # (n, k) ASCII
    if stride == k:
        return kmers.tobytes().decode("ascii")
    tail = kmers[1:, k - stride :]
    return (kmers[0].tobytes() + tail.tobytes()).decode("ascii")


@lru_cache(maxsize=MAX_K)
def revcomp_table(k: int) -> np.ndarray:
    """(vocab_size(k),) array mapping each id to the id of its reverse-complement k-mer.

    Special tokens (``[UNK]`` included) map to themselves.
    """
    k = check_k(k)
    idx = np.arange(4**k, dtype=np.int64)
    rc = np.zeros_like(idx)
    for j in range(k):  # base j from the right, complemented (3 - code), becomes base j from the left
        rc = (rc << 2) | (3 - ((idx >> (2 * j)) & 3))
    table = np.concatenate([np.arange(N_SPECIAL), rc + N_SPECIAL])
    return table.astype(token_dtype(k))


def reverse_complement_ids(ids: np.ndarray, k: int) -> np.ndarray:
    """Token ids of the reverse complement of the sequence that ``ids`` encodes.

    Exact for any stride when the k-mers tile the sequence end to end (the token of the k-mer at
    ``[s, s+k)`` becomes the reverse-complement k-mer, and the order is reversed). Shape ``(..., T)``;
    the last axis is reversed.
    """
    return revcomp_table(k)[np.asarray(ids)[..., ::-1]]


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string; case and IUPAC ambiguity codes are preserved (N -> N)."""
    return seq.translate(_COMPLEMENT)[::-1]


@dataclass(frozen=True)
class KmerTokenizer:
    """The tokenizer record: ``k`` and ``stride``, the one home of these facts.

    Token stores, :class:`~genomics_lm.model.ModelConfig` and checkpoints carry this record (as
    :meth:`to_dict`); the vocabulary size is derived from it, and :func:`check_same_tokenizer` compares two of
    them.

    Args:
        k: k-mer length, 1..8 (vocabulary: 5 special tokens + 4**k k-mers)
        stride: step between k-mer starts, 1..k: k = non-overlapping k-mers, 1 = overlapping (DNABERT
            style); None = k
    """

    k: int = 6  # k-mer length, 1..8
    stride: int | None = None  # step between k-mer starts, 1..k (None = k: non-overlapping)

    def __post_init__(self):
        try:
            k = check_k(self.k)
        except ValueError as exc:
            raise TokenizerError(str(exc)) from None
        stride = k if self.stride is None else self.stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= k:
            raise TokenizerError(f"stride must be an integer from 1 to k={k}, got {self.stride!r}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "stride", int(stride))

    @property
    def vocab_size(self) -> int:
        """5 specials + 4**k."""
        return vocab_size(self.k)

    @property
    def dtype(self) -> np.dtype:
        """Token array dtype: uint16 for k <= 7, uint32 for k = 8."""
        return token_dtype(self.k)

    def encode(self, seq) -> np.ndarray:
        return encode(seq, self.k, self.stride)

    def decode(self, ids) -> str:
        return decode(ids, self.k, self.stride)

    def window_bp(self, n_tokens: int) -> int:
        return window_bp(n_tokens, self.k, self.stride)

    def num_tokens(self, length_bp: int) -> int:
        return num_tokens(length_bp, self.k, self.stride)

    def token(self, token_id: int) -> str:
        """The string form of one id: a special token's name or the k-mer's bases."""
        if token_id < N_SPECIAL:
            return SPECIAL_TOKENS[token_id]
        return decode([token_id], self.k)

    def describe(self) -> str:
        return f"k={self.k} stride={self.stride}"

    def to_dict(self) -> dict:
        """``{"k", "stride", "vocab_size"}`` (vocab_size for readers of the file; it is derived from k)."""
        return {"k": self.k, "stride": self.stride, "vocab_size": self.vocab_size}

    @classmethod
    def from_dict(cls, d) -> "KmerTokenizer":
        """Inverse of :meth:`to_dict`; a recorded ``vocab_size`` must agree with ``k``."""
        if isinstance(d, KmerTokenizer):
            return d
        if not isinstance(d, dict) or "k" not in d:
            raise TokenizerError(f"not a tokenizer record (expected {{'k': ..., 'stride': ...}}, got {d!r})")
        unknown = sorted(set(d) - {"k", "stride", "vocab_size"})
        if unknown:
            raise TokenizerError(f"unknown tokenizer keys {unknown} (known: k, stride, vocab_size)")
        tok = cls(int(d["k"]), None if d.get("stride") is None else int(d["stride"]))
        if d.get("vocab_size") is not None and int(d["vocab_size"]) != tok.vocab_size:
            raise TokenizerError(f"vocab_size={d['vocab_size']} does not match k={tok.k} "
                                 f"({N_SPECIAL} specials + 4**{tok.k} = {tok.vocab_size})")
        return tok


class TokenizerError(UserError, ValueError):
    """An invalid tokenizer record (a ``ValueError``, and a one-line ``UserError`` on the command line)."""


class TokenizerMismatch(UserError):
    """Two tokenizer records that disagree (a store and a model, a checkpoint and a task)."""


def check_same_tokenizer(have: KmerTokenizer, want: KmerTokenizer, have_name: str, want_name: str) -> None:
    """Raise a one-line error unless two tokenizer records agree, naming both sides, e.g.

    ``token store tokens/val.h5 has k=3 stride=3, the checkpoint was trained with k=6 stride=6``.
    """
    if (have.k, have.stride) != (want.k, want.stride):
        raise TokenizerMismatch(f"{have_name} has {have.describe()}, {want_name} has {want.describe()}")
