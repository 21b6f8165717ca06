"""``genomics-lm evaluate``: parse, run :func:`genomics_lm.evaluate.evaluate_task`, print the metrics table."""

from __future__ import annotations

import argparse
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genomics-lm evaluate",
        description="Metrics of a fine-tuned model on one split of a task (made by 'genomics-lm make-task'),\n"
        "next to a k-mer-spectrum logistic regression fitted in the same run on the task's train split\n"
        "(k and C chosen on val) and scored on the same rows.\n\n"
        "Writes OUT_DIR/metrics.json   MCC, F1, accuracy (positive when p > 0.5), AUROC, AUPRC;\n"
        "                              per label and macro means for a multi-label task\n"
        "       OUT_DIR/predictions.tsv one line per row: row, seqid, start, end, strand, label(s),\n"
        "                              p_model (and p_kmer) per label\n"
        "       OUT_DIR/roc.png, OUT_DIR/pr.png  curves of the model (solid) and the baseline (dashed)",
        formatter_class=RawHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PT",
                   help="the fine-tuned model: RUN/finetuned.pt (or a fine-tuning .ckpt)")
    p.add_argument("--task-dir", type=Path, required=True, metavar="DIR",
                   help="the task folder: train.h5, val.h5, test.h5")
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="where the four outputs go (created)")
    p.add_argument("--split", default="test", metavar="NAME", help="the split to evaluate (DIR/SPLIT.h5)")
    p.add_argument("--no-baseline", action="store_true", help="skip the k-mer baseline (no train/val needed)")
    p.add_argument("--both-strands", action="store_true",
                   help="average the model's probabilities over both strands (reverse complement of each row)")
    p.add_argument("--baseline-cache", type=Path, default=None, metavar="DIR",
                   help="keep the k-mer baseline's fit in DIR and reuse it when train, val, the evaluated rows, "
                   "labels, tokenizer and grid are identical (e.g. for every seed and attention type of one task; "
                   "metrics.json says 'cache': 'read' or 'fitted'); default: fit it in this run")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="sequences per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--task-name", default=None, metavar="NAME",
                   help="the 'task' field of metrics.json (default: the folder's name)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out-dir")
    return p


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_metrics(m: dict) -> str:
    """An aligned text table of the metrics dict: one line per method (binary) or per method and label."""
    methods = [("model", m["model"])] + ([("k-mer LR", m["kmer_baseline"])] if m.get("kmer_baseline") else [])
    names = m["label_names"]
    lines = [f"task {m['task']}  split {m['split']}  n={m['n']}  attention={m['attention']}"]
    head = f"{'method':<10} {'label':<16} {'n':>7} {'pos':>6} " + " ".join(f"{c:>8}" for c in
                                                                         ("MCC", "F1", "acc", "AUROC", "AUPRC"))
    lines.append(head)
    for what, obj in methods:
        per = {names[0]: obj} if len(names) == 1 else obj["per_label"]
        for name, v in per.items():
            lines.append(f"{what:<10} {name[:16]:<16} {v['n']:>7} {v['positives']:>6} "
                         + " ".join(f"{_num(v[c]):>8}" for c in ("mcc", "f1", "accuracy", "auroc", "auprc")))
        if len(names) > 1:
            lines.append(f"{what:<10} {'macro':<16} {'':>7} {'':>6} {_num(obj['macro_mcc']):>8} {'':>8} {'':>8} "
                         f"{_num(obj['macro_auroc']):>8} {_num(obj['macro_auprc']):>8}")
        if obj.get("skipped_labels"):
            lines.append(f"  {what}: one class in this split, no AUROC/AUPRC: {', '.join(obj['skipped_labels'])}")
    base = m.get("kmer_baseline")
    if base:
        picks = ", ".join(f"{n}: k={c['k']} C={c['C']}" for n, c in base["chosen"].items())
        cached = " (read from the baseline cache)" if base.get("cache") == "read" else ""
        lines.append(f"k-mer LR chosen on val: {picks}; fit+predict {base['seconds']:.1f} s{cached}")
    lines.append(f"model: {m['model']['seconds']:.1f} s ({m['model']['sequences_per_s'] or 0:.0f} sequences/s)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from genomics_lm.evaluate import OUTPUTS, evaluate_task

    metrics = evaluate_task(args.checkpoint, args.task_dir, args.out_dir, split=args.split,
                            baseline=not args.no_baseline, both_strands=args.both_strands,
                            batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
                            task_name=args.task_name, baseline_cache=args.baseline_cache)
    print(format_metrics(metrics))
    print("wrote " + ", ".join(str(args.out_dir / name) for name in OUTPUTS))
    return 0
