"""``genomics-lm context-table``: the long-context experiment's table and plots (metric, time, memory vs context).

Parses, calls :mod:`genomics_lm.long_context`, prints a Markdown table and writes the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

OUTPUTS = ("context.tsv", "context.md", "metric_vs_context.png", "time_vs_context.png")

EPILOG = """\
Each EVAL is the --out-dir of 'genomics-lm evaluate' (or its metrics.json) of a model fine-tuned on a task built
by 'genomics-lm make-task --genome ... --context-bp C --select-bp S' (optionally --mask-outside-bp M, the
control). The context, the control and the attention type are read from the evaluation and its task store.
Every evaluation of one task must be on the same rows (the same bins or TSSs, strands and labels at every
context length: build them with one --select-bp), or the command stops. The k-mer baseline rows come from the
same metrics.json files (fitted on the same rows in the same evaluate runs).

The task is the name in each metrics.json ('genomics-lm evaluate --task-name'). --task-name NAME treats every
EVAL as one task named NAME instead: evaluations of tasks named apart (one name per context, e.g. ecoli_tss_2kb,
ecoli_tss_8kb, ecoli_tss_24kb_mask2kb) become one experiment, and the same-rows check then applies across all
of them.

writes, in --out-dir:
  context.tsv, context.md     task, context_bp, input (full or central M bp), method, runs, n, metrics as
                              mean ± sd over runs, s_per_step / step_vs_dense / peak_rss_mb / eval_seqs_per_s from
                              --bench (the same model config at the same lengths), the baseline's seconds
  metric_vs_context.png       metric vs context per attention type, baseline dashed, control hollow
  time_vs_context.png         seconds per training step and peak RSS vs context (with --bench)

example (scripts/long_context.sh runs the whole experiment and then this):
  genomics-lm context-table lc/k562/grid/*/eval/*/s*/ --bench lc/k562/bench.json --out-dir lc/k562/summary

in the workflow: a `long_context:` section of the config (experiment name -> its tasks, built at several
context_bp with one select_bp) runs the tasks' fine-tuning and evaluations, 'genomics-lm bench finetune' at
their context lengths (bench: true) and this command with --task-name NAME into RESULTS/context/NAME/, which
the report includes (workflow/rules/long_context.smk, workflow/schemas/config.schema.yaml).
"""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.cli import RawHelpFormatter

    p = argparse.ArgumentParser(
        prog="genomics-lm context-table", formatter_class=RawHelpFormatter, epilog=EPILOG,
        description="Tabulate and plot the long-context experiment: per task, context length and attention type "
        "the test metric (mean ± spread over seeds) next to the k-mer baseline on the same rows, the N-masked "
        "control, and seconds per training step and peak memory from 'genomics-lm bench finetune --json'.")
    p.add_argument("evals", nargs="+", metavar="EVAL", help="EVAL_DIR or metrics.json of 'genomics-lm evaluate'")
    p.add_argument("--bench", type=Path, default=None, metavar="JSON",
                   help="'genomics-lm bench finetune --json' output at the same lengths (timing and memory columns, "
                   "time_vs_context.png)")
    p.add_argument("--task-name", default=None, metavar="NAME",
                   help="treat every EVAL as one task named NAME (default: the task name in each metrics.json); "
                   "the same-rows check then applies across all of them")
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="folder for the tables and plots")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs in --out-dir (without --bench, also remove an old "
                   "time_vs_context.png, which belongs to another benchmark)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.errors import UserError
    from genomics_lm.long_context import markdown, read_context_eval, write_outputs

    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise UserError(f"--out-dir {args.out_dir}: is a file, not a folder")
    existing = [n for n in OUTPUTS if (args.out_dir / n).exists()]
    if existing and not args.overwrite:
        raise UserError(f"--out-dir {args.out_dir}: already holds {', '.join(existing)} (use --overwrite)")
    if args.task_name is not None and not args.task_name.strip():
        raise UserError("--task-name: empty name")
    evals = [read_context_eval(p, task=args.task_name) for p in args.evals]
    records, written, missing = write_outputs(evals, args.bench, args.out_dir)
    stale = args.out_dir / "time_vs_context.png"
    if args.bench is None and stale.exists():  # --overwrite (checked above): a plot of an earlier benchmark
        stale.unlink()
    print(markdown(records), end="")
    if missing:
        print("not run: " + "; ".join(missing))
    for p in written:
        print(f"wrote {p}")
    return 0
