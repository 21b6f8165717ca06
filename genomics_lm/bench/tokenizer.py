"""Tokenizer benchmark: k-mer encoding throughput and the cost of ``tokenize`` end to end (measurement only).

All in the same run on the same genome (``genomics-lm bench tokenizer``, :mod:`genomics_lm.cli.bench_tokenizer`,
prints the tables):

* :func:`bench_encode` - Mbp/s (one thread) of :func:`genomics_lm.tokenizer.encode` (the kernel) per (k,
  stride), of the DNABERT-style baseline (k-mers joined into a string, one dict lookup each) and of a plain
  numpy copy of the same bytes (the physical ceiling).
* :func:`bench_end_to_end` - Mbp/s of the stage function :func:`genomics_lm.tokenize.tokenize_genome` in this
  process (FASTA read and checksum, N filter, encoding, HDF5 writes of all three splits: one thread, so one
  core), to set beside the kernel's figure.
* :func:`bench_codecs` - ``genomics-lm tokenize`` in a fresh interpreter per HDF5 codec: wall time with the
  imports, peak resident memory, file size against the raw token bytes.

Figures measured so far: the README's Benchmarks section.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from genomics_lm.errors import UserError


def dnabert_style(seq: str, k: int, stride: int, vocab: dict[str, int]) -> list[int]:
    """The common Python baseline: k-mers joined into a space-separated string, then a dict lookup each."""
    text = " ".join(seq[i : i + k] for i in range(0, len(seq) - k + 1, stride))
    return [vocab.get(kmer, 1) for kmer in text.split(" ")]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def parse_strides(k: int, strides: list[str]) -> list[int]:
    """``"k"`` -> k, numbers as given (deduplicated, in order)."""
    out = []
    for s in strides:
        stride = k if s == "k" else int(s)
        if stride not in out:
            out.append(stride)
    return out


def genome_sequence(fasta: Path) -> str:
    """All records of ``fasta`` concatenated (the encoding benchmark's input)."""
    from genomics_lm.genome import Genome

    g = Genome(fasta)
    return "".join(g.fetch(n, 0, length) for n, length in g.lengths.items())


def bench_encode(seq: str, ks: list[int], strides: list[str], repeats: int) -> list[dict]:
    """Encoding throughput per (k, stride): ours, the DNABERT-style baseline and memcpy, in Mbp/s.

    Checks first that ours and the baseline give the same ids.
    """
    from genomics_lm.tokenizer import N_SPECIAL, encode

    raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    mbp = len(seq) / 1e6
    t_copy = median_time(lambda: raw.copy(), repeats)
    rows = []
    for k in ks:
        vocab = {"".join(p): i + N_SPECIAL for i, p in enumerate(itertools.product("ACGT", repeat=k))}
        for stride in parse_strides(k, strides):
            ours = encode(seq, k, stride)
            base = dnabert_style(seq, k, stride, vocab)
            if ours.tolist() != base:
                raise AssertionError(f"encode disagrees with the baseline for k={k} stride={stride}")
            t_ours = median_time(lambda: encode(seq, k, stride), repeats)
            t_base = median_time(lambda: dnabert_style(seq, k, stride, vocab), max(1, repeats // 3))
            rows.append({"k": k, "stride": stride, "ours_mbps": mbp / t_ours, "dnabert_mbps": mbp / t_base,
                         "memcpy_mbps": mbp / t_copy, "speedup_vs_dnabert": t_base / t_ours,
                         "frac_of_memcpy": t_copy / t_ours})
    return rows


def write_copies(fasta: Path, copies: int, out: Path) -> Path:
    """A plain FASTA at ``out`` holding ``copies`` copies of every record of ``fasta`` (``NAME_copyI``)."""
    from genomics_lm.genome import Genome

    g = Genome(fasta)
    with open(out, "w") as fh:
        for i in range(copies):
            for name, length in g.lengths.items():
                seq = g.fetch(name, 0, length)
                fh.write(f">{name}_copy{i}\n")
                fh.writelines(seq[j : j + 80] + "\n" for j in range(0, length, 80))
    return out


def bench_end_to_end(fasta: Path, k: int, strides: list[str], window_tokens: int, repeats: int,
                     copies: int = 1) -> list[dict]:
    """The stage function :func:`~genomics_lm.tokenize.tokenize_genome` in this process (one thread), per stride.

    Input: ``copies`` copies of ``fasta`` as one plain FASTA (its index built before timing). Each timed call
    reads the FASTA (checksum included), applies the N filter, encodes, and writes all three splits to a
    temporary folder. Mbp/s counts the bases of the input; the median of ``repeats`` calls.
    """
    from genomics_lm.tokenize import tokenize_genome

    rows = []
    with tempfile.TemporaryDirectory(prefix="genomics_lm-bench-") as tmp:
        src = write_copies(fasta, copies, Path(tmp) / "genome.fa")
        from genomics_lm.genome import Genome

        total_bp = Genome(src, cache_dir=Path(tmp) / "cache").total_bp  # builds the index once

        for stride in parse_strides(k, strides):
            def run() -> dict:
                with tempfile.TemporaryDirectory(dir=tmp) as out:
                    outputs = {s: Path(out) / f"{s}.h5" for s in ("train", "val", "test")}
                    return tokenize_genome(src, outputs, k=k, stride=stride, window_tokens=window_tokens,
                                           progress=False, cache_dir=Path(tmp) / "cache")

            summary = run()  # warm-up (first touch of the code paths and the page cache)
            wall = median_time(run, repeats)
            rows.append({"k": k, "stride": stride, "window_tokens": window_tokens, "copies": copies,
                         "mbp": total_bp / 1e6, "wall_s": wall, "mbps": total_bp / 1e6 / wall,
                         "rows": sum(s["rows"] for s in summary.values())})
    return rows


def bench_codecs(fasta: Path, window_tokens: int, k: int, codecs: list[str]) -> list[dict]:
    """``genomics-lm tokenize`` in a fresh interpreter per HDF5 codec: wall time, peak RSS, file size."""
    import h5py

    rows = []
    for codec in codecs:
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["tokenize", "--fasta", str(fasta), "--out-dir", tmp, "--k", str(k), "--window-tokens",
                    str(window_tokens), "--compression", codec, "--no-progress"]
            # a fresh interpreter per codec that reports its own peak RSS (interpreter + imports included)
            code = ("import resource, sys; from genomics_lm.cli import main; rc = main(sys.argv[1:]); "
                    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise UserError(f"tokenize failed: {res.stderr.strip()}")
            peak_kb = int(res.stderr.strip().splitlines()[-1].split()[1])
            size = raw = 0
            for name in ("train", "val", "test"):
                path = Path(tmp) / f"{name}.h5"
                size += path.stat().st_size
                with h5py.File(path) as f:
                    raw += f["tokens"].size * f["tokens"].dtype.itemsize
            rows.append({"compression": codec, "wall_s": wall, "peak_rss_mb": peak_kb / 1024,
                         "file_mb": size / 1e6, "raw_token_mb": raw / 1e6, "ratio_raw_over_file": raw / size})
    return rows


def format_encode(rows: list[dict]) -> str:
    lines = [f"{'k':>2} {'stride':>6} {'ours Mbp/s':>11} {'DNABERT-style':>14} {'memcpy':>9} {'x DNABERT':>10} {'of memcpy':>10}"]
    for r in rows:
        lines.append(f"{r['k']:>2} {r['stride']:>6} {r['ours_mbps']:>11.1f} {r['dnabert_mbps']:>14.2f} "
                     f"{r['memcpy_mbps']:>9.0f} {r['speedup_vs_dnabert']:>9.0f}x {r['frac_of_memcpy']:>10.1%}")
    return "\n".join(lines)


def format_end_to_end(rows: list[dict], encode_rows: list[dict]) -> str:
    """End-to-end Mbp/s per (k, stride) beside the kernel's (``encode``) Mbp/s of the same run."""
    kernel = {(r["k"], r["stride"]): r["ours_mbps"] for r in encode_rows}
    lines = [f"{'k':>2} {'stride':>6} {'encode Mbp/s':>13} {'end-to-end Mbp/s':>17} {'of encode':>10} {'wall s':>7} {'windows':>8}"]
    for r in rows:
        enc = kernel.get((r["k"], r["stride"]))
        enc_text = f"{enc:>13.1f}" if enc else f"{'-':>13}"
        frac = f"{r['mbps'] / enc:>10.0%}" if enc else f"{'-':>10}"
        lines.append(f"{r['k']:>2} {r['stride']:>6} {enc_text} {r['mbps']:>17.1f} {frac} {r['wall_s']:>7.3f} {r['rows']:>8,}")
    return "\n".join(lines)


def format_codecs(rows: list[dict]) -> str:
    lines = [f"{'codec':<6} {'wall s':>7} {'peak RSS MB':>12} {'file MB':>8} {'raw tokens MB':>14} {'raw/file':>9}"]
    for r in rows:
        lines.append(f"{r['compression']:<6} {r['wall_s']:>7.2f} {r['peak_rss_mb']:>12.0f} {r['file_mb']:>8.2f} "
                     f"{r['raw_token_mb']:>14.2f} {r['ratio_raw_over_file']:>9.2f}")
    return "\n".join(lines)
