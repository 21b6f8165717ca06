"""``genomics-lm bench <benchmark>``: benchmarks that print tables (ratios against a baseline in the same run).

One command module per benchmark (``genomics_lm/cli/bench_<name>.py``, ``main(argv) -> int``), the measurement
in ``genomics_lm/bench/<name>.py``; the dispatcher is :func:`genomics_lm.cli.dispatch`.
"""

from __future__ import annotations

from genomics_lm.cli import dispatch

ABOUT = "Benchmarks: each measures ours and its baselines in the same run and prints a table of ratios."

# benchmark -> (module, one-line help)
BENCHES: dict[str, tuple[str, str]] = {
    "attention": ("genomics_lm.cli.bench_attention",
                  "one attention layer: time and peak memory per method/backend/length (+ JSON and PNG)"),
    "tokenizer": ("genomics_lm.cli.bench_tokenizer",
                  "k-mer encoding throughput vs the DNABERT-style baseline and memcpy; tokenize end to end"),
    "train": ("genomics_lm.cli.bench_train",
              "MLM training throughput (tokens/s) per attention type vs HF BigBirdForMaskedLM"),
    "finetune": ("genomics_lm.cli.bench_finetune",
                 "fine-tuning examples/s and evaluation sequences/s per attention type and input length; "
                 "k-mer baseline time"),
    "score": ("genomics_lm.cli.bench_score",
              "scoring sequences/s (1 kb, 16 kb; tiny and base) batched vs one at a time, variants/s, 1 Mb track"),
}


def main(argv: list[str]) -> int:
    return dispatch("genomics-lm bench", ABOUT, BENCHES, argv, what="benchmark")
