"""``genomics-lm bench score``: parse, run :func:`genomics_lm.bench.score.run`, print the table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter

DESCRIPTION = """\
Scoring throughput, all in one run: sequences/s of the tiny and base fine-tuning
models (configs/finetune/{tiny,base}.yaml, RANDOMLY INITIALISED: timing only) on
1 kb and 16 kb sequences (windows of the phage lambda genome), batched against
one sequence at a time (the baseline of the same run); variants/s (real dbSNP
SNVs on the hg19 chr22 piece, 1 kb windows, tiny model), batched vs batch 1; and
the wall time to score and write a 1 Mb track (the whole hg19 chr22 piece, tiny
model, 1 kb windows). fp32; CPU unless --device says otherwise. The default
counts keep a run to a few minutes at most on one busy CPU core; other processes
on the machine inflate the times (the load average is printed).
See genomics_lm/bench/score.py for what is timed."""


def main(argv: list[str]) -> int:
    from genomics_lm.bench.score import Settings, format_table, run

    d = Settings()
    p = argparse.ArgumentParser(prog="genomics-lm bench score", description=DESCRIPTION,
                                formatter_class=RawHelpFormatter)
    p.add_argument("--configs", default="tiny,base", help="fine-tuning configs to time (tiny, base)")
    p.add_argument("--lengths", default="1000,16000", help="sequence lengths in bp, comma-separated")
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="sequences per model and length (default: 32/4 tiny at 1k/16k, 8/2 base)")
    p.add_argument("--batch", type=int, default=d.batch, help="sequences per forward pass when batched")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed passes (median)")
    p.add_argument("--variants", type=int, default=d.variants, help="dbSNP variants to score (0: skip)")
    p.add_argument("--no-track", action="store_true", help="skip the 1 Mb track")
    p.add_argument("--device", default=d.device, help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    from genomics_lm.errors import UserError

    try:
        lengths = tuple(int(x) for x in args.lengths.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    configs = tuple(x.strip() for x in args.configs.split(",") if x.strip())
    if not set(configs) <= {"tiny", "base"}:
        raise UserError(f"--configs: choose from tiny, base (got {args.configs!r})")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    s = Settings(lengths=lengths, configs=configs, batch=args.batch, repeats=args.repeats, variants=args.variants,
                 track=not args.no_track, device=args.device)
    if args.n is not None:
        s.n = {(c, n): args.n for c in configs for n in lengths}
    result = run(s, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0
