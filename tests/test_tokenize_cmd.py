"""``genomics-lm tokenize`` end to end on real genomes, and every bad input of the issue."""

import gzip
import subprocess
import sys

import h5py
import numpy as np
import pytest

from genomics_lm.cli import main
from genomics_lm.genome import Genome
from genomics_lm.store import TokenStore
from genomics_lm.tokenizer import UNK_ID, encode


def run(argv, capsys):
    rc = main(["tokenize", "--no-progress", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_ecoli_end_to_end(genomes, tmp_path, capsys):
    rc, out, err = run(["--fasta", genomes / "ecoli_k12_mg1655.fna.gz", "--out-dir", tmp_path, "--k", 6,
                        "--window-tokens", 1024], capsys)
    assert rc == 0, err
    assert "train" in out and "windows" in out
    stores = {s: TokenStore(tmp_path / f"{s}.h5") for s in ("train", "val", "test")}
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


def test_overlapping_kmers_and_single_split(genomes, tmp_path, capsys):
    out = tmp_path / "chrM.h5"
    rc, _, err = run(["--fasta", genomes / "human_chrM.fa", "--out", out, "--split", "train", "--k", 3, "--stride", 1,
                      "--window-tokens", 1000, "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0,
                      "--block-bp", 10000, "--gap-bp", 0], capsys)
    assert rc == 0, err
    s = TokenStore(out)
    assert s.stride == 1 and s.window_tokens == 1000 and s.attrs["window_bp"] == 1002
    assert len(s) == 16  # 16,569 bp, 10 kb blocks: 10 + 6 windows of 1,002 bp


def test_n_windows_are_skipped_and_unk_counted(genomes, tmp_path, capsys):
    rc, out, _ = run(["--fasta", genomes / "hg19_chr22_20-21Mb.fa", "--out-dir", tmp_path, "--window-tokens", 500,
                      "--max-n-frac", 0.05], capsys)
    assert rc == 0
    s = TokenStore(tmp_path / "train.h5")
    toks = np.stack([s[i] for i in range(len(s))])
    assert (toks == UNK_ID).mean() <= 0.05


def test_iupac_codes_become_unk(tmp_path, capsys):
    fa = tmp_path / "iupac.fa"
    fa.write_text(">x\n" + "ACGTRYACGT" * 30 + "\n")
    rc, _, err = run(["--fasta", fa, "--out", tmp_path / "x.h5", "--split", "train", "--k", 2, "--window-tokens", 10,
                      "--split-mode", "regions", "--val-frac", 0, "--test-frac", 0, "--block-bp", 1000, "--gap-bp", 0,
                      "--max-n-frac", 0.5], capsys)
    assert rc == 0, err
    assert TokenStore(tmp_path / "x.h5")[0].tolist()[:5] == [6, 16, 1, 6, 16]  # AC GT RY AC GT


def test_windows_line_endings(genomes, tmp_path, capsys):
    fa = tmp_path / "crlf.fa"
    fa.write_bytes((genomes / "lambda_phage.fa").read_bytes().replace(b"\n", b"\r\n"))
    rc, _, err = run(["--fasta", fa, "--out-dir", tmp_path / "o", "--window-tokens", 1000], capsys)
    assert rc == 0, err
    rc, _, err = run(["--fasta", genomes / "lambda_phage.fa", "--out-dir", tmp_path / "p", "--window-tokens", 1000], capsys)
    a, b = TokenStore(tmp_path / "o" / "train.h5"), TokenStore(tmp_path / "p" / "train.h5")
    assert np.array_equal(a[0], b[0]) and len(a) == len(b)


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
    "too_short": (lambda g, t: g / "human_chrM.fa", "shorter than one window"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_error_no_output(genomes, tmp_path, capsys, case):
    make, message = BAD[case]
    fasta = make(genomes, tmp_path)
    out_dir = tmp_path / "out"
    rc, out, err = run(["--fasta", fasta, "--out-dir", out_dir], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(fasta) in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists()  # not even an empty output folder


@pytest.mark.parametrize("k", [0, 9])
def test_k_out_of_range(genomes, tmp_path, capsys, k):
    rc, _, err = run(["--fasta", genomes / "lambda_phage.fa", "--out-dir", tmp_path / "o", "--k", k], capsys)
    assert rc == 2 and "k must be an integer from 1 to 8" in err and not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(genomes, tmp_path, capsys):
    args = ["--fasta", genomes / "lambda_phage.fa", "--out-dir", tmp_path, "--window-tokens", 1000]
    assert run(args, capsys)[0] == 0
    before = (tmp_path / "train.h5").stat().st_mtime_ns
    rc, _, err = run(args, capsys)
    assert rc == 2 and "output exists (use --overwrite" in err
    assert (tmp_path / "train.h5").stat().st_mtime_ns == before
    assert run([*args, "--overwrite"], capsys)[0] == 0


def test_console_script_exit_status_and_help():
    res = subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--fasta", "/nonexistent.fa", "--out-dir", "x"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip() == "genomics-lm tokenize: error: /nonexistent.fa: no such file"
    res = subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for opt in ("--fasta", "--out-dir", "--k", "--stride", "--window-tokens", "--max-n-frac", "--split-mode", "--overwrite"):
        assert opt in res.stdout


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
