"""genomics_lm.tasks / ``genomics-lm make-task``: task stores from real promoter and chromatin files.

Every expectation on real data is computed here independently (csv module, Biopython for FASTA) from the
documented rules: dedup per split, leakage removal (given test > given val > train), rows without a label
dropped, drawn splits of floor(f * n + 0.5) rows per stratum.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from genomics_lm.cli import main as cli
from genomics_lm.store import TokenStore
from genomics_lm.tasks import read_fasta
from genomics_lm.tokenizer import PAD_ID, UNK_ID, KmerTokenizer, encode

SPLITS = ("train", "val", "test")


def n_of(n: int, f: float) -> int:
    return int(math.floor(f * n + 0.5))


def load(out: Path) -> dict:
    """Everything of the three stores as numpy / python values."""
    res = {}
    for s in SPLITS:
        with h5py.File(out / f"{s}.h5", "r") as f:
            res[s] = {
                "tokens": f["tokens"][:], "labels": f["labels"][:],
                "seq": [x.decode() for x in f["sequence"][:]], "seqid": [x.decode() for x in f["seqid"][:]],
                "start": f["start"][:], "end": f["end"][:], "strand": f["strand"][:],
                "attrs": dict(f.attrs),
            }
            res[s]["config"] = json.loads(res[s]["attrs"]["config"])
            res[s]["source"] = json.loads(res[s]["attrs"]["source"])
            res[s]["label_names"] = json.loads(res[s]["attrs"]["label_names"])
    return res


def run(args, capsys) -> tuple[int, str, str]:
    rc = cli(["make-task", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def head_lines(src: Path, dst: Path, n_rows: int) -> Path:
    """Header + the first ``n_rows`` data lines of a table."""
    with open(src) as fh:
        dst.write_text("".join(itertools.islice(fh, n_rows + 1)))
    return dst


def read_csv_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as fh:
        return [(r["sequence"].upper(), r["label"]) for r in csv.DictReader(fh)]


def check_rows(split: dict, tok: KmerTokenizer, L: int) -> None:
    """Tokens are the padded encoding of /sequence; coordinates are 0..len, '+'."""
    assert split["tokens"].shape == (len(split["seq"]), L)
    for row, seq in zip(split["tokens"], split["seq"]):
        ids = encode(seq, tok.k, tok.stride)
        assert np.array_equal(row[: len(ids)], ids) and (row[len(ids):] == PAD_ID).all()
    assert list(split["end"]) == [len(s) for s in split["seq"]]
    assert (split["start"] == 0).all() and (split["strand"] == b"+").all()


# ---------------------------------------------------------------------------------------------- FASTA pairs
@pytest.fixture(scope="module")
def sigma70(data_dir) -> tuple[Path, Path]:
    d = data_dir / "promoters" / "ecoli_sigma70"
    return d / "promoters.fa", d / "non_promoters.fa"


def test_reader_matches_biopython(sigma70):
    from Bio import SeqIO

    for path in sigma70:
        ours = [(r.id, r.seq) for r in read_fasta(path)]
        theirs = [(r.id, str(r.seq)) for r in SeqIO.parse(path, "fasta")]
        assert ours == theirs and len(ours) in (839, 3000)


def test_ecoli_sigma70_pair(sigma70, tmp_path, capsys):
    pos, neg = sigma70
    rc, out, err = run(["--out-dir", tmp_path / "t", "--pos", pos, "--neg", neg, "--seed", 3], capsys)
    assert rc == 0, err
    st = load(tmp_path / "t")
    # stratified 80/10/10: positives 839 -> 84 test, 84 val, 671 train; negatives 3000 -> 300, 300, 2400
    assert [len(st[s]["seq"]) for s in SPLITS] == [671 + 2400, 84 + 300, 84 + 300]
    assert [int(st[s]["labels"].sum()) for s in SPLITS] == [671, 84, 84]
    assert all(st[s]["labels"].shape[1] == 1 and not np.isnan(st[s]["labels"]).any() for s in SPLITS)
    # every record exactly once, with its label; disjoint splits
    want = {str(r.seq).upper(): 1.0 for r in read_fasta(pos)} | {r.seq.upper(): 0.0 for r in read_fasta(neg)}
    got = {q: float(l[0]) for s in SPLITS for q, l in zip(st[s]["seq"], st[s]["labels"])}
    assert got == want and sum(len(st[s]["seq"]) for s in SPLITS) == 3839
    # first row of train: the first positive record that was drawn into train, in file order
    first = st["train"]
    rec = next(r for r in read_fasta(pos) if r.seq.upper() == first["seq"][0])
    assert first["seqid"][0] == f"promoters.fa:{rec.id}"
    assert np.array_equal(first["tokens"][0], encode(rec.seq, 6, 6)) and first["tokens"].shape[1] == 13
    for s in SPLITS:
        check_rows(st[s], KmerTokenizer(6), 13)
        a, src, cfg = st[s]["attrs"], st[s]["source"], st[s]["config"]
        assert (a["k"], a["stride"], a["vocab_size"], a["split"]) == (6, 6, 4101, s)
        assert st[s]["label_names"] == ["label"]
        assert cfg["task_kind"] == "binary" and cfg["seed"] == 3 and cfg["summary"][s]["rows"] == len(st[s]["seq"])
        assert {f["name"]: f["sha256"] for f in src["files"]} == {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (pos, neg)}
    assert "train  3,071 rows; 671 positive; 0 duplicates dropped" in out
    assert f"wrote {tmp_path / 't' / 'test.h5'}" in out
    # the reader of the package accepts it, with its tokenizer record and labels
    store = TokenStore(tmp_path / "t" / "val.h5")
    assert store.label_names == ["label"] and store.labels(slice(0, 2)).dtype == np.float32
    assert store.tokenizer == KmerTokenizer(6, 6)
    # same seed -> same split; another seed -> another split of the same sizes
    assert run(["--out-dir", tmp_path / "again", "--pos", pos, "--neg", neg, "--seed", 3], capsys)[0] == 0
    assert load(tmp_path / "again")["test"]["seq"] == st["test"]["seq"]
    assert run(["--out-dir", tmp_path / "other", "--pos", pos, "--neg", neg, "--seed", 4], capsys)[0] == 0
    other = load(tmp_path / "other")
    assert other["test"]["seq"] != st["test"]["seq"] and len(other["test"]["seq"]) == 384


def test_pair_with_test_files_gzip_crlf_and_leakage(sigma70, tmp_path, capsys):
    """Given test files (gzip / CRLF copies of the first 100 records): removed from the pool, rest 8:1."""
    pos, neg = sigma70
    recs_p, recs_n = read_fasta(pos), read_fasta(neg)
    tp = tmp_path / "test_pos.fa.gz"
    with gzip.open(tp, "wt") as fh:
        fh.write("".join(f">{r.id}\n{r.seq.lower()}\n" for r in recs_p[:100]))  # lower case: same sequences
    tn = tmp_path / "test_neg.fa"
    tn.write_bytes("".join(f">{r.id}\r\n{r.seq[:40]}\r\n{r.seq[40:]}\r\n" for r in recs_n[:100]).encode())
    rc, out, err = run(["--out-dir", tmp_path / "t", "--pos", pos, "--neg", neg, "--test-pos", tp,
                        "--test-neg", tn, "--k", 4, "--stride", 2, "--label-name", "promoter"], capsys)
    assert rc == 0, err
    st = load(tmp_path / "t")
    # pool after removing the 200 test sequences: 739 pos, 2900 neg; val = 1/9 of each
    vp, vn = n_of(739, 1 / 9), n_of(2900, 1 / 9)
    assert (vp, vn) == (82, 322)
    assert [len(st[s]["seq"]) for s in SPLITS] == [739 - vp + 2900 - vn, vp + vn, 200]
    assert [int(st[s]["labels"].sum()) for s in SPLITS] == [739 - vp, vp, 100]
    summ = st["train"]["config"]["summary"]
    assert summ["train"]["removed_leak"] == 200 and summ["val"]["removed_leak"] == 0
    assert set(st["test"]["seq"]) == {r.seq for r in recs_p[:100] + recs_n[:100]}
    assert not set(st["test"]["seq"]) & (set(st["train"]["seq"]) | set(st["val"]["seq"]))
    assert st["test"]["seqid"][0] == f"test_pos.fa.gz:{recs_p[0].id}"
    L = KmerTokenizer(4, 2).num_tokens(81)
    for s in SPLITS:
        check_rows(st[s], KmerTokenizer(4, 2), L)
        assert st[s]["label_names"] == ["promoter"] and st[s]["attrs"]["stride"] == 2
    assert "200 removed as also in val/test" in out
    assert {f["role"] for f in st["val"]["source"]["files"]} == {"pos", "neg", "test-pos", "test-neg"}


# ---------------------------------------------------------------------------------------------- tables
@pytest.fixture
def tata(data_dir, tmp_path) -> dict[str, Path]:
    """The first 200 rows of each gue_prom_300_tata file."""
    src = data_dir / "promoters" / "gue_prom_300_tata"
    (tmp_path / "tata").mkdir()
    return {s: head_lines(src / f"{s}.csv", tmp_path / "tata" / f"{s}.csv", 200) for s in ("train", "dev", "test")}


def expected_binary(files: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Per split: sequence -> label, by the documented rules, from the csv module."""
    seen = {}
    for split, name in (("train", "train"), ("val", "dev"), ("test", "test")):
        seen[split] = {}
        for seq, lab in read_csv_rows(files[name]):
            seen[split].setdefault(seq, set()).add(float(lab))
    kept = {
        "test": seen["test"],
        "val": {q: v for q, v in seen["val"].items() if q not in seen["test"]},
        "train": {q: v for q, v in seen["train"].items() if q not in seen["test"] and q not in seen["val"]},
    }
    return {s: {q: next(iter(v)) for q, v in kept[s].items() if len(v) == 1} for s in SPLITS}  # conflicts dropped


def test_gue_prom_300_tata_table(tata, tmp_path, capsys):
    rc, out, err = run(["--out-dir", tmp_path / "t", "--table", tata["train"], "--dev", tata["dev"],
                        "--test", tata["test"]], capsys)
    assert rc == 0, err
    st = load(tmp_path / "t")
    want = expected_binary(tata)
    for s in SPLITS:
        got = {q: float(l[0]) for q, l in zip(st[s]["seq"], st[s]["labels"])}
        assert got == want[s]
        assert st[s]["config"]["summary"][s]["positives"] == [sum(v == 1.0 for v in want[s].values())]
        check_rows(st[s], KmerTokenizer(6), 50)
        assert st[s]["label_names"] == ["label"] and st[s]["config"]["task_kind"] == "binary"
    # seqid: file name and 1-based data row; rows keep the file order
    rows = read_csv_rows(tata["dev"])
    first_val = st["val"]["seqid"][0]
    assert first_val.startswith("dev.csv:") and rows[int(first_val.split(":")[1]) - 1][0] == st["val"]["seq"][0]
    assert len(out.strip().splitlines()) == 7  # kind line, 3 summaries, 3 paths


def test_table_tsv_crlf_gzip_same_stores(tata, tmp_path, capsys):
    """The same tables as TSV with CRLF line ends (gzip for train) give the same stores as the CSVs."""
    conv = {}
    for name, p in tata.items():
        text = p.read_text().replace(",", "\t").replace("\n", "\r\n").encode()
        conv[name] = tmp_path / f"{name}.tsv.gz" if name == "train" else tmp_path / f"{name}.txt"  # .txt: sniffed
        if name == "train":
            with gzip.open(conv[name], "wb") as fh:
                fh.write(text)
        else:
            conv[name].write_bytes(text)
    a = ["--table", tata["train"], "--dev", tata["dev"], "--test", tata["test"]]
    b = ["--table", conv["train"], "--dev", conv["dev"], "--test", conv["test"]]
    assert run(["--out-dir", tmp_path / "a", *a], capsys)[0] == 0
    rc, _, err = run(["--out-dir", tmp_path / "b", *b], capsys)
    assert rc == 0, err
    sa, sb = load(tmp_path / "a"), load(tmp_path / "b")
    for s in SPLITS:
        assert np.array_equal(sa[s]["tokens"], sb[s]["tokens"]) and np.array_equal(sa[s]["labels"], sb[s]["labels"])
        assert sa[s]["seq"] == sb[s]["seq"]


def test_table_draws_val_and_test_stratified(tata, tmp_path, capsys):
    rc, _, err = run(["--out-dir", tmp_path / "t", "--table", tata["train"], "--seed", 1], capsys)
    assert rc == 0, err
    st = load(tmp_path / "t")
    uniq: dict[str, set] = {}
    for q, lab in read_csv_rows(tata["train"]):
        uniq.setdefault(q, set()).add(lab)
    labs = [next(iter(v)) for v in uniq.values() if len(v) == 1]
    npos, nneg = labs.count("1"), labs.count("0")
    for s in ("val", "test"):
        assert len(st[s]["seq"]) == n_of(npos, 0.1) + n_of(nneg, 0.1)
        assert int(st[s]["labels"].sum()) == n_of(npos, 0.1)
    assert sum(len(st[s]["seq"]) for s in SPLITS) == len(labs)


def test_multilabel_table_with_empty_cells(tmp_path, capsys):
    """Two label columns, empty = NaN; duplicates collapse; conflicts become NaN; IUPAC -> UNK; padding."""
    train = tmp_path / "train.csv"
    train.write_text(
        "sequence,open,bound\n"
        "ACGTACGTACGTAC,1,\n"        # row 1
        "acgtacgtacgtac,1,0\n"       # row 2: duplicate of row 1 (case): merged -> open 1, bound 0
        "GGGGCCCCAAAATTTTGG,,1\n"    # row 3
        "TTTTTTNNNNNNACGRYA,0,1\n"   # row 4: IUPAC -> [UNK] k-mers
        "CCCCCCGGGGGG,1,1\n"         # row 5
        "CCCCCCGGGGGG,0,1\n"         # row 6: conflict on 'open' -> NaN, 'bound' stays 1
        "AAAAAACCCCCC,,\n"           # row 7: nothing observed -> dropped
    )
    dev = tmp_path / "dev.csv"
    dev.write_text("sequence,open,bound\nGATTACAGATTACA,1,0\nGGGGCCCCAAAATTTTGG,0,\n")  # row 2 leaks from train
    test = tmp_path / "test.csv"
    test.write_text("bound,sequence,open\n0,TGCATGCATGCA,\n")  # another column order: matched by name
    rc, out, err = run(["--out-dir", tmp_path / "t", "--table", train, "--dev", dev, "--test", test, "--k", 3,
                        "--stride", 1], capsys)
    assert rc == 0, err
    st = load(tmp_path / "t")
    nan = np.nan
    tr = st["train"]
    assert tr["seq"] == ["ACGTACGTACGTAC", "TTTTTTNNNNNNACGRYA", "CCCCCCGGGGGG"]
    np.testing.assert_array_equal(tr["labels"], np.array([[1, 0], [0, 1], [nan, 1]], np.float32))
    assert tr["seqid"] == ["train.csv:1", "train.csv:4", "train.csv:5"]
    np.testing.assert_array_equal(st["val"]["labels"], np.array([[1, 0], [0, nan]], np.float32))
    np.testing.assert_array_equal(st["test"]["labels"], np.array([[nan, 0]], np.float32))
    summ = tr["config"]["summary"]["train"]
    assert (summ["duplicates"], summ["conflicts"], summ["removed_leak"], summ["unlabelled"]) == (2, 1, 1, 1)
    assert summ["positives"] == [1, 2] and summ["observed"] == [2, 3]
    for s in SPLITS:
        assert st[s]["label_names"] == ["open", "bound"] and st[s]["config"]["task_kind"] == "multilabel"
        check_rows(st[s], KmerTokenizer(3, 1), 16)  # 18 bp, k=3 stride 1
    row = tr["tokens"][1]  # N at 6..11, R at 15, Y at 16: k-mers 4..11 and 13..15 hold one
    assert (row[4:12] == UNK_ID).all() and (row[13:16] == UNK_ID).all()
    assert row[3] != UNK_ID and row[12] != UNK_ID and UNK_ID not in row[:4]
    assert (tr["tokens"][0][12:] == PAD_ID).all() and (tr["tokens"][0][:12] != PAD_ID).all()
    assert "positive/observed: open 1/2, bound 2/3" in out


# ---------------------------------------------------------------------------------------------- --tables
MARKS = ("H3", "H3K4me3", "H4")


def test_yeast_histone_tables_masked_merge(data_dir, tmp_path, capsys):
    src = data_dir / "chromatin" / "gue_yeast_histone"
    folders = {}
    for m in MARKS:
        folders[m] = tmp_path / m
        folders[m].mkdir()
        for s in ("dev", "test"):
            head_lines(src / m / f"{s}.csv", folders[m] / f"{s}.csv", 300)
    rc, out, err = run(["--out-dir", tmp_path / "t", "--tables", *(f"{m}={folders[m]}" for m in MARKS),
                        "--seed", 7], capsys)
    assert rc == 0, err
    # independent merge: sequence -> mark -> set of labels
    merged: dict[str, dict[str, set]] = {}
    for m in MARKS:
        for s in ("dev", "test"):
            for q, lab in read_csv_rows(folders[m] / f"{s}.csv"):
                merged.setdefault(q, {}).setdefault(m, set()).add(float(lab))
    want = {q: [next(iter(d[m])) if m in d and len(d[m]) == 1 else np.nan for m in MARKS] for q, d in merged.items()}
    want = {q: v for q, v in want.items() if not all(np.isnan(v))}
    st = load(tmp_path / "t")
    n = len(want)
    assert [len(st[s]["seq"]) for s in SPLITS] == [n - 2 * n_of(n, 0.1), n_of(n, 0.1), n_of(n, 0.1)]
    shared = 0
    for s in SPLITS:
        assert st[s]["label_names"] == list(MARKS) and st[s]["config"]["task_kind"] == "multilabel"
        for q, lab in zip(st[s]["seq"], st[s]["labels"]):
            np.testing.assert_array_equal(lab, np.array(want[q], np.float32))
            shared += int((~np.isnan(lab)).sum() > 1)
        check_rows(st[s], KmerTokenizer(6), 83)
        obs = (~np.isnan(st[s]["labels"])).sum(axis=0).tolist()
        assert st[s]["config"]["summary"][s]["observed"] == obs
    assert shared == sum(1 for v in want.values() if (~np.isnan(v)).sum() > 1) > 10  # merged across marks
    # a sequence only in H4's files has NaN for the other marks
    only_h4 = next(q for q, d in merged.items() if set(d) == {"H4"})
    row = next(lab for s in SPLITS for q, lab in zip(st[s]["seq"], st[s]["labels"]) if q == only_h4)
    assert np.isnan(row[0]) and np.isnan(row[1]) and not np.isnan(row[2])
    assert st["train"]["seqid"][0].startswith("H3/dev.csv:")
    roles = {f["role"] for f in st["train"]["source"]["files"]}
    assert roles == {f"{m}:{s}" for m in MARKS for s in ("dev", "test")}


# ---------------------------------------------------------------------------------------------- bad input
def write(p: Path, text: str | bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


GOOD_ROWS = "".join(f"{''.join(np.random.default_rng(i).choice(list('ACGT'), 20))},{i % 2}\n" for i in range(20))
BAD = {
    "label_value": ("t.csv", "sequence,label\nACGTACGT,1\nACGTACGA,2\n", "--table",
                    r"t\.csv: data row 2 \(line 3\): column 'label' has '2'; labels must be 0, 1 or empty"),
    "unknown_column": ("t.csv", "sequence,label,note\nACGTACGT,1,x\n", "--table",
                       r"t\.csv: data row 1 \(line 2\): column 'note' has 'x'"),
    "no_sequence_column": ("t.csv", "seq,label\nACGTACGT,1\n", "--table", r"t\.csv: no 'sequence' column"),
    "bad_base_table": ("t.csv", "sequence,label\nACGTACGT,1\nACGU-ACGT,0\n", "--table",
                       r"t\.csv: data row 2 \(line 3\): character 'U' at position 4 is not a base"),
    "bad_base_fasta": ("p.fa", ">a\nACGTACGT\n>b desc\nACGTAC\nGTXA\n", "--pos",
                       r"p\.fa: record 'b' \(line 3\): character 'X' at position 9 is not a base"),
    "empty_fasta": ("p.fa", "", "--pos", r"p\.fa: empty FASTA"),
    "header_only_table": ("t.csv", "sequence,label\r\n", "--table",
                          r"t\.csv: empty table \(a header and no data row\)"),
    "empty_table": ("t.csv", "", "--table", r"t\.csv: empty table \(no header line\)"),
    "record_without_sequence": ("p.fa", ">a\nACGTACGT\n>b\n>c\nACGT\n", "--pos",
                                r"p\.fa: record 'b' \(line 3\) has no sequence"),
    "fields": ("t.csv", "sequence,label\nACGTACGT,1,0\n", "--table", r"t\.csv: data row 1 \(line 2\) has 3 fields"),
    "shorter_than_k": ("t.csv", "sequence,label\nACGTACGT,1\nACG,0\n", "--table",
                       r"t\.csv: data row 2: the sequence has 3 bp, fewer than k=6"),
    "not_utf8": ("t.csv", b"sequence,label\nACGT\xff,1\n", "--table", r"t\.csv: not a text file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_nothing_written(case, tmp_path, capsys):
    name, text, opt, pattern = BAD[case]
    f = write(tmp_path / "in" / name, text)
    other = write(tmp_path / "in" / "n.fa", ">n\nACGTACGTAC\n")
    args = [opt, f] + (["--neg", other] if opt == "--pos" else [])
    rc, out, err = run(["--out-dir", tmp_path / "out", *args], capsys)
    assert rc == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and line.startswith("genomics-lm make-task: error: ")
    assert re.search(pattern, line), line
    assert not (tmp_path / "out").exists()


def test_tables_folder_without_split_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    good = write(tmp_path / "A" / "dev.csv", "sequence,label\n" + GOOD_ROWS)
    rc, _, err = run(["--out-dir", tmp_path / "out", "--tables", f"A={good.parent}", f"B={tmp_path / 'empty'}"],
                     capsys)
    assert rc == 2 and "--tables B=" in err and "none of train, dev, test" in err
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite_and_like(tmp_path, capsys):
    t = write(tmp_path / "t.csv", "sequence,label\n" + GOOD_ROWS)
    out = tmp_path / "out"
    assert run(["--out-dir", out, "--table", t], capsys)[0] == 0
    before = (out / "val.h5").read_bytes()
    rc, _, err = run(["--out-dir", out, "--table", t, "--k", 4], capsys)
    assert rc == 2 and "output exists (use --overwrite" in err and (out / "val.h5").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "val.h5"]  # no temporary left
    # --k with --like: refused before the checkpoint is read
    rc, _, err = run(["--out-dir", out, "--table", t, "--overwrite", "--k", 4, "--like", tmp_path / "no.pt"], capsys)
    assert rc == 2 and "give either --like or --k/--stride" in err
    # --like takes k and stride from a checkpoint
    import torch

    from genomics_lm.checkpoint import make_record
    from genomics_lm.model import ModelConfig

    ckpt = tmp_path / "pre.pt"
    torch.save({"genomics_lm": make_record(ModelConfig(tokenizer=KmerTokenizer(4, 2)), "mlm"), "state_dict": {}}, ckpt)
    rc, _, err = run(["--out-dir", out, "--table", t, "--overwrite", "--like", ckpt], capsys)
    assert rc == 0, err
    st = load(out)
    assert (st["val"]["attrs"]["k"], st["val"]["attrs"]["stride"]) == (4, 2)
    assert st["val"]["config"]["tokenizer_from"] == str(ckpt)


def test_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A failure in the last store: none of the three files (nor a temporary one, nor the new folder) remains."""
    from genomics_lm import tasks

    t = write(tmp_path / "t.csv", "sequence,label\n" + GOOD_ROWS)
    real = tasks._TaskStoreWriter.write_sequences

    def failing(self, seqs):
        if self.path.name == "test.h5":
            raise OSError("disk full")
        real(self, seqs)

    monkeypatch.setattr(tasks._TaskStoreWriter, "write_sequences", failing)
    with pytest.raises(OSError, match="disk full"):
        cli(["make-task", "--out-dir", str(tmp_path / "new" / "out"), "--table", str(t)])
    assert not (tmp_path / "new").exists()


def test_too_few_rows_to_split(tmp_path, capsys):
    t = write(tmp_path / "t.csv", "sequence,label\nACGTACGT,1\nACGTACGA,0\nACGTACGC,1\n")
    rc, _, err = run(["--out-dir", tmp_path / "out", "--table", t], capsys)
    assert rc == 2 and "split 'val' would be empty" in err and not (tmp_path / "out").exists()
