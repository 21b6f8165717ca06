"""``genomics-lm bench tokenizer``: parse, run the measurements of :mod:`genomics_lm.bench.tokenizer`, print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter

DESCRIPTION = """\
K-mer tokenizer throughput, all measured in the same run on the same genome
(default: E. coli K-12 from the data folder, $GENOMICS_LM_DATA or ../shared/data).

1. Encoding (the kernel, one thread) per k and stride, in Mbp/s: genomics-lm's
   vectorised encode, the DNABERT-style baseline (k-mers joined into a string,
   then one dict lookup each) and a plain numpy copy of the same bytes (memcpy,
   the physical ceiling).
2. Tokenize end to end, in this process (one thread): the stage function that
   genomics-lm tokenize runs (read and checksum the FASTA, N filter, encode,
   write all three splits to HDF5), on --copies copies of the genome, in Mbp/s
   beside the kernel's figure of step 1.
3. genomics-lm tokenize in a fresh interpreter per HDF5 codec: wall time with
   the imports, peak resident memory, file size against the raw token bytes.

Results measured so far: see the README's Benchmarks section."""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.files import default_data_dir

    default_fasta = default_data_dir() / "genomes" / "ecoli_k12_mg1655.fna.gz"
    p = argparse.ArgumentParser(prog="genomics-lm bench tokenizer", description=DESCRIPTION,
                                formatter_class=RawHelpFormatter)
    p.add_argument("--fasta", type=Path, default=default_fasta, help="genome to use")
    p.add_argument("--k", default="6", help="comma-separated k values for the encoding table; the first one "
                   "is used end to end")
    p.add_argument("--strides", default="k,1", help="comma-separated strides; 'k' = non-overlapping k-mers")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats per measurement (the median is shown)")
    p.add_argument("--window-tokens", type=int, default=4096, help="tokens per window for the end-to-end runs")
    p.add_argument("--copies", type=int, default=10,
                   help="copies of the genome in the in-process end-to-end input (10 x E. coli = 46 Mbp)")
    p.add_argument("--codecs", default="none,lzf,gzip",
                   help="comma-separated HDF5 codecs for the fresh-interpreter runs; empty to skip them")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON to this file")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.bench import tokenizer as bench
    from genomics_lm.errors import UserError

    if args.repeats < 1 or args.copies < 1:
        raise UserError(f"--repeats and --copies must be at least 1, got {args.repeats} and {args.copies}")
    ks = [int(x) for x in args.k.split(",")]
    strides = [s.strip() for s in args.strides.split(",") if s.strip()]
    seq = bench.genome_sequence(args.fasta)
    print(f"genome: {args.fasta.name}, {len(seq) / 1e6:.2f} Mbp, one thread")
    enc = bench.bench_encode(seq, ks, strides, args.repeats)
    print("\nencoding (the kernel)")
    print(bench.format_encode(enc))
    e2e = bench.bench_end_to_end(args.fasta, ks[0], strides, args.window_tokens, args.repeats, args.copies)
    print(f"\ntokenize end to end, in-process stage function, one thread (k={ks[0]}, {args.window_tokens}-token "
          f"windows, all three splits, {args.copies} x the genome = {e2e[0]['mbp']:.1f} Mbp)")
    print(bench.format_end_to_end(e2e, enc))
    codecs = [c for c in args.codecs.split(",") if c]
    tok = bench.bench_codecs(args.fasta, args.window_tokens, ks[0], codecs) if codecs else []
    if tok:
        print(f"\ngenomics-lm tokenize in a fresh interpreter (k={ks[0]}, {args.window_tokens}-token windows, "
              "all three splits, imports included)")
        print(bench.format_codecs(tok))
    if args.out:
        args.out.write_text(json.dumps({"encode": enc, "end_to_end": e2e, "tokenize": tok}, indent=2))
    return 0
