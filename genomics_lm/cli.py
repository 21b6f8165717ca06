"""``genomics-lm`` command-line entry point.

Each command lives in its own module and exposes ``main(argv: list[str]) -> int``; modules are imported
only when their command runs, so ``genomics-lm --help`` is instant. :class:`~genomics_lm.errors.UserError`
becomes a one-line message and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenize": ("genomics_lm.tokenize_cmd", "tokenize a FASTA genome into k-mer windows in an HDF5 token store"),
    "pretrain": ("genomics_lm.lit", "masked-LM pretraining with PyTorch Lightning (LightningCLI: fit/validate)"),
    "bench": ("genomics_lm.bench", "benchmarks: 'bench attention', 'bench tokenizer', 'bench train'"),
}


def _usage() -> str:
    lines = [
        "usage: genomics-lm <command> [options]",
        "",
        "Long-context DNA language models (BigBird / Longformer / dense attention).",
        "",
        "commands:",
    ]
    width = max(len(c) for c in COMMANDS)
    for name, (_, helptext) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {helptext}")
    lines += ["", "Run 'genomics-lm <command> --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from genomics_lm import __version__
    from genomics_lm.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"genomics-lm {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"genomics-lm: error: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except UserError as exc:
        print(f"genomics-lm {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genomics-lm {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m genomics_lm.cli
    sys.exit(main())
