"""genomics_lm.peaks and the ``--genome --peaks`` builder: readers, chromosome names, region records, real K562 peaks.

Expected labels on the real hg19 piece are computed here independently: the peak files read with gzip/csv, a
per-base coverage array of the 1 Mb region per feature, a bin positive when >= 100 of its 200 bases are covered.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from helpers_tasks import SPLITS, load, run
from genomics_lm.errors import UserError
from genomics_lm.peaks import (
    map_intervals, parse_region, read_chrom_map, read_peaks, record_spans, rename_chrom, ucsc_bin,
)

REGION = "22:20000001-21000000"
OFFSET = 20_000_000




@pytest.fixture(scope="module")
def k562(data_dir):
    p = data_dir / "chromatin" / "k562_hg19_peaks"
    return {"genome": data_dir / "genomes" / "hg19_chr22_20-21Mb.fa",
            "CTCF": p / "tf_factornet" / "ChIPseq.K562.CTCF.conservative.train.narrowPeak.gz",
            "H3K4me3": p / "histone_broad" / "wgEncodeBroadHistoneK562H3k4me3StdPk.txt.gz",
            "POLR2A": p / "other" / "POLR2A.K562.bed.gz"}


def coverage_labels(path: Path, chrom: str, bin_bp: int = 200, n_bp: int = 1_000_000) -> np.ndarray:
    """Independent labels: (n_bins,) bool from a per-base coverage array of hg19 chr22:20,000,000-21,000,000."""
    cov = np.zeros(n_bp, bool)
    with gzip.open(path, "rt", newline="") as fh:
        for line in fh:
            f = line.rstrip("\r\n").split("\t")
            if f[0].isdigit() and len(f) > 3 and f[2].isdigit():  # UCSC dump: bin chrom start end
                f = f[1:]
            if f[0] != chrom:
                continue
            s, e = int(f[1]) - OFFSET, int(f[2]) - OFFSET
            cov[max(s, 0) : max(min(e, n_bp), 0)] = True
    return cov.reshape(-1, bin_bp).sum(axis=1) >= bin_bp // 2


def fasta_seq(path: Path) -> str:
    return "".join(l.strip() for l in open(path) if not l.startswith(">"))


# ---------------------------------------------------------------------------------------------- units
def test_region_names_and_spans():
    assert parse_region("22:20000001-21000000") == ("22", 20_000_000, 21_000_000)
    assert parse_region("chr1:1,001-2,000") == ("chr1", 1000, 2000)
    assert parse_region("HLA-A*01:01:01:01") is None and parse_region("chr1") is None
    spans = record_spans({REGION: 1_000_000, "chrM": 16_569, "chr5:101-200": 60})
    assert spans["22"][0].offset == OFFSET and spans["22"][0].chrom_end is None and spans["22"][0].is_region
    assert spans["chrM"][0].chrom_end == 16_569 and not spans["chrM"][0].is_region
    assert spans["chr5"][0].chrom_end == 160  # shorter than its name: cut at the chromosome's end
    with pytest.raises(UserError, match="named as a region of 100 bp .* holds 150 bp"):
        record_spans({"chr5:101-200": 150})


def test_ucsc_bin_and_renaming():
    assert ucsc_bin(118556, 118713) == 585 and ucsc_bin(19982032, 20030190) == 737
    assert ucsc_bin(19528975, 20132441) == 11
    assert rename_chrom("22", None, "add") == "chr22" and rename_chrom("chr22", None, "strip") == "22"
    assert rename_chrom("chrM", {"chrM": "MT"}, "strip") == "MT" and rename_chrom("X", None, None) == "X"


def test_read_peaks_layouts_crlf_gzip(tmp_path):
    bed = tmp_path / "a.bed"
    bed.write_bytes(b"track name=x\r\n#comment\r\nbrowser position chr1\r\n1\t100\t200\r\n\r\n1 300 450 p 0\r\n")
    iv = read_peaks(bed)
    assert iv.layout == "bed" and iv.chrom == ["1", "1"] and iv.start.tolist() == [100, 300]
    assert iv.end.tolist() == [200, 450] and iv.line.tolist() == [4, 6]
    dump = tmp_path / "b.txt.gz"
    with gzip.open(dump, "wb") as fh:  # UCSC dump with a numeric chromosome: told from BED by the bin number
        fh.write(b"#bin\tchrom\tchromStart\tchromEnd\r\n585\t1\t118556\t118713\t.\r\n737\t22\t19982032\t20030190\t.\r\n")
    iv = read_peaks(dump)
    assert iv.layout == "ucsc-bin" and iv.chrom == ["1", "22"] and iv.end.tolist() == [118713, 20030190]
    named = tmp_path / "c.txt"
    named.write_text("12\tchr3\t10\t20\n")  # second column not an integer: a bin column whatever its value
    assert read_peaks(named).layout == "ucsc-bin" and read_peaks(named).chrom == ["chr3"]


@pytest.mark.parametrize("text, match", [
    ("chr1\t100\n", "line 1 has 2 column.*needs at least chrom, start, end"),
    ("chr1\t10\t20\nchr1\t200\t200\n", "line 2: peak chr1:200-200 has end <= start"),
    ("chr1\t10\t20\nchr1\tx\t30\n", "line 2: start 'x' is not a non-negative integer"),
    ("# only a header\n", "no peak"),
])
def test_read_peaks_errors(tmp_path, text, match):
    f = tmp_path / "bad.bed"
    f.write_text(text)
    with pytest.raises(UserError, match=match) as e:
        read_peaks(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_chrom_map_file(tmp_path):
    m = tmp_path / "map.txt"
    m.write_text("# old new\nchr22 22\r\nchrM\tMT\n")
    assert read_chrom_map(m) == {"chr22": "22", "chrM": "MT"}
    m.write_text("chr22 22 x\n")
    with pytest.raises(UserError, match="line 1: expected two columns"):
        read_chrom_map(m)


def test_mapping_region_record_offsets_and_clipping(tmp_path):
    f = tmp_path / "p.bed"
    f.write_text("chr22\t20001000\t20001240\nchr22\t19999900\t20000050\nchr22\t21000500\t21000600\n"
                 "chr22\t20999990\t21000100\nchr7\t5\t10\n")
    spans = record_spans({REGION: 1_000_000})
    m = map_intervals(read_peaks(f), spans, prefix="strip")
    # 20,001,000 is offset 1,000 of the record (README); peaks across the region's ends are clipped
    assert m.per_record[REGION].tolist() == [[0, 50], [1000, 1240], [999_990, 1_000_000]]
    assert m.index[REGION].tolist() == [1, 0, 3]
    assert m.stats == {"total": 5, "on_genome": 3, "outside": 1, "other_chrom": 1, "chroms_matched": ["chr22"],
                       "chroms_unmatched": ["chr7"]}
    with pytest.raises(UserError) as e:
        map_intervals(read_peaks(f), spans)  # no renaming: chr22 / chr7 vs 22
    msg = str(e.value)
    assert "file has chr7, chr22" in msg and "has 22 (records named as regions: 22:20000001-21000000)" in msg
    assert "--strip-chr-prefix" in msg and "--chrom-map" in msg


# ---------------------------------------------------------------------------------------------- real K562 peaks
def test_k562_three_spellings_exact_labels(k562, tmp_path, capsys):
    """CTCF (chr22, narrowPeak), H3K4me3 (22, UCSC dump with bin column, CRLF), POLR2A (22, BED3) on `22:...`."""
    cmap = tmp_path / "map.tsv"
    cmap.write_text("chr22\t22\n")
    out = tmp_path / "t"
    rc, stdout, err = run(["--out-dir", out, "--genome", k562["genome"], "--peaks", f"CTCF={k562['CTCF']}",
                           f"H3K4me3={k562['H3K4me3']}", f"POLR2A={k562['POLR2A']}", "--chrom-map", cmap,
                           "--bin-bp", 200, "--context-bp", 1000], capsys)
    assert rc == 0, err
    assert "multilabel task, labels: CTCF, H3K4me3, POLR2A" in stdout
    assert "CTCF: 79 of 47,804 peaks on the genome" in stdout  # README: 79 CTCF, 72 H3K4me3, 364 POLR2A records
    assert "H3K4me3: 72 of" in stdout and "(ucsc-bin;" in stdout and "POLR2A: 364 of 117,120" in stdout
    res = load(out)
    expect = np.stack([coverage_labels(k562["CTCF"], "chr22"), coverage_labels(k562["H3K4me3"], "22"),
                       coverage_labels(k562["POLR2A"], "22")], axis=1)
    cfg = res["train"]["config"]
    assert cfg["counts"]["features"]["CTCF"]["positive_bins"] == int(expect[:, 0].sum())
    assert [cfg["counts"]["features"][n]["positive_bins"] for n in ("CTCF", "H3K4me3", "POLR2A")] == \
        expect.sum(axis=0).tolist()
    # which bins are kept: context inside the record, inside one split interval, at most 10% N
    seq = fasta_seq(k562["genome"]).upper()
    nonacgt = np.r_[0, np.cumsum([c not in "ACGT" for c in seq])]
    plan = cfg["split_plan"]["intervals"]
    kept = {}
    for b in range(5000):
        cs, ce = b * 200 - 400, b * 200 + 600
        if cs < 0 or ce > 1_000_000:
            continue
        where = [s for s in SPLITS for _, a, z in plan[s] if a <= cs and ce <= z]
        if where and (nonacgt[ce] - nonacgt[cs]) / 1000 <= 0.1:
            kept[b] = where[0]
    n_rows = 0
    for s in SPLITS:
        r = res[s]
        assert set(r["seqid"]) == {"22"} and set(r["strand"]) == {"+"} and (r["end"] - r["start"] == 1000).all()
        bins = (r["start"] + 400 - OFFSET) // 200  # absolute chromosome coordinates of the context window
        assert all(kept[b] == s for b in bins.tolist())
        assert np.array_equal(r["labels"], expect[bins].astype(np.float32))
        assert all(q == seq[a - OFFSET : a - OFFSET + 1000] for q, a in zip(r["seq"][:50], r["start"][:50].tolist()))
        assert r["config"]["summary"][s]["positives"] == expect[bins].sum(axis=0).tolist()
        n_rows += len(bins)
    assert n_rows == len(kept)
    assert [f["role"] for f in res["test"]["source"]["files"]] == ["genome", "peaks", "peaks", "peaks"]

    # the same with --strip-chr-prefix instead of the map: identical labels and rows
    out2 = tmp_path / "t2"
    rc, _, err = run(["--out-dir", out2, "--genome", k562["genome"], "--peaks", f"CTCF={k562['CTCF']}",
                      f"H3K4me3={k562['H3K4me3']}", f"POLR2A={k562['POLR2A']}", "--strip-chr-prefix"], capsys)
    assert rc == 0, err
    res2 = load(out2)
    for s in SPLITS:
        assert np.array_equal(res[s]["labels"], res2[s]["labels"]) and np.array_equal(res[s]["tokens"], res2[s]["tokens"])


def test_k562_neg_per_pos_recorded_and_seeded(k562, tmp_path, capsys):
    args = ["--genome", k562["genome"], "--peaks", f"H3K4me3={k562['H3K4me3']}", f"POLR2A={k562['POLR2A']}",
            "--neg-per-pos", 0.5, "--seed", 3]
    rc, stdout, err = run(["--out-dir", tmp_path / "a", *args], capsys)
    assert rc == 0, err
    assert "negatives per positive: 0.5 (each split, seeded)" in stdout
    rc, _, err = run(["--out-dir", tmp_path / "b", *args], capsys)
    assert rc == 0, err
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    for s in SPLITS:
        sm = a[s]["config"]["summary"][s]
        anypos = int((a[s]["labels"] == 1).any(axis=1).sum())
        assert sm["any_positive"] == anypos
        assert sm["negatives_kept"] == min(sm["negatives_available"], int(np.floor(0.5 * anypos + 0.5)))
        assert sm["rows"] == len(a[s]["labels"]) == anypos + sm["negatives_kept"]
        assert np.array_equal(a[s]["start"], b[s]["start"])  # same seed, same rows
        assert np.all(np.diff(a[s]["start"]) > 0)  # genome order
    assert a["train"]["config"]["neg_per_pos"] == 0.5


# ---------------------------------------------------------------------------------------------- bad input
def test_chromosome_mismatch_lists_both_name_sets(k562, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = run(["--out-dir", out, "--genome", k562["genome"], "--peaks", f"CTCF={k562['CTCF']}"], capsys)
    line = err.strip()
    assert rc == 2 and stdout == "" and "\n" not in line and not out.exists()
    assert line.startswith("genomics-lm make-task: error: ") and str(k562["CTCF"]) in line
    assert "file has chr2, chr3," in line and "genome" in line and "has 22 (records named as regions" in line
    assert "use --strip-chr-prefix" in line and "--chrom-map FILE" in line
    # the prefix rule the wrong way round: still an error, never zero positives
    rc, _, err = run(["--out-dir", out, "--genome", k562["genome"], "--peaks", f"H3={k562['H3K4me3']}",
                      "--add-chr-prefix"], capsys)
    assert rc == 2 and "after the --add-chr-prefix rule" in err and "file has 1, 2, 3," in err and not out.exists()


def test_every_bin_negative_is_an_error(k562, tmp_path, capsys):
    f = tmp_path / "elsewhere.bed"  # on chromosome 22, but outside the 1 Mb piece
    f.write_text("22\t30000000\t30000500\n22\t100\t300\n")
    out = tmp_path / "out"
    rc, _, err = run(["--out-dir", out, "--genome", k562["genome"], "--peaks", f"X={f}"], capsys)
    assert rc == 2 and "feature 'X': every bin is negative after mapping (0 of 2 peaks" in err and not out.exists()


def test_select_bp_same_rows_for_several_context_lengths(k562, tmp_path, capsys):
    """--select-bp: a 1 kb and a 4 kb build get the same bins, labels and splits; the 1 kb rows are the middle of
    the 4 kb rows."""
    base = ["--genome", k562["genome"], "--peaks", f"H3K4me3={k562['H3K4me3']}", f"POLR2A={k562['POLR2A']}",
            "--select-bp", 4000, "--neg-per-pos", 1, "--seed", 2]
    res = {}
    for ctx in (1000, 4000):
        rc, _, err = run(["--out-dir", tmp_path / str(ctx), *base, "--context-bp", ctx], capsys)
        assert rc == 0, err
        res[ctx] = load(tmp_path / str(ctx))
    assert res[1000]["train"]["config"]["split_plan"] == res[4000]["train"]["config"]["split_plan"]
    for s in SPLITS:
        a, b = res[1000][s], res[4000][s]
        assert np.array_equal(a["start"] + 400, b["start"] + 1900) and np.array_equal(a["labels"], b["labels"])
        assert all(x == y[1500:2500] for x, y in zip(a["seq"], b["seq"]))
    rc, _, err = run(["--out-dir", tmp_path / "x", *base, "--context-bp", 8000], capsys)
    assert rc == 2 and "--select-bp (4,000) must be at least --context-bp (8,000)" in err


def test_mask_outside_control_keeps_rows_and_only_the_centre(k562, tmp_path, capsys):
    """--mask-outside-bp (the long-context control): the same rows, labels and splits as the unmasked build;
    the central 1 kb are the genome's bases, everything else N, i.e. [UNK] tokens."""
    base = ["--genome", k562["genome"], "--peaks", f"H3K4me3={k562['H3K4me3']}", f"POLR2A={k562['POLR2A']}",
            "--context-bp", 4000, "--neg-per-pos", 1, "--seed", 2, "--k", 3, "--stride", 3]
    rc, _, err = run(["--out-dir", tmp_path / "full", *base], capsys)
    assert rc == 0, err
    rc, _, err = run(["--out-dir", tmp_path / "mask", *base, "--mask-outside-bp", 1000], capsys)
    assert rc == 0, err
    full, mask = load(tmp_path / "full"), load(tmp_path / "mask")
    assert mask["train"]["config"]["mask_outside_bp"] == 1000 and full["train"]["config"]["mask_outside_bp"] is None
    for s in SPLITS:
        a, b = full[s], mask[s]
        assert np.array_equal(a["start"], b["start"]) and np.array_equal(a["labels"], b["labels"])
        for x, y in zip(a["seq"], b["seq"]):
            assert y == "N" * 1500 + x[1500:2500] + "N" * 1500
        assert (b["tokens"][:, :500] == 1).all() and (b["tokens"][:, -500:] == 1).all()  # [UNK] = 1
        assert np.array_equal(a["tokens"][:, 500:833], b["tokens"][:, 500:833])  # bases 1500..2499 -> tokens 500..832


def test_mask_outside_pure_function():
    from genomics_lm.genome_tasks import mask_outside

    assert mask_outside(b"ACGTACGTAC", 4) == b"NNNTACGNNN"
    assert mask_outside(b"ACGTACGTA", 4) == b"NNGTACNNN"  # offsets [(9 - 4) // 2, +4) = [2, 6)
    assert mask_outside(b"ACGT", 4) == b"ACGT" and mask_outside(b"ACGT", 9) == b"ACGT"


@pytest.mark.parametrize("extra,match", [
    (["--mask-outside-bp", 5000], "--mask-outside-bp must be in 1..--context-bp (1,000), got 5,000"),
    (["--val-frac", 0.6], "--val-frac must be between 0 and 0.5, got 0.6"),
    (["--test-frac", 0], "--test-frac must be between 0 and 0.5, got 0.0"),
])
def test_control_and_fraction_options_checked(k562, tmp_path, capsys, extra, match):
    out = tmp_path / "t"
    rc, _, err = run(["--out-dir", out, "--genome", k562["genome"], "--peaks", f"H3={k562['H3K4me3']}",
                      "--strip-chr-prefix", *extra], capsys)
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_val_and_test_fractions_grow_the_held_out_blocks(k562, tmp_path, capsys):
    base = ["--genome", k562["genome"], "--peaks", f"H3={k562['H3K4me3']}", "--strip-chr-prefix", "--block-bp", 50000,
            "--seed", 1]
    sizes = {}
    for frac in (0.1, 0.3):
        rc, _, err = run(["--out-dir", tmp_path / str(frac), *base, "--val-frac", frac, "--test-frac", frac], capsys)
        assert rc == 0, err
        plan = load(tmp_path / str(frac))["train"]["config"]["split_plan"]
        sizes[frac] = {s: sum(e - b for _, b, e in plan["intervals"][s]) for s in ("val", "test")}
    assert sizes[0.3]["val"] > 2 * sizes[0.1]["val"] and sizes[0.3]["test"] > 2 * sizes[0.1]["test"]
