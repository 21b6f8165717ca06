"""Genome access, windows and leak-free splits on the real genomes of ../shared/data.

Every FASTA that gets an index is opened from a copy in ``tmp_path`` (or, for the plain-gzip E. coli, through
the per-run cache), so no test writes into the data folder, whether that folder is writable or not.
"""

import gzip
import os
import pickle
import shutil
import stat

import numpy as np
import pytest

from genomics_lm.errors import UserError
from genomics_lm.files import sha256sum
from genomics_lm.genome import Genome, iter_window_batches, iter_windows, plan_splits


def local_copy(src, folder):
    """A copy of ``src`` in ``folder`` (created): its index goes there, never beside the shared file."""
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.copyfile(src, folder / src.name)


@pytest.fixture
def read_only(tmp_path):
    """Factory: copy files into ``tmp_path/ro`` and make that folder read-only by its mode bits (0o555)."""
    folder = tmp_path / "ro"

    def make(*sources):
        for src in sources:
            local_copy(src, folder)
        folder.chmod(0o555)
        return folder

    yield make
    if folder.exists():
        folder.chmod(0o755)


def test_gzip_genome_reads_like_the_plain_file(genomes, tmp_path):
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")  # plain gzip: read through a plain copy in the cache
    assert g.lengths == {"NC_000913.3": 4_641_652}
    assert g._fasta_path.parent == g.cache_dir and g._index_path.parent == g.cache_dir
    with gzip.open(genomes / "ecoli_k12_mg1655.fna.gz", "rt") as fh:
        fh.readline()
        first = "".join(fh.readline().strip() for _ in range(3))
    assert g.fetch("NC_000913.3", 0, len(first)) == first
    assert g.source()["sha256"] == "254606e2722f64ca0906dfc1d41bceac41be72c335627c23f831b007939c8a48"


def test_bgzip_is_read_in_place(genomes, tmp_path):
    Bio_bgzf = pytest.importorskip("Bio.bgzf")
    src = local_copy(genomes / "lambda_phage.fa", tmp_path / "plain")
    dst = tmp_path / "lambda.fa.gz"
    with open(src, "rb") as fi, Bio_bgzf.BgzfWriter(str(dst), "wb") as fo:
        fo.write(fi.read())
    g = Genome(dst, cache_dir=tmp_path / "cache")
    plain = Genome(src)
    assert g.lengths == plain.lengths
    assert g.fetch(g.names[0], 1000, 1100) == plain.fetch(plain.names[0], 1000, 1100)
    assert g.fetch_bytes(g.names[0], 1000, 1100) == plain.fetch_bytes(plain.names[0], 1000, 1100)
    assert not (tmp_path / "lambda.fa.gz.fai").exists()  # read in place, indexed in the cache, not beside the file
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".fai", ".gzi"]


def test_bgzip_in_read_only_folder_indexes_into_the_cache(genomes, tmp_path, read_only):
    Bio_bgzf = pytest.importorskip("Bio.bgzf")
    bgz = tmp_path / "lambda.fa.gz"
    with open(genomes / "lambda_phage.fa", "rb") as fi, Bio_bgzf.BgzfWriter(str(bgz), "wb") as fo:
        fo.write(fi.read())
    folder = read_only(bgz)
    g = Genome(folder / "lambda.fa.gz", cache_dir=tmp_path / "cache")
    assert g.lengths == {"gi|9626243|ref|NC_001416.1|": 48_502} and g.fetch(g.names[0], 0, 5) == "GGGCG"
    assert sorted(os.listdir(folder)) == ["lambda.fa.gz"]
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".fai", ".gzi"]


def test_index_goes_to_cache_for_read_only_folder(genomes, tmp_path, read_only):
    # a folder read-only by its mode bits: even root (whom os.access lets write anywhere) leaves it untouched
    folder = read_only(genomes / "human_chrM.fa")
    g = Genome(folder / "human_chrM.fa", cache_dir=tmp_path / "cache")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    assert sorted(os.listdir(folder)) == ["human_chrM.fa"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{g.sha256[:16]}-human_chrM.fa.fai"]
    assert g.lengths == {"MT_human": 16_569}
    again = Genome(folder / "human_chrM.fa", cache_dir=tmp_path / "cache")  # finds the cached index
    assert again._index_path == g._index_path and again.fetch("MT_human", 0, 10) == g.fetch("MT_human", 0, 10)


def test_writable_data_folder_is_left_untouched_and_an_existing_index_is_used(genomes, tmp_path):
    fa = local_copy(genomes / "human_chrM.fa", tmp_path / "rw")
    g = Genome(fa, cache_dir=tmp_path / "cache")
    assert sorted(os.listdir(tmp_path / "rw")) == ["human_chrM.fa"]  # the index went to the cache
    assert g._index_path.parent == tmp_path / "cache"
    (tmp_path / "rw" / "human_chrM.fa.fai").write_bytes(g._index_path.read_bytes())  # e.g. made by samtools faidx
    beside = Genome(fa, cache_dir=tmp_path / "other")
    assert beside._index_path == tmp_path / "rw" / "human_chrM.fa.fai" and beside.lengths == {"MT_human": 16_569}
    assert not (tmp_path / "other").exists()


def test_windows_skip_n_runs(genomes, tmp_path):
    g = Genome(local_copy(genomes / "hg19_chr22_20-21Mb.fa", tmp_path))
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


def test_windows_keep_the_gap_from_the_other_splits(genomes):
    """Each window of a split lies at least ``gap_bp`` from every interval of the *other* splits, so windows of
    different splits are at least ``gap_bp`` apart (lying inside its own split's intervals holds by construction)."""
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    gap = 5000
    plan = plan_splits(g.lengths, block_bp=100_000, gap_bp=gap)
    spans = {split: np.array([(int(a), int(a) + 5000) for b in iter_window_batches(g, ivs, 5000) for a in b.starts])
             for split, ivs in plan.intervals.items()}
    assert all(len(v) > 10 for v in spans.values())
    for split, win in spans.items():
        for other, ivs in plan.intervals.items():
            if other == split:
                continue
            for _, a, b in ivs:  # distance of each window to the interval [a, b) (<= 0: they overlap)
                assert np.maximum(a - win[:, 1], win[:, 0] - b).min() >= gap, (split, other, a, b)
            w = spans[other]  # window to window, every pair
            dist = np.maximum(w[None, :, 0] - win[:, None, 1], win[:, None, 0] - w[None, :, 1])
            # 100 kb blocks of 5 kb windows: the first window after a boundary starts exactly gap_bp after the end
            # of the last window before it
            assert dist.min() == gap, (split, other)


@pytest.mark.parametrize("window_bp,max_n_frac", [(100, 0.1), (1000, 0.05), (100, 0.29), (50, 0.0), (40, 1.0)])
def test_n_filter_keeps_a_window_with_exactly_max_n_frac(tmp_path, window_bp, max_n_frac):
    """The documented rule: skip windows with a *larger* fraction of non-ACGT bases than ``max_n_frac``. A window
    with exactly ``max_n_frac * window_bp`` of them is kept, its neighbour with one more is skipped (0.29 * 100 is
    28.999999999999996 in floating point: a product against the count would drop the window with 29 N's)."""
    rng = np.random.default_rng(7)
    n = round(max_n_frac * window_bp)  # an exact integer for these cases
    acgt = lambda m: "".join(rng.choice(list("ACGTacgt"), size=m))  # noqa: E731
    bad = lambda m: "".join(rng.choice(list("NnRY"), size=m))  # noqa: E731  (non-ACGT of any kind counts)
    windows = [
        acgt(window_bp),                                            # 0: clean
        bad(n) + acgt(window_bp - n),                               # 1: exactly n: kept
        acgt(window_bp - n - 1) + bad(n + 1) if n < window_bp else bad(window_bp),  # 2: n + 1: skipped
        acgt(window_bp - n) + bad(n),                               # 3: exactly n, at its end: kept
        acgt(window_bp),                                            # 4: clean
    ]
    fa = tmp_path / "n.fa"
    seq = "".join(windows) + acgt(window_bp - 1)  # a last partial window, never a window
    fa.write_text(">s\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    g = Genome(fa, cache_dir=tmp_path / "cache")
    stats = {}
    kept = list(iter_windows(g, [("s", 0, len(seq))], window_bp, max_n_frac=max_n_frac, stats=stats))
    if max_n_frac < 1:
        want, skipped = [0, window_bp, 3 * window_bp, 4 * window_bp], 1
    else:  # nothing is more than everything: all windows kept
        want, skipped = [i * window_bp for i in range(5)], 0
    assert [w.start for w in kept] == want
    assert (stats["kept"], stats["skipped_n"]) == (len(want), skipped)
    assert [w.seq for w in kept] == [windows[i // window_bp] for i in want]
    assert kept[1].n_frac == max_n_frac and all(w.n_frac <= max_n_frac for w in kept)
    # the batched form, pieces of two windows: the same starts
    batches = list(iter_window_batches(g, [("s", 0, len(seq))], window_bp, max_n_frac=max_n_frac,
                                       piece_bp=2 * window_bp))
    assert [int(a) for b in batches for a in b.starts] == want and sum(b.n_skipped for b in batches) == skipped


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
        Genome(path, cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert sorted(os.listdir(tmp_path)) in (["bad.fa"], ["bad.fa", "cache"])
    assert not (tmp_path / "cache").exists() or os.listdir(tmp_path / "cache") == []  # no index, not even a temporary one


@pytest.mark.parametrize("read_only_folder", [False, True], ids=["writable", "read_only"])
def test_refused_fasta_leaves_no_index(tmp_path, read_only, read_only_folder):
    src = tmp_path / "src" / "dup.fa"
    src.parent.mkdir()
    src.write_text(">chr1\nACGT\n>chr2\nACGT\n>chr1\nGGGG\n")
    folder = read_only(src) if read_only_folder else src.parent
    with pytest.raises(UserError) as err:
        Genome(folder / "dup.fa", cache_dir=tmp_path / "cache")
    assert str(err.value) == f"{folder / 'dup.fa'}: duplicate record name 'chr1'"
    assert sorted(os.listdir(folder)) == ["dup.fa"]
    assert not (tmp_path / "cache").exists() or os.listdir(tmp_path / "cache") == []


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
    a, b = Genome(crlf), Genome(local_copy(genomes / "lambda_phage.fa", tmp_path / "lf"))
    assert a.lengths == b.lengths
    n = a.lengths[a.names[0]]
    assert a.fetch(a.names[0], n - 500, n) == b.fetch(b.names[0], n - 500, n)


def test_genome_pickles_without_handle(genomes, tmp_path):
    g = Genome(local_copy(genomes / "lambda_phage.fa", tmp_path))
    g.fetch(g.names[0], 0, 10)
    g.fetch_bytes(g.names[0], 0, 10)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2._handle._obj is None and g2._raw._obj is None
    assert g2.fetch(g.names[0], 0, 10) == g.fetch(g.names[0], 0, 10) == "GGGCGGCGAC"
    assert g2.fetch_bytes(g.names[0], 0, 10) == b"GGGCGGCGAC"


def test_sha256(genomes):
    assert sha256sum(genomes / "lambda_phage.fa") == "0a04f81952deb68c204e8ae67e0573cb97d348f18ab1b527630d57c294028cf5"


def test_varying_line_widths_are_normalised(tmp_path, genomes):
    b = Genome(local_copy(genomes / "lambda_phage.fa", tmp_path / "src"))
    seq = b.fetch(b.names[0], 0, 1000)
    ragged = tmp_path / "ragged.fa"
    ragged.write_text(">r1 some description\n" + seq[:70] + "\n" + seq[70:100] + "\n" + seq[100:] + "\n>r2\nACGTN\n")
    a = Genome(ragged, cache_dir=tmp_path / "cache")
    assert a.lengths == {"r1": 1000, "r2": 5}
    assert a.fetch("r1", 0, 1000) == seq and a.fetch("r2", 0, 5) == "ACGTN"
    assert a.fetch_bytes("r1", 0, 1000) == seq.encode() and a.fetch_bytes("r2", 1, 5) == b"CGTN"
    assert sorted(os.listdir(tmp_path)) == ["cache", "ragged.fa", "src"]  # the plain copy and its index: in the cache


def test_fetch_out_of_bounds(genomes, tmp_path):
    g = Genome(local_copy(genomes / "lambda_phage.fa", tmp_path))
    with pytest.raises(UserError, match="outside the record"):
        g.fetch(g.names[0], 0, 10**9)
    with pytest.raises(UserError, match="outside the record"):
        g.fetch_bytes(g.names[0], 0, 10**9)
    with pytest.raises(UserError, match="no record named 'chrZ'"):
        g.fetch("chrZ", 0, 1)
    with pytest.raises(UserError, match="no record named 'chrZ'"):
        g.fetch_bytes("chrZ", 0, 1)


@pytest.mark.parametrize("name", ["lambda_phage.fa", "hg19_chr22_20-21Mb.fa"])
def test_fetch_bytes_is_fetch_as_bytes(genomes, tmp_path, name):
    g = Genome(local_copy(genomes / name, tmp_path))
    seqid, n = g.names[0], g.lengths[g.names[0]]
    rng = np.random.default_rng(0)
    for start, end in [(0, n), (0, 0), (n - 1, n), (59, 61), (60, 120), *rng.integers(0, n, size=(20, 2))]:
        start, end = sorted((int(start), int(end)))
        assert g.fetch_bytes(seqid, start, end) == g.fetch(seqid, start, end).encode(), (start, end)


def test_window_batches_match_a_per_window_n_filter(genomes, tmp_path):
    """Vectorised N filter over pieces == the obvious per-window count, piece boundaries included."""
    g = Genome(local_copy(genomes / "hg19_chr22_20-21Mb.fa", tmp_path))
    name = g.names[0]
    seq = g.fetch(name, 0, g.lengths[name]).encode()
    bad = np.frombuffer(seq, np.uint8)
    bad = ~np.isin(bad, np.frombuffer(b"ACGTacgt", np.uint8))
    intervals = [(name, 0, 400_000), (name, 400_123, 1_000_000), (name, 5, 2_000)]
    for window_bp, step_bp, max_n in [(10_000, 10_000, 0.1), (3_000, 1_000, 0.0), (5_000, 7_000, 0.5)]:
        want = [(s + o, s + o + window_bp) for _, s, e in intervals for o in range(0, e - s - window_bp + 1, step_bp)
                if not bad[s + o : s + o + window_bp].sum() > max_n * window_bp]
        stats = {}
        batches = list(iter_window_batches(g, intervals, window_bp, step_bp, max_n, stats, piece_bp=50_000))
        got = [(int(a), int(a) + window_bp) for b in batches for a in b.starts]
        assert got == want and stats["kept"] == len(want)
        assert stats["kept"] + stats["skipped_n"] == sum(len(range(0, e - s - window_bp + 1, step_bp)) for _, s, e in intervals)
        assert all(b.seq == seq[b.start : b.end] for b in batches)
        assert len(batches) > len(intervals)  # several pieces per interval
