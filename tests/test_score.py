"""genomics_lm.score / tracks / variants and ``genomics-lm score``: the Python API, tiling, evaluate's probabilities
reproduced from FASTA, a track over the real hg19 chr22 piece at hg19 coordinates, variant effects on the real
dbSNP and GATK VCFs, exact window mechanics, and bad input (one line, exit 2, nothing written).

Models are tiny classifiers saved with random weights (a few thousand parameters): the mechanics are under test,
not the biology.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from genomics_lm.checkpoint import make_record, save_model
from genomics_lm.cli import main as cli_main
from genomics_lm.model import MaskedLM, ModelConfig, MultiLabelClassifier
from genomics_lm.score import (aggregate_windows, load_model, predict_proba, score_sequences, tile_starts,
                               trim_padding)
from genomics_lm.tokenizer import PAD_ID, KmerTokenizer, encode
from genomics_lm.tracks import bin_of_window, merge_intervals
from genomics_lm.variants import iter_vcf, log_odds, variant_windows, window_span

TOK1 = KmerTokenizer(1, 1)
HG19 = "genomes/hg19_chr22_20-21Mb.fa"
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(tokenizer=TOK1, attention="bigbird"):
    return ModelConfig(tokenizer=tokenizer, d_model=16, n_layers=1, n_heads=2, d_ff=32, attention=attention,
                       bigbird={"block_size": 8, "window_blocks": 3, "global_blocks": 2, "random_blocks": 1,
                                "seed": 0}, conv_stem=5, dropout=0.0)


def save_classifier(path, label_names=("promoter",), tokenizer=TOK1, seed=0, add_cls=False, data=None):
    torch.manual_seed(seed)
    config = tiny_config(tokenizer)
    model = MultiLabelClassifier(config, num_labels=len(label_names), pooling="mean")
    with torch.no_grad():  # spread the logits of a random model so that probabilities differ between inputs
        model.classifier.weight.mul_(20.0)
    extra = {"data": data} if data is not None else {}
    save_model(model, make_record(config, "classify", label_names=list(label_names), pooling="mean",
                                  add_cls=add_cls, **extra), path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("run") / "finetuned.pt", ["promoter", "peak"])


def run_cli(args, capfd):
    rc = cli_main(["score", "--no-progress", *map(str, args)])
    out, err = capfd.readouterr()
    return rc, out, err


def read_tsv(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def read_fasta(path):
    """(id, sequence) of every record, through Biopython (an independent reader)."""
    from Bio import SeqIO

    return [(r.id, str(r.seq)) for r in SeqIO.parse(str(path), "fasta")]


# ---------------------------------------------------------------------------------------------------------------
# mechanics: tiling, aggregation, windows, VCF reading
# ---------------------------------------------------------------------------------------------------------------


def test_tile_starts_cover_every_base_with_the_last_window_at_the_end():
    assert tile_starts(5, 10, 3).tolist() == [0]
    assert tile_starts(10, 10, 3).tolist() == [0]
    assert tile_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert tile_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert tile_starts(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert tile_starts(101, 40, 50).tolist() == [0, 50, 61]


def test_aggregate_max_and_mean_per_sequence():
    p = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4], [0.7, 0.7]])
    owner = np.array([0, 0, 0, 1])
    assert aggregate_windows(p, owner, 2, "max").tolist() == [[0.5, 0.9], [0.7, 0.7]]
    np.testing.assert_allclose(aggregate_windows(p, owner, 2, "mean"), [[0.3, 0.5], [0.7, 0.7]])


def test_variant_windows_snv_insertion_deletion_exact():
    genome = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".lower()  # letters stand for bases: positions are what is checked
    W = 8  # half = 4: REF's first base at offset 4 of both windows
    # SNV at 0-based 10 ('k'): window [6, 14)
    s, e = window_span(10, 1, 1, W)
    assert (s, e) == (6, 14)
    ref, alt = variant_windows(genome[s:e].encode(), s, 10, "K", "T", W)
    assert ref == "GHIJKLMN" and alt == "GHIJTLMN"
    # insertion K -> KTT: the right flank is pushed out
    s, e = window_span(10, 1, 3, W)
    assert (s, e) == (6, 14)
    ref, alt = variant_windows(genome[s:e].encode(), s, 10, "K", "KTT", W)
    assert ref == "GHIJKLMN" and alt == "GHIJKTTL"
    # deletion KLM -> K: more of the right flank is pulled in
    s, e = window_span(10, 3, 1, W)
    assert (s, e) == (6, 16)
    ref, alt = variant_windows(genome[s:e].encode(), s, 10, "KLM", "K", W)
    assert ref == "GHIJKLMN" and alt == "GHIJKNOP"
    assert window_span(10, 5, 1, W) is None and window_span(10, 1, 5, W) is None  # longer than W - W // 2


def test_log_odds_is_the_logit_difference_and_finite_at_saturation():
    np.testing.assert_allclose(log_odds(np.array([0.75]), np.array([0.5])), [np.log(3.0)])
    assert np.isfinite(log_odds(np.array([1.0]), np.array([0.0]))).all()


def test_merge_intervals_and_central_bins():
    assert merge_intervals(np.array([[5, 9], [0, 3], [2, 4], [9, 12]])).tolist() == [[0, 4], [5, 12]]
    bs, be = bin_of_window(np.array([0, 50, 100]), 100, 50)
    assert bs.tolist() == [25, 75, 125] and be.tolist() == [75, 125, 175]
    bs, be = bin_of_window(np.array([0]), 100, 300)  # step larger than the window: the window itself
    assert (bs.tolist(), be.tolist()) == ([0], [100])


def write_vcf(path, body, header=True, gz=False):
    text = ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" if header else "") + body
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_vcf_reader_splits_multiallelic_records_and_checks_the_header(tmp_path):
    p = write_vcf(tmp_path / "v.vcf.gz", "22\t5\trs1\tA\tC,G,<NON_REF>\t.\t.\t.\n22\t9\t.\tAT\tA\t.\t.\t.\n", gz=True)
    vs = list(iter_vcf(p))
    assert [(v.chrom, v.pos, v.id, v.ref, v.alt, v.allele, v.line, v.symbolic) for v in vs] == [
        ("22", 5, "rs1", "A", "C", 1, 3, False), ("22", 5, "rs1", "A", "G", 2, 3, False),
        ("22", 5, "rs1", "A", "<NON_REF>", 3, 3, True), ("22", 9, ".", "AT", "A", 1, 4, False)]
    from genomics_lm.errors import UserError

    with pytest.raises(UserError, match=r"line 1: a record before the '#CHROM' header line"):
        list(iter_vcf(write_vcf(tmp_path / "n.vcf", "22\t5\t.\tA\tC\n", header=False)))
    with pytest.raises(UserError, match=r"line 3: POS '0' is not a positive integer"):
        list(iter_vcf(write_vcf(tmp_path / "p.vcf", "22\t0\t.\tA\tC\n")))
    with pytest.raises(UserError, match=r"ALT allele 'Q' is neither"):
        list(iter_vcf(write_vcf(tmp_path / "a.vcf", "22\t3\t.\tA\tQ\n")))


# ---------------------------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------------------------


def test_score_sequences_equals_predict_proba_and_restores_train_mode(ckpt):
    model = load_model(ckpt)
    assert model.label_names == ["promoter", "peak"] and model.add_cls is False and not model.training
    seqs = ["ACGTACGTTTGACA" * 3, "ACGTNRYACGTAGCTAGCTAG", "GATTACA" * 9]
    want = predict_proba(model, [encode(s.upper(), 1, 1) for s in seqs], batch_size=2)
    model.train()
    got = score_sequences(model, seqs, batch_size=2, window=1000)
    assert model.training  # restored
    assert got.dtype == np.float64 and got.shape == (3, 2)
    np.testing.assert_array_equal(got, want)
    # tiling: a 63-bp sequence with 20-bp windows every 10 bp = windows at 0, 10, 20, 30, 40, 43; max and mean
    win = [seqs[2][s: s + 20] for s in (0, 10, 20, 30, 40, 43)]
    pw = predict_proba(model.eval(), [encode(w, 1, 1) for w in win], batch_size=64)
    np.testing.assert_array_equal(score_sequences(model, seqs[2:], window=20, step=10, aggregate="max")[0],
                                  pw.max(axis=0))
    np.testing.assert_allclose(score_sequences(model, seqs[2:], window=20, step=10, aggregate="mean")[0],
                               pw.mean(axis=0))
    # both strands: the mean with the reverse complement's probabilities
    rc = predict_proba(model, [encode(s[::-1].translate(str.maketrans("ACGTNRY", "TGCANYR")), 1, 1) for s in seqs[:1]])
    np.testing.assert_allclose(score_sequences(model, seqs[:1], window=1000, both_strands=True),
                               0.5 * (want[:1] + rc))


def test_default_window_comes_from_the_checkpoint_record(tmp_path):
    path = save_classifier(tmp_path / "w.pt", data={"window_tokens": 30})
    model = load_model(path)
    seq = "ACGT" * 20  # 80 bp: tiled with 30-bp windows every 15 bp
    win = [seq[s: s + 30] for s in (0, 15, 30, 45, 50)]
    want = predict_proba(model, [encode(w, 1, 1) for w in win]).max(axis=0)
    np.testing.assert_array_equal(score_sequences(model, [seq])[0], want)


def test_importing_score_does_not_import_lightning(ckpt):
    code = ("import sys; import genomics_lm.score as s; m = s.load_model(sys.argv[1]); "
            "s.score_sequences(m, ['ACGTACGT']); "
            "bad = [k for k in sys.modules if k.startswith(('pytorch_lightning', 'lightning'))]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------------------------------------------
# sequences: evaluate's probabilities reproduced from a FASTA of the test rows
# ---------------------------------------------------------------------------------------------------------------


def test_fasta_scores_reproduce_evaluate_exactly(data_dir, tmp_path, capfd):
    from genomics_lm.evaluate import evaluate_task
    from genomics_lm.store import TokenStoreWriter

    d = data_dir / "promoters" / "ecoli_sigma70"
    pos, neg = read_fasta(d / "promoters.fa")[:60], read_fasta(d / "non_promoters.fa")[:60]
    rng = np.random.default_rng(3)
    recs = [(r, s, 1.0) for r, s in pos] + [(r, s, 0.0) for r, s in neg]
    recs = [recs[i] for i in rng.permutation(len(recs))]
    ids = [encode(s, 1, 1) for _, s, _ in recs]
    L = max(len(x) for x in ids)
    toks = np.full((len(ids), L), PAD_ID, dtype=TOK1.dtype)
    for i, x in enumerate(ids):
        toks[i, : len(x)] = x
    task = tmp_path / "task"
    with TokenStoreWriter(task / "test.h5", tokenizer=TOK1, window_tokens=L, source={"kind": "test"}, split="test",
                          label_names=["promoter"]) as w:
        w.append(toks, seqid=[r for r, _, _ in recs], start=np.zeros(len(ids)), end=[len(s) for _, s, _ in recs],
                 labels=np.array([[y] for _, _, y in recs], np.float32))
    ckpt = save_classifier(tmp_path / "finetuned.pt", ["promoter"], seed=1)
    evaluate_task(ckpt, task, tmp_path / "eval", split="test", baseline=False, batch_size=16, device="cpu")
    head, rows = read_tsv(tmp_path / "eval" / "predictions.tsv")
    p_eval = [r[head.index("p_model")] for r in rows]
    fasta = tmp_path / "test.fa"
    fasta.write_text("".join(f">{r} test row\n{s}\n" for r, s, _ in recs))
    rc, out, err = run_cli(["--checkpoint", ckpt, "--fasta", fasta, "--out", tmp_path / "s.tsv", "--batch-size", 16,
                            "--device", "cpu"], capfd)
    assert rc == 0, err
    assert "scored 120 records (120 windows; 0 records longer than the window" in out
    h2, rows2 = read_tsv(tmp_path / "s.tsv")
    assert h2 == ["id", "length", "promoter"]
    assert [r[0] for r in rows2] == [r for r, _, _ in recs] and [int(r[1]) for r in rows2] == [len(s) for _, s, _ in recs]
    assert [r[2] for r in rows2] == p_eval  # the same strings: the same probabilities
    model = load_model(ckpt)
    from genomics_lm.store import TokenStore

    store = TokenStore(task / "test.h5")
    want = predict_proba(model, [trim_padding(store[i]) for i in range(len(store))], batch_size=16)
    np.testing.assert_array_equal(score_sequences(model, [s for _, s, _ in recs], batch_size=16), want)


# ---------------------------------------------------------------------------------------------------------------
# track over the real hg19 chr22 piece
# ---------------------------------------------------------------------------------------------------------------


def test_track_over_the_hg19_piece_lands_at_hg19_coordinates(data_dir, tmp_path, ckpt, capfd):
    genome = data_dir / HG19
    bed = tmp_path / "regions.bed"
    bed.write_text("chr22\t20100000\t20101000\nchr22\t20100500\t20101200\nchr1\t5\t500\n")
    rc, out, err = run_cli(["--checkpoint", ckpt, "--genome", genome, "--regions", bed, "--strip-chr-prefix",
                            "--out-add-chr-prefix", "--out-prefix", tmp_path / "trk", "--window", 200, "--step", 100,
                            "--device", "cpu"], capfd)
    assert rc == 0, err
    assert "regions: 3 in regions.bed, 2 on the genome (1 after merging), 0 outside its records, 1 on other" in out
    assert "track chr22:20,100,050-20,101,150 (bins of 100 bp; chromosome size 21,000,000)" in out
    lines = [x.split("\t") for x in (tmp_path / "trk.promoter.bedGraph").read_text().splitlines()]
    # merged region [20,100,000, 20,101,200): windows at 20,100,000 + 100 i (i = 0..10), each written over its
    # central 100 bp
    assert [(c, int(s), int(e)) for c, s, e, _ in lines] == [("chr22", 20100050 + 100 * i, 20100150 + 100 * i)
                                                          for i in range(11)]
    # the value of a bin is the model's probability for the hg19 bases of its window (record offset 20,000,000)
    seq = "".join(line.strip() for line in open(genome) if not line.startswith(">"))
    model = load_model(ckpt)
    w0 = 20100300 - 20000000
    p = score_sequences(model, [seq[w0: w0 + 200]], window=200)[0]
    assert lines[3][3] == f"{p[0]:.6g}"
    peak = [x.split("\t") for x in (tmp_path / "trk.peak.bedGraph").read_text().splitlines()]
    assert peak[3][3] == f"{p[1]:.6g}"
    pyBigWig = pytest.importorskip("pyBigWig")
    bw = pyBigWig.open(str(tmp_path / "trk.promoter.bw"))
    assert bw.chroms() == {"chr22": 21_000_000}
    ivs = bw.intervals("chr22")
    assert [(s, e) for s, e, _ in ivs] == [(int(a), int(b)) for _, a, b, _ in lines]
    np.testing.assert_allclose([v for _, _, v in ivs], [float(x[3]) for x in lines], rtol=1e-5)
    bw.close()


def test_track_over_a_whole_small_record_skips_windows_with_ns(tmp_path, ckpt, capfd):
    fa = tmp_path / "g.fa"
    fa.write_text(">chrT\n" + "ACGT" * 25 + "N" * 100 + "GGCA" * 25 + "\n")  # 300 bp, an N block in the middle
    rc, out, err = run_cli(["--checkpoint", ckpt, "--genome", fa, "--out-prefix", tmp_path / "t", "--window", 100,
                            "--step", 50, "--no-bigwig", "--device", "cpu", "--cache-dir", tmp_path / "c"], capfd)
    assert rc == 0, err
    # windows at 0, 50, 100, 150, 200: those at 50 and 150 hold 50% N (kept: not more than 0.5), 100 all N (skipped)
    lines = [x.split("\t") for x in (tmp_path / "t.promoter.bedGraph").read_text().splitlines()]
    assert [(int(s), int(e)) for _, s, e, _ in lines] == [(25, 75), (75, 125), (175, 225), (225, 275)]
    assert "skipped 1 windows" in out and not (tmp_path / "t.promoter.bw").exists()


# ---------------------------------------------------------------------------------------------------------------
# variants on the real VCFs, and a small VCF with the awkward cases
# ---------------------------------------------------------------------------------------------------------------


def test_dbsnp_vcf_on_the_hg19_piece(data_dir, tmp_path, ckpt, capfd):
    out_path = tmp_path / "eff.tsv"
    rc, out, err = run_cli(["--checkpoint", ckpt, "--vcf", data_dir / "variants" / "hg19_chr22_20-21Mb.dbsnp_snv.vcf",
                            "--genome", data_dir / HG19, "--out", out_path, "--window", 64, "--batch-size", 256,
                            "--device", "cpu"], capfd)
    assert rc == 0, err
    assert "scored 3,174 of 3,174 alleles (3,174 VCF records)" in out
    assert "0 ref mismatch" in out and "0 outside" in out
    head, rows = read_tsv(out_path)
    assert head[:5] == ["chrom", "pos", "id", "ref", "alt"] and len(rows) == 3174
    assert head[5:9] == ["p_ref:promoter", "p_alt:promoter", "diff:promoter", "log_odds:promoter"]
    assert rows[0][:5] == ["22", "20000146", "rs73387790", "G", "A"]
    r = rows[0]
    assert float(r[7]) == pytest.approx(float(r[6]) - float(r[5]), abs=2e-6)


def test_gatk_vcf_whole_chr22_counts_the_variants_off_the_piece(data_dir, tmp_path, ckpt, capfd):
    vcf = data_dir / "variants" / "ENCODE_120_gVCF_generated_qualified.vcf.gz"
    args = ["--checkpoint", ckpt, "--vcf", vcf, "--genome", data_dir / HG19, "--out", tmp_path / "e.tsv",
            "--window", 64, "--batch-size", 256, "--device", "cpu"]
    rc, out, err = run_cli(args, capfd)  # chr22 vs 22: no mapping, a clear error listing both name sets
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "file has chr22; genome" in err and "has 22 (records named as regions: 22:20000001-21000000)" in err
    assert "--strip-chr-prefix" in err and not (tmp_path / "e.tsv").exists()
    rc, out, err = run_cli(args + ["--strip-chr-prefix", "--skipped", tmp_path / "skipped.tsv"], capfd)
    assert rc == 0, err
    assert "scored 212 of 13,510 alleles (13,500 VCF records)" in out
    assert "13,298 outside" in out and "0 ref mismatch" in out
    _, rows = read_tsv(tmp_path / "e.tsv")
    assert len(rows) == 212 and all(20_000_000 < int(r[1]) <= 21_000_000 for r in rows)
    _, sk = read_tsv(tmp_path / "skipped.tsv")
    assert len(sk) == 13298 and {r[6] for r in sk} == {"outside"}


@pytest.fixture
def small_genome(tmp_path):
    """A region-named record: chromosome 7 from 1,000 on (0-based), 200 bp."""
    rng = np.random.default_rng(5)
    seq = "".join(rng.choice(list("ACGT"), 200))
    fa = tmp_path / "g.fa"
    fa.write_text(f">7:1001-1200\n{seq}\n")
    return fa, seq


def test_small_vcf_mismatch_multiallelic_unknown_chrom_indels(small_genome, tmp_path, ckpt, capfd):
    fa, seq = small_genome
    b = lambda i: seq[i]  # noqa: E731  record base i = chromosome position 1000 + i = VCF POS 1001 + i
    wrong = "A" if b(60) != "A" else "C"
    body = (f"7\t{1001 + 50}\tsnv\t{b(50)}\t{'T' if b(50) != 'T' else 'G'}\t.\t.\t.\n"
            f"7\t{1001 + 60}\tmismatch\t{wrong}\tG\t.\t.\t.\n"
            f"7\t{1001 + 70}\tmulti\t{b(70)}\tA,C,G,T\t.\t.\t.\n"
            f"chrUn\t5\tunknown\tA\tG\t.\t.\t.\n"
            f"7\t{1001 + 80}\tins\t{b(80)}\t{b(80)}TTT\t.\t.\t.\n"
            f"7\t{1001 + 90}\tdel\t{seq[90:93]}\t{b(90)}\t.\t.\t.\n"
            f"7\t{1001 + 100}\tsym\t{b(100)}\t<DEL>\t.\t.\t.\n"
            f"7\t{1001 + 5}\tedge\t{b(5)}\tA\t.\t.\t.\n"
            f"7\t{1001 + 500}\toutside\tA\tG\t.\t.\t.\n")
    vcf = write_vcf(tmp_path / "small.vcf", body)
    args = ["--checkpoint", ckpt, "--vcf", vcf, "--genome", fa, "--window", 40, "--device", "cpu",
            "--cache-dir", tmp_path / "c"]
    rc, out, err = run_cli(args + ["--out", tmp_path / "e.tsv", "--skipped", tmp_path / "s.tsv"], capfd)
    assert rc == 0, err
    assert "scored 7 of 12 alleles (9 VCF records)" in out
    assert ("skipped: 1 other chrom, 1 outside, 1 ref mismatch, 1 symbolic, 0 too long, 1 edge "
            "(chromosomes not in the genome: chrUn)") in out
    assert f"REF mismatch, skipped: line 4: 7:1061 REF {wrong} but the genome has {b(60)} (7:1001-1200:61)" in err
    _, rows = read_tsv(tmp_path / "e.tsv")
    assert [(r[2], r[4]) for r in rows] == [("snv", rows[0][4]), ("multi", "A"), ("multi", "C"), ("multi", "G"),
                                            ("multi", "T"), ("ins", f"{b(80)}TTT"), ("del", b(90))]
    _, sk = read_tsv(tmp_path / "s.tsv")
    assert {r[2]: r[6] for r in sk} == {"mismatch": "ref_mismatch", "unknown": "other_chrom", "sym": "symbolic",
                                        "edge": "edge", "outside": "outside"}
    # the scores are those of the windows of the module docstring: check the insertion and the deletion
    model = load_model(ckpt)
    ins = [seq[60:100], seq[60:81] + "TTT" + seq[81:97]]
    dele = [seq[70:110], seq[70:91] + seq[93:112]]
    p = score_sequences(model, ins + dele, window=40)
    for row, (pr, pa) in ((rows[5], p[0:2]), (rows[6], p[2:4])):
        assert row[5:9] == [f"{pr[0]:.6g}", f"{pa[0]:.6g}", f"{pa[0] - pr[0]:.6g}",
                            f"{log_odds(pa[:1], pr[:1])[0]:.6g}"]
    # a REF allele with the same letter as the genome's base at the allele (A -> same) ref == alt windows: p equal
    # --strict: the mismatch is fatal, nothing written
    rc, out, err = run_cli(args + ["--out", tmp_path / "strict.tsv", "--strict"], capfd)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "line 4: 7:1061 REF" in err and "(--strict)" in err and not (tmp_path / "strict.tsv").exists()


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------------------------


class _Evil:
    """Unpickling runs ``touch MARKER``: the marker's absence proves the checkpoint's code never ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def bad_files(tmp_path, ckpt, data_dir):
    d = tmp_path / "in"
    d.mkdir()
    trunc = d / "truncated.pt"
    trunc.write_bytes(ckpt.read_bytes()[:500])
    evil = d / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"genomics_lm": _Evil(tmp_path / "pwned"), "state_dict": {}}, fh, protocol=2)
    arch = tiny_config()
    mlm = save_model(MaskedLM(arch), make_record(arch, "mlm"), d / "pretrained.pt")
    (d / "empty.fa").write_text("")
    (d / "bad.fa").write_text(">ok\nACGT\n>weird\nACGTNNRYXACGT\n")
    (d / "good.fa").write_text(">ok\nACGTACGTAC\n")
    nohdr = write_vcf(d / "nohdr.vcf", "22\t20000146\trs1\tG\tA\t.\t.\t.\n", header=False)
    mism = write_vcf(d / "mism.vcf", "22\t20000146\trs1\tT\tA\t.\t.\t.\n")  # the genome has G
    unknown = write_vcf(d / "unknown.vcf", "chrZ\t5\t.\tA\tG\t.\t.\t.\n")
    return {"ckpt": ckpt, "trunc": trunc, "evil": evil, "mlm": mlm, "dir": d, "genome": data_dir / HG19,
            "nohdr": nohdr, "mism": mism, "unknown": unknown, "pwned": tmp_path / "pwned"}


@pytest.mark.parametrize("case, pattern", [
    ("missing checkpoint", r"no such checkpoint"),
    ("truncated checkpoint", r"cannot be read as a checkpoint with weights_only=True"),
    ("pickle with code", r"cannot be read as a checkpoint with weights_only=True"),
    ("pretraining export", r"a pretraining checkpoint \(masked LM, no label names\): fine-tune it first"),
    ("empty FASTA", r"empty"),
    ("non-IUPAC character", r"record 'weird': character 'X' at position 9 is not a base"),
    ("VCF without #CHROM", r"line 1: a record before the '#CHROM' header line"),
    ("REF mismatch --strict", r"REF T but the genome has G .*\(--strict\)"),
    ("unknown chromosome", r"none of the VCF file's chromosomes is in the genome: file has chrZ"),
    ("output folder missing", r"output folder .* does not exist"),
    ("output exists", r"output exists \(use --overwrite"),
    ("track without --out-prefix", r"give --out-prefix"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(bad_files, tmp_path, capfd, case, pattern):
    f = bad_files
    out = tmp_path / "out"
    out.mkdir()
    target = out / "scores.tsv"
    fasta = ["--fasta", f["dir"] / "good.fa", "--out", target]
    vcf = ["--genome", f["genome"], "--out", target, "--window", 64, "--device", "cpu"]
    args = {
        "missing checkpoint": ["--checkpoint", tmp_path / "nope.pt", *fasta],
        "truncated checkpoint": ["--checkpoint", f["trunc"], *fasta],
        "pickle with code": ["--checkpoint", f["evil"], *fasta],
        "pretraining export": ["--checkpoint", f["mlm"], *fasta],
        "empty FASTA": ["--checkpoint", f["ckpt"], "--fasta", f["dir"] / "empty.fa", "--out", target],
        "non-IUPAC character": ["--checkpoint", f["ckpt"], "--fasta", f["dir"] / "bad.fa", "--out", target],
        "VCF without #CHROM": ["--checkpoint", f["ckpt"], "--vcf", f["nohdr"], *vcf],
        "REF mismatch --strict": ["--checkpoint", f["ckpt"], "--vcf", f["mism"], "--strict", *vcf],
        "unknown chromosome": ["--checkpoint", f["ckpt"], "--vcf", f["unknown"], *vcf],
        "output folder missing": ["--checkpoint", f["ckpt"], "--fasta", f["dir"] / "good.fa",
                                  "--out", out / "no" / "such" / "s.tsv"],
        "output exists": ["--checkpoint", f["ckpt"], *fasta],
        "track without --out-prefix": ["--checkpoint", f["ckpt"], "--genome", f["genome"]],
    }[case]
    if case == "output exists":
        target.write_text("keep me\n")
    before = sorted(p.name for p in out.rglob("*"))
    rc, stdout, err = run_cli(args, capfd)
    assert rc == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genomics-lm score: error: "), err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in out.rglob("*")) == before
    if case == "output exists":
        assert target.read_text() == "keep me\n"
    assert not bad_files["pwned"].exists()


def test_bench_score_runs_small(capfd, data_dir):
    from genomics_lm.bench.score import Settings, format_table, run

    res = run(Settings(lengths=(200,), configs=("tiny",), n={("tiny", 200): 2}, batch=2, variants=4, track=False))
    table = format_table(res)
    assert "one at a time" in table and "batched (2)" in table and "variants/s" in table
    ratios = [r["ratio"] for r in res["rows"] if r["mode"].startswith("batched")]
    assert len(ratios) == 2 and all(x > 0 for x in ratios)


def test_workflow_score_rules_dry_run(data_dir, tmp_path, ckpt):
    """The score section of the workflow config: one rule per mode, each a single genomics-lm score call with a log."""
    import yaml

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = yaml.safe_load(open(os.path.join(repo, "configs", "demo.yaml")))
    cfg.update(data_dir=str(data_dir), results=str(tmp_path / "results"))
    for section in ("pretrain", "tasks", "finetune", "evaluate", "report", "bench"):  # scoring only
        cfg.pop(section, None)
    cfg["score"] = {"checkpoint": str(ckpt), "fasta": "promoters/ecoli_sigma70/promoters.fa", "genome": HG19,
                    "vcf": "variants/ENCODE_120_gVCF_generated_qualified.vcf.gz", "track": True,
                    "chrom_prefix": "strip", "out_chrom_prefix": "add", "window": 100}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "GENOMICS_LM_DATA"}
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--configfile", str(path)],
                         cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    cmds = [x for x in (res.stdout + res.stderr).splitlines() if "genomics-lm score " in x]
    assert len(cmds) == 3 and all(c.count("genomics-lm ") == 1 and "/logs/score/" in c for c in cmds)
    track = next(c for c in cmds if "--out-prefix" in c)
    assert "--strip-chr-prefix" in track and "--out-add-chr-prefix" in track and "--window 100" in track
    variants = next(c for c in cmds if "--vcf" in c)
    assert "--skipped" in variants and "--strip-chr-prefix" in variants
