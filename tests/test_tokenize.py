"""``genomics-lm tokenize`` and its stage function on real genomes, and every bad input of the issues.

FASTA inputs that get an index are copied into ``tmp_path`` first (the plain-gzip E. coli is read through the
per-run cache), so nothing is ever written into the shared data folder.
"""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from genomics_lm.cli import main
from genomics_lm.cli.tokenize import build_parser
from genomics_lm.errors import UserError
from genomics_lm.genome import Genome
from genomics_lm.store import TokenStore
from genomics_lm.tokenize import tokenize_genome
from genomics_lm.tokenizer import UNK_ID, encode, softmask_flags

SPLITS = ("train", "val", "test")


def run(argv, capsys):
    rc = main(["tokenize", "--no-progress", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def local_copy(src, folder):
    """A copy of ``src`` in ``folder`` (created), so that its index goes there and not beside the shared file."""
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.copyfile(src, folder / src.name)


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def printed_rows(out):
    """The per-split lines of the command's table: split -> (windows, skipped, tokens, UNK, bp), as printed."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if f and f[0] in SPLITS:
            rows[f[0]] = (f[1], f[2], f[3], f[4], f[5])
    return rows


def read_fasta(path):
    """{name: sequence} of a plain FASTA, read without the package (an independent reference)."""
    records, name = {}, None
    for line in open(path):
        line = line.strip()
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = []
        elif line:
            records[name].append(line)
    return {n: "".join(parts) for n, parts in records.items()}


def cross_split_distances(stores):
    """Smallest distance in bp between a window of one split and a window of another on the same sequence
    (negative or 0: they overlap or touch), over every pair of windows, read from the stores' /seqid /start /end."""
    spans = {}
    for split, store in stores.items():
        with h5py.File(store.path) as f:
            seqids = [x.decode() if isinstance(x, bytes) else x for x in f["seqid"][:]]
            starts, ends = f["start"][:].astype(np.int64), f["end"][:].astype(np.int64)
        for seqid in set(seqids):
            sel = np.array([x == seqid for x in seqids])
            spans[split, seqid] = np.stack([starts[sel], ends[sel]], axis=1)
    found = {}
    for (a, seq_a), x in spans.items():
        for (b, seq_b), y in spans.items():
            if a < b and seq_a == seq_b:
                d = np.maximum(y[None, :, 0] - x[:, None, 1], x[:, None, 0] - y[None, :, 1])
                found[a, b, seq_a] = int(d.min())
    return found


def test_ecoli_end_to_end(genomes, tmp_path, capsys):
    rc, out, err = run(["--fasta", genomes / "ecoli_k12_mg1655.fna.gz", "--out-dir", tmp_path, "--k", 6,
                        "--window-tokens", 1024], capsys)
    assert rc == 0, err
    assert "train" in out and "windows" in out
    stores = {s: TokenStore(tmp_path / f"{s}.h5") for s in SPLITS}
    assert all(len(s) > 0 for s in stores.values())
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    s = stores["val"]
    seqid, start, end, strand = s.coords(3)
    assert end - start == 6144 and strand == "+"
    assert s[3].tolist() == encode(g.fetch(seqid, start, end), 6).tolist()
    assert s.source["sha256"] == "254606e2722f64ca0906dfc1d41bceac41be72c335627c23f831b007939c8a48"
    assert s.config["split_plan"]["mode"] == "regions"
    # no window of one split overlaps a window of another
    spans = {name: [st.coords(i)[1:3] for i in range(len(st))] for name, st in stores.items()}
    for a in spans:
        for b in spans:
            if a < b:
                for s1, e1 in spans[a]:
                    assert all(e1 <= s2 or e2 <= s1 for s2, e2 in spans[b])


def test_default_gap_keeps_the_splits_one_window_apart(genomes, tmp_path, capsys):
    """With the default split options, windows of different splits on a sequence are at least ``gap_bp`` apart, the
    gap recorded in each store's split plan, and that default gap is one window (as --gap-bp's help says)."""
    rc, _, err = run(["--fasta", genomes / "ecoli_k12_mg1655.fna.gz", "--out-dir", tmp_path, "--k", 3,
                      "--window-tokens", 256], capsys)
    assert rc == 0, err
    stores = {s: TokenStore(tmp_path / f"{s}.h5") for s in SPLITS}
    window_bp = 768
    for store in stores.values():
        plan = store.config["split_plan"]
        assert store.attrs["window_bp"] == window_bp and plan["mode"] == "regions"
        assert plan["params"]["gap_bp"] == window_bp  # the documented default: one window
        assert plan["params"]["block_bp"] == 100_000
    distances = cross_split_distances(stores)
    assert sorted(distances) == [("test", "train", "NC_000913.3"), ("test", "val", "NC_000913.3"),
                                 ("train", "val", "NC_000913.3")]
    assert min(distances.values()) >= window_bp, distances


def _assert_rows_are_per_window_encodings(out_dir, fasta, k, stride, softmask=False):
    """Every stored row == encode() of its own window's bases (the per-window path the old code took)."""
    g = Genome(fasta)
    n_rows = 0
    for split in SPLITS:
        path = out_dir / f"{split}.h5"
        if not path.exists():
            continue
        s = TokenStore(path)
        with h5py.File(path) as f:
            tokens, starts, ends = f["tokens"][:], f["start"][:], f["end"][:]
            seqids = [x.decode() if isinstance(x, bytes) else x for x in f["seqid"][:]]
            flags = f["softmask"][:] if softmask else None
        for i, (seqid, start, end) in enumerate(zip(seqids, starts, ends)):
            window = g.fetch(seqid, int(start), int(end))
            want = encode(window, k, stride)
            assert tokens[i].dtype == want.dtype and tokens[i].tobytes() == want.tobytes(), (split, i)
            if softmask:
                assert flags[i].tobytes() == softmask_flags(window, k, stride).tobytes(), (split, i)
        n_rows += len(s)
    return n_rows


@pytest.mark.parametrize("k,stride,window_tokens,step_tokens", [(6, 6, 1024, None), (6, 1, 2048, None),
                                                                 (4, 1, 700, 300), (5, 3, 512, 1000)],
                         ids=["k6-stride6", "k6-stride1", "k4-stride1-overlapping-windows", "k5-stride3-gapped-windows"])
def test_tokens_are_those_of_each_window_on_ecoli(genomes, tmp_path, k, stride, window_tokens, step_tokens):
    """Encoding a whole piece once and cutting windows from it gives byte-identical rows to encoding each window."""
    fasta = genomes / "ecoli_k12_mg1655.fna.gz"
    outputs = {s: tmp_path / f"{s}.h5" for s in SPLITS}
    summary = tokenize_genome(fasta, outputs, k=k, stride=stride, window_tokens=window_tokens,
                              step_tokens=step_tokens, progress=False, cache_dir=tmp_path / "cache")
    n = _assert_rows_are_per_window_encodings(tmp_path, fasta, k, stride)
    assert n == sum(s["rows"] for s in summary.values()) > 100


def test_k8_uint32_ids_end_to_end(genomes, tmp_path, capsys, one_thread):
    """k = 8 (65,541 ids, beyond uint16): E. coli -> store of uint32 ids (known 8-mers at known places) ->
    MLMDataset samples -> a tiny MaskedLM forward over the whole vocabulary."""
    import torch

    from genomics_lm.data import MLMDataset
    from genomics_lm.model import MaskedLM, ModelConfig
    from genomics_lm.tokenizer import KmerTokenizer

    rc, _, err = run(["--fasta", genomes / "ecoli_k12_mg1655.fna.gz", "--out", tmp_path / "k8.h5", "--split", "train",
                      "--k", 8, "--window-tokens", 64, "--val-frac", 0, "--test-frac", 0], capsys)
    assert rc == 0, err
    store = TokenStore(tmp_path / "k8.h5", expect=KmerTokenizer(8, 8))
    assert store.vocab_size == 65541 and store.attrs["window_bp"] == 512
    tokens = store.h5["tokens"][:]
    assert store.h5["tokens"].dtype == np.uint32 and tokens.shape == (len(store), 64)
    assert tokens.max() == 65540 and tokens[tokens != UNK_ID].min() == 5  # TTTTTTTT and AAAAAAAA both occur
    g = Genome(genomes / "ecoli_k12_mg1655.fna.gz")
    found = {}
    for kmer, want in (("TTTTTTTT", 65540), ("AAAAAAAA", 5), ("TTTTTTTA", 65537)):
        row, col = (int(x[0]) for x in np.nonzero(tokens == want))  # the first place it is stored
        seqid, start, end, _ = store.coords(row)
        seq = g.fetch(seqid, start, end)
        assert seq[8 * col : 8 * col + 8].upper() == kmer
        assert store[row].tolist() == encode(seq, 8).tolist()  # the whole row, as encode() of its bases
        found[kmer] = row
    assert encode("TTTTTTTTAAAAAAAA", 8).tolist() == [65540, 5]
    # dataset: crops of the row holding TTTTTTTT keep the large ids; the model embeds all 65,541
    ds = MLMDataset(store, seq_len=64, train=False, crops_per_row=1)
    sample = ds[found["TTTTTTTT"]]
    ids = torch.where(sample["labels"] >= 0, sample["labels"], sample["input_ids"])  # the row before masking
    assert ids.tolist() == tokens[found["TTTTTTTT"]].astype(np.int64).tolist()
    assert sample["input_ids"].dtype == torch.long and int(sample["input_ids"].max()) < 65541
    torch.manual_seed(0)
    config = ModelConfig(tokenizer=KmerTokenizer(8, 8), d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0,
                         attention="dense", backend="reference")
    model = MaskedLM(config).eval()
    assert config.vocab_size == 65541
    batch = torch.stack([ds[found[k]]["input_ids"] for k in ("TTTTTTTT", "AAAAAAAA")])
    with torch.no_grad():
        logits = model(batch)
    assert logits.shape == (2, 64, 65541) and torch.isfinite(logits).all()
    big = torch.tensor([[65540] * 64])  # the largest id through the embedding and the tied output layer
    with torch.no_grad():
        assert model(big).shape == (1, 64, 65541)


def test_tokens_with_n_runs_and_soft_masking(tmp_path):
    """Windows with N runs (kept or skipped), IUPAC codes and lower case: the same rows as per-window encoding."""
    rng = np.random.default_rng(5)
    seq = np.array(list("ACGT"), dtype="U1")[rng.integers(0, 4, size=60_000)]
    lower = rng.random(60_000) < 0.2
    seq[lower] = np.char.lower(seq[lower])
    for start, length in [(1_000, 30), (9_990, 400), (20_000, 3_000), (31_234, 1), (45_000, 5)]:
        seq[start : start + length] = "N"
    seq[50_000:50_010] = list("RYKMSWBDHV")
    text = "".join(seq)
    fa = tmp_path / "in" / "n_runs.fa"
    fa.parent.mkdir()
    fa.write_text(">chrA some description\n" + "\n".join(text[i : i + 60] for i in range(0, 40_000, 60)) + "\n"
                  ">chrB\n" + "\n".join(text[i : i + 70] for i in range(40_000, 60_000, 70)) + "\n")
    out = tmp_path / "out"
    summary = tokenize_genome(fa, {"train": out / "train.h5"}, k=3, stride=1, window_tokens=998, max_n_frac=0.05,
                              split_mode="regions", val_frac=0, test_frac=0, block_bp=10_000, gap_bp=0,
                              softmask=True, progress=False)
    s = summary["train"]
    # 40 + 20 windows of 1,000 bp every 998 bp; more than 50 non-ACGT bases in 4 of them: 9,980-10,980 (390 N)
    # and 19,960-20,960, 20,958-21,958, 21,956-22,956 (the 3,000 bp run; 22,954-23,954 holds 46 N and stays)
    assert (s["skipped_n"], s["rows"]) == (4, 56)
    assert _assert_rows_are_per_window_encodings(out, fa, 3, 1, softmask=True) == 56
    store = TokenStore(out / "train.h5")
    records = {"chrA": text[:40_000], "chrB": text[40_000:]}
    kept = [(name, a, a + 1000) for name, rec in records.items() for a in range(0, len(rec) - 999, 998)
            if sum(c not in "ACGTacgt" for c in rec[a : a + 1000]) <= 50]
    assert [store.coords(i)[:3] for i in range(len(store))] == kept
    toks = np.stack([store[i] for i in range(len(store))])
    assert (toks == UNK_ID).any()  # kept windows with a few N's and the IUPAC codes
    assert s["unk_frac"] == pytest.approx((toks == UNK_ID).mean())


def test_overlapping_kmers_and_single_split(genomes, tmp_path, capsys):
    out = tmp_path / "chrM.h5"
    fasta = local_copy(genomes / "human_chrM.fa", tmp_path / "in")
    rc, _, err = run(["--fasta", fasta, "--out", out, "--split", "train", "--k", 3, "--stride", 1,
                      "--window-tokens", 1000, "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0,
                      "--block-bp", 10000, "--gap-bp", 0], capsys)
    assert rc == 0, err
    s = TokenStore(out)
    assert s.stride == 1 and s.window_tokens == 1000 and s.attrs["window_bp"] == 1002
    assert len(s) == 16  # 16,569 bp, 10 kb blocks: 10 + 6 windows of 1,002 bp


def test_n_windows_are_skipped_and_unk_counted(genomes, tmp_path, capsys):
    """hg19 chr22:20-21 Mb (a 100 kb N run) in 4,200 bp windows: the skipped counts, windows and UNK fractions the
    command prints (and the stage returns) equal those computed here from the FASTA text, split by split."""
    fasta = local_copy(genomes / "hg19_chr22_20-21Mb.fa", tmp_path / "in")
    argv = ["--fasta", fasta, "--out-dir", tmp_path / "out", "--window-tokens", 700, "--max-n-frac", 0.15]
    rc, out, err = run(argv, capsys)
    assert rc == 0, err
    text = read_fasta(fasta)
    window_bp, printed = 4200, printed_rows(out)
    plan = TokenStore(tmp_path / "out" / "train.h5").config["split_plan"]["intervals"]
    expected = {}
    for split in SPLITS:
        kept, skipped, unk = [], 0, 0
        for name, start, end in plan[split]:
            for a in range(start, end - window_bp + 1, window_bp):
                bad = np.array([c not in "ACGTacgt" for c in text[name][a : a + window_bp]])
                if bad.sum() * 100 > 15 * window_bp:  # more than 15% non-ACGT, in integers
                    skipped += 1
                else:
                    kept.append((name, a, a + window_bp))
                    unk += int(bad.reshape(700, 6).any(axis=1).sum())  # a 6-mer with a non-ACGT base is UNK
        store = TokenStore(tmp_path / "out" / f"{split}.h5")
        assert [store.coords(i)[:3] for i in range(len(store))] == kept, split
        tokens = len(kept) * 700
        expected[split] = (len(kept), skipped, unk / tokens)
        assert printed[split] == (f"{len(kept):,}", f"{skipped:,}", f"{tokens:,}", f"{unk / tokens:.2%}",
                                  f"{sum(e - s for _, s, e in plan[split]):,}"), split
    # the partial N windows make both numbers non-trivial: 24 windows skipped, 0.03% UNK in the kept ones
    assert expected["train"][1] == 24 and printed["train"][3] == "0.03%"
    summary = tokenize_genome(fasta, {s: tmp_path / "again" / f"{s}.h5" for s in SPLITS}, window_tokens=700,
                              max_n_frac=0.15, progress=False)
    for split in SPLITS:
        rows, skipped, unk_frac = expected[split]
        s = summary[split]
        assert (s["rows"], s["skipped_n"], s["tokens"]) == (rows, skipped, rows * 700)
        assert s["unk_frac"] == pytest.approx(unk_frac, rel=1e-12, abs=0)


@pytest.mark.parametrize("max_n_frac", [None, 0.29], ids=["default-0.1", "0.29"])
def test_window_with_exactly_max_n_frac_is_kept(tmp_path, capsys, max_n_frac):
    """--max-n-frac: "skip windows with a larger fraction": 100 bp windows (2-mers, 50 tokens); the one with exactly
    max_n_frac * 100 N's is stored, its neighbour with one N more is skipped (and counted)."""
    frac = 0.1 if max_n_frac is None else max_n_frac
    n = round(frac * 100)
    rng = np.random.default_rng(3)
    acgt = lambda m: "".join(rng.choice(list("ACGT"), size=m))  # noqa: E731
    windows = [acgt(100), "N" * n + acgt(100 - n), acgt(99 - n) + "N" * (n + 1), acgt(100 - n) + "N" * n, acgt(100)]
    fa = tmp_path / "edge.fa"
    fa.write_text(">edge\n" + "".join(windows) + "\n")
    argv = ["--fasta", fa, "--out", tmp_path / "e.h5", "--split", "train", "--k", 2, "--window-tokens", 50,
            "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0, "--block-bp", 1000, "--gap-bp", 0]
    rc, out, err = run(argv + ([] if max_n_frac is None else ["--max-n-frac", max_n_frac]), capsys)
    assert rc == 0, err
    store = TokenStore(tmp_path / "e.h5")
    assert [store.coords(i)[:3] for i in range(len(store))] == [("edge", a, a + 100) for a in (0, 100, 300, 400)]
    unk = 2 * (n // 2 + n % 2)  # the N's of windows 1 and 3 fill ceil(n / 2) 2-mers each (at a start or an end)
    assert printed_rows(out)["train"][:4] == ("4", "1", "200", f"{unk / 200:.2%}")
    assert int((np.stack([store[i] for i in range(4)]) == UNK_ID).sum()) == unk


def test_iupac_codes_become_unk(tmp_path, capsys):
    fa = tmp_path / "iupac.fa"
    fa.write_text(">x\n" + "ACGTRYACGT" * 30 + "\n")
    rc, _, err = run(["--fasta", fa, "--out", tmp_path / "x.h5", "--split", "train", "--k", 2, "--window-tokens", 10,
                      "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0, "--block-bp", 1000, "--gap-bp", 0,
                      "--max-n-frac", 0.5], capsys)
    assert rc == 0, err
    assert TokenStore(tmp_path / "x.h5")[0].tolist()[:5] == [6, 16, 1, 6, 16]  # AC GT RY AC GT


LAMBDA_SPLITS = ["--window-tokens", 500, "--block-bp", 12000]  # 48.5 kb: 3,000 bp windows, 5 blocks, three splits


def test_windows_line_endings(genomes, tmp_path, capsys):
    fa = tmp_path / "crlf.fa"
    fa.write_bytes((genomes / "lambda_phage.fa").read_bytes().replace(b"\n", b"\r\n"))
    rc, _, err = run(["--fasta", fa, "--out-dir", tmp_path / "o", *LAMBDA_SPLITS], capsys)
    assert rc == 0, err
    lf = local_copy(genomes / "lambda_phage.fa", tmp_path / "lf")
    rc, _, err = run(["--fasta", lf, "--out-dir", tmp_path / "p", *LAMBDA_SPLITS], capsys)
    assert rc == 0, err
    for split in SPLITS:
        a, b = TokenStore(tmp_path / "o" / f"{split}.h5"), TokenStore(tmp_path / "p" / f"{split}.h5")
        assert len(a) == len(b) > 0 and np.array_equal(a[0], b[0])


def _gz_truncated(genomes, tmp_path):
    p = tmp_path / "trunc.fa.gz"
    p.write_bytes((genomes / "ecoli_k12_mg1655.fna.gz").read_bytes()[:300_000])
    return p


BAD = {
    "missing": (lambda g, t: t / "nope.fa", "no such file"),
    "empty": (lambda g, t: (t / "e.fa").write_bytes(b"") and None or t / "e.fa", "empty file"),
    "csv": (lambda g, t: (t / "x.csv").write_text("sequence,label\nACGT,1\n") and t / "x.csv", "not a FASTA file"),
    "binary": (lambda g, t: (t / "b.fa").write_bytes(bytes(range(256)) * 4) and t / "b.fa", "binary content"),
    "truncated_gzip": (_gz_truncated, "corrupt or truncated gzip"),
    "no_sequence": (lambda g, t: (t / "n.fa").write_text(">a\n>b\nACGT\n") and t / "n.fa", "record 'a' has no sequence"),
    "duplicate": (lambda g, t: (t / "d.fa").write_text(">a\nACGT\n>a\nACGT\n") and t / "d.fa", "duplicate record name 'a'"),
    "too_short": (lambda g, t: local_copy(g / "human_chrM.fa", t), "shorter than one window"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_error_no_output(genomes, tmp_path, capsys, case):
    make, message = BAD[case]
    fasta = make(genomes, tmp_path)
    before = set(os.listdir(tmp_path))
    out_dir = tmp_path / "out"
    rc, out, err = run(["--fasta", fasta, "--out-dir", out_dir, "--cache-dir", tmp_path / "cache"], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(fasta) in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists()  # not even an empty output folder
    # nothing left beside the input (indexes go to the cache; a refused FASTA leaves none there either)
    left = set(os.listdir(tmp_path)) - before - {"cache"}
    assert left == set()


@pytest.mark.parametrize("k", [0, 9])
def test_k_out_of_range(genomes, tmp_path, capsys, k):
    fasta = local_copy(genomes / "lambda_phage.fa", tmp_path / "in")
    rc, _, err = run(["--fasta", fasta, "--out-dir", tmp_path / "o", "--k", k], capsys)
    assert rc == 2 and "k must be an integer from 1 to 8" in err and not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(genomes, tmp_path, capsys):
    """Without --overwrite a second run is refused and leaves the stores byte-identical; with it they are replaced
    (here by 400-token windows instead of 500)."""
    fasta = local_copy(genomes / "lambda_phage.fa", tmp_path / "in")
    args = ["--fasta", fasta, "--out-dir", tmp_path / "out", "--block-bp", 12000]
    rc, _, err = run([*args, "--window-tokens", 500], capsys)
    assert rc == 0, err
    paths = {s: tmp_path / "out" / f"{s}.h5" for s in SPLITS}
    before = {s: p.read_bytes() for s, p in paths.items()}
    assert TokenStore(paths["train"]).window_tokens == 500
    rc, out, err = run([*args, "--window-tokens", 400], capsys)
    assert rc == 2 and "output exists (use --overwrite" in err and out == ""
    assert {s: p.read_bytes() for s, p in paths.items()} == before  # untouched
    assert listing(tmp_path / "out") == ["test.h5", "train.h5", "val.h5"]  # no temporary file left either
    rc, _, err = run([*args, "--window-tokens", 400, "--overwrite"], capsys)
    assert rc == 0, err
    for split, path in paths.items():
        store = TokenStore(path)
        assert path.read_bytes() != before[split]
        assert store.window_tokens == 400 and store.attrs["window_bp"] == 2400
        assert store.h5["tokens"].shape == (len(store), 400) and len(store) > 0
        seqid, start, end, _ = store.coords(0)
        assert store[0].tolist() == encode(Genome(fasta).fetch(seqid, start, end), 6).tolist()
    assert listing(tmp_path / "out") == ["test.h5", "train.h5", "val.h5"]


def test_out_dir_that_is_a_file(genomes, tmp_path, capsys):
    fasta = local_copy(genomes / "lambda_phage.fa", tmp_path / "in")
    target = tmp_path / "results"
    target.write_text("not a folder\n")
    rc, out, err = run(["--fasta", fasta, "--out-dir", target, *LAMBDA_SPLITS], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == f"genomics-lm tokenize: error: --out-dir {target}: is a file, not a folder"
    assert target.read_text() == "not a folder\n"
    # the stage function refuses an output below a file as well, before reading the genome
    with pytest.raises(UserError) as exc:
        tokenize_genome(fasta, {"train": target / "sub" / "train.h5"}, progress=False)
    assert str(exc.value) == f"{target / 'sub' / 'train.h5'}: cannot write it, {target} is a file, not a folder"


def test_genome_too_small_for_the_splits(genomes, tmp_path, capsys):
    """Lambda (48.5 kb) in 6,000 bp windows and 100 kb blocks: one block, so val and test would be empty."""
    fasta = local_copy(genomes / "lambda_phage.fa", tmp_path / "in")
    out_dir = tmp_path / "out"
    rc, _, err = run(["--fasta", fasta, "--out-dir", out_dir, "--window-tokens", 1000], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == (
        f"genomics-lm tokenize: error: {fasta}: genome too small for the splits: 'val' gets no window of 6,000 bp "
        "(bp per split: train 48,502, val 0, test 0; regions: 100,000 bp blocks, 6,000 bp gaps between splits); "
        "use a smaller --window-tokens or --block-bp (e.g. --block-bp 12500), or write train only "
        "(--val-frac 0 --test-frac 0 --out FILE --split train)")
    assert not out_dir.exists()
    # the suggested block size works, and so does asking only for the split that is not empty
    rc, _, err = run(["--fasta", fasta, "--out-dir", out_dir, "--window-tokens", 1000, "--block-bp", 12500], capsys)
    assert rc == 0, err
    assert all(len(TokenStore(out_dir / f"{s}.h5")) > 0 for s in SPLITS)
    rc, _, err = run(["--fasta", fasta, "--out", tmp_path / "train.h5", "--split", "train", "--window-tokens", 1000,
                      "--val-frac", 0, "--test-frac", 0], capsys)
    assert rc == 0, err
    assert len(TokenStore(tmp_path / "train.h5")) == 8


def test_requested_split_with_zero_fraction(genomes, tmp_path, capsys):
    fasta = local_copy(genomes / "lambda_phage.fa", tmp_path / "in")
    rc, _, err = run(["--fasta", fasta, "--out-dir", tmp_path / "out", *LAMBDA_SPLITS, "--test-frac", 0], capsys)
    assert rc == 2
    assert err.strip() == (f"genomics-lm tokenize: error: {fasta}: split 'test' is empty because --test-frac is 0; "
                           "write only the splits you need (--out FILE --split train) or set --test-frac above 0")
    assert not (tmp_path / "out").exists()


def test_split_whose_windows_are_all_n_writes_nothing(tmp_path, capsys):
    rng = np.random.default_rng(1)
    acgt = lambda n: "".join(rng.choice(list("ACGT"), size=n))  # noqa: E731
    fa = tmp_path / "gappy.fa"
    fa.write_text(f">a\n{acgt(5000)}\n>b\n{'N' * 2500 + acgt(100) + 'N' * 2400}\n>c\n{acgt(5000)}\n")
    out_dir = tmp_path / "out"
    rc, _, err = run(["--fasta", fa, "--out-dir", out_dir, "--k", 4, "--window-tokens", 250, "--val-chroms", "b",
                      "--test-chroms", "c"], capsys)
    assert rc == 2
    assert err.strip() == (f"genomics-lm tokenize: error: {fa}: split 'val' gets no window: all 5 of its 1,000 bp "
                           "windows have more than 0.1 non-ACGT bases (--max-n-frac); raise --max-n-frac or use a "
                           "smaller --window-tokens")
    assert not out_dir.exists()  # train, written before val was found empty, is gone too
    assert listing(tmp_path) == ["gappy.fa"]  # the index went to the cache


def test_read_only_input_folder_is_left_untouched(genomes, tmp_path, capsys):
    folder = tmp_path / "ro"
    fasta = local_copy(genomes / "lambda_phage.fa", folder)
    folder.chmod(0o555)  # read-only by its mode bits: even root must not write there
    try:
        rc, _, err = run(["--fasta", fasta, "--out-dir", tmp_path / "out", "--cache-dir", tmp_path / "cache",
                          *LAMBDA_SPLITS], capsys)
        assert rc == 0, err
        assert os.listdir(folder) == ["lambda_phage.fa"]
        assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".fai"]
    finally:
        folder.chmod(0o755)


def test_console_script_exit_status_and_help():
    res = subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--fasta", "/nonexistent.fa", "--out-dir", "x"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip() == "genomics-lm tokenize: error: /nonexistent.fa: no such file"
    res = subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for opt in ("--fasta", "--out-dir", "--k", "--stride", "--window-tokens", "--max-n-frac", "--split-mode", "--overwrite"):
        assert opt in res.stdout


def test_help_states_each_default_once():
    text = " ".join(build_parser().format_help().split())  # one line: argparse wraps help text anywhere
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "overlapping (default: k)" in text and "(default: k) (default" not in text
    assert "k-mer length, 1..8 (default: 6)" in text
    assert "tokens between window starts (default: window-tokens, no overlap)" in text
    for action in build_parser()._actions:
        if action.option_strings and action.help:
            helptext = " ".join(action.help.split())
            assert helptext.count("default") <= 1, action.option_strings


def test_softmask_track(tmp_path, capsys):
    fa = tmp_path / "soft.fa"
    fa.write_text(">x\n" + ("ACGTAC" * 10 + "acgtac" * 10) * 5 + "\n")
    rc, _, err = run(["--fasta", fa, "--out", tmp_path / "s.h5", "--split", "train", "--k", 6, "--window-tokens", 20,
                      "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0, "--block-bp", 1000, "--gap-bp", 0,
                      "--softmask"], capsys)
    assert rc == 0, err
    s = TokenStore(tmp_path / "s.h5")
    assert s.softmask(0).tolist() == [0] * 10 + [1] * 10
    assert s[0].tolist()[:10] == s[0].tolist()[10:]  # same k-mers, case ignored
