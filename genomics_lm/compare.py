"""Comparison tables of evaluations: each method's metric as mean ± spread over seeds, next to the k-mer baseline
scored on the same rows, and published figures marked as not reproduced.

Stage functions only (``genomics-lm compare`` prints and writes):

    EVAL_DIR/metrics.json ...  (one per fine-tuning run, from ``genomics-lm evaluate``)
        ──► read_evaluation    the file, checked (task, split, rows digest, model and baseline metrics)
        ──► compare            group by (task, method): method = NAME given by the user, or
                               "<attention> <scratch|pretrained NAME>[ +both strands]"
                               one k-mer baseline row per task (identical in every run: it is deterministic;
                               shown once, runs 1, with a note; a difference is reported as spread, not hidden)
                               every evaluation of a task must be on the same rows (same split, same
                               ``rows_sha256``), otherwise a :class:`UserError` names both files
        ──► published rows     (``--published data/published.tsv``: task, method, metric, value, source)
        ──► rows: task, method, runs, n (test rows), one "mean ± sd" cell per metric

The spread is the sample standard deviation over runs (ddof=1); one run has no spread ("0.812", not
"0.812 ± 0"). Metrics: ``mcc``, ``auroc``, ``auprc`` for a binary task; ``macro_auroc``, ``macro_auprc``,
``macro_mcc`` for a multi-label task (the same keys ``metrics.json`` uses).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write, read_json

BINARY_METRICS = ("mcc", "auroc", "auprc")
MULTI_METRICS = ("macro_auroc", "macro_auprc", "macro_mcc")
BASELINE = "k-mer baseline"
PUBLISHED_COLUMNS = ("task", "method", "metric", "value", "source")
STRANDS_SUFFIX = " +both strands"  # of the default method name of an evaluation with --both-strands


@dataclass
class Evaluation:
    """One ``metrics.json``: where it is, what it measured and how the model was made."""

    path: Path
    task: str
    split: str
    n: int
    rows_sha256: str
    method: str
    model: dict[str, Any]
    baseline: dict[str, Any] | None
    multi_label: bool


def method_name(metrics: dict[str, Any]) -> str:
    """The default name of the method that produced ``metrics``: attention, how the encoder started, strands.

    E.g. ``"dense scratch"``, ``"bigbird pretrained ecoli/bigbird"`` (the pretrained file's two parent folder
    names, or its stem), ``"longformer scratch +both strands"``.
    """
    record = metrics.get("checkpoint_record") or {}
    pre = record.get("pretrained")
    if pre:
        p = Path(str(pre))
        where = "/".join(p.parts[-3:-1]) if p.name == "pretrained.pt" and len(p.parts) >= 3 else p.stem
        init = f"pretrained {where}"
    else:
        init = "scratch"
    name = f"{metrics.get('attention', '?')} {init}"
    return name + (STRANDS_SUFFIX if metrics.get("both_strands") else "")


def read_evaluation(path: str | os.PathLike, name: str | None = None) -> Evaluation:
    """Read ``path`` (an evaluation folder or its ``metrics.json``); ``name`` overrides :func:`method_name`."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    metrics = read_json(p, "a metrics.json of 'genomics-lm evaluate'",
                        "give the --out-dir of 'genomics-lm evaluate' or its metrics.json")
    missing = [k for k in ("task", "split", "n", "rows_sha256", "model", "label_names") if k not in metrics]
    if not isinstance(metrics, dict) or missing:
        raise UserError(f"{p}: not a metrics.json of 'genomics-lm evaluate' (missing {', '.join(missing)})")
    return Evaluation(path=p, task=str(metrics["task"]), split=str(metrics["split"]), n=int(metrics["n"]),
                      rows_sha256=str(metrics["rows_sha256"]), method=name or method_name(metrics),
                      model=metrics["model"], baseline=metrics.get("kmer_baseline"),
                      multi_label=len(metrics["label_names"]) > 1)


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def format_cell(mean: float | None, sd: float | None, digits: int = 3) -> str:
    if mean is None:
        return "NA"
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


@dataclass
class Row:
    task: str
    method: str
    n: int | None
    runs: int
    values: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def cells(self, metrics: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for key in metrics:
            vals = self.values.get(key) or []
            out[key] = format_cell(*mean_sd(vals)) if vals else "NA"
        return out


def _metric_values(obj: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, float]:
    return {k: float(obj[k]) for k in metrics if obj.get(k) is not None}


def read_published(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a published-figures table (TSV with the header ``task method metric value source``)."""
    p = Path(path)
    try:
        lines = [line for line in p.read_text().splitlines() if line.strip() and not line.startswith("#")]
    except OSError as exc:
        raise UserError(f"{p}: cannot read the published figures ({exc.strerror})") from None
    reader = csv.DictReader(lines, delimiter="\t")
    if tuple(reader.fieldnames or ()) != PUBLISHED_COLUMNS:
        raise UserError(f"{p}: header must be {' '.join(PUBLISHED_COLUMNS)} (tab-separated), found {reader.fieldnames}")
    rows = []
    for i, row in enumerate(reader, start=2):
        try:
            float(row["value"])
        except (TypeError, ValueError):
            raise UserError(f"{p}: row {i}: value {row['value']!r} is not a number") from None
        rows.append(row)
    return rows


def compare(evaluations: list[Evaluation], published: list[dict[str, str]] | None = None) -> list[Row]:
    """Group ``evaluations`` into rows (task order and method order as first seen; the baseline first per task)."""
    by_task: dict[str, list[Evaluation]] = {}
    for ev in evaluations:
        by_task.setdefault(ev.task, []).append(ev)
    rows: list[Row] = []
    for task, evs in by_task.items():
        first = evs[0]
        for ev in evs[1:]:
            if (ev.split, ev.rows_sha256) != (first.split, first.rows_sha256):
                raise UserError(f"task {task!r}: {ev.path} is on other rows than {first.path} (split {ev.split} vs "
                                f"{first.split}, rows_sha256 {ev.rows_sha256[:12]} vs {first.rows_sha256[:12]}); "
                                "compare evaluations of the same split, or give the task another name")
        metrics = MULTI_METRICS if first.multi_label else BINARY_METRICS
        baseline = Row(task, BASELINE, first.n, 0)
        groups: dict[str, Row] = {}
        for ev in evs:
            row = groups.setdefault(ev.method, Row(task, ev.method, ev.n, 0))
            row.runs += 1
            for k, v in _metric_values(ev.model, metrics).items():
                row.values.setdefault(k, []).append(v)
            if ev.baseline and not ev.method.endswith(STRANDS_SUFFIX):
                baseline.runs += 1
                for k, v in _metric_values(ev.baseline, metrics).items():
                    baseline.values.setdefault(k, []).append(v)
        if baseline.runs > 1 and all(len(set(v)) == 1 for v in baseline.values.values()):
            # one deterministic fit (cached) scored in every evaluation: one value, not a spread of 0 over copies
            baseline.note = f"one fit, identical in all {baseline.runs} evaluations"
            baseline.runs, baseline.values = 1, {k: v[:1] for k, v in baseline.values.items()}
        if baseline.runs:
            rows.append(baseline)
        rows.extend(sorted(groups.values(), key=lambda r: _method_order(r.method, list(groups))))
        for pub in published or []:
            if pub["task"] != task:
                continue
            key = pub["metric"]
            row = Row(task, f"{pub['method']} (published, not reproduced)", None, 0,
                      {key: [float(pub["value"])]}, note=pub["source"])
            rows.append(row)
    return rows


def _method_order(method: str, seen: list[str]) -> tuple[int, bool]:
    """Methods in first-seen order, each "... +both strands" row right after its single-strand row."""
    base = method.removesuffix(STRANDS_SUFFIX)
    first = next((i for i, m in enumerate(seen) if m.removesuffix(STRANDS_SUFFIX) == base), len(seen))
    return first, method.endswith(STRANDS_SUFFIX)


def table_columns(rows: list[Row]) -> tuple[str, ...]:
    """The metric columns the rows use, binary first."""
    used = {k for r in rows for k in r.values}
    return tuple(k for k in BINARY_METRICS + MULTI_METRICS if k in used)


def to_records(rows: list[Row]) -> list[dict[str, str]]:
    cols = table_columns(rows)
    out = []
    for r in rows:
        rec = {"task": r.task, "method": r.method, "runs": str(r.runs) if r.runs else "",
               "n": "" if r.n is None else str(r.n)}
        rec.update(r.cells(cols))
        rec["note"] = r.note
        out.append(rec)
    return out


def markdown(rows: list[Row]) -> str:
    """A Markdown table (README, notes)."""
    recs = to_records(rows)
    if not recs:
        return ""
    head = list(recs[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(rec[h] for h in head) + " |" for rec in recs]
    return "\n".join(lines)


def write_tsv(rows: list[Row], path: str | os.PathLike) -> Path:
    recs = to_records(rows)
    head = list(recs[0]) if recs else ["task", "method", "runs", "n", "note"]
    lines = ["\t".join(head)] + ["\t".join(rec[h] for h in head) for rec in recs]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
