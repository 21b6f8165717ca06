"""``genomics-lm compare``: one table of evaluations (mean ± spread over seeds) next to the k-mer baseline.

Parses, calls :mod:`genomics_lm.compare`, prints a Markdown table and writes it as TSV (``--out``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import check_out_file

EPILOG = """\
Each EVAL is the --out-dir of 'genomics-lm evaluate' (or its metrics.json), optionally named: NAME=EVAL.
Evaluations of one task with the same name (by default "<attention> <scratch|pretrained RUN>[ +both strands]")
are runs of one method (e.g. seeds): the table shows their mean ± sample standard deviation. The k-mer baseline
row of a task comes from the same metrics.json files (fitted in each evaluate run on the same rows); every
evaluation of a task must be on the same rows (same split and rows_sha256), or the command stops.

example:
  genomics-lm compare results/eval/sigma70/dense_s*/ results/eval/sigma70/bigbird_s*/ \\
      --published data/published.tsv --out results/compare.tsv
"""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.cli import RawHelpFormatter

    p = argparse.ArgumentParser(
        prog="genomics-lm compare", formatter_class=RawHelpFormatter, epilog=EPILOG,
        description="Compare evaluations: per task and method the mean ± spread over runs of MCC/AUROC/AUPRC "
        "(macro AUROC/AUPRC/MCC for multi-label tasks), the k-mer baseline on the same rows, and published "
        "figures marked 'published, not reproduced'.")
    p.add_argument("evals", nargs="+", metavar="EVAL", help="[NAME=]EVAL_DIR or [NAME=]metrics.json")
    p.add_argument("--published", type=Path, default=None, metavar="TSV",
                   help="published figures to show beside ours: a TSV with the header "
                   "'task method metric value source' (e.g. data/published.tsv)")
    p.add_argument("--out", type=Path, default=None, metavar="TSV", help="also write the table here (tab-separated)")
    return p


def split_name(spec: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path (which may itself contain '=' only after a '/') -> (None, PATH)."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and path:
        return name.strip(), path
    return None, spec


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.compare import compare, markdown, read_evaluation, read_published, write_tsv

    evaluations = [read_evaluation(path, name) for name, path in map(split_name, args.evals)]
    published = read_published(args.published) if args.published else None
    rows = compare(evaluations, published)
    print(markdown(rows))
    if args.out is not None:
        check_out_file(args.out, "compare.tsv")
        write_tsv(rows, args.out)
        print(f"wrote {args.out}")
    return 0
