"""Tokenize stage: FASTA genome -> k-mer token windows in HDF5 token stores (one per split).

:func:`tokenize_genome` is what the command line (``genomics-lm tokenize``, :mod:`genomics_lm.cli.tokenize`),
the workflow and tests call. It prints nothing but its progress bar.

Each interval of a split is read in pieces of about 4 Mbp (:func:`genomics_lm.genome.iter_window_batches`,
which also applies the N filter to all windows of a piece at once). A piece is encoded once, and its
windows are cut from the token array as views: window ``i`` of a piece starts ``offset_i / stride`` tokens
in (window starts lie on multiples of the step, ``step_tokens * stride`` bases). The tokens are exactly
those of encoding each window's bases on its own, because a k-mer's id depends only on its k bases.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.files import check_output_path
from genomics_lm.genome import SPLITS, Genome, SplitPlan, iter_window_batches, n_windows, plan_splits
from genomics_lm.store import TokenStoreWriter
from genomics_lm.tokenizer import UNK_ID, KmerTokenizer, softmask_flags


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
        compression, softmask, overwrite: see :class:`genomics_lm.store.TokenStoreWriter`.
        cache_dir: see :class:`genomics_lm.genome.Genome`. progress: show a progress bar (stderr).
    Returns:
        per split: path, rows, skipped windows, tokens, UNK fraction, seconds, bp in the split.
    Raises:
        UserError: bad settings or input, an existing output (without ``overwrite``), and a requested split
            that would get no window (a genome too small for the splits, or all windows over ``max_n_frac``).
            Every check on settings, outputs and the split plan runs before any sequence is read; all
            stores are written under temporary names and renamed together at the end, so a failure leaves
            no output behind.
    """
    tokenizer = KmerTokenizer(k, stride)  # a TokenizerError (one-line UserError) for a bad k or stride
    k, stride = tokenizer.k, tokenizer.stride
    if window_tokens < 1:
        raise UserError(f"window_tokens must be at least 1, got {window_tokens}")
    if not 0 <= max_n_frac <= 1:
        raise UserError(f"max_n_frac must be in [0, 1], got {max_n_frac}")
    for split in outputs:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} (choose {', '.join(SPLITS)})")
    outputs = {split: Path(path) for split, path in outputs.items()}
    for path in outputs.values():  # refuse unusable outputs before any work
        check_output_path(path, overwrite)
        _check_parents(path)
    step_tokens = window_tokens if step_tokens is None else step_tokens
    if step_tokens <= 0:
        raise UserError(f"step_tokens must be positive, got {step_tokens}")
    wbp = tokenizer.window_bp(window_tokens)
    step_bp = step_tokens * stride
    genome = Genome(fasta, cache_dir=cache_dir)
    longest = max(genome.lengths.values())
    if longest < wbp:
        raise UserError(f"{genome.path}: the longest record ({longest:,} bp) is shorter than one window "
                        f"({window_tokens} tokens of k={k}, stride={stride} = {wbp:,} bp); use a smaller --window-tokens")
    block_bp = block_bp if block_bp is not None else max(100_000, 8 * wbp)
    gap_bp = gap_bp if gap_bp is not None else wbp
    split_args = dict(mode=split_mode, val_frac=val_frac, test_frac=test_frac, val_chroms=val_chroms,
                      test_chroms=test_chroms, seed=seed)
    plan = plan_splits(genome.lengths, block_bp=block_bp, gap_bp=gap_bp, **split_args)
    _check_splits_get_windows(genome, plan, list(outputs), wbp, step_bp, block_bp, gap_bp, split_args)
    config = {
        "fasta": str(fasta), "k": k, "stride": stride, "window_tokens": window_tokens, "window_bp": wbp,
        "step_bp": step_bp, "max_n_frac": max_n_frac, "split_plan": plan.to_dict(), "compression": compression,
        "softmask": softmask,
    }
    summary: dict[str, dict] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(plan.bp(s) for s in outputs), unit="bp", unit_scale=True, desc="tokenize",
                   file=sys.stderr, dynamic_ncols=True)
    try:
        with contextlib.ExitStack() as stack:  # every store is renamed into place only once all are complete
            for split, path in outputs.items():
                t0 = time.perf_counter()
                writer = stack.enter_context(TokenStoreWriter(
                    path, tokenizer=tokenizer, window_tokens=window_tokens, window_bp=wbp, source=genome.source(),
                    split=split, config=config, compression=compression, softmask=softmask, overwrite=overwrite))
                stats: dict = {}
                n_unk = n_tok = 0
                for seqid, start, end in plan.intervals[split]:
                    done = start
                    for batch in iter_window_batches(genome, [(seqid, start, end)], wbp, step_bp, max_n_frac, stats):
                        rows, flags = _window_tokens(batch, tokenizer, window_tokens, step_tokens, softmask)
                        n_unk += int(np.count_nonzero(rows == UNK_ID))
                        n_tok += rows.size
                        starts = batch.starts
                        writer.append(rows, seqid=[seqid] * len(starts), start=starts, end=starts + wbp,
                                      softmask=flags)
                        if bar is not None:
                            bar.update(min(batch.end, end) - done)
                            done = min(batch.end, end)
                    if bar is not None:
                        bar.update(end - done)
                summary[split] = {
                    "path": str(path), "rows": stats.get("kept", 0), "skipped_n": stats.get("skipped_n", 0),
                    "tokens": n_tok, "unk_frac": n_unk / n_tok if n_tok else 0.0,
                    "seconds": time.perf_counter() - t0, "bp": plan.bp(split),
                }
            for split, s in summary.items():  # all windows of a split over max_n_frac: refuse, write nothing
                if s["rows"] == 0:
                    raise UserError(
                        f"{genome.path}: split {split!r} gets no window: all {s['skipped_n']:,} of its {wbp:,} bp "
                        f"windows have more than {max_n_frac:g} non-ACGT bases (--max-n-frac); raise --max-n-frac "
                        "or use a smaller --window-tokens")
    finally:
        if bar is not None:
            bar.close()
    return summary


def _window_tokens(batch, tokenizer: KmerTokenizer, window_tokens: int, step_tokens: int, softmask: bool):
    """Token rows ``(n, window_tokens)`` of a batch's kept windows, and their soft-mask flags (or None).

    The piece is encoded once; window ``i`` is the token run from ``offsets[i] / stride``: a reshape (no copy)
    when windows tile the piece end to end and none was skipped, else a gather from a sliding-window view.
    """
    ids = tokenizer.encode(batch.seq)
    flags = softmask_flags(batch.seq, tokenizer.k, tokenizer.stride) if softmask else None
    n = len(batch.offsets)
    if batch.n_skipped == 0 and step_tokens == window_tokens:
        cut = lambda a: a[: n * window_tokens].reshape(n, window_tokens)  # noqa: E731
    else:
        first = batch.offsets // tokenizer.stride
        cut = lambda a: np.lib.stride_tricks.sliding_window_view(a, window_tokens)[first]  # noqa: E731
    return cut(ids), (cut(flags) if flags is not None else None)


def _check_parents(path: Path) -> None:
    """One-line error when a parent of an output path exists as a file (e.g. ``--out-dir`` names a file)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{path}: cannot write it, {parent} is a file, not a folder")
            return


def _check_splits_get_windows(genome: Genome, plan: SplitPlan, wanted: list[str], wbp: int, step_bp: int,
                              block_bp: int, gap_bp: int, split_args: dict) -> None:
    """Refuse, before any work, a split that is requested but would get no window, with the numbers and a fix."""

    def windows(p: SplitPlan, split: str) -> int:
        return sum(n_windows(e - s, wbp, step_bp) for _, s, e in p.intervals[split])

    empty = [s for s in wanted if windows(plan, s) == 0]
    if not empty:
        return
    split = empty[0]
    fracs = {"val": split_args["val_frac"], "test": split_args["test_frac"]}
    named = split_args.get(f"{split}_chroms")
    if split in fracs and fracs[split] == 0 and not named:
        raise UserError(f"{genome.path}: split {split!r} is empty because --{split}-frac is 0; write only the splits "
                        f"you need (--out FILE --split train) or set --{split}-frac above 0")
    sizes = ", ".join(f"{s} {plan.bp(s):,}" for s in SPLITS)
    if plan.mode == "regions":
        layout = f"regions: {block_bp:,} bp blocks, {gap_bp:,} bp gaps between splits"
        fix = "use a smaller --window-tokens or --block-bp"
        for smaller in (block_bp // 2**i for i in range(1, 12)):  # the largest block size that works, if any
            if smaller <= gap_bp:
                break
            trial = plan_splits(genome.lengths, block_bp=smaller, gap_bp=gap_bp, **split_args)
            if all(windows(trial, s) for s in wanted):
                fix += f" (e.g. --block-bp {smaller})"
                break
    else:
        layout = "chromosomes: whole records held out"
        fix = "use a smaller --window-tokens, other --val-chroms/--test-chroms, or --split-mode regions"
    raise UserError(
        f"{genome.path}: genome too small for the splits: {split!r} gets no window of {wbp:,} bp "
        f"(bp per split: {sizes}; {layout}); {fix}, or write train only (--val-frac 0 --test-frac 0 "
        "--out FILE --split train)")
