"""``genomics-lm make-task``: parse, run :func:`genomics_lm.tasks.make_task`, print a summary line per split."""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter, add_chr_prefix_options
from genomics_lm.errors import UserError

DESCRIPTION = """\
Build a fine-tuning task: labelled sequences, or a genome with peak or TSS files -> DIR/train.h5, DIR/val.h5,
DIR/test.h5 (token stores with /labels (N, C) float32, NaN = not observed, /sequence, the tokenizer record and
the inputs' sha256).

inputs (one kind):
  --pos POS.fa --neg NEG.fa [--test-pos F --test-neg F]
        binary (1 = POS); split 80/10/10 train/val/test, or with test files given the rest 8:1 train:val
  --table TRAIN.csv [--dev DEV.csv] [--test TEST.csv]
        CSV/TSV with a header: 'sequence' and one label column (binary) or several (multi-label); labels 0, 1
        or empty (= not observed); val/test not given are drawn as 10% of TRAIN each
  --tables NAME=FOLDER [NAME=FOLDER ...]
        per-feature GUE-style folders (train/dev/test .csv/.tsv[.gz], any subset) merged by sequence into one
        masked multi-label set (label NAME, NaN where a sequence is absent from NAME's files), split
        80/10/10 by sequence; the files' own split names are ignored (they overlap across features)
  --genome G.fa --peaks NAME=FILE [NAME=FILE ...] [--bin-bp 200] [--context-bp 1000] [--neg-per-pos R]
        DeepSEA-style chromatin task (one label per NAME): the genome cut into bins; a bin is positive for NAME
        when NAME's peaks (union) cover at least half of it; the input is --context-bp of sequence centred on
        the bin. Peak files: BED3+, narrowPeak, broadPeak or a UCSC table dump with a leading 'bin' column
  --genome G.fa --tss FILE [--tss-format bed|regulondb] [--context-bp 1000] [--min-distance 1000]
        promoter task: a window around each TSS read on its strand (reverse complement on '-', the TSS at
        offset context-bp/2 in every row), label 1; negatives (label 0, --neg-per-pos per TSS window, default
        1) centred at least --min-distance bp from any TSS on either strand. BED6 (TSS = start on '+',
        end-1 on '-') or RegulonDB PromoterSet.txt (+1 position 1-based -> 0-based)

FASTA pairs and tables: binary tasks are split stratified by label. Sequences are case-insensitive; IUPAC codes
(RYKMSWBDHVN) become [UNK] k-mers, other characters are an error. Duplicates within a split collapse to one row
(conflicting labels become NaN); a sequence in a given test (val) file is removed from train and val (train).
Rows are right-padded with [PAD]=0 to the longest sequence's token count. Inputs may be gzip; CRLF line ends
are fine.

Genome tasks: bins/windows running off a record, crossing a split boundary or with more than --max-n-frac
non-ACGT bases are dropped (counted). Splits: held-out chromosomes for genomes of 10+ records, else region
blocks (--block-bp) with --gap-bp dropped between splits; a row goes to the split holding its whole window.
Rows are chosen on a window of --select-bp (default --context-bp): give the largest context to get the same
rows, labels and splits for several context lengths.
Records named in samtools region syntax ('22:20000001-21000000', 1-based inclusive) are that region of
chromosome '22'; peak/TSS coordinates are chromosome coordinates, and the stores' /seqid, /start, /end are
too (the context window, 0-based half-open). Chromosome names must match the genome's, through --chrom-map
FILE (two columns: name in the file, name in the genome) or --add-chr-prefix/--strip-chr-prefix; a file none
of whose chromosomes is in the genome is an error listing both sets of names."""


def _name_folder(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {text!r}")
    return name, Path(folder)


def _name_file(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genomics-lm make-task", description=DESCRIPTION,
                                formatter_class=RawHelpFormatter)
    out = p.add_argument_group("output")
    out.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                     help="write DIR/train.h5, DIR/val.h5 and DIR/test.h5")
    out.add_argument("--overwrite", action="store_true", help="replace existing DIR/*.h5")
    fa = p.add_argument_group("FASTA pair (binary)")
    fa.add_argument("--pos", type=Path, metavar="POS.fa", help="positive sequences (label 1), FASTA[.gz]")
    fa.add_argument("--neg", type=Path, metavar="NEG.fa", help="negative sequences (label 0), FASTA[.gz]")
    fa.add_argument("--test-pos", type=Path, metavar="F", help="given test positives (with --test-neg)")
    fa.add_argument("--test-neg", type=Path, metavar="F", help="given test negatives (with --test-pos)")
    tb = p.add_argument_group("table (binary or multi-label)")
    tb.add_argument("--table", type=Path, metavar="TRAIN.csv", help="training table, CSV or TSV[.gz]")
    tb.add_argument("--dev", type=Path, metavar="DEV.csv", help="given validation table (same columns)")
    tb.add_argument("--test", type=Path, metavar="TEST.csv", help="given test table (same columns)")
    ts = p.add_argument_group("per-feature folders (masked multi-label)")
    ts.add_argument("--tables", type=_name_folder, nargs="+", metavar="NAME=FOLDER",
                    help="one folder of train/dev/test tables per feature")
    gn = p.add_argument_group("genome + peak files or TSS positions")
    gn.add_argument("--genome", type=Path, metavar="G.fa", help="genome FASTA (plain, gzip or bgzip)")
    gn.add_argument("--peaks", type=_name_file, nargs="+", metavar="NAME=FILE",
                    help="one peak file per feature (BED3+/narrowPeak/broadPeak/UCSC dump, plain or gzip)")
    gn.add_argument("--tss", type=Path, metavar="FILE", help="TSS positions (see --tss-format)")
    gn.add_argument("--tss-format", choices=("bed", "regulondb"), default=None,
                    help="BED6 with strand (default) or RegulonDB PromoterSet.txt")
    gn.add_argument("--bin-bp", type=int, default=None, metavar="BP", help="bin size of --peaks (default: 200)")
    gn.add_argument("--context-bp", type=int, default=None, metavar="BP",
                    help="bases of sequence per row, centred on the bin / TSS (default: 1000)")
    gn.add_argument("--select-bp", type=int, default=None, metavar="BP",
                    help="choose rows (record ends, split boundaries, N filter, negatives) on a window of BP centred "
                    "like the context (default: --context-bp); the same BP for 1 kb, 4 kb, 16 kb builds gives "
                    "the same rows and splits")
    gn.add_argument("--neg-per-pos", type=float, default=None, metavar="R",
                    help="negatives kept per positive row in each split, seeded (default: all bins for --peaks, "
                    "1 for --tss)")
    gn.add_argument("--min-distance", type=int, default=None, metavar="BP",
                    help="--tss negatives: centre at least BP from any TSS (default: 1000)")
    gn.add_argument("--max-n-frac", type=float, default=None, metavar="F",
                    help="drop rows with a larger fraction of non-ACGT bases (default: 0.1)")
    gn.add_argument("--chrom-map", type=Path, metavar="FILE",
                    help="two columns: chromosome name in the peak/TSS file, name in the genome")
    add_chr_prefix_options(gn, "peak/TSS file")
    gn.add_argument("--regulondb-mismatch", choices=("keep", "shift", "drop"), default=None,
                    help="RegulonDB rows whose 81-nt sequence does not match the genome at the position: keep the "
                    "position (default; counted), shift it where the sequence matches one base off, or drop the row")
    gn.add_argument("--block-bp", type=int, default=None, metavar="BP",
                    help="split region blocks (default: max(8 x --select-bp, min(100000, genome bp / 50)))")
    gn.add_argument("--gap-bp", type=int, default=None, metavar="BP",
                    help="bases dropped between blocks of different splits (default: --select-bp)")
    gn.add_argument("--val-frac", type=float, default=None, metavar="F",
                    help="fraction of the bases held out for validation (default: 0.1)")
    gn.add_argument("--test-frac", type=float, default=None, metavar="F",
                    help="fraction of the bases held out for testing (default: 0.1)")
    gn.add_argument("--mask-outside-bp", type=int, default=None, metavar="BP",
                    help="control: replace every base outside the central BP of each row by N ([UNK] tokens), "
                    "so the input keeps its length but carries only the central BP (the long-context experiment's "
                    "control; rows, labels and splits unchanged)")
    gn.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                    help="for a plain copy of a gzip genome and indexes of read-only folders "
                    "(default: $GENOMICS_LM_CACHE or ~/.cache/genomics_lm)")
    tok = p.add_argument_group("tokens and splits")
    tok.add_argument("--k", type=int, default=None, help="k-mer length, 1..8 (default: 6)")
    tok.add_argument("--stride", type=int, default=None, help="step between k-mers (default: k)")
    tok.add_argument("--like", type=Path, metavar="PRETRAINED.pt",
                     help="take k and stride from a pretrained checkpoint (not with --k/--stride)")
    tok.add_argument("--seed", type=int, default=0, help="seed of the drawn splits")
    tok.add_argument("--label-name", default=None, metavar="NAME",
                     help="name of the label of a single-label task (default: 'label' for --pos/--neg, the "
                     "column's name for --table)")
    return p


def main(argv: list[str]) -> int:
    from genomics_lm.tasks import SPLITS, format_summary, make_task

    args = build_parser().parse_args(argv)
    if args.like is not None and (args.k is not None or args.stride is not None):
        raise UserError("--like takes k and stride from the checkpoint: give either --like or --k/--stride")
    res = make_task(
        args.out_dir, pos=args.pos, neg=args.neg, test_pos=args.test_pos, test_neg=args.test_neg,
        table=args.table, dev=args.dev, test=args.test, tables=args.tables, k=args.k, stride=args.stride,
        like=args.like, seed=args.seed, label_name=args.label_name, overwrite=args.overwrite,
        genome=args.genome, peaks=args.peaks, tss=args.tss, tss_format=args.tss_format, bin_bp=args.bin_bp,
        context_bp=args.context_bp, select_bp=args.select_bp, neg_per_pos=args.neg_per_pos,
        max_n_frac=args.max_n_frac,
        min_distance=args.min_distance, chrom_map=args.chrom_map, chr_prefix=args.chr_prefix,
        regulondb_mismatch=args.regulondb_mismatch, block_bp=args.block_bp, gap_bp=args.gap_bp,
        val_frac=args.val_frac, test_frac=args.test_frac, mask_outside_bp=args.mask_outside_bp, cache_dir=args.cache_dir,
    )
    tok = res["tokenizer"]
    print(f"{res['task_kind']} task, labels: {', '.join(res['label_names'])}; k={tok['k']} stride={tok['stride']}, "
          f"{res['window_tokens']} tokens per row")
    if res.get("input") in ("peaks", "tss"):
        from genomics_lm.genome_tasks import format_genome_counts, format_genome_summary

        for line in format_genome_counts(res):
            print(line)
        for s in SPLITS:
            print(f"{s:<5}  {format_genome_summary(res['label_names'], res['summary'][s])}")
    else:
        for s in SPLITS:
            print(f"{s:<5}  {format_summary(res['label_names'], res['summary'][s], s)}")
    for s in SPLITS:
        print(f"wrote {res['paths'][s]}")
    return 0
