"""``genomics-lm summarize``: the final validation loss/accuracy of pretraining runs next to the unigram baseline.

Parses, calls :func:`genomics_lm.summary.summarize_pretraining`, writes the TSV (``--out``) and prints an aligned
table with the notes that say how to read it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import check_out_file
from genomics_lm.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genomics-lm summarize",
        description="Summarize pretraining runs: final validation masked-token loss and accuracy of each run "
        "(RUN/csv/metrics.csv) next to the context-free unigram baseline of the token stores.",
    )
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR",
                   help="a pretraining run folder (its --trainer.default_root_dir) and the name of its row, "
                   "e.g. bigbird=results/demo/pretrain/ecoli/bigbird; repeat for each run")
    p.add_argument("--tokens", type=Path, required=True, metavar="DIR",
                   help="the token stores the runs trained on: DIR/train.h5 and DIR/val.h5 "
                   "(the --out-dir of 'genomics-lm tokenize')")
    p.add_argument("--out", type=Path, default=None, metavar="TSV",
                   help="also write the table here (tab-separated, '#' comment lines first)")
    return p


def parse_runs(specs: list[str]) -> dict[str, Path]:
    runs: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise UserError(f"--run {spec!r}: expected NAME=RUN_DIR, "
                            "e.g. --run bigbird=results/demo/pretrain/ecoli/bigbird")
        if name in runs:
            raise UserError(f"--run {spec!r}: the name {name!r} is given twice")
        runs[name] = Path(path)
    return runs


def format_table(rows: list[dict]) -> str:
    """Aligned text: the columns (source last, unpadded), then the notes that say how to read them."""
    from genomics_lm.summary import COLUMNS, NOTES, format_value

    cells = [list(COLUMNS)] + [[format_value(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in cells:
        left = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:])]
        lines.append("  ".join(left + [row[-1]]))
    lines += [f"note: {note}" for note in NOTES]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    runs = parse_runs(args.run)
    from genomics_lm.summary import summarize_pretraining, write_summary_tsv

    rows = summarize_pretraining(runs, args.tokens / "train.h5", args.tokens / "val.h5")
    print(format_table(rows))
    if args.out is not None:
        check_out_file(args.out, "summary.tsv")
        write_summary_tsv(rows, args.out)
        print(f"wrote {args.out}")
    return 0
