"""genomics_lm.genome_tasks: bins, context windows, TSS windows on their strand, splits, negatives, bad input.

Mechanics on small synthetic genomes with exact expected token ids; the TSS builder on the real E. coli genome
with RegulonDB's PromoterSet, checked against the file's own 81-nt sequences.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers_tasks import SPLITS, load, run
from genomics_lm.errors import UserError
from genomics_lm.genome import Genome
from genomics_lm.genome_tasks import (
    bin_labels, context_of_bins, covered_before, merge_intervals, subtract_intervals, tss_windows,
)
from genomics_lm.peaks import read_regulondb, read_tss_bed
from genomics_lm.tokenizer import reverse_complement





def all_rows(res: dict) -> list[tuple]:
    """(split, seqid, start, end, strand, labels tuple, tokens list, seq) of every row."""
    return [(s, r["seqid"][i], int(r["start"][i]), int(r["end"][i]), r["strand"][i], tuple(r["labels"][i].tolist()),
             r["tokens"][i].tolist(), r["seq"][i]) for s in SPLITS for r in [res[s]] for i in range(len(r["seqid"]))]


def random_seq(n: int, seed: int) -> list[str]:
    return list(np.random.default_rng(seed).choice(list("ACGT"), n))


def write_fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n"
                            for name, seq in records.items()))
    return path


# ---------------------------------------------------------------------------------------------- units
def test_union_coverage_and_half_bin_rule():
    assert merge_intervals(np.array([[20, 50], [0, 30], [50, 60], [70, 80]])).tolist() == [[0, 60], [70, 80]]
    assert covered_before(np.array([[10, 20], [30, 40]]), np.array([0, 10, 15, 25, 35, 100])).tolist() == \
        [0, 0, 5, 10, 15, 20]
    feats = [np.array([[0, 50]]), np.array([[0, 49]]), np.array([[0, 30], [10, 40]]),  # union 40 < 50 (sum 50)
             np.array([[0, 30], [20, 50]]), np.array([[150, 260]])]
    lab = bin_labels(feats, 3, 100)
    assert lab.shape == (3, 5) and lab.dtype == bool
    assert lab[:, 0].tolist() == [True, False, False] and lab[:, 1].tolist() == [False, False, False]
    assert lab[:, 2].tolist() == [False, False, False] and lab[:, 3].tolist() == [True, False, False]
    assert lab[:, 4].tolist() == [False, True, True]
    assert subtract_intervals(np.array([[0, 100], [200, 300]]), np.array([[50, 60], [90, 210], [250, 400]])).tolist() \
        == [[0, 50], [60, 90], [210, 250]]


def test_window_geometry():
    s, e = context_of_bins(3, 200, 1000)
    assert s.tolist() == [-400, -200, 0] and e.tolist() == [600, 800, 1000]
    s, e = context_of_bins(2, 4, 9)  # odd difference: the extra base on the right
    assert s.tolist() == [-2, 2] and e.tolist() == [7, 11]
    s, e = tss_windows(np.array([1000, 1000]), np.array([False, True]), 10)
    assert s.tolist() == [995, 996] and e.tolist() == [1005, 1006]  # the TSS at offset 5 of the read strand


# ---------------------------------------------------------------------------------------------- synthetic peaks
@pytest.fixture
def synth(tmp_path):
    seq = random_seq(20_000, 1)
    seq[397:407] = list("ACGTTGCANN")  # the context of bin 100 (bin_bp 4, context 10)
    g = write_fasta(tmp_path / "g.fa", {"chrS": "".join(seq)})
    return g, "".join(seq)


def test_peaks_exact_tokens_labels_and_n_boundary(synth, tmp_path, capsys):
    g, seq = synth
    peaks = tmp_path / "p.bed"
    lines = [f"chrS\t{b}\t{b + 2}\n" for b in range(0, 20_000, 500)]  # covers bin b/4 exactly half: positive
    lines += ["chrS\t402\t404\n", "chrS\t404\t405\n"]  # bin 100 [400,404): 2 of 4 -> positive; bin 101: 1 -> negative
    peaks.write_text("".join(lines))
    args = ["--genome", g, "--peaks", f"P={peaks}", "--bin-bp", 4, "--context-bp", 10, "--k", 2,
            "--block-bp", 2000, "--gap-bp", 10]
    rc, out, err = run(["--out-dir", tmp_path / "t", *args, "--max-n-frac", 0.2], capsys)
    assert rc == 0, err
    rows = {r[2]: r for r in all_rows(load(tmp_path / "t"))}
    # bin 100 = [400, 404); context [397, 407) = ACGTTGCANN, 20% N: kept at --max-n-frac 0.2 (only > drops)
    r = rows[397]
    assert r[1] == "chrS" and r[3] == 407 and r[4] == "+" and r[5] == (1.0,) and r[7] == "ACGTTGCANN"
    assert r[6] == [6, 16, 19, 9, 1]  # AC GT TG CA NN: 5 + 4*code(a) + code(b), N -> [UNK]=1
    assert rows[401][5] == (0.0,)  # bin 101: 1 of 4 bases covered
    assert rows[397 + 4 * 25][5] == (1.0,) and rows[397 + 4 * 24][5] == (0.0,)  # bin 125 = [500, 504)
    assert all(q == seq[a:e] for _, _, a, e, _, _, _, q in rows.values())
    # at the default --max-n-frac 0.1 the contexts with 2 N of 10 (bins 100, 101, 102) are dropped and counted
    rc, out, err = run(["--out-dir", tmp_path / "u", *args], capsys)
    assert rc == 0, err
    assert 397 not in {r[2] for r in all_rows(load(tmp_path / "u"))} and ", 3 with too many N" in out


def test_region_record_add_prefix_absolute_coordinates(tmp_path, capsys):
    seq = "".join(random_seq(2000, 2))
    g = write_fasta(tmp_path / "g.fa", {"chr5:1001-3000": seq})  # chr5 from 1,000 (0-based)
    peaks = tmp_path / "p.bed"
    peaks.write_text("".join(f"5\t{1000 + b}\t{1000 + b + 4}\n" for b in range(20, 2000, 100)) + "5\t1\t5\n")
    args = ["--genome", g, "--peaks", f"P={peaks}", "--bin-bp", 4, "--context-bp", 12, "--k", 1,
            "--block-bp", 200, "--gap-bp", 12]
    rc, _, err = run(["--out-dir", tmp_path / "x", *args], capsys)
    assert rc == 2 and "file has 5; genome" in err and "has chr5 (records named as regions: chr5:1001-3000)" in err
    assert "use --add-chr-prefix" in err and not (tmp_path / "x").exists()
    rc, out, err = run(["--out-dir", tmp_path / "t", *args, "--add-chr-prefix"], capsys)
    assert rc == 0, err
    assert "20 of 21 peaks on the genome (bed; 1 outside its regions" in out
    rows = all_rows(load(tmp_path / "t"))
    assert {r[1] for r in rows} == {"chr5"}
    for _, _, a, e, _, lab, _, q in rows:
        assert q == seq[a - 1000 : e - 1000]  # chromosome coordinates of the context
        b = a - 1000 + 4  # record start of the bin
        assert lab == ((1.0,) if b % 100 == 20 else (0.0,))


def test_many_records_hold_out_whole_chromosomes(tmp_path, capsys):
    recs = {f"c{i}": "".join(random_seq(1000, 10 + i)) for i in range(12)}
    g = write_fasta(tmp_path / "g.fa", recs)
    peaks = tmp_path / "p.bed"
    peaks.write_text("".join(f"c{i}\t{b}\t{b + 50}\n" for i in range(12) for b in range(100, 900, 200)))
    rc, _, err = run(["--out-dir", tmp_path / "t", "--genome", g, "--peaks", f"P={peaks}", "--bin-bp", 50,
                      "--context-bp", 100, "--k", 3], capsys)
    assert rc == 0, err
    res = load(tmp_path / "t")
    plan = res["train"]["config"]["split_plan"]
    assert plan["mode"] == "chromosomes"
    held = {"val": set(plan["params"]["val_chroms"]), "test": set(plan["params"]["test_chroms"])}
    for s in SPLITS:
        names = set(res[s]["seqid"])
        assert names == held[s] if s != "train" else not names & (held["val"] | held["test"])
    assert sum(len(res[s]["seqid"]) for s in SPLITS) == 12 * 18  # 20 bins a record, 2 off its ends


# ---------------------------------------------------------------------------------------------- synthetic TSS
def test_tss_windows_on_their_strand_exact_tokens(tmp_path, capsys):
    seq = random_seq(20_000, 3)
    seq[995:1005] = list("AACCGGTTAC")  # + TSS at 1000: window [995, 1005), TSS at offset 5
    seq[2996:3006] = list("AAACCCGGGT")  # - TSS at 3000 (BED end-1): window [2996, 3006), reverse complement
    seq = "".join(seq)
    g = write_fasta(tmp_path / "g.fa", {"chrS": seq})
    tss = tmp_path / "tss.bed"
    lines = ["chrS\t1000\t1001\tt1\t0\t+\n", "chrS\t2990\t3001\tt2\t0\t-\n", "chrS\t1000\t1050\tdup\t0\t+\n"]
    lines += [f"chrS\t{p}\t{p + 1}\tx{p}\t0\t{'+-'[i % 2]}\n" for i, p in enumerate(range(4500, 20_000, 500))]
    tss.write_text("".join(lines))
    args = ["--genome", g, "--tss", tss, "--context-bp", 10, "--k", 1, "--min-distance", 100, "--block-bp", 2000,
            "--gap-bp", 10, "--neg-per-pos", 2, "--seed", 5]
    rc, out, err = run(["--out-dir", tmp_path / "t", *args], capsys)
    assert rc == 0, err
    assert "binary task, labels: tss" in out and "1 duplicates" in out
    res = load(tmp_path / "t")
    rows = all_rows(res)
    pos = {(r[2], r[4]): r for r in rows if r[5] == (1.0,)}
    assert pos[(995, "+")][6] == [5, 5, 6, 6, 7, 7, 8, 8, 5, 6] and pos[(995, "+")][7] == "AACCGGTTAC"
    assert pos[(2996, "-")][7] == "ACCCGGGTTT" and pos[(2996, "-")][6] == [5, 6, 6, 6, 7, 7, 7, 8, 8, 8]
    assert pos[(2996, "-")][7][5] == reverse_complement(seq[3000])  # the TSS at offset 5 on both strands
    tss_pos = np.array([1000, 3000] + list(range(4500, 20_000, 500)))
    for s in SPLITS:
        sm = res[s]["config"]["summary"][s]
        n_pos = sum(1 for r in rows if r[0] == s and r[5] == (1.0,))
        assert sm["positives"] == [n_pos] and sm["negatives"] == 2 * n_pos == sm["negatives_wanted"]
    for split, _, a, e, strand, lab, _, q in rows:
        assert e - a == 10
        assert q == (seq[a:e] if strand == "+" else reverse_complement(seq[a:e]))
        centre = a + 5 if strand == "+" else e - 1 - 5
        if lab == (0.0,):
            assert np.abs(tss_pos - centre).min() >= 100
        else:
            assert centre in tss_pos
        iv = res["train"]["config"]["split_plan"]["intervals"][split]
        assert any(x <= a and e <= z for _, x, z in iv)  # the whole window in one interval of its split
    rc, _, err = run(["--out-dir", tmp_path / "t2", *args], capsys)
    assert rc == 0, err
    assert all_rows(load(tmp_path / "t2")) == rows  # seeded


# ---------------------------------------------------------------------------------------------- real RegulonDB
@pytest.fixture(scope="module")
def ecoli(data_dir, tmp_path_factory):
    g = Genome(data_dir / "genomes" / "ecoli_k12_mg1655.fna.gz")  # plain copy and index in the per-run cache
    assert not any(p.name.endswith(".fai") for p in (data_dir / "genomes").iterdir() if "ecoli" in p.name)
    return {"genome": g, "fasta": data_dir / "genomes" / "ecoli_k12_mg1655.fna.gz",
            "promoters": data_dir / "promoters" / "ecoli_regulondb" / "PromoterSet.txt"}


def test_regulondb_one_based_position_against_its_sequences(ecoli):
    g, t = ecoli["genome"], read_regulondb(ecoli["promoters"])
    assert len(t.pos) == 8699 and t.skipped == 92 and t.chrom is None
    (rec,) = g.lengths
    seq = g.fetch(rec, 0, g.lengths[rec]).upper()

    def around(p, strand):  # -60..+20 of a 0-based TSS, read on its strand
        return seq[p - 60 : p + 21] if strand == "+" else reverse_complement(seq[p - 20 : p + 61])

    exact = off = 0
    for p, strand, name, q in zip(t.pos.tolist(), t.strand, t.names, t.seq81):
        if p < 60:
            continue  # TSS_1 at +1 = 38: its -60 wraps round the circular genome's origin
        if strand == "+" or not name.startswith("TSS_"):
            assert around(p, strand) == q.upper(), name  # curated and forward rows: exact at position - 1
            assert q[60].isupper() and around(p, strand)[60] == q[60].upper()
            exact += 1
        else:  # README: reverse-strand high-throughput TSS_* rows are one base off inside RegulonDB
            assert around(p, strand) != q.upper() and around(p + 1, strand) == q.upper(), name
            off += 1
    assert (exact, off) == (6233, 2465)


def central81(row_seq: str, u: int) -> str:
    return row_seq[u - 60 : u + 21]


def test_regulondb_task_keep_and_shift(ecoli, tmp_path, capsys):
    file_seqs = set()
    with open(ecoli["promoters"]) as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(f) > 5 and f[3] not in ("", "0"):
                file_seqs.add(f[5].upper())
    base = ["--genome", ecoli["fasta"], "--tss", ecoli["promoters"], "--tss-format", "regulondb",
            "--context-bp", 400, "--min-distance", 500]
    rc, out, err = run(["--out-dir", tmp_path / "keep", *base], capsys)
    assert rc == 0, err
    assert "RegulonDB 81-nt check: 6,233 match, 2,465 match one base off, 0 do not match, 1 not checked" in out
    assert "8,699 TSS rows (92 without a position skipped" in out
    keep = load(tmp_path / "keep")
    pos_rows = [(r[4], r[7]) for r in all_rows(keep) if r[5] == (1.0,)]
    odd = [strand for strand, q in pos_rows if central81(q, 200) not in file_seqs]
    assert 2000 < len(odd) <= 2465 and set(odd) == {"-"}  # the off-by-one rows, kept at the file's position
    assert keep["train"]["config"]["counts"]["regulondb_check"]["off_by_one"] == 2465
    assert {r[1] for r in all_rows(keep)} == {"NC_000913.3"}
    # negatives: centres at least --min-distance from every TSS of the file, either strand
    t = read_regulondb(ecoli["promoters"])
    tss = np.sort(t.pos)
    for _, _, a, e, strand, lab, _, _ in all_rows(keep):
        if lab == (0.0,):
            c = a + 200 if strand == "+" else e - 1 - 200
            i = np.searchsorted(tss, c)
            assert min(abs(c - tss[max(i - 1, 0)]), abs(c - tss[min(i, len(tss) - 1)])) >= 500
    for s in SPLITS:
        sm = keep[s]["config"]["summary"][s]
        assert sm["negatives"] == sm["positives"][0] and sm["rows"] == 2 * sm["positives"][0]

    rc, out, err = run(["--out-dir", tmp_path / "shift", *base, "--regulondb-mismatch", "shift"], capsys)
    assert rc == 0, err
    assert "--regulondb-mismatch shift: 2,465 moved, 0 dropped" in out
    shifted = [(r[4], r[7]) for r in all_rows(load(tmp_path / "shift")) if r[5] == (1.0,)]
    assert all(central81(q, 200) in file_seqs for _, q in shifted)
    rc, out, err = run(["--out-dir", tmp_path / "drop", *base, "--regulondb-mismatch", "drop"], capsys)
    assert rc == 0, err
    assert "--regulondb-mismatch drop: 0 moved, 2,465 dropped" in out
    kept = [(r[4], r[7]) for r in all_rows(load(tmp_path / "drop")) if r[5] == (1.0,)]
    assert all(central81(q, 200) in file_seqs for _, q in kept) and len(kept) < len(shifted) - 2000


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def small(tmp_path):
    return write_fasta(tmp_path / "g.fa", {"chrS": "".join(random_seq(5000, 4))})


@pytest.mark.parametrize("text, extra, match", [
    ("chrS\t100\t150\nchrS\t4990\t5010\n", [], r"p\.bed: line 2: peak chrS:4990-5010 ends beyond the end of chromosome "
     r"'chrS' \(5,000 bp"),
    ("chrS\t100\t150\nchrS\t300\t200\n", [], r"p\.bed: line 2: peak chrS:300-200 has end <= start"),
    ("chrS\t100\n", [], r"p\.bed: line 1 has 2 column\(s\); a peak file needs at least chrom, start, end"),
    ("chrS\t100\t150\n", ["--context-bp", 100], r"--context-bp \(100\) must be at least --bin-bp \(200\)"),
    ("chrS\t100\t150\n", ["--min-distance", 5], r"--min-distance go\(es\) with --tss"),
])
def test_peak_bad_input_one_line_nothing_written(small, tmp_path, capsys, text, extra, match):
    p = tmp_path / "p.bed"
    p.write_text(text)
    out = tmp_path / "out"
    rc, stdout, err = run(["--out-dir", out, "--genome", small, "--peaks", f"A={p}", *extra], capsys)
    line = err.strip()
    assert rc == 2 and stdout == "" and "\n" not in line and line.startswith("genomics-lm make-task: error: ")
    assert re.search(match, line), line
    assert not out.exists()


@pytest.mark.parametrize("text, fmt, match", [
    ("chrS\t100\t101\ta\t0\t.\n", "bed", r"tss\.txt: line 1: unknown strand '\.'"),
    ("chrS\t100\t101\ta\t0\t+\nchrS\t5000\t5001\tb\t0\t+\n", "bed",
     r"tss\.txt: line 2: TSS at chrS:5000 \(0-based\) is outside chromosome 'chrS' \(5,000 bp"),
    ("chrS\t100\t101\ta\t0\n", "bed", r"line 1 has 5 column\(s\); a TSS file is BED6"),
    ("# hdr\nID1\tp1\tforward\t5001\tSigma70\tacgt\tev\tStrong\n", "regulondb",
     r"tss\.txt: line 2: TSS at chrS:5000 \(0-based\) is outside chromosome 'chrS'"),
    ("ID1\tp1\tsideways\t100\tSigma70\tacgt\tev\tStrong\n", "regulondb", r"line 1: unknown strand 'sideways'"),
])
def test_tss_bad_input_one_line_nothing_written(small, tmp_path, capsys, text, fmt, match):
    f = tmp_path / "tss.txt"
    f.write_text(text)
    out = tmp_path / "out"
    rc, stdout, err = run(["--out-dir", out, "--genome", small, "--tss", f, "--tss-format", fmt], capsys)
    line = err.strip()
    assert rc == 2 and stdout == "" and "\n" not in line and re.search(match, line), line
    assert not out.exists()


def test_bed_tss_rule_and_existing_output(small, tmp_path, capsys):
    f = tmp_path / "t.bed"
    f.write_text("chrS\t100\t200\ta\t0\t+\r\nchrS\t100\t200\tb\t0\t-\r\n")
    t = read_tss_bed(f)
    assert t.pos.tolist() == [100, 199] and t.strand == ["+", "-"]  # start on +, end - 1 on -
    out = tmp_path / "out"
    out.mkdir()
    (out / "val.h5").write_bytes(b"old")
    rc, _, err = run(["--out-dir", out, "--genome", small, "--tss", f], capsys)
    assert rc == 2 and "val.h5: output exists (use --overwrite" in err and (out / "val.h5").read_bytes() == b"old"
    assert sorted(p.name for p in out.iterdir()) == ["val.h5"]
    with pytest.raises(UserError, match="no TSS"):
        (tmp_path / "e.bed").write_text("#x\n")
        read_tss_bed(tmp_path / "e.bed")


def test_regulondb_select_bp_same_rows(ecoli, tmp_path, capsys):
    base = ["--genome", ecoli["fasta"], "--tss", ecoli["promoters"], "--tss-format", "regulondb", "--select-bp", 800,
            "--min-distance", 400, "--k", 4]
    res = {}
    for ctx in (200, 800):
        rc, _, err = run(["--out-dir", tmp_path / str(ctx), *base, "--context-bp", ctx], capsys)
        assert rc == 0, err
        res[ctx] = load(tmp_path / str(ctx))
    for s in SPLITS:
        a, b = res[200][s], res[800][s]
        assert a["strand"] == b["strand"] and np.array_equal(a["labels"], b["labels"])
        assert all(x == y[300:500] for x, y in zip(a["seq"], b["seq"]))  # the TSS / centre at offset 100 and 400
