"""genomics_lm: long-context DNA language models with sparse attention.

Stages (one module each): genome -> tokenizer -> store -> data -> attention/model -> lit -> evaluate/score.
See ../shared/DESIGN.md for the contracts.
"""

__version__ = "0.1.0"
