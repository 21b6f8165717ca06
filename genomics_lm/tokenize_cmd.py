"""``genomics-lm tokenize``: FASTA genome -> k-mer token windows in HDF5 token stores (one per split).

The function :func:`tokenize_genome` does the work; :func:`main` is the command line around it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.genome import SPLITS, Genome, iter_windows, plan_splits
from genomics_lm.store import COMPRESSIONS, TokenStoreWriter, check_output_path
from genomics_lm.tokenizer import UNK_ID, check_k, encode, softmask_flags, window_bp as span_bp


def tokenize_genome(
    fasta: str | Path,
    outputs: dict[str, Path],
    *,
    k: int = 6,
    stride: int | None = None,
    window_tokens: int = 4096,
    step_tokens: int | None = None,
    max_n_frac: float = 0.1,
    split_mode: str = "auto",
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    block_bp: int | None = None,
    gap_bp: int | None = None,
    val_chroms: list[str] | None = None,
    test_chroms: list[str] | None = None,
    seed: int = 0,
    compression: str = "none",
    softmask: bool = False,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    batch_rows: int = 256,
    progress: bool = True,
) -> dict[str, dict]:
    """Tokenize ``fasta`` into one token store per requested split.

    Args:
        outputs: split name ("train"/"val"/"test") -> output ``.h5`` path; only these splits are written.
        k, stride: tokenizer (stride defaults to k). window_tokens: tokens per row.
        step_tokens: tokens between window starts (default window_tokens: windows do not overlap).
        max_n_frac: skip windows with a larger fraction of non-ACGT bases.
        split_mode, val_frac, test_frac, block_bp, gap_bp, val_chroms, test_chroms, seed: see
            :func:`genomics_lm.genome.plan_splits` (block_bp defaults to max(100 kb, 8 windows),
            gap_bp to one window).
    Returns:
        per split: rows, skipped windows, tokens, UNK fraction, seconds, path.
    """
    try:
        k = check_k(k)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    stride = k if stride is None else stride
    if not 1 <= stride <= k:
        raise UserError(f"stride must be from 1 to k={k}, got {stride}")
    if window_tokens < 1:
        raise UserError(f"window_tokens must be at least 1, got {window_tokens}")
    if not 0 <= max_n_frac <= 1:
        raise UserError(f"max_n_frac must be in [0, 1], got {max_n_frac}")
    for split in outputs:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} (choose {', '.join(SPLITS)})")
    for path in outputs.values():  # refuse existing outputs before any work
        check_output_path(path, overwrite)
    wbp = span_bp(window_tokens, k, stride)
    step_bp = (step_tokens if step_tokens is not None else window_tokens) * stride
    if step_bp <= 0:
        raise UserError(f"step_tokens must be positive, got {step_tokens}")
    genome = Genome(fasta, cache_dir=cache_dir)
    longest = max(genome.lengths.values())
    if longest < wbp:
        raise UserError(f"{genome.path}: the longest record ({longest:,} bp) is shorter than one window "
                        f"({window_tokens} tokens of k={k}, stride={stride} = {wbp:,} bp); use a smaller --window-tokens")
    block_bp = block_bp if block_bp is not None else max(100_000, 8 * wbp)
    gap_bp = gap_bp if gap_bp is not None else wbp
    plan = plan_splits(genome.lengths, mode=split_mode, val_frac=val_frac, test_frac=test_frac, block_bp=block_bp,
                       gap_bp=gap_bp, val_chroms=val_chroms, test_chroms=test_chroms, seed=seed)
    config = {
        "fasta": str(fasta), "k": k, "stride": stride, "window_tokens": window_tokens, "window_bp": wbp,
        "step_bp": step_bp, "max_n_frac": max_n_frac, "split_plan": plan.to_dict(), "compression": compression,
        "softmask": softmask,
    }
    summary: dict[str, dict] = {}
    total_bp = sum(plan.bp(s) for s in outputs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_bp, unit="bp", unit_scale=True, desc="tokenize", file=sys.stderr, dynamic_ncols=True)
    try:
        for split, path in outputs.items():
            t0 = time.perf_counter()
            stats: dict = {}
            n_unk = n_tok = 0
            buf, meta, soft = [], [], []

            def flush(writer):
                nonlocal buf, meta, soft
                if buf:
                    writer.append(np.stack(buf), seqid=[m[0] for m in meta], start=[m[1] for m in meta],
                                  end=[m[2] for m in meta], softmask=np.stack(soft) if softmask else None)
                    buf, meta, soft = [], [], []

            with TokenStoreWriter(path, k=k, stride=stride, window_tokens=window_tokens, window_bp=wbp,
                                  source=genome.source(), split=split, config=config, compression=compression,
                                  softmask=softmask, overwrite=overwrite) as writer:
                last_end = None
                for win in iter_windows(genome, plan.intervals[split], wbp, step_bp, max_n_frac, stats):
                    ids = encode(win.seq, k, stride)
                    n_unk += int(np.count_nonzero(ids == UNK_ID))
                    n_tok += ids.size
                    buf.append(ids)
                    if softmask:
                        soft.append(softmask_flags(win.seq, k, stride))
                    meta.append((win.seqid, win.start, win.end))
                    if len(buf) >= batch_rows:
                        flush(writer)
                    if bar is not None:
                        bar.update(step_bp if last_end is not None and last_end == win.start + wbp - step_bp else wbp)
                        last_end = win.end
                flush(writer)
            summary[split] = {
                "path": str(path), "rows": stats["kept"], "skipped_n": stats["skipped_n"], "tokens": n_tok,
                "unk_frac": n_unk / n_tok if n_tok else 0.0, "seconds": time.perf_counter() - t0, "bp": plan.bp(split),
            }
    finally:
        if bar is not None:
            bar.close()
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genomics-lm tokenize",
        description="Cut a FASTA genome into fixed windows, drop windows with too many N's, split them into "
        "train/val/test without leakage, and store the k-mer token ids of each split in an HDF5 token store "
        "(schema: DESIGN.md). Coordinates are 0-based, half-open.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--fasta", required=True, help="genome FASTA: plain, gzip or bgzip (.fa/.fna/.fasta[.gz])")
    out = io.add_mutually_exclusive_group(required=True)
    out.add_argument("--out-dir", type=Path, help="write DIR/train.h5, DIR/val.h5 and DIR/test.h5")
    out.add_argument("--out", type=Path, help="write one split to this file (needs --split)")
    io.add_argument("--split", choices=SPLITS, help="with --out: which split to write")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files")
    io.add_argument("--compression", choices=COMPRESSIONS, default="none",
                    help="HDF5 codec for /tokens (6-mer ids compress only 1.1-1.3x; see 'genomics-lm bench tokenizer')")
    io.add_argument("--softmask", action="store_true",
                    help="also store a per-token flag track /softmask: 1 where the k-mer holds a lower-case "
                    "(soft-masked repeat) base; token ids are case-insensitive either way")
    io.add_argument("--cache-dir", type=Path, default=None,
                    help="where to put decompressed plain-gzip FASTA and .fai indexes of read-only folders "
                    "(default $GENOMICS_LM_CACHE or ~/.cache/genomics_lm)")
    tok = p.add_argument_group("tokens")
    tok.add_argument("--k", type=int, default=6, help="k-mer length, 1..8")
    tok.add_argument("--stride", type=int, default=None, help="step between k-mers: k = non-overlapping, 1 = overlapping (default: k)")
    tok.add_argument("--window-tokens", type=int, default=4096, help="tokens per window (row)")
    tok.add_argument("--step-tokens", type=int, default=None, help="tokens between window starts (default: window-tokens, no overlap)")
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
    sp.add_argument("--gap-bp", type=int, default=None, help="bases dropped at each boundary between splits (default: one window)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None:
        if args.split is None:
            raise UserError("--out needs --split train|val|test (or use --out-dir for all three)")
        outputs = {args.split: args.out}
    else:
        if args.split is not None:
            outputs = {args.split: args.out_dir / f"{args.split}.h5"}
        else:
            outputs = {s: args.out_dir / f"{s}.h5" for s in SPLITS}
    split_list = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    t0 = time.perf_counter()
    summary = tokenize_genome(
        args.fasta, outputs, k=args.k, stride=args.stride, window_tokens=args.window_tokens,
        step_tokens=args.step_tokens, max_n_frac=args.max_n_frac, split_mode=args.split_mode,
        val_frac=args.val_frac, test_frac=args.test_frac, block_bp=args.block_bp, gap_bp=args.gap_bp,
        val_chroms=split_list(args.val_chroms), test_chroms=split_list(args.test_chroms), seed=args.seed,
        compression=args.compression, softmask=args.softmask, cache_dir=args.cache_dir, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"{'split':<6} {'windows':>8} {'skipped(N)':>10} {'tokens':>12} {'UNK':>7} {'bp in split':>12} {'seconds':>8}  file")
    for split, s in summary.items():
        print(f"{split:<6} {s['rows']:>8,} {s['skipped_n']:>10,} {s['tokens']:>12,} {s['unk_frac']:>7.2%} "
              f"{s['bp']:>12,} {s['seconds']:>8.2f}  {s['path']}")
        if s["rows"] == 0:
            print(f"warning: split {split!r} has no windows (the genome is too small for this split at this window size)",
                  file=sys.stderr)
    print(f"total {sum(s['rows'] for s in summary.values()):,} windows in {time.perf_counter() - t0:.2f} s")
    return 0
