"""``genomics-lm``: the command line. The only package that parses arguments and prints.

One module per command (``genomics_lm/cli/<command>.py``), each exposing ``main(argv: list[str]) -> int``:
it parses, calls a stage function of the package, and prints. Modules are imported only when their command
runs, so ``genomics-lm --help`` is instant. :class:`~genomics_lm.errors.UserError` becomes a one-line
message and exit status 2. :func:`dispatch` is shared with ``genomics-lm bench <what>``.
"""

from __future__ import annotations

import argparse
import importlib
import sys


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The commands' help format: "(default: X)" added once, and not where the help states its default or
    where there is none (None/False)."""

    def _get_help_string(self, action):
        helptext = action.help or ""
        if action.default is None or action.default is False or "default" in helptext:
            return helptext
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter` that keeps the description's line breaks (tables, lists)."""


def add_chr_prefix_options(group, what: str) -> None:
    """``--add-chr-prefix`` / ``--strip-chr-prefix`` (one of them, ``dest="chr_prefix"``) for names in ``what``:
    the spelling rule shared by ``make-task`` and ``score`` (applied after ``--chrom-map``)."""
    pre = group.add_mutually_exclusive_group()
    pre.add_argument("--add-chr-prefix", dest="chr_prefix", action="store_const", const="add",
                     help=f"{what} names without 'chr' get it ('22' -> 'chr22'; after --chrom-map)")
    pre.add_argument("--strip-chr-prefix", dest="chr_prefix", action="store_const", const="strip",
                     help=f"{what} names lose a leading 'chr' ('chr22' -> '22'; after --chrom-map)")


def check_out_file(path, example: str) -> None:
    """``--out`` must name a file: a folder is a one-line error suggesting ``path/example``."""
    from genomics_lm.errors import UserError

    if path.is_dir():
        raise UserError(f"{path}: --out is a folder; give a file name, e.g. {path / example}")

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenize": ("genomics_lm.cli.tokenize", "tokenize a FASTA genome into k-mer windows in an HDF5 token store"),
    "make-task": ("genomics_lm.cli.make_task", "build fine-tuning task stores (train/val/test.h5) from FASTA pairs or labelled tables"),
    "pretrain": ("genomics_lm.cli.pretrain", "masked-LM pretraining with PyTorch Lightning (LightningCLI: fit/validate)"),
    "finetune": ("genomics_lm.cli.finetune", "fine-tune on a task folder of 'make-task' (LightningCLI: fit/validate)"),
    "evaluate": ("genomics_lm.cli.evaluate", "metrics of a fine-tuned model on a task split next to a k-mer baseline"),
    "compare": ("genomics_lm.cli.compare", "compare evaluations: mean ± spread over seeds next to the k-mer baseline and published figures"),
    "context-table": ("genomics_lm.cli.context_table", "the long-context experiment: metric, time and memory vs context per attention type (table + plots)"),
    "score": ("genomics_lm.cli.score", "score sequences (FASTA), genome tracks (bedGraph/bigWig) or variant effects (VCF) with a fine-tuned model"),
    "summarize": ("genomics_lm.cli.summarize", "summarize pretraining runs: final val loss/accuracy next to the baselines"),
    "draw-pattern": ("genomics_lm.cli.draw_pattern", "pictures of the attention patterns (layers x heads) and the fraction of pairs attended"),
    "report": ("genomics_lm.cli.report", "one self-contained HTML report: comparison tables, ROC/PR, long context, benchmarks, curves, patterns"),
    "bench": ("genomics_lm.cli.bench", "benchmarks: 'bench attention', 'bench tokenizer', 'bench train', 'bench finetune', 'bench score'"),
}


def usage(prog: str, about: str, commands: dict[str, tuple[str, str]], what: str = "command") -> str:
    """The usage text of a dispatcher: one line per command with its help."""
    lines = [f"usage: {prog} <{what}> [options]", "", about, "", f"{what}s:"]
    width = max(len(c) for c in commands)
    for name, (_, helptext) in commands.items():
        lines.append(f"  {name:<{width}}  {helptext}")
    lines += ["", f"Run '{prog} <{what}> --help' for the options of a {what}."]
    return "\n".join(lines)


def dispatch(prog: str, about: str, commands: dict[str, tuple[str, str]], argv: list[str], what: str = "command") -> int:
    """Run ``commands[argv[0]]``'s ``main(argv[1:])``; help for no or ``-h``; one line for an unknown name."""
    from genomics_lm.errors import UserError

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(prog, about, commands, what))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        raise UserError(f"unknown {what} {name!r} (choose from {', '.join(commands)})")
    return int(importlib.import_module(commands[name][0]).main(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    from genomics_lm import __version__
    from genomics_lm.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(f"genomics-lm {__version__}")
        return 0
    name = argv[0] if argv and not argv[0].startswith("-") else ""
    prog = f"genomics-lm {name}".strip()
    try:
        return dispatch("genomics-lm", "Long-context DNA language models (BigBird / Longformer / dense attention).",
                        COMMANDS, argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: stop quietly, as cat or grep do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141

