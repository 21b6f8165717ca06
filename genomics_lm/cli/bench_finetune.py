"""``genomics-lm bench finetune``: parse, run :func:`genomics_lm.bench.finetune.run`, print the tables.

The measurement (inputs, one process per cell, interleaved timed steps, the baseline) is documented in
:mod:`genomics_lm.bench.finetune`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from genomics_lm.bench.finetune import ATTENTIONS, Settings
from genomics_lm.cli import RawHelpFormatter

DESCRIPTION = """\
Fine-tuning throughput (training examples/s) and evaluation throughput
(sequences/s) of the tiny fine-tuning model (configs/finetune/tiny.yaml:
3-mers, d_model 128, 2 layers, 4 heads) per attention type and input length,
fp32 on the CPU, with the k-mer baseline's time next to it, all in the same run.

Inputs are real sequences: 70 bp from promoters/gue_prom_core_all and 300 bp
from promoters/gue_prom_300_tata (train.csv for training, dev.csv for the
baseline's choice of k and C, test.csv for evaluation; their real labels); any
other length (1000 bp by default) is windows cut at random positions from the
E. coli K-12 genome (genomes/ecoli_k12_mg1655.fna.gz) with RANDOM 0/1 labels,
for timing only.

One training step: forward, BCE loss, backward, gradient clipping and AdamW
(the fine-tuning step of 'genomics-lm finetune'), on a batch of training rows.
Train examples/s = batch size / median step time after the warm-up steps.
Eval sequences/s = rows / median time of a full scoring pass (predict_proba).
"complete?" says whether the attention pattern covers every query/key pair at
that length: such a pattern is computed by SDPA like dense attention (kernel
"sdpa"), otherwise by the block-sparse kernel ("blocked").

Each attention runs in its own process; the three processes of a length are
started together, then their timed steps (and evaluation passes) are
interleaved, one of each in turn, so background load hits them alike. Ratios
are against dense at the same length. Peak RSS is the process's peak resident
memory, "(+model)" its growth over the RSS before the model was built.

The k-mer baseline (logistic regression on k-mer spectra, as in 'genomics-lm
evaluate') is fitted on the same training rows, chosen on the dev rows and
predicts the test rows, after each length's model runs; its wall time is shown
next to one model epoch over the same rows at the measured speeds.

Prints one line per cell to stderr as it finishes, then the tables to stdout.
Exit status 1 if a cell failed. Other processes on the machine inflate the
times: the load average is printed and stored.

Results measured so far: see the README's Benchmarks section."""

_DEFAULT = Settings()


def _ints(text: str, what: str) -> tuple[int, ...]:
    from genomics_lm.errors import UserError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None


def _floats(text: str, what: str) -> tuple[float, ...]:
    from genomics_lm.errors import UserError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _csv(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def build_parser() -> argparse.ArgumentParser:
    d = _DEFAULT
    p = argparse.ArgumentParser(prog="genomics-lm bench finetune", description=DESCRIPTION,
                                formatter_class=RawHelpFormatter)
    p.add_argument("--lengths", default=_csv(d.lengths), metavar="BP,...",
                   help="comma-separated input lengths in bp: 70 and 300 are the promoter sets, any other length "
                        "(>= 30) is E. coli windows with random labels")
    p.add_argument("--attentions", default=_csv(d.attentions), metavar="A,...",
                   help=f"comma-separated subset of {', '.join(ATTENTIONS)}")
    p.add_argument("--steps", type=int, default=d.steps, metavar="N",
                   help="timed training steps per cell; the median is reported")
    p.add_argument("--warmup", type=int, default=d.warmup, metavar="N", help="untimed training steps per cell first")
    p.add_argument("--batch-size", type=int, default=d.batch, metavar="N", help="training batch size (sequences)")
    p.add_argument("--eval-batch-size", type=int, default=d.eval_batch, metavar="N",
                   help="batch size of the evaluation passes (predict_proba)")
    p.add_argument("--eval-rows", type=int, default=d.eval_rows, metavar="N",
                   help="sequences per timed evaluation pass (from the evaluation split)")
    p.add_argument("--eval-repeats", type=int, default=d.eval_repeats, metavar="N",
                   help="timed evaluation passes per cell; the median is reported")
    p.add_argument("--threads", type=int, default=d.threads, metavar="N", help="torch threads per process")
    p.add_argument("--baseline-rows", default=_csv(d.baseline_rows), metavar="TRAIN,VAL,EVAL",
                   help="rows per length for the k-mer baseline's fit, choice and predictions (capped at what the "
                        "files hold; the model trains on the same training rows)")
    p.add_argument("--baseline-ks", default=_csv(d.baseline_ks), metavar="K,...",
                   help="k-mer lengths the baseline tries (1 to 6)")
    p.add_argument("--baseline-cs", default=_csv(d.baseline_cs), metavar="C,...",
                   help="inverse regularisation strengths the baseline tries")
    p.add_argument("--no-baseline", action="store_true", help="skip the k-mer baseline")
    p.add_argument("--config", default=None, metavar="YAML",
                   help="fine-tuning config whose model.arch is benchmarked (default: configs/finetune/tiny.yaml); "
                        "its attention setting is replaced by each of --attentions")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the real-data folder with promoters/ and genomes/ (default: $GENOMICS_LM_DATA, else "
                        "../shared/data beside the repository)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="N",
                   help="seed of the row shuffles, genome windows, random labels and model weights")
    p.add_argument("--pause", type=float, default=d.pause, metavar="S",
                   help="seconds of rest before each timed step or pass, so the previous process's threads settle")
    p.add_argument("--timeout", type=float, default=d.timeout, metavar="S",
                   help="seconds allowed per cell for start-up and warm-up, and for each timed step or pass")
    p.add_argument("--in-process", action="store_true",
                   help="run every cell in this process instead of one process each (quicker to start; the peak "
                        "RSS is then the shared process's)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the settings and records to this JSON file")
    return p


_OPTION = {"batch": "--batch-size", "eval_batch": "--eval-batch-size", "baseline_cs": "--baseline-cs",
           "baseline_ks": "--baseline-ks", "baseline_rows": "--baseline-rows", "eval_rows": "--eval-rows",
           "eval_repeats": "--eval-repeats"}


def _settings(ns: argparse.Namespace) -> Settings:
    from genomics_lm.errors import UserError

    attentions = tuple(a.strip() for a in ns.attentions.split(",") if a.strip())
    try:
        return Settings(
            lengths=tuple(dict.fromkeys(_ints(ns.lengths, "--lengths"))), attentions=attentions, steps=ns.steps,
            warmup=ns.warmup, batch=ns.batch_size, eval_batch=ns.eval_batch_size, eval_rows=ns.eval_rows,
            eval_repeats=ns.eval_repeats, threads=ns.threads, baseline=not ns.no_baseline,
            baseline_rows=_ints(ns.baseline_rows, "--baseline-rows"),
            baseline_ks=_ints(ns.baseline_ks, "--baseline-ks"),
            baseline_cs=_floats(ns.baseline_cs, "--baseline-cs"), config=ns.config or "", data_dir=ns.data_dir or "",
            seed=ns.seed, pause=ns.pause, timeout=ns.timeout, in_process=ns.in_process)
    except ValueError as exc:
        msg = str(exc)
        for name, opt in _OPTION.items():
            msg = re.sub(rf"\b{name}\b", opt, msg)
        msg = re.sub(r"\b(lengths|attentions|steps|warmup|threads|pause)\b", r"--\1", msg)
        raise UserError(msg) from None


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items() if k != "traceback"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def main(argv: list[str]) -> int:
    ns = build_parser().parse_args(argv)
    settings = _settings(ns)
    from genomics_lm.bench.finetune import format_baseline, format_table, run

    load, ncpu = os.getloadavg()[0], os.cpu_count() or 1
    print(f"genomics-lm bench finetune: lengths {list(settings.lengths)} bp, {', '.join(settings.attentions)}, "
          f"{settings.steps} timed steps, {settings.threads} threads, load average {load:.2f} on {ncpu} CPUs",
          file=sys.stderr, flush=True)
    if load > 0.5 * ncpu:
        print(f"warning: the machine is busy (load {load:.2f}); timings will be inflated", file=sys.stderr)
    result = run(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(result))
    baseline = format_baseline(result)
    if baseline:
        print()
        print(baseline)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(_jsonable(result), f, indent=2)
    return 1 if any("error" in r for r in result["records"]) else 0
