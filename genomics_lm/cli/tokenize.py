"""``genomics-lm tokenize``: parse, run :func:`genomics_lm.tokenize.tokenize_genome`, print a table per split."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genomics_lm.cli import HelpFormatter
from genomics_lm.errors import UserError
from genomics_lm.genome import SPLITS
from genomics_lm.store import COMPRESSIONS
from genomics_lm.tokenize import tokenize_genome


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genomics-lm tokenize",
        description="Cut a FASTA genome into fixed windows, drop windows with too many N's, split them into "
        "train/val/test without leakage, and store the k-mer token ids of each split in an HDF5 token store "
        "(schema: DESIGN.md). Coordinates are 0-based, half-open.",
        formatter_class=HelpFormatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--fasta", required=True, help="genome FASTA: plain, gzip or bgzip (.fa/.fna/.fasta[.gz])")
    out = io.add_mutually_exclusive_group(required=True)
    out.add_argument("--out-dir", type=Path, help="write DIR/train.h5, DIR/val.h5 and DIR/test.h5")
    out.add_argument("--out", type=Path, help="write one split to this file (needs --split)")
    io.add_argument("--split", choices=SPLITS, help="with --out: which split to write")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files")
    io.add_argument("--compression", choices=COMPRESSIONS, default="none",
                    help="HDF5 codec for /tokens (k-mer ids barely compress and gzip writes slower; "
                    "see 'genomics-lm bench tokenizer')")
    io.add_argument("--softmask", action="store_true",
                    help="also store a per-token flag track /softmask: 1 where the k-mer holds a lower-case "
                    "(soft-masked repeat) base; token ids are case-insensitive either way")
    io.add_argument("--cache-dir", type=Path, default=None,
                    help="where to put decompressed plain-gzip FASTA and .fai indexes of read-only folders "
                    "(default: $GENOMICS_LM_CACHE or ~/.cache/genomics_lm)")
    tok = p.add_argument_group("tokens")
    tok.add_argument("--k", type=int, default=6, help="k-mer length, 1..8")
    tok.add_argument("--stride", type=int, default=None,
                     help="step between k-mers: k = non-overlapping, 1 = overlapping (default: k)")
    tok.add_argument("--window-tokens", type=int, default=4096, help="tokens per window (row)")
    tok.add_argument("--step-tokens", type=int, default=None,
                     help="tokens between window starts (default: window-tokens, no overlap)")
    tok.add_argument("--max-n-frac", type=float, default=0.1, help="skip windows with a larger fraction of non-ACGT bases")
    sp = p.add_argument_group("splits (no window straddles two splits)")
    sp.add_argument("--split-mode", choices=("auto", "chromosomes", "regions"), default="auto",
                    help="chromosomes: hold out whole sequences; regions: contiguous blocks of each sequence; "
                    "auto: chromosomes if named or >= 10 sequences, else regions")
    sp.add_argument("--val-frac", type=float, default=0.1, help="fraction of the genome for validation")
    sp.add_argument("--test-frac", type=float, default=0.1, help="fraction of the genome for test")
    sp.add_argument("--val-chroms", default=None, help="comma-separated record names held out for validation")
    sp.add_argument("--test-chroms", default=None, help="comma-separated record names held out for test")
    sp.add_argument("--block-bp", type=int, default=None, help="region block size (default: max(100 kb, 8 windows))")
    sp.add_argument("--gap-bp", type=int, default=None,
                    help="bases dropped at each boundary between splits (default: one window)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _names(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None:
        if args.split is None:
            raise UserError("--out needs --split train|val|test (or use --out-dir for all three)")
        outputs = {args.split: args.out}
    else:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise UserError(f"--out-dir {args.out_dir}: is a file, not a folder")
        splits = [args.split] if args.split is not None else list(SPLITS)
        outputs = {s: args.out_dir / f"{s}.h5" for s in splits}

    t0 = time.perf_counter()
    summary = tokenize_genome(
        args.fasta, outputs, k=args.k, stride=args.stride, window_tokens=args.window_tokens,
        step_tokens=args.step_tokens, max_n_frac=args.max_n_frac, split_mode=args.split_mode,
        val_frac=args.val_frac, test_frac=args.test_frac, block_bp=args.block_bp, gap_bp=args.gap_bp,
        val_chroms=_names(args.val_chroms), test_chroms=_names(args.test_chroms), seed=args.seed,
        compression=args.compression, softmask=args.softmask, cache_dir=args.cache_dir, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"{'split':<6} {'windows':>8} {'skipped(N)':>10} {'tokens':>12} {'UNK':>7} {'bp in split':>12} {'seconds':>8}  file")
    for split, s in summary.items():
        print(f"{split:<6} {s['rows']:>8,} {s['skipped_n']:>10,} {s['tokens']:>12,} {s['unk_frac']:>7.2%} "
              f"{s['bp']:>12,} {s['seconds']:>8.2f}  {s['path']}")
    print(f"total {sum(s['rows'] for s in summary.values()):,} windows in {time.perf_counter() - t0:.2f} s")
    return 0
