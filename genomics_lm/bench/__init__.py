"""Benchmarks: measurement only. ``genomics-lm bench <name>`` (``genomics_lm/cli/bench_<name>.py``) parses and prints.

One module per benchmark (``attention``, ``tokenizer``, ``train``): functions that run the methods (in worker
processes where one method must not disturb another's memory figure) and return records, functions that format
them as tables (returning strings) and, where there is one, a plot written to a given path. Nothing here prints,
except a worker process reporting its results to the parent (``genomics_lm.bench.attention``'s ``RESULT`` lines).
Figures measured so far: see the README's Benchmarks section.
"""
