"""Genome tracks: a fine-tuned classifier's probabilities over tiled windows of a genome, as bedGraph (and bigWig).

Stage functions only (no argument parsing, no printing); ``genomics-lm score --genome`` (:mod:`genomics_lm.cli.score`)
calls :func:`score_track`. Coordinates are 0-based, half-open.

* **Regions**: every record of the genome, or the intervals of a BED file (``--regions``; BED3+, read by
  :func:`genomics_lm.peaks.read_peaks`, in chromosome coordinates, chromosome names matched through the same
  ``--chrom-map``/``chr``-prefix options as ``make-task``), clipped to the records and merged where they overlap.
* **Windows**: ``window`` bp every ``step`` bp inside each region (a window must fit in its region; a region
  shorter than the window gets none); a window with more than ``max_n_frac`` non-ACGT bases is skipped (a gap in
  the track). The windows are cut by :func:`genomics_lm.genome.iter_window_batches`.
* **Track values**: each window's probability is written over its central bin of ``b = min(step, window)`` bases,
  ``[s + (window - b) // 2, s + (window - b) // 2 + b)``, so consecutive windows give adjacent, non-overlapping
  bins (the first and last ``(window - b) // 2`` bases of a region carry no value).
* **Coordinates and names**: a record named in samtools region syntax (``22:20000001-21000000``) is the chromosome
  ``22`` from 20,000,000 on, so its bins are written at chromosome positions (a track over the hg19 chr22 piece lands
  at ``22:20,000,000-21,000,000``); chromosome names are the genome's, renamed for the output by ``out_chrom_map``
  (two columns: genome name, name to write) and then ``out_prefix`` (``add``: ``22`` -> ``chr22``; ``strip``).
  Chromosome sizes (the bigWig header) come from the genome: a whole-chromosome record's length, or for region
  records the end of the last record on the chromosome (the true end where samtools cut the region at it).
* **Files**: ``PREFIX.NAME.bedGraph`` per label (4 columns, no track line, sorted by chromosome in natural order
  then start), and ``PREFIX.NAME.bw`` when pyBigWig is installed (``pip install genomics_lm[tracks]``) and
  ``bigwig`` is not False. Label names are made file-safe (characters other than letters, digits, ``._-`` become
  ``_``). All files are written under temporary names and renamed once every one is complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genomics_lm.errors import UserError

DEFAULT_MAX_N_FRAC = 0.5
WINDOWS_PER_CALL = 1024  # windows encoded and scored at a time


def safe_name(name: str) -> str:
    """A label name as a file-name part: characters other than letters, digits, ``._-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)) or "_"


def merge_intervals(iv: np.ndarray) -> np.ndarray:
    """Sorted, merged ``[start, end)`` intervals (m, 2) int64 from any (n, 2) int64 (overlapping or touching ones
    joined)."""
    iv = np.asarray(iv, dtype=np.int64).reshape(-1, 2)
    if not len(iv):
        return iv
    iv = iv[np.lexsort((iv[:, 1], iv[:, 0]))]
    out = [list(iv[0])]
    for s, e in iv[1:].tolist():
        if s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.asarray(out, dtype=np.int64)


def bin_of_window(start: np.ndarray, window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The central bins ``[bs, be)`` (int64 arrays like ``start``) that windows ``[start, start + window)`` are written
    over: width ``b = min(step, window)``, ``bs = start + (window - b) // 2``."""
    b = min(step, window)
    bs = np.asarray(start, dtype=np.int64) + (window - b) // 2
    return bs, bs + b


def output_chrom(chrom: str, out_chrom_map: dict[str, str] | None, out_prefix: str | None) -> str:
    """The name written for genome chromosome ``chrom``: ``out_chrom_map`` first, else the prefix rule."""
    from genomics_lm.peaks import rename_chrom

    return rename_chrom(chrom, out_chrom_map, out_prefix)


def track_regions(genome, spans, regions=None, chrom_map=None, prefix=None) -> tuple[list[tuple[str, int, int]], dict]:
    """``(intervals, stats)``: the regions to tile, as ``(record, start, end)`` in record coordinates (merged, in
    genome record order), and ``{"regions": n in the file or records, "regions_on_genome", "regions_outside",
    "regions_other_chrom"}``. Without ``regions``: every record, whole.

    Raises:
        UserError: a regions file none of whose chromosomes is in the genome (both name sets listed), or any error
            of :func:`genomics_lm.peaks.read_peaks` / :func:`genomics_lm.peaks.map_intervals`.
    """
    from genomics_lm.peaks import map_intervals, read_peaks

    if regions is None:
        out = [(name, 0, n) for name, n in genome.lengths.items()]
        return out, {"regions": len(out), "regions_on_genome": len(out), "regions_outside": 0,
                     "regions_other_chrom": 0}
    iv = read_peaks(regions)
    mapped = map_intervals(iv, spans, chrom_map=chrom_map, prefix=prefix, genome_path=genome.path, what="regions")
    out = []
    for name in genome.lengths:
        for s, e in merge_intervals(mapped.per_record.get(name, np.zeros((0, 2), np.int64))).tolist():
            if e > s:
                out.append((name, int(s), int(e)))
    st = mapped.stats
    return out, {"regions": st["total"], "regions_on_genome": st["on_genome"], "regions_outside": st["outside"],
                 "regions_other_chrom": st["other_chrom"]}


@dataclass
class Track:
    """Scored bins: ``chrom`` (n,) output names, ``start``/``end`` (n,) int64 chromosome coordinates, ``values`` (n, C)
    float64, sorted by chromosome (natural order) then start; ``sizes`` output chromosome -> size (bp)."""

    chrom: list[str]
    start: np.ndarray
    end: np.ndarray
    values: np.ndarray
    sizes: dict[str, int]


def chrom_sizes(spans, out_chrom_map=None, out_prefix=None) -> dict[str, int]:
    """Output chromosome name -> size: a whole record's length, or the largest known end of its region records
    (the chromosome's true end when samtools cut a region there, else the last record's end)."""
    sizes: dict[str, int] = {}
    for chrom, sps in spans.items():
        name = output_chrom(chrom, out_chrom_map, out_prefix)
        end = max((sp.chrom_end if sp.chrom_end is not None else sp.offset + sp.length) for sp in sps)
        if name in sizes and sizes[name] != end:
            raise UserError(f"two genome chromosomes are written as {name!r} (check --out-chrom-map)")
        sizes[name] = end
    return sizes


def score_track(checkpoint, genome, out_prefix, *, regions=None, chrom_map=None, prefix=None,
                out_chrom_map=None, out_prefix_rule: str | None = None, window: int | None = None,
                step: int | None = None, max_n_frac: float = DEFAULT_MAX_N_FRAC, both_strands: bool = False,
                bigwig: bool | None = None, batch_size: int = 64, device: str | None = "auto", overwrite: bool = False,
                progress: bool = False, cache_dir=None) -> dict:
    """The track stage of ``genomics-lm score``: tiled windows over the regions, one bedGraph (and bigWig) per label.

    ``bigwig``: None = write bigWig when pyBigWig is importable; True = required (a UserError without it); False =
    bedGraph only. See the module docstring for windows, bins, names and files.

    Returns:
        ``{"files": [paths], "windows", "skipped_n", "regions", "regions_on_genome", "regions_outside",
        "regions_other_chrom", "regions_too_short", "window", "step", "window_from", "bin_bp", "chroms":
        {name: [first bin start, last bin end]}, "label_names", "device", "seconds", "bigwig"}``.
    """
    from genomics_lm.files import atomic_write, check_output_path
    from genomics_lm.genome import Genome, iter_window_batches, n_windows
    from genomics_lm.peaks import _natural, read_chrom_map, record_spans
    from genomics_lm.score import (_bar, _check_out_folder, load_model, model_facts, predict_proba,
                                   resolve_device, resolve_window)
    from genomics_lm.tokenizer import reverse_complement

    if not 0 <= max_n_frac <= 1:
        raise UserError(f"--max-n-frac must be in [0, 1], got {max_n_frac}")
    if bigwig is None or bigwig:
        import importlib.util

        have_bw = importlib.util.find_spec("pyBigWig") is not None
        if bigwig and not have_bw:
            raise UserError("--bigwig needs pyBigWig (pip install 'genomics_lm[tracks]')")
        bigwig = have_bw
    dev = resolve_device(device)
    model = load_model(checkpoint, device=dev)
    tokenizer, add_cls, names, record = model_facts(model)
    window, step, where = resolve_window(record, tokenizer, window, step)
    paths = []
    for n in names:
        paths.append(Path(f"{out_prefix}.{safe_name(n)}.bedGraph"))
        if bigwig:
            paths.append(Path(f"{out_prefix}.{safe_name(n)}.bw"))
    if len({str(p) for p in paths}) != len(paths):
        raise UserError(f"label names {names} give the same file name twice")
    for p in paths:
        check_output_path(p, overwrite)
        _check_out_folder(p)
    cmap = read_chrom_map(chrom_map) if chrom_map is not None else None
    ocmap = read_chrom_map(out_chrom_map) if out_chrom_map is not None else None
    g = Genome(genome, cache_dir=cache_dir)
    spans = record_spans(g.lengths, g.path)
    span_of = {sp.record: sp for sps in spans.values() for sp in sps}
    intervals, stats = track_regions(g, spans, regions, cmap, prefix)
    too_short = sum(1 for _, s, e in intervals if e - s < window)
    total = sum(n_windows(e - s, window, step) for _, s, e in intervals)

    t0 = time.perf_counter()
    chroms, starts, values = [], [], []
    wstats: dict = {}
    bar = _bar(total, progress, "track")
    try:
        pending: list[tuple[str, int, bytes]] = []  # (record, window start, bases)

        def flush() -> None:
            rows = [tokenizer.encode(w) for _, _, w in pending]
            p = predict_proba(model, rows, add_cls=add_cls, batch_size=batch_size, device=dev)
            if both_strands:
                rc = [tokenizer.encode(reverse_complement(w.decode("ascii", "replace"))) for _, _, w in pending]
                p = 0.5 * (p + predict_proba(model, rc, add_cls=add_cls, batch_size=batch_size, device=dev))
            for (rec, s, _), v in zip(pending, p):
                sp = span_of[rec]
                chroms.append(sp.chrom)
                starts.append(sp.offset + s)
                values.append(v)
            bar.update(len(pending))
            pending.clear()

        for batch in iter_window_batches(g, intervals, window, step, max_n_frac, wstats):
            bar.update(batch.n_skipped)
            for off in batch.offsets.tolist():
                pending.append((batch.seqid, batch.start + off, batch.seq[off: off + window]))
                if len(pending) >= WINDOWS_PER_CALL:
                    flush()
        if pending:
            flush()
    finally:
        bar.close()
    seconds_scoring = time.perf_counter() - t0

    out_names = [output_chrom(c, ocmap, out_prefix_rule) for c in chroms]
    sizes = chrom_sizes(spans, ocmap, out_prefix_rule)
    bs, be = bin_of_window(np.asarray(starts, np.int64), window, step)
    vals = np.asarray(values, np.float64).reshape(len(starts), len(names))
    order_chroms = sorted(set(out_names), key=_natural)
    rank = {c: i for i, c in enumerate(order_chroms)}
    order = np.lexsort((bs, np.asarray([rank[c] for c in out_names], np.int64))) if out_names else np.zeros(0, int)
    track = Track([out_names[i] for i in order], bs[order], be[order], vals[order], sizes)
    _check_no_overlap(track)
    t1 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        i = 0
        for j, n in enumerate(names):
            tmp = stack.enter_context(atomic_write(paths[i]))
            write_bedgraph(tmp, track, j)
            i += 1
            if bigwig:
                tmp = stack.enter_context(atomic_write(paths[i]))
                write_bigwig(tmp, track, j)
                i += 1
    seconds_write = time.perf_counter() - t1
    extent = {}
    for c in order_chroms:
        sel = [k for k, x in enumerate(track.chrom) if x == c]
        extent[c] = [int(track.start[sel[0]]), int(track.end[sel[-1]])]
    return {"files": [str(p) for p in paths], "windows": int(wstats.get("kept", 0)),
            "skipped_n": int(wstats.get("skipped_n", 0)), **stats, "regions_tiled": len(intervals),
            "regions_too_short": too_short, "window": window, "step": step, "window_from": where,
            "bin_bp": min(step, window), "chroms": extent, "sizes": sizes, "label_names": names, "device": str(dev),
            "seconds": seconds_scoring + seconds_write, "seconds_write": seconds_write, "bigwig": bool(bigwig),
            "both_strands": bool(both_strands)}


def _check_no_overlap(track: Track) -> None:
    for i in range(1, len(track.chrom)):
        if track.chrom[i] == track.chrom[i - 1] and track.start[i] < track.end[i - 1]:
            raise UserError(f"bins overlap on {track.chrom[i]} at {track.start[i]} (genome records that overlap "
                            "on one chromosome, or two chromosomes written under one name)")


def write_bedgraph(path: str | os.PathLike, track: Track, label: int) -> None:
    """Four columns ``chrom start end value`` (``%.6g``), one line per bin, no header or track line."""
    with open(path, "w") as fh:
        for c, s, e, v in zip(track.chrom, track.start.tolist(), track.end.tolist(), track.values[:, label].tolist()):
            fh.write(f"{c}\t{s}\t{e}\t{v:.6g}\n")


def write_bigwig(path: str | os.PathLike, track: Track, label: int) -> None:
    """A bigWig of one label (pyBigWig): header = the track's chromosome sizes in natural order, one entry per bin."""
    import pyBigWig

    from genomics_lm.peaks import _natural

    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader([(c, int(track.sizes[c])) for c in sorted(track.sizes, key=_natural)])
        if len(track.chrom):
            bw.addEntries(list(track.chrom), track.start.tolist(), ends=track.end.tolist(),
                          values=track.values[:, label].astype(float).tolist())
    finally:
        bw.close()
