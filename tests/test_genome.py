"""Genome access, windows and leak-free splits on the real genomes of ../shared/data."""

import gzip
import shutil

import numpy as np
import pytest

from genomics_lm.errors import UserError
from genomics_lm.genome import Genome, iter_windows, plan_splits, sha256sum


def test_gzip_genome_reads_like_the_plain_file(genomes, tmp_path):
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    assert g.lengths == {"NC_000913.3": 4_641_652}
    with gzip.open(genomes / "ecoli_k12_mg1655.fna.gz", "rt") as fh:
        fh.readline()
        first = "".join(fh.readline().strip() for _ in range(3))
    assert g.fetch("NC_000913.3", 0, len(first)) == first
    assert g.source()["sha256"] == "254606e2722f64ca0906dfc1d41bceac41be72c335627c23f831b007939c8a48"


def test_bgzip_is_read_in_place(genomes, tmp_path):
    Bio_bgzf = pytest.importorskip("Bio.bgzf")
    src = genomes / "lambda_phage.fa"
    dst = tmp_path / "lambda.fa.gz"
    with open(src, "rb") as fi, Bio_bgzf.BgzfWriter(str(dst), "wb") as fo:
        fo.write(fi.read())
    g = Genome(dst)
    plain = Genome(src)
    assert g.lengths == plain.lengths
    assert g.fetch(g.names[0], 1000, 1100) == plain.fetch(plain.names[0], 1000, 1100)
    assert (tmp_path / "lambda.fa.gz.fai").exists()  # writable folder: index beside the file


def test_index_goes_to_cache_for_read_only_folder(genomes):
    g = Genome(genomes / "hg19_chr22_20-21Mb.fa")
    assert not (genomes / "hg19_chr22_20-21Mb.fa.fai").exists()
    assert g.lengths == {"22:20000001-21000000": 1_000_000}


def test_windows_skip_n_runs(genomes):
    g = Genome(genomes / "hg19_chr22_20-21Mb.fa")
    name = g.names[0]
    stats = {}
    wins = list(iter_windows(g, [(name, 0, g.lengths[name])], 10_000, max_n_frac=0.1, stats=stats))
    assert stats["kept"] == len(wins) and stats["skipped_n"] > 0  # the piece has ~10% N in runs
    assert all(w.n_frac <= 0.1 for w in wins)
    assert all(w.end - w.start == 10_000 == len(w.seq) for w in wins)
    assert wins[0].seq == g.fetch(name, wins[0].start, wins[0].end)
    # starts on the step grid
    assert all(w.start % 10_000 == 0 for w in wins)


def test_region_splits_are_disjoint_and_gapped(genomes):
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    plan = plan_splits(g.lengths, block_bp=200_000, gap_bp=20_000, seed=3)
    assert plan.mode == "regions"
    ivs = sorted((s, e, split) for split, lst in plan.intervals.items() for _, s, e in lst)
    for (s1, e1, a), (s2, e2, b) in zip(ivs, ivs[1:]):
        assert e1 <= s2
        if a != b:
            assert s2 - e1 >= 20_000
    total = g.total_bp
    assert 0.05 < plan.bp("val") / total < 0.15 and 0.05 < plan.bp("test") / total < 0.15
    # deterministic
    assert plan_splits(g.lengths, block_bp=200_000, gap_bp=20_000, seed=3).intervals == plan.intervals
    assert plan_splits(g.lengths, block_bp=200_000, gap_bp=20_000, seed=4).intervals != plan.intervals


def test_chromosome_splits_by_name():
    lengths = {f"chr{i}": 1000 * i for i in range(1, 23)}
    plan = plan_splits(lengths, val_chroms=["chr21"], test_chroms=["chr22"])
    assert plan.mode == "chromosomes"
    assert plan.intervals["val"] == [("chr21", 0, 21000)] and plan.intervals["test"] == [("chr22", 0, 22000)]
    auto = plan_splits(lengths, seed=1)  # many sequences: whole chromosomes held out
    assert auto.mode == "chromosomes"
    names = {split: {n for n, _, _ in v} for split, v in auto.intervals.items()}
    assert not (names["val"] & names["test"]) and not (names["train"] & names["val"])
    with pytest.raises(UserError, match="'chrX' is not in the genome"):
        plan_splits(lengths, val_chroms=["chrX"])


def test_windows_never_straddle_splits(genomes):
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    plan = plan_splits(g.lengths, block_bp=100_000, gap_bp=5000)
    spans = {split: [(w.start, w.end) for w in iter_windows(g, plan.intervals[split], 5000)] for split in plan.intervals}
    for split, ivs in plan.intervals.items():
        for s, e in spans[split]:
            assert any(a <= s and e <= b for _, a, b in ivs)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file"),
        (b"sequence,label\nACGT,1\n", "not a FASTA file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary content"),
        (b">a\nACGT\n>a\nGGGG\n", "duplicate record name 'a'"),
        (b">a\n>b\nGGGG\n", "record 'a' has no sequence"),
    ],
)
def test_bad_fasta_gives_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        Genome(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_and_truncated(tmp_path, genomes):
    with pytest.raises(UserError, match="no such file"):
        Genome(tmp_path / "nope.fa")
    trunc = tmp_path / "trunc.fa.gz"
    trunc.write_bytes((genomes / "ecoli_k12_mg1655.fna.gz").read_bytes()[:200_000])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        Genome(trunc)


def test_windows_line_endings_work(tmp_path, genomes):
    src = (genomes / "lambda_phage.fa").read_bytes()
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(src.replace(b"\n", b"\r\n"))
    a, b = Genome(crlf), Genome(genomes / "lambda_phage.fa")
    assert a.lengths == b.lengths
    n = a.lengths[a.names[0]]
    assert a.fetch(a.names[0], n - 500, n) == b.fetch(b.names[0], n - 500, n)


def test_genome_pickles_without_handle(genomes):
    import pickle

    g = Genome(genomes / "lambda_phage.fa")
    g.fetch(g.names[0], 0, 10)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2._fasta is None and g2.fetch(g.names[0], 0, 10) == g.fetch(g.names[0], 0, 10)


def test_sha256(genomes):
    assert sha256sum(genomes / "lambda_phage.fa") == "0a04f81952deb68c204e8ae67e0573cb97d348f18ab1b527630d57c294028cf5"


def test_varying_line_widths_are_normalised(tmp_path, genomes):
    b = Genome(genomes / "lambda_phage.fa")
    seq = b.fetch(b.names[0], 0, 1000)
    ragged = tmp_path / "ragged.fa"
    ragged.write_text(">r1 some description\n" + seq[:70] + "\n" + seq[70:100] + "\n" + seq[100:] + "\n>r2\nACGTN\n")
    a = Genome(ragged)
    assert a.lengths == {"r1": 1000, "r2": 5}
    assert a.fetch("r1", 0, 1000) == seq and a.fetch("r2", 0, 5) == "ACGTN"


def test_fetch_out_of_bounds(genomes):
    g = Genome(genomes / "lambda_phage.fa")
    with pytest.raises(UserError, match="outside the record"):
        g.fetch(g.names[0], 0, 10**9)
    with pytest.raises(UserError, match="no record named 'chrZ'"):
        g.fetch("chrZ", 0, 1)
