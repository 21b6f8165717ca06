"""``genomics-lm bench <what>``: benchmarks that print tables (ratios against a baseline in the same run).

Each benchmark lives in its own module with ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "attention": ("genomics_lm.bench_attention", "one attention layer: time and peak memory per method/backend/length"),
    "tokenizer": ("genomics_lm.bench_tokenizer", "k-mer encoding throughput vs the DNABERT-style baseline and memcpy"),
    "train": ("genomics_lm.bench_train", "MLM training throughput (tokens/s) per attention type vs HF BigBird"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: genomics-lm bench <what> [options]\n\nbenchmarks:")
        for name, (_, helptext) in BENCHES.items():
            print(f"  {name:<10} {helptext}")
        print("\nRun 'genomics-lm bench <what> --help' for its options.")
        return 0
    if argv[0] not in BENCHES:
        from genomics_lm.errors import UserError

        raise UserError(f"unknown benchmark {argv[0]!r} (choose from {', '.join(BENCHES)})")
    return int(importlib.import_module(BENCHES[argv[0]][0]).main(argv[1:]) or 0)
