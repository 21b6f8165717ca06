"""The long-context experiment's table and plots: metric, time and memory vs context length per attention type.

Stage functions only (``genomics-lm context-table`` prints and writes; ``scripts/long_context.sh`` or the
workflow's ``long_context:`` section, workflow/rules/long_context.smk, runs the experiment):

    EVAL_DIR/metrics.json ...   one per fine-tuning run (``genomics-lm evaluate``), of one task built at several
                                ``--context-bp`` (and the ``--mask-outside-bp`` control) from the same rows
        ──► read_context_eval   the evaluation + its task store's context_bp, mask_outside_bp and a digest of the
                                rows' identity (chromosome, window centre, strand, labels): the same bins/TSSs
                                at every context length, checked
        ──► context_rows        group by (task, context, input, method); the k-mer baseline once per
                                (task, context, input), from the same metrics.json files (same rows, same run).
                                The task is metrics.json's name, or one name for all (``task=``, the
                                workflow's ``long_context:`` experiments, whose tasks are named per context)
    bench.json (``genomics-lm bench finetune --json`` at the same lengths, same model config)
        ──► timing              seconds per training step, eval sequences/s and peak RSS per (length, attention)
        ──► rows + plots        context.tsv, context.md, metric_vs_context.png, time_vs_context.png

Metrics: ``macro_auroc``, ``macro_auprc`` for a multi-label task, ``mcc``, ``auroc``, ``auprc`` for a binary
one, mean ± sample sd over runs (seeds). The "input" column says ``full`` or ``central M bp`` (every base
outside the central M bp replaced by N in train, val and test: the control that separates "the longer context
carried signal" from "longer inputs changed the training").
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
import numpy as np

from genomics_lm.compare import BASELINE, BINARY_METRICS, Evaluation, format_cell, mean_sd, read_evaluation
from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write, read_json

MULTI_METRICS = ("macro_auroc", "macro_auprc")
ATTENTIONS = ("bigbird", "longformer", "dense")
COLORS = {"bigbird": "tab:blue", "longformer": "tab:orange", "dense": "tab:green", BASELINE: "black"}


@dataclass
class ContextEval:
    """One evaluation with what the experiment needs to know about its inputs."""

    evaluation: Evaluation
    attention: str
    context_bp: int
    mask_bp: int | None
    rows_key: str  # sha256 of (seqid, window centre, strand, labels) of the evaluated split's rows


def rows_identity(split_file: str | os.PathLike) -> str:
    """sha256 over the rows' chromosome, window centre ((start + end) // 2), strand and labels (NaN kept)."""
    import h5py

    try:
        with h5py.File(split_file, "r") as f:
            seqid = [s.decode() if isinstance(s, bytes) else str(s) for s in f["seqid"][:]]
            centre = (f["start"][:].astype(np.int64) + f["end"][:].astype(np.int64)) // 2
            strand = [s.decode() if isinstance(s, bytes) else str(s) for s in f["strand"][:]]
            labels = np.ascontiguousarray(f["labels"][:], dtype=np.float32)
    except (OSError, KeyError) as exc:
        raise UserError(f"{split_file}: not a task store with coordinates ({exc})") from None
    h = hashlib.sha256()
    h.update("\t".join(seqid).encode())
    h.update(centre.tobytes())
    h.update("".join(strand).encode())
    h.update(labels.tobytes())
    return h.hexdigest()


def read_context_eval(path: str | os.PathLike, task: str | None = None) -> ContextEval:
    """Read an evaluation folder (or its metrics.json) and its task store's context settings.

    ``task`` replaces the task name of metrics.json: evaluations of tasks named apart (one name per context
    length, as the workflow names them) are then grouped, and checked for the same rows, as one task.
    """
    ev = read_evaluation(path)
    if task is not None:
        ev = replace(ev, task=task)
    raw = json.loads(ev.path.read_text())
    split_file = raw.get("split_file")
    if not split_file or not Path(split_file).exists():
        raise UserError(f"{ev.path}: its split file {split_file!r} is missing (the task store must still exist)")
    import h5py

    with h5py.File(split_file, "r") as f:
        config = json.loads(f.attrs.get("config", "{}"))
    if "context_bp" not in config:
        raise UserError(f"{ev.path}: its task {split_file} is not from a genome (no context_bp): build it with "
                        "'genomics-lm make-task --genome ... --context-bp BP'")
    att = raw.get("attention") or (raw.get("checkpoint_record", {}).get("model_config", {}) or {}).get("attention")
    if att not in ATTENTIONS:
        raise UserError(f"{ev.path}: unknown attention {att!r}")
    return ContextEval(evaluation=ev, attention=att, context_bp=int(config["context_bp"]),
                       mask_bp=config.get("mask_outside_bp"), rows_key=rows_identity(split_file))


@dataclass
class ContextRow:
    task: str
    context_bp: int
    mask_bp: int | None
    method: str  # an attention type or BASELINE
    n: int
    values: dict[str, list[float]] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)  # from the benchmark (model rows) or metrics.json

    @property
    def input(self) -> str:
        return "full" if self.mask_bp is None else f"central {self.mask_bp:,} bp"


def metric_keys(multi_label: bool) -> tuple[str, ...]:
    return MULTI_METRICS if multi_label else BINARY_METRICS


def read_bench(path: str | os.PathLike) -> dict[tuple[int, str], dict[str, float]]:
    """``(length_bp, attention) -> {train_step_s, eval_seqs_per_s, peak_rss_mb}`` from a bench.json of
    ``genomics-lm bench finetune`` (a failed cell -> ``{"error": ...}``)."""
    p = Path(path)
    data = read_json(p, "a bench.json of 'genomics-lm bench finetune'",
                     f"write it with 'genomics-lm bench finetune --json {p}'")
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise UserError(f"{p}: not a bench.json of 'genomics-lm bench finetune' (no records)")
    out = {}
    for r in records:
        key = (int(r["length_bp"]), str(r["attention"]))
        if "error" in r:
            out[key] = {"error": str(r["error"])}
        else:
            out[key] = {k: float(r[k]) for k in ("train_step_s", "eval_seqs_per_s", "peak_rss_mb") if k in r}
    return out


def context_rows(evals: list[ContextEval], bench: dict[tuple[int, str], dict[str, float]] | None = None
                 ) -> list[ContextRow]:
    """Group the evaluations (see the module docstring); model rows get the benchmark's timing of their
    (context, attention); the baseline rows its fit + predict seconds from metrics.json.

    Raises:
        UserError: evaluations of one task on different rows (another split, other bins or TSSs, other labels)
            or different test splits; named by file.
    """
    if not evals:
        raise UserError("no evaluations given")
    first: dict[str, ContextEval] = {}
    for e in evals:
        f = first.setdefault(e.evaluation.task, e)
        if (e.rows_key, e.evaluation.split) != (f.rows_key, f.evaluation.split):
            raise UserError(f"{e.evaluation.path} and {f.evaluation.path}: task {e.evaluation.task!r} evaluated on "
                            "different rows (bins/TSSs, strands, labels or split differ): build every context length "
                            "with the same --select-bp, seed and inputs")
    groups: dict[tuple, ContextRow] = {}
    for e in evals:
        ev = e.evaluation
        keys = metric_keys(ev.multi_label)
        base = (ev.task, e.context_bp, e.mask_bp)
        row = groups.setdefault(base + (e.attention,), ContextRow(ev.task, e.context_bp, e.mask_bp, e.attention, ev.n))
        for k in keys:
            if ev.model.get(k) is not None:
                row.values.setdefault(k, []).append(float(ev.model[k]))
        if ev.baseline and base + (BASELINE,) not in groups:
            b = ContextRow(ev.task, e.context_bp, e.mask_bp, BASELINE, ev.n)
            b.values = {k: [float(ev.baseline[k])] for k in keys if ev.baseline.get(k) is not None}
            if ev.baseline.get("seconds") is not None:
                b.timing["baseline_s"] = float(ev.baseline["seconds"])
            groups[base + (BASELINE,)] = b
    for row in groups.values():
        if row.method != BASELINE and bench is not None:
            row.timing.update(bench.get((row.context_bp, row.method), {}))
            dense = bench.get((row.context_bp, "dense"), {})
            if "train_step_s" in dense:  # the ratio comes from the benchmark, fitted or not
                row.timing["dense_step_s"] = dense["train_step_s"]
        row.values = {k: v for k, v in row.values.items() if v}
    order = {m: i for i, m in enumerate((BASELINE,) + ATTENTIONS)}
    return sorted(groups.values(), key=lambda r: (r.task, r.mask_bp is not None, r.context_bp, order[r.method]))


def _runs(row: ContextRow) -> int:
    return max((len(v) for v in row.values.values()), default=0)


def to_records(rows: list[ContextRow]) -> list[dict[str, str]]:
    """One dict per row, the metric cells as "mean ± sd"; timing cells formatted; '-' where not measured."""
    keys = [k for k in MULTI_METRICS + BINARY_METRICS if any(k in r.values for r in rows)]
    out = []
    for r in rows:
        rec = {"task": r.task, "context_bp": str(r.context_bp), "input": r.input, "method": r.method,
               "runs": str(_runs(r)), "n": str(r.n)}
        for k in keys:
            rec[k] = format_cell(*mean_sd(r.values[k])) if r.values.get(k) else "NA"
        t = r.timing
        if "error" in t:
            rec.update({"s_per_step": "failed", "step_vs_dense": "-", "peak_rss_mb": "-", "eval_seqs_per_s": "-"})
        else:
            step = t.get("train_step_s")
            d = t.get("dense_step_s")
            rec["s_per_step"] = f"{step:.3f}" if step is not None else "-"
            rec["step_vs_dense"] = f"{step / d:.2f}x" if step is not None and d else "-"
            rss = t.get("peak_rss_mb")
            rec["peak_rss_mb"] = f"{rss:,.0f}" if rss is not None and np.isfinite(rss) else "-"
            rec["eval_seqs_per_s"] = f"{t['eval_seqs_per_s']:.1f}" if "eval_seqs_per_s" in t else "-"
        rec["baseline_s"] = f"{t['baseline_s']:.1f}" if "baseline_s" in t else "-"
        out.append(rec)
    return out


def markdown(records: list[dict[str, str]]) -> str:
    """One Markdown table per task, with the columns that task has (a binary and a multi-label task differ)."""
    out = []
    for task in dict.fromkeys(r["task"] for r in records):
        rows = [r for r in records if r["task"] == task]
        cols = [c for c in rows[0] if any(r.get(c, "NA") != "NA" for r in rows)]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def write_tables(records: list[dict[str, str]], out_dir: Path) -> list[Path]:
    """context.tsv (every column; NA where a task has no such metric) and context.md (one table per task)."""
    tsv, md = out_dir / "context.tsv", out_dir / "context.md"
    with atomic_write(tsv) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(records[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(records)
    with atomic_write(md) as tmp:
        tmp.write_text(markdown(records))
    return [tsv, md]


def _context_axis(ax, contexts: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(contexts)
    ax.set_xticklabels([f"{c / 1000:g} kb" for c in contexts])
    ax.set_xlabel("context (bp)")


def plot_metric(rows: list[ContextRow], path: Path) -> Path:
    """Per task (row of panels) and metric (column): mean ± sd vs context per attention type, the k-mer
    baseline dashed, the N-masked control as hollow markers at its context length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r.task for r in rows})
    ncols = max(len([k for k in MULTI_METRICS + BINARY_METRICS if any(k in r.values for r in rows if r.task == t)])
                for t in tasks)
    fig, axes = plt.subplots(len(tasks), ncols, figsize=(4.2 * ncols, 3.4 * len(tasks)), squeeze=False)
    for ti, task in enumerate(tasks):
        trows = [r for r in rows if r.task == task]
        keys = [k for k in MULTI_METRICS + BINARY_METRICS if any(k in r.values for r in trows)]
        contexts = sorted({r.context_bp for r in trows})
        for ki, key in enumerate(keys):
            ax = axes[ti][ki]
            for method in (BASELINE,) + ATTENTIONS:
                full = sorted((r for r in trows if r.method == method and r.mask_bp is None and key in r.values),
                              key=lambda r: r.context_bp)
                if full:
                    ms = [mean_sd(r.values[key]) for r in full]
                    ax.errorbar([r.context_bp for r in full], [m for m, _ in ms], yerr=[s or 0 for _, s in ms],
                                marker="o", capsize=3, color=COLORS[method], label=method,
                                linestyle="--" if method == BASELINE else "-")
                for r in trows:
                    if r.method == method and r.mask_bp is not None and key in r.values:
                        m, s = mean_sd(r.values[key])
                        ax.errorbar([r.context_bp], [m], yerr=[s or 0], marker="s", markerfacecolor="none",
                                    color=COLORS[method], linestyle="none", capsize=3,
                                    label=f"{method}, central {r.mask_bp:,} bp only")
            _context_axis(ax, contexts)
            ax.set_ylabel(key)
            ax.set_title(f"{task}: {key}", fontsize=9)
            ax.grid(alpha=0.3)
        for ki in range(len(keys), ncols):
            axes[ti][ki].axis("off")
        axes[ti][0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_time(bench: dict[tuple[int, str], dict[str, float]], path: Path, title: str = "") -> Path:
    """Seconds per training step and peak RSS vs context per attention type (log-log), from the benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    contexts = sorted({c for c, _ in bench})
    for att in ATTENTIONS:
        pts = sorted((c, v) for (c, a), v in bench.items() if a == att and "train_step_s" in v)
        if not pts:
            continue
        for ax, key in zip(axes, ("train_step_s", "peak_rss_mb")):
            ax.plot([c for c, _ in pts], [v[key] for _, v in pts], marker="o", color=COLORS[att], label=att)
    for ax, label in zip(axes, ("seconds per training step", "peak RSS (MB)")):
        _context_axis(ax, contexts)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def bench_title(path: str | os.PathLike) -> str:
    data = json.loads(Path(path).read_text())
    s = data.get("settings", {})
    return (f"fine-tuning step (fwd + bwd + AdamW), batch {s.get('batch')}, fp32, {s.get('threads')} thread(s), "
            f"median of {s.get('steps')} steps; {Path(str(data.get('config', ''))).name}")


def missing_cells(rows: list[ContextRow], attentions: tuple[str, ...] = ATTENTIONS) -> list[str]:
    """``"task context input attention"`` for every full-input (task, context) without a model row."""
    have = {(r.task, r.context_bp, r.mask_bp, r.method) for r in rows}
    out = []
    for task, c, m in sorted({(r.task, r.context_bp, r.mask_bp) for r in rows if r.mask_bp is None}):
        out += [f"{task} {c:,} bp {a}" for a in attentions if (task, c, m, a) not in have]
    return out


def write_outputs(evals: list[ContextEval], bench_path: str | os.PathLike | None, out_dir: str | os.PathLike
                  ) -> tuple[list[dict[str, str]], list[Path], list[str]]:
    """Tables and plots into ``out_dir``; returns the records, the written paths and the cells not run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench = read_bench(bench_path) if bench_path is not None else None
    rows = context_rows(evals, bench)
    records = to_records(rows)
    written = write_tables(records, out)
    written.append(plot_metric(rows, out / "metric_vs_context.png"))
    if bench:
        written.append(plot_time(bench, out / "time_vs_context.png", bench_title(bench_path)))
    return records, written, missing_cells(rows)
