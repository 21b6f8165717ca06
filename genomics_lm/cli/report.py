"""``genomics-lm report``: one self-contained HTML page of a whole run (tables, curves, benchmarks, patterns).

Parses, calls :mod:`genomics_lm.report`, writes the page and prints its path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import check_out_file

EPILOG = """\
The page is one file: images are embedded (data: URIs), the style sheet is inline, there are no scripts and no
links to other files, so it can be e-mailed. Sections, in this order, each left out when its option is not given:

  evaluations          per task the 'genomics-lm compare' table (attention type x metric, mean ± spread over
                       seeds, the k-mer baseline row, --published rows marked "published, not reproduced",
                       the test-set size n) and the ROC and PR images of every evaluation
  long context         each --context folder: context.tsv as a table, metric_vs_context.png, time_vs_context.png
  attention benchmark  each --bench-attention JSON: time / peak memory per method and length, and its plot (the
                       .png beside the JSON, else drawn from it)
  pretraining curves   --pretrain-runs NAME=RUN_DIR: RUN_DIR/csv/metrics.csv, last values and one figure
  fine-tuning curves   --finetune-runs NAME=RUN_DIR: the same
  attention patterns   each --patterns folder of 'genomics-lm draw-pattern': fractions and pictures
  notes                --notes FILE, as preformatted text

The options that take several values may also be repeated (--evals A --evals B is --evals A B).
Every input is read and checked before the page is written: a folder without metrics.json or a run without
csv/metrics.csv is a one-line error and nothing is written.

example:
  genomics-lm report --out results/report.html --title "E. coli sigma-70" \\
      --evals results/eval/sigma70/*/s*/ --published data/published.tsv \\
      --pretrain-runs bigbird=results/pretrain/tiny --finetune-runs bigbird=results/finetune/tiny \\
      --patterns results/patterns
"""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.cli import RawHelpFormatter

    p = argparse.ArgumentParser(
        prog="genomics-lm report", formatter_class=RawHelpFormatter, epilog=EPILOG,
        description="Write one self-contained HTML report: the comparison tables of evaluations next to the k-mer "
        "baseline and published figures, ROC/PR curves, the long-context experiment, the attention benchmark, "
        "pretraining and fine-tuning curves and the attention patterns.")
    p.add_argument("--out", type=Path, required=True, metavar="REPORT.html", help="the HTML file to write")
    p.add_argument("--title", default="genomics_lm report", metavar="TEXT", help="the page title")
    p.add_argument("--evals", nargs="+", action="extend", default=None, metavar="EVAL_DIR",
                   help="--out-dir folders of 'genomics-lm evaluate' (metrics.json, roc.png, pr.png)")
    p.add_argument("--published", type=Path, default=None, metavar="TSV",
                   help="published figures shown beside ours (header 'task method metric value source', e.g. "
                   "data/published.tsv); used with --evals")
    p.add_argument("--context", nargs="+", action="extend", default=None, metavar="SUMMARY_DIR",
                   help="--out-dir folders of 'genomics-lm context-table' (context.tsv and its plots)")
    p.add_argument("--bench-attention", nargs="+", action="extend", default=None, metavar="JSON",
                   help="outputs of 'genomics-lm bench attention' (--out JSON; its .png beside it is shown if present)")
    p.add_argument("--pretrain-runs", nargs="+", action="extend", default=None, metavar="NAME=RUN_DIR",
                   help="pretraining run folders (RUN_DIR/csv/metrics.csv), each with a name")
    p.add_argument("--finetune-runs", nargs="+", action="extend", default=None, metavar="NAME=RUN_DIR",
                   help="fine-tuning run folders (RUN_DIR/csv/metrics.csv), each with a name")
    p.add_argument("--patterns", nargs="+", action="extend", default=None, metavar="DIR",
                   help="--out-dir folders of 'genomics-lm draw-pattern' (pattern_*.png, patterns.json)")
    p.add_argument("--notes", type=Path, default=None, metavar="FILE.md", help="extra text, shown as preformatted text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.files import check_output_path
    from genomics_lm.report import build_report, write_report

    check_out_file(args.out, "report.html")
    check_output_path(args.out, args.overwrite)
    page = build_report(title=args.title, evals=args.evals or [], published=args.published,
                        context=args.context or [], bench_attention=args.bench_attention or [],
                        pretrain_runs=args.pretrain_runs or [], finetune_runs=args.finetune_runs or [],
                        patterns=args.patterns or [], notes=args.notes)
    write_report(page, args.out)
    print(f"wrote {args.out} ({len(page.encode()) / 1024:,.0f} KiB)")
    return 0
