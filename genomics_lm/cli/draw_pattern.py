"""``genomics-lm draw-pattern``: pictures of the attention patterns (rows = layers, columns = heads) and their
attended fractions, drawn from the pattern objects the model attends with.

Parses, calls :mod:`genomics_lm.draw_pattern`, prints one line per picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
The patterns are the model's own: CONFIG's model config with 'attention' set to each --attention type, built by
ModelConfig.attention_pattern() (the bigbird and longformer parameters of CONFIG), and each panel is
pattern.dense_mask(T, n_heads, layer)[head], the token-level mask the reference backend attends through (the
kernels are tested against it). Black = the query (row) attends to the key (column). BigBird's random blocks
differ per layer and head; a per-layer Longformer window differs per layer.

writes, in --out-dir:
  pattern_<attention>.png   one grid per attention type: rows = layers, columns = heads; each panel titled with
                            the fraction of the T x T pairs it attends, the figure with the pattern's parameters
  patterns.json             per attention type: the parameters, and per layer each head's attended fraction
                            (the mask's mean) and pattern.density (the kernels' count, mean over heads)

--length is at most 2048 tokens (a longer T x T panel is unreadable; the structure is the same).

examples:
  genomics-lm draw-pattern --config configs/finetune/tiny.yaml --length 512 --out-dir results/patterns
  genomics-lm draw-pattern --config results/finetune/tiny/finetuned.pt --attention bigbird --layers 0 \\
      --length 1024 --out-dir results/patterns/finetuned
"""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.cli import RawHelpFormatter

    p = argparse.ArgumentParser(
        prog="genomics-lm draw-pattern", formatter_class=RawHelpFormatter, epilog=EPILOG,
        description="Draw the attention patterns of a model config: for each attention type one PNG of the allowed "
        "query/key pairs of every layer and head at --length tokens, and patterns.json with the fraction of pairs "
        "each head attends.")
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG",
                   help="a pretraining or fine-tuning config YAML (its model.arch section, e.g. "
                   "configs/finetune/tiny.yaml) or a checkpoint (.pt/.ckpt: its recorded model config)")
    p.add_argument("--attention", nargs="+", action="extend", default=None, metavar="TYPE",
                   help="attention types to draw: bigbird, longformer, dense; may be repeated "
                   "(--attention bigbird --attention dense) (default: all three)")
    p.add_argument("--length", required=True, metavar="TOKENS", help="sequence length in tokens (1 to 2048)")
    p.add_argument("--layers", default="all", metavar="all|0,1", help="layers to draw: all, or comma-separated numbers")
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                   help="folder for the pictures and patterns.json")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out-dir")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.draw_pattern import draw_patterns

    attentions = args.attention or ["bigbird", "longformer", "dense"]
    doc, written = draw_patterns(args.config, attentions, args.length, args.out_dir, layers=args.layers,
                                 overwrite=args.overwrite)
    for attention, rec in doc["patterns"].items():
        fractions = ", ".join(f"layer {x['layer']} {x['fraction']:.1%}" for x in rec["layers"])
        print(f"{rec['describe']} at {doc['length']} tokens: attended pairs {fractions}")
    for path in written:
        print(f"wrote {path}")
    return 0
