#!/usr/bin/env python
"""Learning curves of masked-LM pretraining for bigbird, longformer and dense, against context-free baselines.

Tokenizes a genome (held-out region blocks for validation), runs ``genomics-lm pretrain`` with one config
for each attention type, and writes into ``--out`` (git-ignored ``results/`` by default):

    curves.png     validation loss and masked-token accuracy vs step, per attention type, with the unigram
                   entropy of the training k-mers and the accuracy of the most frequent k-mer as lines
    summary.json   final and best figures per attention type, the baselines, wall time
    summary.md     the same as a Markdown table

    python scripts/pretrain_curves.py                          # tiny config, E. coli, 3-mers, a few minutes each
    python scripts/pretrain_curves.py --k 6 --max-steps 3000   # 6-mers, longer
    python scripts/pretrain_curves.py -- --data.batch_size 16  # anything after -- goes to genomics-lm pretrain

Runs are resumed (``--resume``) when their folder exists, so a rerun only redraws the figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from genomics_lm.files import default_data_dir
from genomics_lm.summary import read_metrics, series  # RUN/csv/metrics.csv, one file per run (appended on resume)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fasta", default=str(default_data_dir() / "genomes" / "ecoli_k12_mg1655.fna.gz"),
                   help="genome FASTA (default: E. coli in $GENOMICS_LM_DATA, else ../shared/data)")
    p.add_argument("--out", default=str(REPO / "results" / "pretrain_curves"))
    p.add_argument("--config", default=str(REPO / "configs" / "pretrain" / "tiny.yaml"))
    p.add_argument("--attention", default="bigbird,longformer,dense")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--window-tokens", type=int, default=1024)
    p.add_argument("--max-steps", type=int, default=None, help="default: the config's trainer.max_steps")
    args = p.parse_args(argv)
    stride = args.stride or args.k
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokens = out / f"tokens_k{args.k}s{stride}"
    if not (tokens / "val.h5").exists():
        subprocess.run([sys.executable, "-m", "genomics_lm.cli", "tokenize", "--fasta", args.fasta, "--out-dir",
                        str(tokens), "--k", str(args.k), "--stride", str(stride), "--window-tokens",
                        str(args.window_tokens), "--no-progress", "--overwrite"], check=True)

    from genomics_lm.data import mlm_baselines
    from genomics_lm.store import TokenStore

    base = mlm_baselines(TokenStore(tokens / "train.h5"), TokenStore(tokens / "val.h5"))
    config = Path(args.config).resolve()
    config_name = str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config)  # no machine paths
    summary: dict = {"baselines": base, "config": config_name, "k": args.k, "stride": stride, "runs": {}}
    attentions = [a.strip() for a in args.attention.split(",") if a.strip()]
    for att in attentions:
        run = out / f"k{args.k}s{stride}_{att}"
        cmd = [sys.executable, "-m", "genomics_lm.cli", "pretrain", "fit", "--config", args.config,
               "--data.data_dir", str(tokens), "--trainer.default_root_dir", str(run),
               "--model.arch.attention", att, "--model.arch.tokenizer.k", str(args.k),
               "--model.arch.tokenizer.stride", str(stride),
               "--trainer.enable_progress_bar", "false", "--resume"]
        if args.max_steps:
            cmd += ["--trainer.max_steps", str(args.max_steps)]
        cmd += extra
        print(f"== {att}: {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        (run / "stderr.log").write_text(res.stdout + res.stderr) if run.exists() else None
        if res.returncode != 0:
            print(res.stdout[-3000:] + res.stderr[-3000:], file=sys.stderr)
            return res.returncode
        rows = read_metrics(run)
        vs, vl = series(rows, "val/loss")
        _, va = series(rows, "val/acc")
        summary["runs"][att] = {
            "steps": vs[-1] + 1 if vs else 0, "final_val_loss": vl[-1], "best_val_loss": min(vl), "final_val_acc": va[-1],
            "best_val_acc": max(va), "wall_s_this_call": wall,
            "beats_unigram_entropy": vl[-1] < base["unigram_entropy"], "beats_const_acc": va[-1] > base["const_acc_val"],
        }
        print(f"   step {vs[-1]}: val loss {vl[-1]:.4f} (unigram entropy {base['unigram_entropy']:.4f}), "
              f"val acc {va[-1]:.4f} (most frequent k-mer {base['const_acc_val']:.4f}), {wall:.0f} s", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for att in attentions:
        rows = read_metrics(out / f"k{args.k}s{stride}_{att}")
        s, v = series(rows, "val/loss")
        ax1.plot([x + 1 for x in s], v, marker="o", ms=3, label=att)  # logged at global_step - 1
        s, v = series(rows, "val/acc")
        ax2.plot([x + 1 for x in s], v, marker="o", ms=3, label=att)
    ax1.axhline(base["unigram_entropy"], color="k", ls="--", lw=1, label="unigram entropy (train k-mers)")
    ax2.axhline(base["const_acc_val"], color="k", ls="--", lw=1, label="most frequent k-mer")
    ax1.set(xlabel="optimizer step", ylabel="masked-token cross-entropy (nats)",
            title=f"validation MLM loss, k={args.k} stride={stride}")
    ax2.set(xlabel="optimizer step", ylabel="masked-token accuracy", title="validation accuracy (all targets [MASK])")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{Path(args.fasta).name}: held-out region blocks for validation; config {Path(args.config).name}")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"unigram entropy of training k-mers: {base['unigram_entropy']:.4f} nats; unigram cross-entropy on val: "
        f"{base['unigram_cross_entropy_val']:.4f}; most frequent k-mer accuracy on val: {base['const_acc_val']:.4f}",
        "",
        "| attention | steps | final val loss | best val loss | final val acc | beats entropy | beats const acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for att, r in summary["runs"].items():
        lines.append(f"| {att} | {r['steps']} | {r['final_val_loss']:.4f} | {r['best_val_loss']:.4f} | "
                     f"{r['final_val_acc']:.4f} | {r['beats_unigram_entropy']} | {r['beats_const_acc']} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
