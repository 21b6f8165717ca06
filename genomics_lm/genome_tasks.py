"""Task stores from a genome: DeepSEA-style chromatin bins from peak files, promoter windows from TSS files.

:func:`make_peak_task` and :func:`make_tss_task` are called by :func:`genomics_lm.tasks.make_task` (which
checks the outputs and resolves the tokenizer first); they print nothing and write the same task-store format
as the other inputs (``/tokens``, ``/labels`` (N, C) float32, ``/sequence``, ``/seqid``, ``/start``, ``/end``,
``/strand``, the tokenizer record, the inputs' sha256 and a per-split summary in ``config``). File readers
and chromosome-name mapping live in :mod:`genomics_lm.peaks`.

Coordinates are 0-based, half-open. Inside this module positions are **record coordinates** (base ``i`` of a
FASTA record). The stores hold **chromosome coordinates**: ``/seqid`` is the chromosome and ``/start``,
``/end`` the window on it, i.e. for a record named in samtools region syntax (``22:20000001-21000000``)
``seqid = "22"`` and ``start = 20,000,000 + record start``; for any other record ``seqid`` is the record name
and the coordinates are the record's. ``/start``, ``/end`` are the whole model input (the context window), not
the bin; ``/strand`` is the strand the row's sequence is read on.

Peaks (``--peaks NAME=FILE ...``, multi-label, one column per NAME):

* Each record is cut into ``bin_bp`` bins from its first base (record coordinates; a last partial bin is not
  used). A bin is positive for a feature when the union of that feature's peaks covers at least half of it
  (``2 * covered >= bin_bp``), else negative; every label is observed (no NaN).
* The model input of a bin is the ``context_bp`` window centred on it: ``start = bin_start - (context_bp -
  bin_bp) // 2`` (an odd difference puts the extra base on the right).
* Dropped, in this order, each counted: ``edge`` (the context runs off the record), ``gap`` (the context is not
  inside one interval of a split: it crosses a split boundary or lies in the gap between splits), ``n`` (more
  than ``max_n_frac`` of the context is not A/C/G/T).
* ``neg_per_pos``: per split, all-negative bins are subsampled (seeded, without replacement) to
  ``floor(R * positives + 0.5)`` where positives = bins positive for any feature; all are kept when there are
  fewer. The ratio and the counts before and after are in the summary.

TSSs (``--tss FILE``, binary, label 1 = a window around a TSS):

* The window of a TSS at record position ``p`` is ``context_bp`` long with the TSS at offset ``u = context_bp //
  2`` of the sequence *as read on the TSS's strand*: ``[p - u, p - u + context_bp)`` on ``+``;
  ``[p + u + 1 - context_bp, p + u + 1)`` on ``-``, whose reverse complement is stored, so every row has its
  TSS at the same offset ``u`` and reads 5' -> 3' in the direction of transcription.
* Duplicates (same record, position and strand) collapse into one row. Then dropped, counted: ``outside``
  (on a region record's chromosome but outside the region), ``edge``, ``gap``, ``n`` as for peaks.
* Negatives: windows of the same genome and split, centre ``c`` (the base at offset ``u``) at least
  ``min_distance`` bp from every TSS of the file on either strand (``|c - t| >= min_distance``), strand + or -
  with probability 1/2, distinct, inside one split interval, passing the N filter; ``floor(R * positives +
  0.5)`` per split (``neg_per_pos`` R, default 1), drawn uniformly (seeded). Fewer are kept when fewer exist
  (``negatives_short`` in the summary).
* RegulonDB: each row's 81-nt sequence (-60..+20 on its strand) is compared with the genome at the converted
  position (:func:`check_regulondb`). ``regulondb_mismatch``: ``keep`` (default: the file's position as
  converted, mismatches only counted), ``shift`` (a row whose sequence matches one base off is moved there),
  ``drop`` (rows whose sequence disagrees are dropped). The counts are in the store's config. On RegulonDB
  10.9 with NC_000913.3 the reverse-strand high-throughput ``TSS_*`` rows (2,465) match one base to the right
  of their stated position (genome coordinates), all curated and forward rows match exactly.

Splits: :func:`genomics_lm.genome.plan_splits` in ``auto`` mode: whole chromosomes (records) held out when the
genome has at least 10 records; else region blocks of ``block_bp`` (default ``max(8 * select_bp, min(100 kb,
genome bp / 50))``: about 50 blocks on a small genome, so that val and test hold several regions each) with
``gap_bp`` (default ``select_bp``) dropped between blocks of different splits, assigned by the seed. A row belongs
to the split whose interval holds its whole window, so positives and negatives of one region share a split
and no window crosses a split boundary.

Same rows for several context lengths (``select_bp``, default ``context_bp``): the ``edge``, ``gap`` and ``n``
drops, the negatives' placement and the default split plan are decided on a selection window of ``select_bp``
centred like the context (it holds the context, ``select_bp >= context_bp``). Building 1 kb, 4 kb and 16 kb
tasks with the same ``select_bp`` (the largest context) and seed gives the same bins / TSSs, labels and splits,
only longer or shorter sequences around them.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.files import sha256sum
from genomics_lm.genome import PIECE_BP, Genome, SplitPlan, plan_splits
from genomics_lm.peaks import (
    Mapped, RecordSpan, map_intervals, read_chrom_map, read_peaks, read_regulondb, read_tss_bed, record_spans,
)
from genomics_lm.tasks import SPLITS, TaskStoreWriter
from genomics_lm.tokenizer import KmerTokenizer

_NON_ACGT = bytes(0 if b in b"ACGTacgt" else 1 for b in range(256))
_COMPLEMENT = bytes.maketrans(b"ACGTNacgtnRYKMSWBDHVrykmswbdhv", b"TGCANtgcanYRMKSWVHDByrmkswvhdb")
TSS_FORMATS = ("bed", "regulondb")
MISMATCH_POLICIES = ("keep", "shift", "drop")
DEFAULTS = {"bin_bp": 200, "context_bp": 1000, "max_n_frac": 0.1, "min_distance": 1000, "tss_neg_per_pos": 1.0}


# ------------------------------------------------------------------------------------------------ intervals
def merge_intervals(iv: np.ndarray) -> np.ndarray:
    """Union of intervals: ``(n, 2)`` int64 ``[start, end)`` in any order -> ``(m, 2)`` sorted, disjoint,
    touching intervals merged."""
    iv = np.asarray(iv, np.int64).reshape(-1, 2)
    if not len(iv):
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    run_end = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), bool)
    new[1:] = iv[1:, 0] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(iv) - 1]
    return np.stack([iv[first, 0], run_end[last]], axis=1)


def covered_before(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bases of the union ``merged`` ((m, 2), sorted, disjoint) in ``[0, x)`` for every ``x`` (int64, any shape)."""
    x = np.asarray(x, np.int64)
    if not len(merged):
        return np.zeros_like(x)
    s, e = merged[:, 0], merged[:, 1]
    cum = np.r_[0, np.cumsum(e - s)]
    i = np.searchsorted(s, x, side="right")  # intervals starting at or before x
    j = np.maximum(i - 1, 0)
    part = np.where(i > 0, np.minimum(np.maximum(x - s[j], 0), e[j] - s[j]), 0)
    return cum[j] + part


def bin_coverage(intervals: np.ndarray, n_bins: int, bin_bp: int) -> np.ndarray:
    """``(n_bins,)`` int64: bases of bin ``b = [b * bin_bp, (b + 1) * bin_bp)`` covered by the union of ``intervals``."""
    edges = np.arange(n_bins + 1, dtype=np.int64) * bin_bp
    return np.diff(covered_before(merge_intervals(intervals), edges))


def bin_labels(intervals: Sequence[np.ndarray], n_bins: int, bin_bp: int) -> np.ndarray:
    """``(n_bins, C)`` bool: bin positive for feature ``c`` when ``intervals[c]`` cover at least half of it."""
    return np.stack([2 * bin_coverage(iv, n_bins, bin_bp) >= bin_bp for iv in intervals], axis=1).reshape(n_bins, -1)


def subtract_intervals(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` minus ``b``: both ``(n, 2)`` sorted disjoint ``[start, end)`` -> ``(m, 2)`` sorted disjoint."""
    out = []
    j = 0
    for s, e in a.tolist():
        while j < len(b) and b[j, 1] <= s:
            j += 1
        cur, k = s, j
        while k < len(b) and b[k, 0] < e:
            if b[k, 0] > cur:
                out.append((cur, int(b[k, 0])))
            cur = max(cur, int(b[k, 1]))
            k += 1
        if cur < e:
            out.append((cur, e))
    return np.asarray(out, np.int64).reshape(-1, 2)


# ------------------------------------------------------------------------------------------------ windows
def context_of_bins(n_bins: int, bin_bp: int, context_bp: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` (n_bins,) int64 of the context window centred on each bin (record coordinates)."""
    start = np.arange(n_bins, dtype=np.int64) * bin_bp - (context_bp - bin_bp) // 2
    return start, start + context_bp


def default_block_bp(total_bp: int, select_bp: int) -> int:
    """Default region block: ``max(8 * select_bp, min(100_000, total_bp // 50))``."""
    return max(8 * select_bp, min(100_000, total_bp // 50))


def tss_offsets(minus: np.ndarray | bool, context_bp: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the window of a TSS (or centre) at ``p`` on its strand is ``[p + a, p + b)``; the position sits
    at offset ``context_bp // 2`` of the sequence read on that strand (``+``: ``a = -u``; ``-``: ``a = u + 1 - L``)."""
    u = context_bp // 2
    minus = np.asarray(minus, bool)
    a = np.where(minus, u + 1 - context_bp, -u).astype(np.int64)
    return a, a + context_bp


def tss_windows(pos: np.ndarray, minus: np.ndarray, context_bp: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` (n,) int64 record coordinates of the windows around TSSs ``pos`` on strands ``minus``."""
    a, b = tss_offsets(minus, context_bp)
    pos = np.asarray(pos, np.int64)
    return pos + a, pos + b


def non_acgt_counts(genome: Genome, record: str, starts: np.ndarray, ends: np.ndarray,
                    piece_bp: int = PIECE_BP) -> np.ndarray:
    """``(n,)`` int64: bases of ``record[starts[i]:ends[i]]`` that are not A/C/G/T (either case).

    The record is read in pieces of ``piece_bp``; a running count gives the value at every needed position,
    so memory stays bounded however long the record is.
    """
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    q = np.unique(np.r_[starts, ends])
    val = np.zeros(len(q), np.int64)
    base, n = 0, genome.lengths[record]
    for a in range(0, n, piece_bp):
        b = min(n, a + piece_bp)
        lo, hi = np.searchsorted(q, [a, b])  # queries in [a, b)
        seq = genome.fetch_bytes(record, a, b)
        cum = np.zeros(len(seq) + 1, np.int64)
        np.cumsum(np.frombuffer(seq.translate(_NON_ACGT), np.uint8), out=cum[1:])
        val[lo:hi] = base + cum[q[lo:hi] - a]
        base += int(cum[-1])
    val[q >= n] = base
    return val[np.searchsorted(q, ends)] - val[np.searchsorted(q, starts)]


def window_sequences(genome: Genome, record: str, starts: np.ndarray, ends: np.ndarray,
                     minus: np.ndarray | None = None) -> list[bytes]:
    """Upper-cased bases of each window, reverse-complemented where ``minus`` (the sequence read on that strand)."""
    out = []
    minus = np.zeros(len(starts), bool) if minus is None else np.asarray(minus, bool)
    for s, e, m in zip(np.asarray(starts).tolist(), np.asarray(ends).tolist(), minus.tolist()):
        seq = genome.fetch_bytes(record, s, e).upper()
        out.append(seq.translate(_COMPLEMENT)[::-1] if m else seq)
    return out


def mask_outside(seq: bytes, keep_bp: int) -> bytes:
    """``seq`` with every base outside its central ``keep_bp`` replaced by ``N`` (same length).

    Kept: offsets ``[(len - keep_bp) // 2, (len - keep_bp) // 2 + keep_bp)`` (0-based, half-open) of ``seq`` as
    given (a reverse-complemented row is masked on its own strand). ``keep_bp >= len`` returns ``seq``.
    """
    n = len(seq)
    if keep_bp >= n:
        return seq
    a = (n - keep_bp) // 2
    return b"N" * a + seq[a:a + keep_bp] + b"N" * (n - a - keep_bp)


def split_of_windows(plan: SplitPlan, record: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(n,)`` int8: index in ``SPLITS`` of the split interval holding the whole window, -1 when none does."""
    ivs = sorted((s, e, i) for i, sp in enumerate(SPLITS) for r, s, e in plan.intervals[sp] if r == record)
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    out = np.full(len(starts), -1, np.int8)
    if not ivs:
        return out
    s, e, which = (np.array(x, np.int64) for x in zip(*ivs))
    j = np.searchsorted(s, starts, side="right") - 1
    ok = (j >= 0) & (ends <= e[np.maximum(j, 0)])
    out[ok] = which[j[ok]]
    return out


def n_of(n: int, ratio: float) -> int:
    """``floor(ratio * n + 0.5)``: the number of negatives kept for ``n`` positives."""
    return int(math.floor(ratio * n + 0.5))


def subsample_negatives(labels: np.ndarray, ratio: float | None, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` bool keep-mask: every row positive for some label, and ``n_of(positives, ratio)`` all-negative
    rows drawn without replacement (all of them when ``ratio`` is None or there are fewer)."""
    pos = (labels == 1).any(axis=1)
    keep = pos.copy()
    neg = np.flatnonzero(~pos)
    want = len(neg) if ratio is None else min(len(neg), n_of(int(pos.sum()), ratio))
    keep[np.sort(rng.choice(neg, size=want, replace=False)) if want < len(neg) else neg] = True
    return keep


# ------------------------------------------------------------------------------------------------ settings
def _resolve_names(chrom_map: str | os.PathLike | None, chr_prefix: str | None) -> dict[str, str] | None:
    if chr_prefix not in (None, "add", "strip"):
        raise UserError(f"unknown chr prefix rule {chr_prefix!r} (add or strip)")
    return read_chrom_map(chrom_map) if chrom_map is not None else None


def _check_common(context_bp: int, max_n_frac: float, neg_per_pos: float | None, tokenizer: KmerTokenizer,
                  block_bp: int | None, gap_bp: int | None, select_bp: int, mask_outside_bp: int | None = None,
                  val_frac: float | None = None, test_frac: float | None = None) -> None:
    if mask_outside_bp is not None and not 0 < mask_outside_bp <= context_bp:
        raise UserError(f"--mask-outside-bp must be in 1..--context-bp ({context_bp:,}), got {mask_outside_bp:,}")
    for flag, f in (("--val-frac", val_frac), ("--test-frac", test_frac)):
        if f is not None and not (0 < f < 0.5):
            raise UserError(f"{flag} must be between 0 and 0.5, got {f}")
    if context_bp < tokenizer.k:
        raise UserError(f"--context-bp {context_bp} is shorter than k={tokenizer.k} (no token)")
    if select_bp < context_bp:
        raise UserError(f"--select-bp ({select_bp:,}) must be at least --context-bp ({context_bp:,}): rows are chosen "
                        "on a window that holds their context")
    if not 0 <= max_n_frac <= 1:
        raise UserError(f"--max-n-frac must be in [0, 1], got {max_n_frac}")
    if neg_per_pos is not None and not (neg_per_pos > 0 and math.isfinite(neg_per_pos)):
        raise UserError(f"--neg-per-pos must be a positive number, got {neg_per_pos}")
    if block_bp is not None and block_bp <= 0:
        raise UserError(f"--block-bp must be positive, got {block_bp}")
    if gap_bp is not None and gap_bp < 0:
        raise UserError(f"--gap-bp must be >= 0, got {gap_bp}")


def _plan(genome: Genome, select_bp: int, block_bp: int | None, gap_bp: int | None, seed: int,
          val_frac: float | None = None, test_frac: float | None = None) -> SplitPlan:
    block_bp = block_bp if block_bp is not None else default_block_bp(genome.total_bp, select_bp)
    gap_bp = gap_bp if gap_bp is not None else select_bp
    if gap_bp >= block_bp:
        raise UserError(f"--gap-bp ({gap_bp:,}) must be smaller than --block-bp ({block_bp:,})")
    return plan_splits(genome.lengths, mode="auto", block_bp=block_bp, gap_bp=gap_bp, seed=seed,
                       val_frac=0.1 if val_frac is None else val_frac, test_frac=0.1 if test_frac is None else test_frac)


def _span_of(spans: dict[str, list[RecordSpan]]) -> dict[str, RecordSpan]:
    return {sp.record: sp for v in spans.values() for sp in v}


# ------------------------------------------------------------------------------------------------ writing
class _Rows:
    """Rows of one split, appended per record: record coordinates, strand, labels."""

    def __init__(self, C: int):
        self.C = C
        self.parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, record: str, start: np.ndarray, end: np.ndarray, minus: np.ndarray, labels: np.ndarray) -> None:
        if len(start):
            self.parts.append((record, np.asarray(start, np.int64), np.asarray(end, np.int64),
                               np.asarray(minus, bool), np.asarray(labels, np.float32).reshape(-1, self.C)))

    def __len__(self) -> int:
        return sum(len(p[1]) for p in self.parts)

    def labels(self) -> np.ndarray:
        return np.concatenate([p[4] for p in self.parts]) if self.parts else np.zeros((0, self.C), np.float32)


def _write(paths: dict[str, Path], rows: dict[str, _Rows], genome: Genome, span_of: dict[str, RecordSpan],
           tokenizer: KmerTokenizer, context_bp: int, source: dict, config: dict, label_names: list[str],
           overwrite: bool, mask_outside_bp: int | None = None, batch: int = 2048) -> None:
    """Write the three stores (renamed together at the end); coordinates converted to chromosome coordinates;
    with ``mask_outside_bp`` the sequences are :func:`mask_outside` first."""
    L = tokenizer.num_tokens(context_bp)
    with contextlib.ExitStack() as stack:
        writers = {}
        for s in SPLITS:
            writers[s] = stack.enter_context(TaskStoreWriter(
                paths[s], tokenizer=tokenizer, window_tokens=L, window_bp=context_bp, source=source, split=s,
                config=config, label_names=label_names, overwrite=overwrite))
        for s in SPLITS:
            w = writers[s]
            w.append_sequences([])  # /sequence exists even for a split without rows
            for record, start, end, minus, labels in rows[s].parts:
                sp = span_of[record]
                for a in range(0, len(start), batch):
                    b = min(len(start), a + batch)
                    seqs = window_sequences(genome, record, start[a:b], end[a:b], minus[a:b])
                    if mask_outside_bp is not None:
                        seqs = [mask_outside(q, mask_outside_bp) for q in seqs]
                    toks = np.stack([tokenizer.encode(q) for q in seqs]).astype(tokenizer.dtype, copy=False)
                    w.append(toks, seqid=[sp.chrom] * (b - a), start=start[a:b] + sp.offset,
                             end=end[a:b] + sp.offset, strand=np.where(minus[a:b], "-", "+"), labels=labels[a:b])
                    w.append_sequences([q.decode("ascii", "replace") for q in seqs])


def _source(genome: Genome, files: list[tuple[str, str, Path]]) -> dict:
    out = [{"file": str(genome.path), "name": genome.path.name, "role": "genome", "sha256": genome.sha256}]
    out += [{"file": str(p), "name": p.name, "role": role, "sha256": sha256sum(p), "label": label}
            for role, label, p in files]
    return {"kind": "task", "files": out}


def _check_splits(rows: dict[str, _Rows], what: str, plan: SplitPlan, counts: dict) -> None:
    for s in SPLITS:
        lab = rows[s].labels()
        if not len(lab) or not (lab == 1).any():
            p = plan.params
            layout = (f"region blocks of {p.get('block_bp', 0):,} bp with {p.get('gap_bp', 0):,} bp gaps"
                      if plan.mode == "regions" else "whole records held out")
            raise UserError(f"split {s!r} gets no positive {what} ({len(lab):,} rows; splits: {layout}; dropped: "
                            f"{counts.get('dropped_edge', 0):,} off a record's end, {counts.get('dropped_gap', 0):,} "
                            f"across split boundaries, {counts.get('dropped_n', 0):,} for N); use a smaller "
                            "--block-bp or --context-bp, or a larger genome")


# ------------------------------------------------------------------------------------------------ peaks
def make_peak_task(
    paths: dict[str, Path],
    *,
    genome: str | os.PathLike,
    peaks: Sequence[tuple[str, str | os.PathLike]],
    tokenizer: KmerTokenizer,
    bin_bp: int | None = None,
    context_bp: int | None = None,
    select_bp: int | None = None,
    neg_per_pos: float | None = None,
    max_n_frac: float | None = None,
    chrom_map: str | os.PathLike | None = None,
    chr_prefix: str | None = None,
    block_bp: int | None = None,
    gap_bp: int | None = None,
    val_frac: float | None = None,
    test_frac: float | None = None,
    mask_outside_bp: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    tokenizer_from: str | None = None,
) -> dict:
    """DeepSEA-style multi-label chromatin task (see the module docstring) -> ``paths[split]`` stores.

    Args:
        paths: split -> output path (checked by the caller). genome: FASTA (plain, gzip, bgzip).
        peaks: ``[(NAME, FILE), ...]``, one label per NAME. bin_bp (200), context_bp (1000), max_n_frac (0.1).
        select_bp: the window rows are selected on (default context_bp; see the module docstring).
        neg_per_pos: all-negative bins kept per positive bin in each split (None: all).
        chrom_map: two-column file (file name -> genome name). chr_prefix: None, ``"add"`` or ``"strip"``.
        block_bp, gap_bp, val_frac, test_frac (0.1 each), seed: the split plan. cache_dir: see
            :class:`~genomics_lm.genome.Genome`.
        mask_outside_bp: the control of the long-context experiment: every base outside the central
            ``mask_outside_bp`` of a row (offsets ``[(context_bp - M) // 2, (context_bp - M) // 2 + M)`` of the
            sequence as stored, i.e. on the row's strand) becomes N; rows, labels and splits are unchanged (they
            do not depend on it). None: no mask.
    Returns:
        ``{"task_kind", "input": "peaks", "label_names", "tokenizer", "window_tokens", "paths", "summary",
        "counts"}``; ``summary[split]`` = ``{rows, positives (per label), observed, any_positive,
        negatives_available, negatives_kept, dropped_n, min_bp, max_bp}``.
    Raises:
        UserError: bad settings, names or files (see :mod:`genomics_lm.peaks`), a feature without any positive
            bin, a split without positives; all before anything is written.
    """
    bin_bp = DEFAULTS["bin_bp"] if bin_bp is None else int(bin_bp)
    context_bp = DEFAULTS["context_bp"] if context_bp is None else int(context_bp)
    max_n_frac = DEFAULTS["max_n_frac"] if max_n_frac is None else float(max_n_frac)
    if bin_bp <= 0:
        raise UserError(f"--bin-bp must be positive, got {bin_bp}")
    if context_bp < bin_bp:
        raise UserError(f"--context-bp ({context_bp:,}) must be at least --bin-bp ({bin_bp:,}): the context is "
                        "centred on the bin and holds it")
    select_bp = context_bp if select_bp is None else int(select_bp)
    _check_common(context_bp, max_n_frac, neg_per_pos, tokenizer, block_bp, gap_bp, select_bp, mask_outside_bp,
                  val_frac, test_frac)
    names = [str(n) for n, _ in peaks]
    for n in names:
        if not n or "=" in n or "/" in n:
            raise UserError(f"--peaks: bad feature name {n!r} (use NAME=FILE)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--peaks: feature name(s) given twice: {', '.join(dup)}")
    cmap = _resolve_names(chrom_map, chr_prefix)
    g = Genome(genome, cache_dir=cache_dir)
    spans = record_spans(g.lengths, g.path)
    span_of = _span_of(spans)

    mapped: list[Mapped] = []
    files = []
    for name, f in peaks:
        iv = read_peaks(f)
        mapped.append(map_intervals(iv, spans, chrom_map=cmap, prefix=chr_prefix, genome_path=g.path, what="peak"))
        mapped[-1].stats["layout"] = iv.layout
        files.append(("peaks", name, Path(f)))
    plan = _plan(g, select_bp, block_bp, gap_bp, seed, val_frac, test_frac)
    C = len(names)
    rows = {s: _Rows(C) for s in SPLITS}
    counts = {"bins": 0, "dropped_edge": 0, "dropped_gap": 0, "dropped_n": 0}
    positive_bins = np.zeros(C, np.int64)  # before any drop
    dropped_n = {s: 0 for s in SPLITS}
    for record, n in g.lengths.items():
        n_bins = n // bin_bp
        if not n_bins:
            continue
        labels = bin_labels([m.per_record.get(record, np.zeros((0, 2), np.int64)) for m in mapped], n_bins, bin_bp)
        positive_bins += labels.sum(axis=0)
        cs, ce = context_of_bins(n_bins, bin_bp, context_bp)
        ss, se = context_of_bins(n_bins, bin_bp, select_bp)  # the selection window, holding the context
        counts["bins"] += n_bins
        ok = (ss >= 0) & (se <= n)
        counts["dropped_edge"] += int((~ok).sum())
        split = np.full(n_bins, -1, np.int8)
        split[ok] = split_of_windows(plan, record, ss[ok], se[ok])
        counts["dropped_gap"] += int((ok & (split < 0)).sum())
        idx = np.flatnonzero(split >= 0)
        bad = non_acgt_counts(g, record, ss[idx], se[idx]) / select_bp > max_n_frac
        for i, s in enumerate(SPLITS):
            dropped_n[s] += int((bad & (split[idx] == i)).sum())
        idx = idx[~bad]
        counts["dropped_n"] += int(bad.sum())
        for i, s in enumerate(SPLITS):
            sel = idx[split[idx] == i]
            rows[s].add(record, cs[sel], ce[sel], np.zeros(len(sel), bool), labels[sel].astype(np.float32))

    kept_pos = sum((rows[s].labels() == 1).sum(axis=0) for s in SPLITS)
    for c, (name, f) in enumerate(peaks):
        if kept_pos[c] == 0:
            st = mapped[c].stats
            raise UserError(
                f"{f}: feature {name!r}: every bin is negative after mapping ({st['on_genome']:,} of "
                f"{st['total']:,} peaks on the genome's records, {positive_bins[c]:,} positive bin(s) before dropping "
                f"bins at record ends, across split gaps or with N); a bin is positive when peaks cover at least "
                f"{math.ceil(bin_bp / 2)} of its {bin_bp} bp: check the genome build, --chrom-map and the prefix options")

    rng = np.random.default_rng(seed)
    summary = {}
    for s in SPLITS:  # subsample all-negative bins per split
        lab = rows[s].labels()
        keep = subsample_negatives(lab, neg_per_pos, rng)
        any_pos = (lab == 1).any(axis=1)
        new, at = _Rows(C), 0
        for record, a, b, m, l in rows[s].parts:
            k = keep[at : at + len(a)]
            new.add(record, a[k], b[k], m[k], l[k])
            at += len(a)
        rows[s] = new
        kl = lab[keep]
        summary[s] = {"rows": int(keep.sum()), "positives": [int(x) for x in (kl == 1).sum(axis=0)],
                      "observed": [int(keep.sum())] * C, "any_positive": int(any_pos.sum()),
                      "negatives_available": int((~any_pos).sum()), "negatives_kept": int((keep & ~any_pos).sum()),
                      "dropped_n": dropped_n[s], "min_bp": context_bp, "max_bp": context_bp}
    _check_splits(rows, "bin", plan, counts)

    counts["features"] = {name: {**mapped[c].stats, "positive_bins": int(positive_bins[c])}
                          for c, name in enumerate(names)}
    config = {
        "task_kind": "binary" if C == 1 else "multilabel", "input": "peaks", "label_names": names, "seed": seed,
        "k": tokenizer.k, "stride": tokenizer.stride, "tokenizer_from": tokenizer_from,
        "window_tokens": tokenizer.num_tokens(context_bp), "genome": str(g.path),
        "inputs": [{"role": "genome", "file": str(g.path)}] + [{"role": "peaks", "label": n, "file": str(f)}
                                                               for n, f in peaks],
        "bin_bp": bin_bp, "context_bp": context_bp, "select_bp": select_bp, "max_n_frac": max_n_frac,
        "neg_per_pos": neg_per_pos, "mask_outside_bp": mask_outside_bp,
        "chrom_map": str(chrom_map) if chrom_map is not None else None, "chr_prefix": chr_prefix,
        "records": {r: {"chrom": sp.chrom, "offset": sp.offset, "length": sp.length} for r, sp in span_of.items()},
        "coordinates": "chromosome (region-named records shifted by their offset), 0-based half-open context window",
        "label_rule": "positive when the union of the feature's peaks covers >= half of the bin",
        "split_rule": f"{plan.mode} (genome.plan_splits); a row belongs to the split interval holding its whole context",
        "split_plan": plan.to_dict(), "counts": counts, "summary": summary,
    }
    _write(paths, rows, g, span_of, tokenizer, context_bp, _source(g, files), config, names, overwrite,
           mask_outside_bp)
    return {"task_kind": config["task_kind"], "input": "peaks", "label_names": names, "tokenizer": tokenizer.to_dict(),
            "window_tokens": config["window_tokens"], "paths": {s: str(p) for s, p in paths.items()},
            "summary": summary, "counts": counts, "neg_per_pos": neg_per_pos}


# ------------------------------------------------------------------------------------------------ TSS
def check_regulondb(genome: Genome, record: str, pos: np.ndarray, minus: np.ndarray, seq81: Sequence[str]) -> np.ndarray:
    """Compare RegulonDB's 81-nt sequences (-60..+20 on the strand) with the genome around 0-based ``pos``.

    Returns ``(n,)`` int64 codes: 0 = matches at ``pos``; +1 / -1 = matches one base right / left of ``pos``
    (genome coordinates); 9 = no match at pos or pos +- 1; -9 = not checked (no 81-nt sequence, or the window
    runs off the record).
    """
    out = np.full(len(pos), -9, np.int64)
    n = genome.lengths[record]
    for i, (p, m, q) in enumerate(zip(np.asarray(pos).tolist(), np.asarray(minus).tolist(), seq81)):
        if len(q) != 81:
            continue
        q = q.upper().encode("ascii", "replace")
        for d in (0, 1, -1):
            a, b = (p + d - 20, p + d + 61) if m else (p + d - 60, p + d + 21)
            if a < 0 or b > n:
                break
            w = genome.fetch_bytes(record, a, b).upper()
            if (w.translate(_COMPLEMENT)[::-1] if m else w) == q:
                out[i] = d
                break
        else:
            out[i] = 9
    return out


def _sample_positions(intervals: list[tuple[str, np.ndarray]], n: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """``n`` distinct positions drawn uniformly from the union of ``[(record, (m, 2) intervals), ...]`` (fewer when
    the union is smaller)."""
    recs = [(r, s, e) for r, iv in intervals for s, e in iv.tolist() if e > s]
    if not recs or n <= 0:
        return []
    lens = np.array([e - s for _, s, e in recs], np.int64)
    cum = np.r_[0, np.cumsum(lens)]
    idx = rng.choice(int(cum[-1]), size=min(n, int(cum[-1])), replace=False)
    j = np.searchsorted(cum, idx, side="right") - 1
    return [(recs[jj][0], int(recs[jj][1] + ii - cum[jj])) for jj, ii in zip(j.tolist(), idx.tolist())]


def draw_negatives(genome: Genome, intervals: list[tuple[str, int, int]], forbidden: dict[str, np.ndarray], want: int,
                   select_bp: int, max_n_frac: float, rng: np.random.Generator) -> dict[str, list[tuple[int, bool]]]:
    """Negative windows of one split: record -> ``[(centre, minus), ...]`` (record coordinates), ``want`` in all or
    fewer when fewer exist.

    Each is on strand - with probability 1/2; its centre is drawn uniformly (distinct per strand) among the
    positions whose ``select_bp`` window (:func:`tss_offsets`) lies inside one of ``intervals`` (the split's) and
    outside ``forbidden[record]`` ((m, 2) merged ``[start, end)`` of centres too close to a TSS); windows with more than
    ``max_n_frac`` non-ACGT bases are skipped. Candidates are drawn in growing pools (2x + 16, then 16x, then all)
    and taken in draw order, so the kept ones stay a uniform draw among those that pass the N filter.
    """
    strands = rng.random(want) < 0.5
    out: dict[str, list[tuple[int, bool]]] = {}
    for m in (False, True):
        need = int((strands == m).sum())
        if not need:
            continue
        a, b = (int(x) for x in tss_offsets(m, select_bp))
        allowed = []
        for r, s0, e0 in intervals:
            centres = np.array([[s0 - a, e0 - b + 1]], np.int64)  # window [c + a, c + b) inside [s0, e0)
            centres = centres[centres[:, 1] > centres[:, 0]]
            allowed.append((r, subtract_intervals(centres, forbidden.get(r, np.zeros((0, 2), np.int64)))))
        available = int(sum((iv[:, 1] - iv[:, 0]).sum() for _, iv in allowed))
        for pool in (2 * need + 16, 16 * need + 64, available):
            cand = _sample_positions(allowed, min(pool, available), rng)
            good: dict[tuple[str, int], bool] = {}
            for r in {r for r, _ in cand}:
                c = np.array([x for rr, x in cand if rr == r], np.int64)
                ok = non_acgt_counts(genome, r, c + a, c + b) / select_bp <= max_n_frac
                good.update(zip(((r, x) for x in c.tolist()), ok.tolist()))
            taken = [(r, c) for r, c in cand if good[(r, c)]][:need]
            if len(taken) == need or pool >= available:
                break
        for r, c in taken:
            out.setdefault(r, []).append((c, m))
    return out


def make_tss_task(
    paths: dict[str, Path],
    *,
    genome: str | os.PathLike,
    tss: str | os.PathLike,
    tokenizer: KmerTokenizer,
    tss_format: str = "bed",
    context_bp: int | None = None,
    select_bp: int | None = None,
    min_distance: int | None = None,
    neg_per_pos: float | None = None,
    max_n_frac: float | None = None,
    chrom_map: str | os.PathLike | None = None,
    chr_prefix: str | None = None,
    regulondb_mismatch: str | None = None,
    block_bp: int | None = None,
    gap_bp: int | None = None,
    val_frac: float | None = None,
    test_frac: float | None = None,
    mask_outside_bp: int | None = None,
    seed: int = 0,
    label_name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    tokenizer_from: str | None = None,
) -> dict:
    """Binary promoter task from TSS positions (see the module docstring) -> ``paths[split]`` stores.

    Args:
        tss: BED6 file (``tss_format="bed"``) or RegulonDB PromoterSet (``"regulondb"``; its positions are on the
            genome's only chromosome). context_bp (1000), min_distance (1000), neg_per_pos (1), max_n_frac (0.1).
        regulondb_mismatch: ``keep`` (default), ``shift`` or ``drop`` (RegulonDB only). label_name ("tss").
        Others as :func:`make_peak_task`.
    Returns:
        as :func:`make_peak_task` with ``input: "tss"``; ``summary[split]`` = ``{rows, positives, observed,
        negatives, negatives_wanted, negatives_short, dropped_n, min_bp, max_bp}``; ``counts`` holds the
        file-level counts (read, skipped, duplicates, outside, dropped_edge, dropped_gap, dropped_n, and for
        RegulonDB the sequence check).
    """
    if tss_format not in TSS_FORMATS:
        raise UserError(f"unknown --tss-format {tss_format!r} (choose {', '.join(TSS_FORMATS)})")
    if regulondb_mismatch is not None and tss_format != "regulondb":
        raise UserError("--regulondb-mismatch goes with --tss-format regulondb")
    policy = regulondb_mismatch or "keep"
    if policy not in MISMATCH_POLICIES:
        raise UserError(f"unknown --regulondb-mismatch {policy!r} (choose {', '.join(MISMATCH_POLICIES)})")
    context_bp = DEFAULTS["context_bp"] if context_bp is None else int(context_bp)
    min_distance = DEFAULTS["min_distance"] if min_distance is None else int(min_distance)
    neg_per_pos = DEFAULTS["tss_neg_per_pos"] if neg_per_pos is None else float(neg_per_pos)
    max_n_frac = DEFAULTS["max_n_frac"] if max_n_frac is None else float(max_n_frac)
    if min_distance < 1:
        raise UserError(f"--min-distance must be at least 1, got {min_distance}")
    select_bp = context_bp if select_bp is None else int(select_bp)
    _check_common(context_bp, max_n_frac, neg_per_pos, tokenizer, block_bp, gap_bp, select_bp, mask_outside_bp,
                  val_frac, test_frac)
    label = label_name or "tss"
    cmap = _resolve_names(chrom_map, chr_prefix)
    g = Genome(genome, cache_dir=cache_dir)
    spans = record_spans(g.lengths, g.path)
    span_of = _span_of(spans)
    table = read_tss_bed(tss) if tss_format == "bed" else read_regulondb(tss)
    chrom = None
    if table.chrom is None:
        if len(spans) != 1:
            raise UserError(f"{table.path}: a RegulonDB PromoterSet has no chromosome column, but genome {g.path} has "
                            f"{len(spans)} chromosomes ({', '.join(list(spans)[:5])}...); give a one-chromosome "
                            "FASTA or a BED6 TSS file")
        chrom = next(iter(spans))
    mapped = map_intervals(table.as_intervals(chrom), spans, chrom_map=cmap, prefix=chr_prefix,
                           genome_path=g.path, what="TSS")
    counts: dict = {"read": len(table.pos), "skipped_no_position": table.skipped, **{
        k: mapped.stats[k] for k in ("outside", "other_chrom", "chroms_unmatched")}}
    if tss_format == "regulondb":
        counts["regulondb_check"] = {"policy": policy, "match": 0, "off_by_one": 0, "mismatch": 0, "unchecked": 0,
                                     "moved": 0, "dropped": 0}
    plan = _plan(g, select_bp, block_bp, gap_bp, seed, val_frac, test_frac)
    rng = np.random.default_rng(seed)
    pos_rows = {s: _Rows(1) for s in SPLITS}
    forbidden: dict[str, np.ndarray] = {}
    counts.update(duplicates=0, dropped_edge=0, dropped_gap=0, dropped_n=0)
    dropped_n = {s: 0 for s in SPLITS}
    for record in g.lengths:
        iv = mapped.per_record.get(record)
        if iv is None or not len(iv):
            forbidden[record] = np.zeros((0, 2), np.int64)
            continue
        idx = mapped.index[record]
        pos = iv[:, 0].copy()
        minus = np.array([table.strand[i] == "-" for i in idx.tolist()], bool)
        all_pos = [pos.copy()]
        if table.seq81 is not None:
            code = check_regulondb(g, record, pos, minus, [table.seq81[i] for i in idx.tolist()])
            rc = counts["regulondb_check"]
            rc["match"] += int((code == 0).sum())
            rc["off_by_one"] += int((np.abs(code) == 1).sum())
            rc["mismatch"] += int((code == 9).sum())
            rc["unchecked"] += int((code == -9).sum())
            if policy == "shift":
                off = np.abs(code) == 1
                pos[off] += code[off]
                rc["moved"] += int(off.sum())
                all_pos.append(pos.copy())
            elif policy == "drop":
                bad = (code != 0) & (code != -9)
                rc["dropped"] += int(bad.sum())
                pos, minus = pos[~bad], minus[~bad]
        allp = np.concatenate(all_pos)
        forbidden[record] = merge_intervals(np.stack([allp - min_distance + 1, allp + min_distance], axis=1))
        # duplicates: same record, position and strand
        key = np.unique(np.stack([pos, minus.astype(np.int64)], axis=1), axis=0)
        counts["duplicates"] += len(pos) - len(key)
        pos, minus = key[:, 0], key[:, 1].astype(bool)
        ws, we = tss_windows(pos, minus, context_bp)
        ss, se = tss_windows(pos, minus, select_bp)  # the selection window, holding the context
        n = g.lengths[record]
        ok = (ss >= 0) & (se <= n)
        counts["dropped_edge"] += int((~ok).sum())
        split = np.full(len(pos), -1, np.int8)
        split[ok] = split_of_windows(plan, record, ss[ok], se[ok])
        counts["dropped_gap"] += int((ok & (split < 0)).sum())
        sel = np.flatnonzero(split >= 0)
        bad = non_acgt_counts(g, record, ss[sel], se[sel]) / select_bp > max_n_frac
        counts["dropped_n"] += int(bad.sum())
        for i, s in enumerate(SPLITS):
            dropped_n[s] += int((bad & (split[sel] == i)).sum())
        sel = sel[~bad]
        for i, s in enumerate(SPLITS):
            k = sel[split[sel] == i]
            order = np.lexsort((minus[k], ws[k]))
            k = k[order]
            pos_rows[s].add(record, ws[k], we[k], minus[k], np.ones(len(k), np.float32))

    summary = {}
    rows = {s: _Rows(1) for s in SPLITS}
    for s in SPLITS:
        n_pos = len(pos_rows[s])
        want = n_of(n_pos, neg_per_pos)
        negs = draw_negatives(g, plan.intervals[s], forbidden, want, select_bp, max_n_frac, rng)
        got = sum(len(v) for v in negs.values())
        for record in g.lengths:  # positives and negatives of a record, by window start
            parts_p = [p for p in pos_rows[s].parts if p[0] == record]
            ws_p = np.concatenate([p[1] for p in parts_p]) if parts_p else np.zeros(0, np.int64)
            we_p = np.concatenate([p[2] for p in parts_p]) if parts_p else np.zeros(0, np.int64)
            mi_p = np.concatenate([p[3] for p in parts_p]) if parts_p else np.zeros(0, bool)
            nn = negs.get(record, [])
            c = np.array([x for x, _ in nn], np.int64)
            mi_n = np.array([y for _, y in nn], bool)
            a, b = tss_offsets(mi_n, context_bp)
            ws = np.r_[ws_p, c + a]
            we = np.r_[we_p, c + b]
            mi = np.r_[mi_p, mi_n]
            lab = np.r_[np.ones(len(ws_p), np.float32), np.zeros(len(c), np.float32)]
            order = np.lexsort((-lab, mi, ws))
            rows[s].add(record, ws[order], we[order], mi[order], lab[order])
        summary[s] = {"rows": n_pos + got, "positives": [n_pos], "observed": [n_pos + got], "negatives": got,
                      "negatives_wanted": want, "negatives_short": want - got, "dropped_n": dropped_n[s],
                      "min_bp": context_bp, "max_bp": context_bp}
    _check_splits(rows, "TSS window", plan, counts)

    config = {
        "task_kind": "binary", "input": "tss", "label_names": [label], "seed": seed, "k": tokenizer.k,
        "stride": tokenizer.stride, "tokenizer_from": tokenizer_from,
        "window_tokens": tokenizer.num_tokens(context_bp), "genome": str(g.path),
        "inputs": [{"role": "genome", "file": str(g.path)}, {"role": "tss", "file": str(tss)}],
        "tss_format": tss_format, "context_bp": context_bp, "select_bp": select_bp, "tss_offset": context_bp // 2,
        "min_distance": min_distance, "neg_per_pos": neg_per_pos, "max_n_frac": max_n_frac,
        "mask_outside_bp": mask_outside_bp,
        "chrom_map": str(chrom_map) if chrom_map is not None else None, "chr_prefix": chr_prefix,
        "records": {r: {"chrom": sp.chrom, "offset": sp.offset, "length": sp.length} for r, sp in span_of.items()},
        "coordinates": "chromosome (region-named records shifted by their offset), 0-based half-open window; "
                       "'-' rows hold the reverse complement",
        "split_rule": f"{plan.mode} (genome.plan_splits); a row belongs to the split interval holding its whole window",
        "split_plan": plan.to_dict(), "counts": counts, "summary": summary,
    }
    _write(paths, rows, g, span_of, tokenizer, context_bp, _source(g, [("tss", label, Path(tss))]), config, [label],
           overwrite, mask_outside_bp)
    return {"task_kind": "binary", "input": "tss", "label_names": [label], "tokenizer": tokenizer.to_dict(),
            "window_tokens": config["window_tokens"], "paths": {s: str(p) for s, p in paths.items()},
            "summary": summary, "counts": counts, "neg_per_pos": neg_per_pos}


# ------------------------------------------------------------------------------------------------ printing help
def format_genome_summary(label_names: Sequence[str], s: dict) -> str:
    """One line of a genome task's split summary: rows, positives per label, negatives kept, drops."""
    if "negatives_wanted" in s:  # TSS
        short = f" ({s['negatives_short']:,} short of {s['negatives_wanted']:,})" if s["negatives_short"] else ""
        text = f"{s['rows']:,} rows; {s['positives'][0]:,} TSS windows, {s['negatives']:,} negatives{short}"
    else:
        labels = ", ".join(f"{n} {p:,}" for n, p in zip(label_names, s["positives"]))
        text = (f"{s['rows']:,} bins; positive: {labels}; {s['any_positive']:,} positive for any, "
                f"{s['negatives_kept']:,} of {s['negatives_available']:,} all-negative kept")
    return text + f"; {s['dropped_n']:,} dropped for N"


def format_genome_counts(res: dict) -> list[str]:
    """Lines of a genome task's file-level counts (peaks mapped per feature, TSS rows, drops, the ratio)."""
    c = res["counts"]
    drops = (f"dropped: {c['dropped_edge']:,} off a record's end, {c['dropped_gap']:,} across split boundaries, "
             f"{c['dropped_n']:,} with too many N")
    ratio = res.get("neg_per_pos")
    neg = f"negatives per positive: {'all kept' if ratio is None else f'{ratio:g} (each split, seeded)'}"
    if res["input"] == "peaks":
        lines = [f"{c['bins']:,} bins; {drops}; {neg}"]
        for name, st in c["features"].items():
            lines.append(f"  {name}: {st['on_genome']:,} of {st['total']:,} peaks on the genome ({st['layout']}; "
                         f"{st['outside']:,} outside its regions, {st['other_chrom']:,} on {len(st['chroms_unmatched']):,} "
                         f"chromosome(s) it lacks), {st['positive_bins']:,} positive bins")
        return lines
    lines = [f"{c['read']:,} TSS rows ({c['skipped_no_position']:,} without a position skipped, {c['other_chrom']:,} on "
             f"chromosomes the genome lacks, {c['outside']:,} outside its regions, {c['duplicates']:,} duplicates); "
             f"{drops}; {neg}"]
    rc = c.get("regulondb_check")
    if rc:
        lines.append(f"  RegulonDB 81-nt check: {rc['match']:,} match, {rc['off_by_one']:,} match one base off, "
                     f"{rc['mismatch']:,} do not match, {rc['unchecked']:,} not checked; --regulondb-mismatch "
                     f"{rc['policy']}: {rc['moved']:,} moved, {rc['dropped']:,} dropped")
    return lines
