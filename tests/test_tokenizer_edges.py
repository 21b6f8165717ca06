"""Tokenizer edges with exact values: soft-mask flags at the a..z boundaries and on short input, window_bp
of 0, 1 and more tokens."""

from __future__ import annotations

import numpy as np

from genomics_lm.tokenizer import KmerTokenizer, num_tokens, softmask_flags, window_bp


def test_softmask_flags_lower_case_boundaries():
    """'a' and 'z' are lower case, the bytes just outside ('`' and '{') are not; one flag per base for k=1."""
    flags = softmask_flags("a`z{AZy", 1)
    assert flags.dtype == np.uint8
    assert flags.tolist() == [1, 0, 1, 0, 0, 0, 1]


def test_softmask_flags_short_and_exact_lengths():
    empty = softmask_flags("ac", 3)
    assert empty.dtype == np.uint8 and empty.shape == (0,)
    one = softmask_flags("Acg", 3)  # exactly one k-mer
    assert one.dtype == np.uint8 and one.tolist() == [1]
    assert softmask_flags("ACGTacgtAC", 4, stride=2).tolist() == [0, 1, 1, 1]
    assert softmask_flags(np.frombuffer(b"ACGTAC", np.uint8), 3).tolist() == [0, 0]


def test_window_bp_exact():
    assert [window_bp(n, 6, 2) for n in (-1, 0, 1, 2, 3)] == [0, 0, 6, 8, 10]
    assert [window_bp(n, 3, 3) for n in (0, 1, 4)] == [0, 3, 12]
    assert KmerTokenizer(6, 2).window_bp(3) == 10
    # the inverse of num_tokens on whole windows
    assert all(num_tokens(window_bp(n, 6, 2), 6, 2) == n for n in range(1, 20))


def test_array_input_must_be_one_dimensional_uint8():
    import pytest

    from genomics_lm.tokenizer import encode

    for bad in (np.zeros((2, 3), np.uint8), np.zeros(3, np.int32)):
        with pytest.raises(TypeError) as info:
            softmask_flags(bad, 1)
        assert str(info.value) == f"expected a 1-D uint8 array of ASCII bases, got {bad.dtype} with shape {bad.shape}"
        with pytest.raises(TypeError):
            encode(bad, 1)


def test_non_ascii_characters_are_one_unknown_base():
    """A non-ASCII character is one '?' byte: one position, not a soft-masked base, [UNK] in encode."""
    from genomics_lm.tokenizer import UNK_ID, encode

    assert softmask_flags("a\u00e9c", 1).tolist() == [1, 0, 1]
    assert encode("A\u00e9C", 1).tolist() == [5, UNK_ID, 6]


def test_decode_edges_exact():
    import pytest

    from genomics_lm.tokenizer import CLS_ID, PAD_ID, SEP_ID, decode

    assert decode([], 3) == "" and decode([PAD_ID, CLS_ID, SEP_ID], 3) == ""
    with pytest.raises(ValueError) as info:
        decode([5], 3, 4)
    assert str(info.value) == "stride must be from 1 to k=3, got 4"


def test_tokenizer_record_checks_exact():
    import pytest

    from genomics_lm.tokenizer import TokenizerError

    for stride in (True, 1.5, 0, 4):
        with pytest.raises(TokenizerError) as info:
            KmerTokenizer(3, stride)
        assert str(info.value) == f"stride must be an integer from 1 to k=3, got {stride!r}"
    tok = KmerTokenizer(np.int64(3), np.int64(2))
    assert type(tok.k) is int and type(tok.stride) is int and (tok.k, tok.stride) == (3, 2)
    for bad in ({"stride": 3}, "k", ["k"], None):
        with pytest.raises(TokenizerError) as info:
            KmerTokenizer.from_dict(bad)
        assert str(info.value) == f"not a tokenizer record (expected {{'k': ..., 'stride': ...}}, got {bad!r})"
    assert KmerTokenizer.from_dict({"k": 3, "stride": None}) == KmerTokenizer(3, 3)
    assert KmerTokenizer.from_dict({"k": "4", "stride": "2", "vocab_size": 261}) == KmerTokenizer(4, 2)


def test_encode_accepts_bytes_like_input():
    from genomics_lm.tokenizer import encode

    assert encode(bytearray(b"ACGTAC"), 2).tolist() == encode(b"ACGTAC", 2).tolist() == [6, 16, 6]
    assert encode(memoryview(b"acgtac"), 3).tolist() == [11, 54]


def test_tokenizer_record_methods_use_its_stride():
    tok = KmerTokenizer(3, 1)
    assert tok.num_tokens(5) == 3 and tok.num_tokens(2) == 0 and KmerTokenizer(3).num_tokens(7) == 2
    assert tok.decode(tok.encode("ACGTA")) == "ACGTA"
    assert tok.decode([5, 6]) == "AAAC" and KmerTokenizer(3).decode([5, 6]) == "AAAAAC"
