"""``genomics-lm bench attention``: parse, run :func:`genomics_lm.bench.attention.run`, print the table.

The measurement (methods, worker processes, memory figures) is documented in :mod:`genomics_lm.bench.attention`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from genomics_lm.bench.attention import METHODS, PASSES, Settings, method_names

DESCRIPTION = """\
Time and peak memory of one attention layer (hidden 256, 8 heads x 32, fp32,
batch 1: a fused q/k/v projection, then the attention) for each method, backend,
sequence length and pass, all measured in the same run:

  dense/sdpa              torch scaled_dot_product_attention (the baseline)
  bigbird/blocked, /flex  ours: block 64, 3 window, 2 global, 3 random blocks
  longformer/blocked, /flex
                          ours: window 512 (256 each side), token 0 global
  hf-bigbird/hf           Hugging Face BigBirdBlockSparseAttention (block 64,
                          3 random blocks); needs transformers
  hf-longformer/hf        Hugging Face LongformerSelfAttention (window 512,
                          token 0 global); needs transformers

Passes: fwd (inference, no gradients) and fwd+bwd (forward, then backward into
the input and the weights). FlexAttention has no backward on CPU: those cases
are skipped.

Each method runs in its own fresh process. Time is the median of the timed
runs after one warm-up run; slow cases get fewer runs, and a case whose single
run is estimated to exceed --max-seconds (or the free memory) is skipped with
the reason. Memory: "RSS MB" is the peak resident-set growth over the timed
runs (CUDA: peak allocated bytes); "tensor MB" is the peak of live tensor bytes
in one more, profiled run (CPU only).

Prints one line per case as it goes, then a table with speed-ups against dense
SDPA and HF BigBird and memory ratios against HF BigBird. Writes the records as
JSON (--out) and a PNG plot next to it. Other processes on the machine inflate
the times: the load average is printed and stored.

Results measured so far: see the README's Benchmarks section."""

_DEFAULT = Settings()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genomics-lm bench attention", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default=",".join(map(str, _DEFAULT.lengths)), metavar="T,T,...",
                   help="comma-separated sequence lengths in tokens, each >= 64 (default: %(default)s)")
    p.add_argument("--methods", default=",".join(method_names()), metavar="M/B,...",
                   help="comma-separated method/backend pairs from the list above (default: all)")
    p.add_argument("--passes", default=",".join(PASSES), metavar="P,...",
                   help="fwd, fwd+bwd or both, comma-separated (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=_DEFAULT.repeats, metavar="N",
                   help="timed runs per case after one warm-up run; the median is reported (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=_DEFAULT.max_seconds, metavar="S",
                   help="time budget per case: slow cases get fewer runs, and a case whose single run is "
                        "estimated longer is skipped (default: %(default)s)")
    p.add_argument("--threads", type=int, default=_DEFAULT.threads, metavar="N",
                   help="torch intra-op threads of each method's process (default: %(default)s)")
    p.add_argument("--device", default=_DEFAULT.device,
                   help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--core", action="store_true",
                   help="time the attention alone: q, k, v of shape (1, 8, T, 32) are the inputs, no projection "
                        "(HF BigBird through its bigbird_block_sparse_attention; HF Longformer has no such entry "
                        "point and is skipped)")
    p.add_argument("--no-tensor-memory", action="store_true",
                   help="skip the extra profiled run per case that measures the peak of live tensor bytes")
    p.add_argument("--out", default="bench_attention.json", metavar="PATH",
                   help="JSON output; the PNG plot is written next to it with the suffix .png (default: %(default)s)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    from genomics_lm.errors import UserError

    try:
        lengths = tuple(sorted({int(x) for x in args.lengths.split(",") if x.strip()}))
    except ValueError:
        raise UserError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    known = dict(zip(method_names(), METHODS))
    wanted = [s.strip() for s in args.methods.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise UserError(f"--methods: unknown {unknown or wanted} (choose from {', '.join(known)})")
    passes = tuple(p.strip() for p in args.passes.split(",") if p.strip())
    try:
        return Settings(lengths=lengths, methods=tuple(known[w] for w in wanted), passes=passes,
                        repeats=args.repeats, threads=args.threads, max_seconds=args.max_seconds,
                        device=args.device, core=args.core, tensor_memory=not args.no_tensor_memory)
    except ValueError as exc:
        raise UserError(re.sub(r"\b(lengths|passes|repeats|threads)\b", r"--\1", str(exc))) from None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    from genomics_lm.bench.attention import format_table, plot, run, write_json

    load, ncpu = os.getloadavg()[0], os.cpu_count() or 1
    print(f"bench attention ({'attention core' if settings.core else 'layer'}): lengths {list(settings.lengths)}, "
          f"passes {list(settings.passes)}, {settings.threads} threads, repeats {settings.repeats}, "
          f"load average {load:.2f} on {ncpu} CPUs", flush=True)
    if load > 0.5 * ncpu:
        print(f"warning: the machine is busy (load {load:.2f}); timings will be inflated", file=sys.stderr)
    result = run(settings, log=lambda line: print(line, flush=True))
    out = Path(args.out)
    write_json(result, out)
    png = out.with_suffix(".png")
    plot(result["records"], png)
    print()
    print(format_table(result["records"]))
    print(f"\nwrote {out} and {png}")
    return 0
