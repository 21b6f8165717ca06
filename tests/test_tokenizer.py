"""K-mer tokenizer: exact ids, round trips, reverse complement, vectorised speed sanity."""

import numpy as np
import pytest

from genomics_lm import tokenizer as tk
from genomics_lm.errors import UserError


def test_vocabulary_layout():
    assert tk.SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    assert (tk.PAD_ID, tk.UNK_ID, tk.CLS_ID, tk.SEP_ID, tk.MASK_ID) == (0, 1, 2, 3, 4)
    assert [tk.vocab_size(k) for k in (1, 2, 6, 8)] == [9, 21, 4101, 65541]
    assert tk.token_dtype(7) == np.uint16 and tk.token_dtype(8) == np.uint32


@pytest.mark.parametrize(
    "seq,k,stride,expected",
    [
        ("ACGT", 1, 1, [5, 6, 7, 8]),
        ("acgt", 1, 1, [5, 6, 7, 8]),  # case-insensitive
        ("ACNRYT", 1, 1, [5, 6, 1, 1, 1, 8]),  # N and IUPAC codes -> [UNK]
        ("AAAAAC", 3, 3, [5, 6]),  # AAA=5, AAC=6
        ("ACGTAC", 3, 3, [11, 54]),  # ACG = 0*16+1*4+2 = 6 -> 11; TAC = 3*16+0+1 = 49 -> 54
        ("ACGTACG", 3, 3, [11, 54]),  # trailing remainder shorter than k dropped
        ("ACGTN", 2, 1, [6, 11, 16, 1]),  # AC=1, CG=6, GT=11, TN -> UNK
        ("TTTTTT", 6, 6, [4**6 - 1 + 5]),
        ("TTTTTTTT", 8, 8, [65540]),
        ("AC", 3, 3, []),
        ("ACGTACGT", 4, 2, [5 + 0b00011011, 5 + 0b10110001, 5 + 0b00011011]),  # ACGT, GTAC, ACGT
    ],
)
def test_encode_exact_ids(seq, k, stride, expected):
    ids = tk.encode(seq, k, stride)
    assert ids.dtype == tk.token_dtype(k)
    assert ids.tolist() == expected


def test_encode_accepts_bytes_and_arrays():
    ref = tk.encode("ACGTTGCA", 2)
    assert tk.encode(b"ACGTTGCA", 2).tolist() == ref.tolist()
    assert tk.encode(np.frombuffer(b"ACGTTGCA", np.uint8), 2).tolist() == ref.tolist()


@pytest.mark.parametrize("k", range(1, 9))
def test_round_trip_non_overlapping(k):
    rng = np.random.default_rng(k)
    seq = "".join(rng.choice(list("ACGT"), size=k * 50))
    ids = tk.encode(seq, k)
    assert len(ids) == 50
    assert tk.decode(ids, k) == seq


@pytest.mark.parametrize("k", [1, 3, 6])
def test_round_trip_overlapping(k):
    seq = "ACGTTGCAAGGCTTACGATCGATCGGGATCCA"
    ids = tk.encode(seq, k, 1)
    assert len(ids) == len(seq) - k + 1
    assert tk.decode(ids, k, 1) == seq


def test_decode_specials():
    assert tk.decode([tk.CLS_ID, 5, tk.UNK_ID, tk.SEP_ID, tk.PAD_ID], 2) == "AANN"
    with pytest.raises(ValueError, match="token ids must lie in 0..20"):
        tk.decode([21], 2)


@pytest.mark.parametrize("bad", [0, 9, -1, 2.5, "6", True])
def test_k_out_of_range(bad):
    with pytest.raises(ValueError, match="k must be an integer from 1 to 8"):
        tk.encode("ACGT", bad)


def test_stride_out_of_range():
    with pytest.raises(ValueError, match="stride must be from 1 to k=3"):
        tk.encode("ACGT", 3, 4)


@pytest.mark.parametrize("k,stride", [(1, 1), (3, 3), (3, 1), (6, 6), (6, 1), (8, 8)])
def test_token_level_reverse_complement_is_exact(k, stride):
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=k * 40))
    ids = tk.encode(seq, k, stride)
    assert tk.reverse_complement_ids(ids, k).tolist() == tk.encode(tk.reverse_complement(seq), k, stride).tolist()


def test_reverse_complement_string():
    assert tk.reverse_complement("AACGTN") == "NACGTT"
    assert tk.reverse_complement("acgR") == "Ycgt"


def test_kmer_tokenizer_object():
    t = tk.KmerTokenizer(k=6, stride=6)
    assert t.vocab_size == 4101
    assert t.window_bp(4096) == 24576
    assert tk.KmerTokenizer(6, 1).window_bp(4096) == 4101
    assert t.token(0) == "[PAD]" and t.token(5) == "AAAAAA"
    assert t.to_dict() == {"k": 6, "stride": 6, "vocab_size": 4101}
    with pytest.raises(ValueError):
        tk.KmerTokenizer(6, 7)


def test_tokenizer_record_round_trip_and_validation():
    t = tk.KmerTokenizer(6)
    assert t.stride == 6 and t.describe() == "k=6 stride=6" and t.dtype == np.uint16
    assert tk.KmerTokenizer.from_dict(t.to_dict()) == t and tk.KmerTokenizer.from_dict(t) is t
    assert tk.KmerTokenizer.from_dict({"k": 3, "stride": 1}) == tk.KmerTokenizer(3, 1)
    assert tk.KmerTokenizer(8).dtype == np.uint32
    with pytest.raises(tk.TokenizerError, match="vocab_size=69 does not match k=6"):
        tk.KmerTokenizer.from_dict({"k": 6, "stride": 6, "vocab_size": 69})
    with pytest.raises(tk.TokenizerError, match=r"unknown tokenizer keys \['window'\]"):
        tk.KmerTokenizer.from_dict({"k": 6, "window": 3})
    with pytest.raises(tk.TokenizerError, match="k must be an integer from 1 to 8, got 9"):
        tk.KmerTokenizer(9)
    with pytest.raises(UserError, match="stride must be an integer from 1 to k=3, got 0"):
        tk.KmerTokenizer(3, 0)


def test_check_same_tokenizer_names_both_sides():
    tk.check_same_tokenizer(tk.KmerTokenizer(6), tk.KmerTokenizer(6, 6), "a", "b")
    with pytest.raises(tk.TokenizerMismatch) as err:
        tk.check_same_tokenizer(tk.KmerTokenizer(3), tk.KmerTokenizer(6), "token store tokens/val.h5", "the checkpoint")
    assert str(err.value) == "token store tokens/val.h5 has k=3 stride=3, the checkpoint has k=6 stride=6"
    assert isinstance(err.value, UserError)


def test_real_genome_chunk_is_decoded_back(genomes, tmp_path):
    import shutil

    from genomics_lm.genome import Genome

    g = Genome(shutil.copyfile(genomes / "lambda_phage.fa", tmp_path / "lambda_phage.fa"))  # index in tmp_path
    seq = g.fetch(g.names[0], 0, 6000).upper()
    assert tk.decode(tk.encode(seq, 6), 6) == seq
    assert tk.decode(tk.encode(seq, 6, 1), 6, 1) == seq


def _naive(seq, k, stride):
    """Obvious per-k-mer reference: a dict lookup of each upper-cased k-mer."""
    import itertools

    vocab = {"".join(p): i + 5 for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    return [vocab.get(seq[i : i + k].upper(), 1) for i in range(0, len(seq) - k + 1, stride)]


@pytest.mark.parametrize("k", range(1, 9))
def test_matches_naive_reference_on_random_input(k):
    rng = np.random.default_rng(100 + k)
    alphabet = list("ACGTacgtNnRY-*é")
    p = np.array([0.2] * 4 + [0.03] * 4 + [0.01] * 7)
    for length in (0, k - 1, k, 37, 1003):
        seq = "".join(rng.choice(alphabet, p=p / p.sum(), size=length))
        for stride in sorted({1, max(1, k // 2), k}):
            assert tk.encode(seq, k, stride).tolist() == _naive(seq, k, stride), (length, stride)


def test_softmask_flags():
    assert tk.softmask_flags("ACgtAC", 2).tolist() == [0, 1, 0]
    assert tk.softmask_flags("ACgtAC", 2, 1).tolist() == [0, 1, 1, 1, 0]
    assert tk.encode("ACgtAC", 2).tolist() == tk.encode("ACGTAC", 2).tolist()


@pytest.mark.parametrize("k,stride", [(6, 6), (6, 1), (5, 2), (8, 8)])
def test_chunked_encoding_matches_across_piece_boundaries(monkeypatch, k, stride):
    monkeypatch.setattr(tk, "_CHUNK_BYTES", 97)  # many small pieces with awkward boundaries
    rng = np.random.default_rng(7)
    seq = "".join(rng.choice(list("ACGTNacgt"), size=2000))
    assert tk.encode(seq, k, stride).tolist() == _naive(seq, k, stride)
    assert tk.encode(np.frombuffer(seq.encode(), np.uint8), k, stride).tolist() == _naive(seq, k, stride)


def test_bench_tokenizer_help_is_plain_text_and_documents_every_option():
    from genomics_lm.cli.bench_tokenizer import build_parser

    parser = build_parser()
    text = parser.format_help()
    assert "``" not in text and ":func:" not in text and ":mod:" not in text and "(default: None)" not in text
    for action in parser._actions:
        assert action.help, action.option_strings


def test_bench_tokenizer_measures_kernel_and_end_to_end(genomes, tmp_path):
    import shutil

    from genomics_lm.bench import tokenizer as bench

    fasta = shutil.copyfile(genomes / "lambda_phage.fa", tmp_path / "lambda_phage.fa")
    enc = bench.bench_encode(bench.genome_sequence(fasta), [3], ["k", "1"], repeats=1)
    assert [(r["k"], r["stride"]) for r in enc] == [(3, 3), (3, 1)] and all(r["ours_mbps"] > 0 for r in enc)
    e2e = bench.bench_end_to_end(fasta, 3, ["k", "1"], window_tokens=500, repeats=1, copies=10)
    assert [(r["k"], r["stride"], r["copies"]) for r in e2e] == [(3, 3, 10), (3, 1, 10)]
    assert all(r["mbp"] == pytest.approx(0.48502) and r["mbps"] > 0 and r["rows"] > 0 for r in e2e)
    table = bench.format_end_to_end(e2e, enc)
    assert table.splitlines()[0].split()[:4] == ["k", "stride", "encode", "Mbp/s"] and len(table.splitlines()) == 3
