"""``genomics-lm bench tokenizer``: k-mer encoding throughput and end-to-end tokenize cost.

Prints two tables, all measured in the same run on the same genome (default: E. coli K-12):

1. Encoding throughput (Mbp/s, one thread) for each (k, stride): ``genomics_lm.tokenizer.encode``,
   the DNABERT-style baseline (``' '.join(seq[i:i+k] ...)`` then one dict lookup per k-mer) and a plain
   numpy copy of the same bytes (the physical ceiling), with ratios.
2. ``genomics-lm tokenize`` end to end in a fresh subprocess for each HDF5 codec (none, lzf, gzip):
   wall time, peak resident memory (``ru_maxrss`` of the child), file size against the raw token bytes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from genomics_lm.errors import UserError


def dnabert_style(seq: str, k: int, stride: int, vocab: dict[str, int]) -> list[int]:
    """The common Python baseline: k-mers joined into a space-separated string, then a dict lookup each."""
    text = " ".join(seq[i : i + k] for i in range(0, len(seq) - k + 1, stride))
    return [vocab.get(kmer, 1) for kmer in text.split(" ")]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_encode(seq: str, ks: list[int], strides: list[str], repeats: int) -> list[dict]:
    from genomics_lm.tokenizer import N_SPECIAL, encode

    raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    mbp = len(seq) / 1e6
    t_copy = _median_time(lambda: raw.copy(), repeats)
    rows = []
    for k, s in itertools.product(ks, strides):
        stride = k if s == "k" else int(s)
        vocab = {"".join(p): i + N_SPECIAL for i, p in enumerate(itertools.product("ACGT", repeat=k))}
        ours = encode(seq, k, stride)
        base = dnabert_style(seq, k, stride, vocab)
        if ours.tolist() != base:
            raise AssertionError(f"encode disagrees with the baseline for k={k} stride={stride}")
        t_ours = _median_time(lambda: encode(seq, k, stride), repeats)
        t_base = _median_time(lambda: dnabert_style(seq, k, stride, vocab), max(1, repeats // 3))
        rows.append({"k": k, "stride": stride, "ours_mbps": mbp / t_ours, "dnabert_mbps": mbp / t_base,
                     "memcpy_mbps": mbp / t_copy, "speedup_vs_dnabert": t_base / t_ours, "frac_of_memcpy": t_copy / t_ours})
    return rows


def bench_tokenize(fasta: Path, window_tokens: int, k: int, codecs: list[str]) -> list[dict]:
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
            import h5py

            size = raw = 0
            for name in ("train", "val", "test"):
                path = Path(tmp) / f"{name}.h5"
                size += path.stat().st_size
                with h5py.File(path) as f:
                    raw += f["tokens"].size * f["tokens"].dtype.itemsize
            rows.append({"compression": codec, "wall_s": wall, "peak_rss_mb": peak_kb / 1024,
                         "file_mb": size / 1e6, "raw_token_mb": raw / 1e6, "ratio_raw_over_file": raw / size})
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="genomics-lm bench tokenizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default_fasta = Path(os.environ.get("GENOMICS_LM_DATA", "../shared/data")) / "genomes" / "ecoli_k12_mg1655.fna.gz"
    p.add_argument("--fasta", type=Path, default=default_fasta, help=f"genome to use (default {default_fasta})")
    p.add_argument("--k", default="6", help="comma-separated k values for the throughput table")
    p.add_argument("--strides", default="k,1", help="comma-separated strides ('k' = non-overlapping)")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    p.add_argument("--window-tokens", type=int, default=4096, help="window size for the end-to-end run")
    p.add_argument("--codecs", default="none,lzf,gzip", help="HDF5 codecs to compare end to end")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    from genomics_lm.genome import Genome

    g = Genome(args.fasta)
    seq = "".join(g.fetch(n, 0, length) for n, length in g.lengths.items())
    print(f"genome: {args.fasta.name}, {len(seq) / 1e6:.2f} Mbp, torch/numpy single thread")
    enc = bench_encode(seq, [int(x) for x in args.k.split(",")], args.strides.split(","), args.repeats)
    print(f"\n{'k':>2} {'stride':>6} {'ours Mbp/s':>11} {'DNABERT-style':>14} {'memcpy':>9} {'x DNABERT':>10} {'of memcpy':>10}")
    for r in enc:
        print(f"{r['k']:>2} {r['stride']:>6} {r['ours_mbps']:>11.1f} {r['dnabert_mbps']:>14.2f} {r['memcpy_mbps']:>9.0f} "
              f"{r['speedup_vs_dnabert']:>9.0f}x {r['frac_of_memcpy']:>10.1%}")
    k0 = int(args.k.split(",")[0])
    tok = bench_tokenize(args.fasta, args.window_tokens, k0, args.codecs.split(","))
    print(f"\ngenomics-lm tokenize end to end (k={k0}, {args.window_tokens}-token windows, all three splits)")
    print(f"{'codec':<6} {'wall s':>7} {'peak RSS MB':>12} {'file MB':>8} {'raw tokens MB':>14} {'raw/file':>9}")
    for r in tok:
        print(f"{r['compression']:<6} {r['wall_s']:>7.2f} {r['peak_rss_mb']:>12.0f} {r['file_mb']:>8.2f} "
              f"{r['raw_token_mb']:>14.2f} {r['ratio_raw_over_file']:>9.2f}")
    if args.out:
        args.out.write_text(json.dumps({"encode": enc, "tokenize": tok}, indent=2))
    return 0
