#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut 3 (a developer tool, NOT part of CI).
#
# Usage:
#   pip install -e '.[test,mutation]'          # once (mutmut==3.8.1, the "mutation" extra)
#   bash scripts/mutation.sh                    # mutate, run the tests, print the per-module table
#   bash scripts/mutation.sh --survivors        # rerun only the mutants that survived last time (after new tests)
#   bash scripts/mutation.sh --report           # print the table of the last run, run nothing
#   bash scripts/mutation.sh 'genomics_lm.tokenizer.*'   # only the mutants matching these mutmut name globs
#   MUTATION_WORKERS=1 bash scripts/mutation.sh # worker processes (default 2; keep it low on a shared machine)
#
# What it mutates (only these; every other function and module is copied unmutated):
#   genomics_lm/tokenizer.py            all functions
#   genomics_lm/genome.py               the splits and the windows: plan_splits, SplitPlan, n_windows,
#                                       iter_window_batches (the N filter), WindowBatch, iter_windows
#   genomics_lm/attention/patterns.py   all functions (BigBird, Longformer, dense)
#   genomics_lm/attention/layout.py     BlockLayout.kv_blocks
#   genomics_lm/data.py                 MLM masking: mask_tokens, default_span
#   genomics_lm/checkpoint.py           loading: read_checkpoint, read_record, _upgrade_v1_config, model_state,
#                                       load_pretrained, _load_weights, config_differences, _jsonable
#   mutmut 3 does not mutate decorated functions: the lru_cache'd _bigbird_random_plan, _bigbird_layout,
#   _longformer_layout, _kmer_table and revcomp_table and the properties (Window.n_frac, ...) are not mutated.
#
# Which tests: [tool.mutmut] pytest_add_cli_args_test_selection in pyproject.toml: the fast tests of those
#   modules (test_tokenizer, test_genome, test_attention, test_data, test_checkpoint and the *_edges files),
#   without slow, GPU, subprocess, fresh-process, DataLoader-worker and FlexAttention-compiling tests. mutmut
#   first runs them once to learn which tests reach which function, then runs, for each mutant, only the
#   tests that reach the mutated function (stopping at the first failure).
#
# How long: 2,024 mutants; measured 0.83 mutants/s with 2 workers on a 2-core machine shared with other test
#   runs: ~41 minutes for a full run (plus ~1 minute to generate the mutants and map tests to functions).
#   --survivors (about 100-400 mutants) takes 2-5 minutes. Killed mutants stop at the first failing test;
#   survivors run every test that reaches their function, so the time grows with the survivors.
#
# How to read the results: the table printed at the end gives per module the mutants, killed (a test failed),
#   survived (every test passed: a missing test or an equivalent mutant), timeout (ran past mutmut's limit,
#   e.g. an endless loop), other (not run yet, or no selected test reaches the function) and the kill rate
#   killed / mutants. The mutants that were not killed are listed under the table.
#   Inspect one survivor with `.venv/bin/mutmut show NAME` (a diff against the source); browse them all with
#   `.venv/bin/mutmut browse`. Survivors judged equivalent (dead code, dtype defaults that are already the
#   default, codec-name case, ties of continuous uniforms, ...) are explained in the note of issue 13; a new
#   survivor needs a test or such a reason. Everything lives in mutants/ (a mutated copy of genomics_lm/ and
#   tests/, git-ignored): the real genomics_lm/ is never modified; `rm -rf mutants` starts from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export GENOMICS_LM_DATA=${GENOMICS_LM_DATA:-$(cd .. && pwd)/shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one thread per mutant worker (torch in forked workers)
WORKERS=${MUTATION_WORKERS:-2}

# module -> mutmut name globs (one table for the run and for the report)
TARGETS_PY='
TARGETS = {
    "tokenizer": ["genomics_lm.tokenizer.*"],
    "genome (splits, windows)": [f"genomics_lm.genome.{f}__mutmut_*" for f in (
        "x_plan_splits", "x_n_windows", "x_iter_window_batches", "x_iter_windows")]
        + ["genomics_lm.genome.x\u01c1SplitPlan\u01c1*", "genomics_lm.genome.x\u01c1WindowBatch\u01c1*",
           "genomics_lm.genome.x\u01c1Window\u01c1*"],
    "attention/patterns": ["genomics_lm.attention.patterns.*"],
    "attention/layout": ["genomics_lm.attention.layout.*"],
    "data (mask_tokens, default_span)": ["genomics_lm.data.x_mask_tokens__mutmut_*",
                                         "genomics_lm.data.x_default_span__mutmut_*"],
    "checkpoint (loading)": [f"genomics_lm.checkpoint.{f}__mutmut_*" for f in (
        "x_read_checkpoint", "x_read_record", "x__upgrade_v1_config", "x_model_state", "x_load_pretrained",
        "x__load_weights", "x_config_differences", "x__jsonable")],
}
'

report() {
    "$PY" - "$@" <<EOF
import fnmatch, glob, json, sys
from mutmut.stats import status_by_exit_code
$TARGETS_PY
mode = sys.argv[1]
results = {}
for meta in glob.glob("mutants/genomics_lm/**/*.py.meta", recursive=True):
    results.update(json.load(open(meta))["exit_code_by_key"])
def module_of(name):
    for mod, globs in TARGETS.items():
        if any(fnmatch.fnmatchcase(name, g) for g in globs):
            return mod
if mode == "globs":
    print("\n".join(g for globs in TARGETS.values() for g in globs))
elif mode == "survivors":
    print("\n".join(sorted(n for n, c in results.items() if module_of(n) and status_by_exit_code[c] != "killed")))
else:
    rows, tot = [], [0] * 5
    for mod in TARGETS:
        st = [status_by_exit_code[c] for n, c in results.items() if module_of(n) == mod]
        k, s, t = st.count("killed"), st.count("survived"), st.count("timeout")
        row = (len(st), k, s, t, len(st) - k - s - t)
        rows.append((mod, *row))
        tot = [a + b for a, b in zip(tot, row)]
    print(f"{'module':34} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'other':>5} {'kill rate':>9}")
    for mod, n, k, s, t, o in rows + [("all", *tot)]:
        print(f"{mod:34} {n:7d} {k:6d} {s:8d} {t:7d} {o:5d} {100 * k / max(n, 1):8.1f}%")
    print("(other: not run yet, no test reaches the function, or suspicious; kill rate = killed / mutants)")
    if mode == "table+survivors":
        print("\nnot killed:")
        for n in sorted(n for n, c in results.items() if module_of(n) and status_by_exit_code[c] != "killed"):
            print(f"  {status_by_exit_code[results[n]]:9} {n}")
EOF
}

if [[ ${1:-} == --report ]]; then
    report table+survivors
    exit 0
fi
if [[ ${1:-} == --survivors ]]; then
    mapfile -t names < <(report survivors)
    if [[ ${#names[@]} -eq 0 ]]; then echo "no survivors to rerun"; exit 0; fi
elif [[ $# -gt 0 ]]; then
    names=("$@")
else
    mapfile -t names < <(report globs)
fi
start=$(date +%s)
.venv/bin/mutmut run --max-children "$WORKERS" "${names[@]}" | tr "\r" "\n" | grep -avE "^(⠋|⠙|⠹|⠸|⠼|⠴|⠦|⠧|⠇|⠏|🎉)" || true
echo "mutation run: $(( $(date +%s) - start )) s wall time, ${#names[@]} name patterns, $WORKERS workers"
report table+survivors
