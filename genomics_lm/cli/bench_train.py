"""``genomics-lm bench train``: parse, run :func:`genomics_lm.bench.train.run`, print the table.

The measurement (one process per method, interleaved timed steps, memory figures) is documented in
:mod:`genomics_lm.bench.train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys

from genomics_lm.bench.train import METHODS, Settings

DESCRIPTION = """\
Masked-LM training throughput (tokens/s) and peak memory per attention type,
against Hugging Face's BigBirdForMaskedLM (block_sparse) of the same size, all
in the same run.

One step is forward + MLM loss + backward + AdamW on a batch of random k-mer
ids with 15% of the positions masked (80% [MASK], 10% random, 10% kept). Ours
is exactly the pretraining step: the vocabulary projection runs on the masked
positions only, unless --full-logits. HF BigBird gets the same hidden size,
layers, heads, MLP width, vocabulary, block size, 3 random blocks and dropout.

Each method runs in its own process. After the warm-up steps, the timed steps
are interleaved (one step of each method in turn), so a change of background
load affects every method alike; tokens/s is the median over the timed steps.
Peak memory: on CPU the process's peak RSS minus its RSS before the model was
built; on CUDA the peak allocated bytes.

Prints one line per method to stderr as it finishes, then the table to stdout
with each method's speed against HF BigBird. Exit status 1 if a method failed.

Results measured so far: see the README's Benchmarks section."""

# option -> help; the default comes from Settings and is added once by build_parser
_HELP = {
    "seq_len": "tokens per sequence; a multiple of --block-size (HF BigBird needs it)",
    "batch": "sequences per step",
    "layers": "transformer blocks",
    "d_model": "hidden width",
    "heads": "attention heads",
    "d_ff": "MLP inner width",
    "k": "k-mer length, 1 to 8 (vocabulary 5 + 4**k; non-overlapping k-mers)",
    "block_size": "BigBird block size, ours and HF's",
    "longformer_window": "Longformer band width in tokens (half on each side)",
    "dropout": "dropout probability, ours and HF's",
    "backend": "attention backend of ours: auto = blocked on CPU and flex on CUDA; or blocked, flex, reference",
    "device": "cpu, cuda or cuda:N",
    "steps": "timed steps per method (the median is reported)",
    "warmup": "untimed steps per method before the timed ones",
    "pause": "seconds of rest before each timed step, so the previous process's threads settle",
    "threads": "torch threads per process; 0 = torch's default",
    "timeout": "seconds allowed per method for building and warm-up, and for each timed step",
}
_CHOICES = {"backend": ("auto", "blocked", "flex", "reference")}
_FLAGS = {
    "bf16": "bf16 autocast (for GPUs)",
    "full_logits": "ours projects every position to the vocabulary, as HF BigBird does (same head cost)",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genomics-lm bench train", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), metavar="M,...",
                   help=f"comma-separated subset of {', '.join(METHODS)} (default: all)")
    for f in dataclasses.fields(Settings):
        opt = "--" + f.name.replace("_", "-")
        if f.name in _FLAGS:
            p.add_argument(opt, action="store_true", help=_FLAGS[f.name])
        else:
            kind = type(f.default)
            p.add_argument(opt, type=kind, default=f.default, metavar={int: "N", float: "X"}.get(kind, "NAME"),
                           choices=_CHOICES.get(f.name), help=_HELP[f.name] + " (default: %(default)s)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the settings and results to this JSON file")
    return p


def _option_names(message: str) -> str:
    """A Settings message with its field names written as the options (seq_len -> --seq-len)."""
    for f in dataclasses.fields(Settings):
        message = re.sub(rf"\b{f.name}\b", "--" + f.name.replace("_", "-"), message)
    return message


def main(argv: list[str]) -> int:
    from genomics_lm.errors import UserError

    ns = build_parser().parse_args(argv)
    methods = [m.strip() for m in ns.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UserError(f"--methods: unknown {unknown or methods} (choose from {', '.join(METHODS)})")
    try:
        settings = Settings(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Settings)})
    except ValueError as exc:
        raise UserError(_option_names(str(exc))) from None
    from genomics_lm.bench.train import format_table, run

    print(f"genomics-lm bench train: {', '.join(methods)} (one process each, timed steps interleaved)",
          file=sys.stderr, flush=True)
    results = run(settings, methods, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(results, settings))
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump({"args": dataclasses.asdict(settings), "results": results}, f, indent=2)
    return 1 if any("error" in r for r in results) else 0
