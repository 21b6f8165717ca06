"""Summaries of finished stages: the final validation figures of pretraining runs next to the context-free baseline.

Stage functions only (no printing): :func:`summarize_pretraining` reads each run's ``RUN/csv/metrics.csv`` and the
token stores, :func:`write_summary_tsv` writes the table (``genomics-lm summarize``, the workflow's
``summarize_pretraining`` rule). Reading a metrics file is :func:`read_metrics` / :func:`series`, shared with
``scripts/pretrain_curves.py``.

Validation and training accuracies are not comparable: validation replaces every masked target by ``[MASK]``,
while training uses the 80/10/10 rule (80% ``[MASK]``, 10% a random token, 10% unchanged, and the unchanged 10%
are nearly free to predict), so the training accuracy looks about 3x the validation accuracy. The table therefore
shows validation figures only, and says so in :data:`NOTES`.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write

METRICS_FILE = Path("csv") / "metrics.csv"  # inside a run folder (trainer.default_root_dir), appended on resume
BASELINE_RUN = "unigram"  # the name of the baseline row
COLUMNS = ("run", "steps", "val_loss", "val_acc", "best_val_loss", "source")
NOTES = (
    "val_loss: masked-token cross-entropy (nats) and val_acc: masked-token accuracy at the last validation; "
    "steps: optimizer steps done by then",
    "validation replaces every masked target by [MASK], training uses 80/10/10 ([MASK]/random/unchanged): "
    "training accuracy looks ~3x validation accuracy and is not comparable",
    f"{BASELINE_RUN}: context-free baseline of the token stores: cross-entropy of the validation k-mers under the "
    "training k-mer frequencies, and the accuracy of always predicting the most frequent training k-mer",
)


def metrics_path(run: str | os.PathLike) -> Path:
    """The metrics file of a pretraining run folder."""
    return Path(run) / METRICS_FILE


def read_metrics(run: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``RUN/csv/metrics.csv`` in file order (a resumed run appends to the same file).

    Raises:
        UserError: the file is missing, unreadable, or has no ``step`` column.
    """
    path = metrics_path(run)
    if not path.is_file():
        raise UserError(f"{path}: no metrics file (is {Path(run)} a pretraining run folder, and has it validated?)")
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read the metrics file ({exc})") from None
    if "step" not in fields:
        raise UserError(f"{path}: not a metrics file (no 'step' column)")
    return rows


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def series(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, sorted by step; where a resumed run logged a step twice, the last row wins."""
    pts: dict[int, float] = {}
    for r in rows:
        value = r.get(key)
        if value in (None, "") or not _is_number(r.get("step")):  # e.g. a header line repeated by an append
            continue
        pts[int(float(r["step"]))] = float(value)
    steps = sorted(pts)
    return steps, [pts[s] for s in steps]


def summarize_run(run: str | os.PathLike) -> dict:
    """Final and best validation figures of one run folder.

    ``steps`` is the number of optimizer steps done at the last validation: Lightning logs a validation that
    follows optimizer step ``n`` at ``step = n - 1``.

    Raises:
        UserError: no metrics file, or no validation in it.
    """
    rows = read_metrics(run)
    path = metrics_path(run)
    loss_steps, losses = series(rows, "val/loss")
    acc_steps, accs = series(rows, "val/acc")
    if not losses or not accs:
        raise UserError(f"{path}: no validation figures (val/loss, val/acc) yet: the run has not validated")
    return {"steps": loss_steps[-1] + 1, "val_loss": losses[-1], "val_acc": accs[-1], "best_val_loss": min(losses),
            "source": str(path)}


def summarize_pretraining(runs: dict[str, str | os.PathLike], train_store: str | os.PathLike,
                          val_store: str | os.PathLike) -> list[dict]:
    """One row per run (``runs``: name -> run folder, in that order), then the unigram baseline row.

    Each row has the keys of :data:`COLUMNS`; the baseline row's ``steps`` and ``best_val_loss`` are None.
    The baseline comes from :func:`genomics_lm.data.mlm_baselines` of the token stores the runs trained on.

    Raises:
        UserError: no runs, a run without metrics or validation, unreadable token stores.
    """
    if not runs:
        raise UserError("no pretraining runs to summarize")
    rows = [{"run": name, **summarize_run(path)} for name, path in runs.items()]

    from genomics_lm.data import mlm_baselines
    from genomics_lm.store import TokenStore

    base = mlm_baselines(TokenStore(train_store), TokenStore(val_store))
    rows.append({"run": BASELINE_RUN, "steps": None, "val_loss": base["unigram_cross_entropy_val"],
                 "val_acc": base["const_acc_val"], "best_val_loss": None, "source": str(val_store)})
    return rows


def format_value(value) -> str:
    """A table cell: floats with 4 decimals, missing values as NA."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_summary_tsv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write ``rows`` as a TSV (``#`` comment lines with :data:`NOTES`, a header of :data:`COLUMNS`, NA for
    missing values), atomically. Read it back with e.g. ``pandas.read_csv(path, sep="\\t", comment="#")``."""
    path = Path(path)
    lines = [f"# {note}" for note in NOTES]
    lines.append("\t".join(COLUMNS))
    lines += ["\t".join(format_value(row.get(c)) for c in COLUMNS) for row in rows]
    with atomic_write(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return path
