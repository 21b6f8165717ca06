"""``genomics-lm make-task``: parse, run :func:`genomics_lm.tasks.make_task`, print a summary line per split."""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter
from genomics_lm.errors import UserError

DESCRIPTION = """\
Build a fine-tuning task: labelled sequences -> DIR/train.h5, DIR/val.h5, DIR/test.h5 (token stores with
/labels (N, C) float32, NaN = not observed, /sequence, the tokenizer record and the inputs' sha256).

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

Binary tasks are split stratified by label. Sequences are case-insensitive; IUPAC codes (RYKMSWBDHVN) become
[UNK] k-mers, other characters are an error. Duplicates within a split collapse to one row (conflicting labels
become NaN); a sequence in a given test (val) file is removed from train and val (train). Rows are right-padded
with [PAD]=0 to the longest sequence's token count. Inputs may be gzip; CRLF line ends are fine."""


def _name_folder(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {text!r}")
    return name, Path(folder)


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
    )
    tok = res["tokenizer"]
    print(f"{res['task_kind']} task, labels: {', '.join(res['label_names'])}; k={tok['k']} stride={tok['stride']}, "
          f"{res['window_tokens']} tokens per row")
    for s in SPLITS:
        print(f"{s:<5}  {format_summary(res['label_names'], res['summary'][s], s)}")
    for s in SPLITS:
        print(f"wrote {res['paths'][s]}")
    return 0
