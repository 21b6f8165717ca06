"""One self-contained HTML report of a whole run: comparison tables, ROC/PR curves, the long-context experiment,
the attention benchmark, training curves and the attention patterns.

Stage functions only (``genomics-lm report`` parses and prints). The page has no external file, script or style
sheet: every image is a ``data:image/png;base64`` URI and the style sheet is inline, so it can be e-mailed. All
text from the inputs is escaped (:func:`html.escape`). Sections, in this order, each left out when its inputs are
not given:

    header                 title, generation time, genomics_lm version
    evaluations            per task the table of :mod:`genomics_lm.compare` (read_evaluation / compare /
                           to_records: method x metric as mean ± spread over runs, the k-mer baseline row,
                           published rows marked "published, not reproduced", n) and each evaluation's ROC and PR
    long context           each ``genomics-lm context-table`` folder: context.tsv as a table and its two plots
    attention benchmark    each ``genomics-lm bench attention`` JSON: time and memory per method and length, and
                           its PNG (the sibling ``.png``, else drawn with :func:`genomics_lm.bench.attention.plot`)
    pretraining curves     ``RUN/csv/metrics.csv`` of each pretraining run: one figure, one panel per metric
    fine-tuning curves     the same for fine-tuning runs
    attention patterns     each ``genomics-lm draw-pattern`` folder: the attended fractions and the pictures
    notes                  a text file, shown as preformatted text

:func:`build_report` reads and checks every input before anything is written, so a mistake (a folder without
``metrics.json``, a run without ``csv/metrics.csv``) is a one-line :class:`UserError` and no file.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write, read_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PUBLISHED_MARK = "(published, not reproduced)"

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
.meta, .caption, .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.baseline td { background: #f7f7e8; } tr.published td { color: #666; font-style: italic; }
td.skipped { color: #999; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figure.half img { max-width: 560px; }
pre { background: #f7f7f7; padding: 1em; white-space: pre-wrap; border: 1px solid #ddd; }
nav ul { columns: 2; }
"""


# ----------------------------------------------------------------------------------------------------------- basics


def esc(x: Any) -> str:
    """``html.escape(str(x))`` (quotes too)."""
    return html.escape(str(x), quote=True)


def read_png(path: str | os.PathLike) -> bytes:
    """The bytes of a PNG file (one-line error for a missing or non-PNG file)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read the image ({exc.strerror or exc})") from None
    if not data.startswith(PNG_MAGIC):
        raise UserError(f"{p}: not a PNG image")
    return data


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, caption: str = "", css: str = "") -> str:
    """An ``<figure>`` with the image embedded and an escaped caption."""
    cls = f' class="{esc(css)}"' if css else ""
    cap = f"<figcaption class=\"caption\">{esc(caption)}</figcaption>" if caption else ""
    return f'<figure{cls}><img src="{data_uri(png)}" alt="{esc(caption or "figure")}">{cap}</figure>'


def html_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               row_class: Mapping[int, str] | None = None, cell_title: Mapping[tuple[int, str], str] | None = None
               ) -> str:
    """A ``<table>`` with a ``<thead>`` of ``<th>`` and one ``<tr>`` per record, every cell escaped.

    ``row_class``: CSS class per record index; ``cell_title``: a tooltip per (record index, column), for cells that
    were not measured (shown greyed: the tooltip gives the reason).
    """
    cols = list(columns if columns is not None else (records[0] if records else []))
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for i, rec in enumerate(records):
        cls = (row_class or {}).get(i)
        cells = []
        for c in cols:
            title = (cell_title or {}).get((i, c))
            attr = f' title="{esc(title)}" class="skipped"' if title else ""
            cells.append(f"<td{attr}>{esc(rec.get(c, ''))}</td>")
        tr = f'<tr class="{esc(cls)}">' if cls else "<tr>"
        body.append(f"{tr}{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    """A ``<section id=anchor>`` with an escaped ``<h2>`` title around ``body`` (already HTML)."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def split_named(spec: str, option: str) -> tuple[str, Path]:
    """``NAME=RUN_DIR`` -> (NAME, Path(RUN_DIR)); one-line error otherwise."""
    name, sep, path = str(spec).partition("=")
    if not sep or not name.strip() or not path.strip():
        raise UserError(f"{option} {spec!r}: expected NAME=RUN_DIR, e.g. {option} bigbird=results/pretrain/tiny")
    return name.strip(), Path(path.strip())


def _plt():
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png_of(fig) -> bytes:
    """A figure as PNG bytes; the figure is closed."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------ evaluations


def evaluations_section(evals: Sequence[str | os.PathLike], published: str | os.PathLike | None = None) -> str:
    """Per task: the :func:`genomics_lm.compare.compare` table (as :func:`~genomics_lm.compare.to_records`) and
    the ROC and PR images of every evaluation.

    Raises:
        UserError: an EVAL_DIR without ``metrics.json`` (or a bad one), evaluations of one task on other rows, a
            bad published table.
    """
    from genomics_lm.compare import BASELINE, compare, read_evaluation, read_published, to_records

    evaluations = []
    for spec in evals:
        p = Path(spec)
        if p.is_dir() and not (p / "metrics.json").is_file():
            raise UserError(f"{p}: no metrics.json (give the --out-dir of 'genomics-lm evaluate')")
        evaluations.append(read_evaluation(p))
    rows = compare(evaluations, read_published(published) if published else None)
    parts = []
    if published:
        parts.append(f'<p class="note">Rows marked "{esc(PUBLISHED_MARK)}" are published figures from '
                     f"{esc(Path(published).name)} (other models, training and sometimes other splits), shown for "
                     "orientation only. Values are mean ± sample standard deviation over runs (seeds); n is the "
                     "number of test rows.</p>")
    else:
        parts.append('<p class="note">Values are mean ± sample standard deviation over runs (seeds); n is the '
                     "number of test rows.</p>")
    tasks = list(dict.fromkeys(ev.task for ev in evaluations))
    for task in tasks:
        task_rows = [r for r in rows if r.task == task]
        recs = to_records(task_rows)
        classes = {i: "baseline" if r.method == BASELINE else "published" if r.method.endswith(PUBLISHED_MARK)
                   else "" for i, r in enumerate(task_rows)}
        parts.append(f"<h3>task {esc(task)}</h3>")
        split = next(ev.split for ev in evaluations if ev.task == task)
        parts.append(f'<p class="meta">split {esc(split)}; {sum(r.runs for r in task_rows if r.method != BASELINE)} '
                     f"evaluation(s); the {esc(BASELINE)} is fitted on the same task's train/val rows and scored on "
                     "the same test rows</p>")
        parts.append(html_table(recs, row_class={i: c for i, c in classes.items() if c}))
        figs = []
        for ev in (e for e in evaluations if e.task == task):
            folder = ev.path.parent
            for name, what in (("roc.png", "ROC"), ("pr.png", "precision-recall")):
                if (folder / name).is_file():
                    figs.append(figure(read_png(folder / name), f"{what}: {ev.method} ({folder})", "half"))
                else:
                    figs.append(f'<p class="note">{esc(folder / name)}: not found</p>')
        parts.append("\n".join(figs))
    return section("evaluations", "Evaluations: ours next to the k-mer baseline", "\n".join(parts))


# ----------------------------------------------------------------------------------------------------- long context


CONTEXT_PNGS = (("metric_vs_context.png", "test metric vs context length"),
                ("time_vs_context.png", "seconds per training step and peak memory vs context length"))


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header (one-line error if unreadable or empty)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read the table ({exc})") from None
    if not rows:
        raise UserError(f"{path}: the table has no rows")
    return rows


def context_section(summaries: Sequence[str | os.PathLike]) -> str:
    """Each ``genomics-lm context-table`` folder: ``context.tsv`` as a table and its plots."""
    parts = []
    for d in map(Path, summaries):
        tsv = d / "context.tsv"
        if not tsv.is_file():
            raise UserError(f"{tsv}: no such file (give the --out-dir of 'genomics-lm context-table')")
        rows = read_tsv(tsv)
        parts.append(f"<h3>{esc(d)}</h3>")
        parts.append(html_table(rows, row_class={i: "baseline" for i, r in enumerate(rows)
                                                 if r.get("method") == "k-mer baseline"}))
        parts += [figure(read_png(d / n), cap) for n, cap in CONTEXT_PNGS if (d / n).is_file()]
    return section("long-context", "Long context: metric, time and memory vs context length", "\n".join(parts))


# ------------------------------------------------------------------------------------------- attention benchmark


def read_bench_attention(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON of ``genomics-lm bench attention`` (``{"meta": {...}, "records": [...]}``), checked."""
    p = Path(path)
    doc = read_json(p, "a JSON of 'genomics-lm bench attention'", "give the --out of 'genomics-lm bench attention'")
    recs = doc.get("records") if isinstance(doc, dict) else None
    if not isinstance(recs, list) or not recs or not all(
            isinstance(r, dict) and {"method", "backend", "length", "pass"} <= set(r) for r in recs):
        raise UserError(f"{p}: not a JSON of 'genomics-lm bench attention' (no records with method, backend, length, "
                        "pass)")
    return doc


def bench_records(records: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, str]], dict[tuple[int, str], str]]:
    """Rows pass x method/backend, one column per length: "time ms / RSS MB" or "skipped" (reason as tooltip)."""
    from genomics_lm.bench.attention import METHODS, PASSES

    lengths = sorted({int(r["length"]) for r in records})
    order = {f"{m}/{b}": i for i, (m, b) in enumerate(METHODS)}
    keys = sorted({(r["pass"], f"{r['method']}/{r['backend']}") for r in records},
                  key=lambda k: (PASSES.index(k[0]) if k[0] in PASSES else 99, order.get(k[1], 99), k[1]))
    index = {(r["pass"], f"{r['method']}/{r['backend']}", int(r["length"])): r for r in records}
    out, titles = [], {}
    for i, (pas, name) in enumerate(keys):
        rec = {"pass": pas, "method/backend": name}
        for T in lengths:
            col = f"{T} tokens"
            r = index.get((pas, name, T))
            if r is None:
                rec[col] = "-"
            elif "skipped" in r:
                rec[col] = "skipped"
                titles[(i, col)] = str(r["skipped"])
            else:
                rec[col] = f"{float(r['time_s']) * 1e3:.1f} ms / {float(r['peak_mem_mb']):.1f} MB"
        out.append(rec)
    return out, titles


def bench_section(paths: Sequence[str | os.PathLike]) -> str:
    """Each attention benchmark: a table of time and peak memory per method and length, and its plot."""
    from genomics_lm.bench.attention import plot

    parts = []
    for path in map(Path, paths):
        doc = read_bench_attention(path)
        meta = doc.get("meta") or {}
        recs, titles = bench_records(doc["records"])
        layer = meta.get("layer") or {}
        parts.append(f"<h3>{esc(path)}</h3>")
        parts.append(f'<p class="meta">{esc(meta.get("mode", ""))}; hidden {esc(layer.get("hidden", "?"))}, '
                     f'{esc(layer.get("heads", "?"))} heads; device {esc(meta.get("device", "?"))}, '
                     f'{esc(meta.get("threads", "?"))} thread(s), torch {esc(meta.get("torch", "?"))}; load average '
                     f'at start {esc(meta.get("load_average_start", "?"))}. Cells: median time of the timed runs / '
                     "peak resident-memory growth (CUDA: peak allocated); hover a skipped cell for the reason.</p>")
        parts.append(html_table(recs, cell_title=titles))
        sibling = path.with_suffix(".png")
        if sibling.is_file():
            png, origin = read_png(sibling), sibling.name
        else:
            buf = io.BytesIO()
            plot(doc["records"], buf)
            png, origin = buf.getvalue(), "drawn from the JSON"
        parts.append(figure(png, f"time and memory vs sequence length ({origin})"))
    return section("bench-attention", "Attention benchmark: time and memory vs sequence length", "\n".join(parts))


# --------------------------------------------------------------------------------------------------------- curves


SKIP_CURVE_KEYS = ("epoch", "step")


def read_run(name: str, run: Path, option: str) -> list[dict[str, str]]:
    """The rows of ``RUN/csv/metrics.csv`` (:func:`genomics_lm.summary.read_metrics`), with a one-line error
    naming ``option`` when the file is missing."""
    from genomics_lm.summary import metrics_path, read_metrics

    path = metrics_path(run)
    if not path.is_file():
        raise UserError(f"{path}: no such file ({option} {name}={run}: give a training run folder, the "
                        "--trainer.default_root_dir of 'genomics-lm pretrain/finetune fit', after it has logged)")
    return read_metrics(run)


def curve_keys(runs: Mapping[str, list[dict[str, str]]]) -> list[str]:
    """The metrics to plot: every logged column but epoch, step and learning rates, train before val."""
    from genomics_lm.summary import series

    keys: list[str] = []
    for rows in runs.values():
        for k in (rows[0] if rows else {}):
            if k in SKIP_CURVE_KEYS or k in keys or k.split("/")[-1].startswith("lr") or not series(rows, k)[0]:
                continue
            keys.append(k)
    return keys


def curves_png(runs: Mapping[str, list[dict[str, str]]], title: str) -> bytes:
    """One panel per metric name (train/X and val/X together), one colour per run; PNG bytes."""
    from genomics_lm.summary import series

    plt = _plt()
    keys = curve_keys(runs)
    stems = sorted(dict.fromkeys(k.split("/")[-1] for k in keys), key=lambda s: s != "loss") or ["(nothing logged)"]
    ncol = min(3, len(stems))
    nrow = -(-len(stems) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.0 * ncol, 3.6 * nrow), squeeze=False)
    for ax, stem in zip(axes.flat, stems):
        drawn = False
        for i, (name, rows) in enumerate(runs.items()):
            for k in (k for k in keys if k.split("/")[-1] == stem):
                steps, values = series(rows, k)
                if not steps:
                    continue
                val = k.startswith("val")
                ax.plot(steps, values, color=f"C{i % 10}", linestyle="--" if val else "-", marker="o" if val else None,
                        markersize=3, linewidth=1.2 if val else 0.8, label=f"{name} {k}")
                drawn = True
        ax.set_title(stem)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(stems):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _png_of(fig)


def last_values(rows: list[dict[str, str]], keys: Sequence[str]) -> dict[str, str]:
    """The last logged value of each of ``keys`` (``-`` where never logged)."""
    from genomics_lm.summary import series

    out = {}
    for k in keys:
        steps, values = series(rows, k)
        out[k] = f"{values[-1]:.4g}" if values else "-"
    return out


def curves_section(anchor: str, title: str, specs: Sequence[str], option: str) -> str:
    """Training curves of ``NAME=RUN_DIR`` runs: a table of the last values and one figure of all runs."""
    from genomics_lm.summary import series

    runs: dict[str, list[dict[str, str]]] = {}
    folders: dict[str, Path] = {}
    for spec in specs:
        name, run = split_named(spec, option)
        if name in runs:
            raise UserError(f"{option} {spec!r}: the name {name!r} is given twice")
        runs[name], folders[name] = read_run(name, run, option), run
    keys = [k for k in curve_keys(runs) if k.startswith("val")] or curve_keys(runs)
    recs = []
    for name, rows in runs.items():
        steps = [s for k in curve_keys({name: rows}) for s in series(rows, k)[0]]
        recs.append({"run": name, "folder": str(folders[name]), "last step": str(max(steps)) if steps else "-",
                     **last_values(rows, keys)})
    body = ('<p class="note">Last logged values (from RUN/csv/metrics.csv); solid lines are training, dashed '
            "with dots validation.</p>" + html_table(recs) + figure(curves_png(runs, title), title))
    return section(anchor, title, body)


# ------------------------------------------------------------------------------------------------------- patterns


def patterns_section(dirs: Sequence[str | os.PathLike]) -> str:
    """Each ``genomics-lm draw-pattern`` folder: attended fraction per attention type and layer, and the pictures."""
    from genomics_lm.draw_pattern import JSON_NAME

    parts = []
    for d in map(Path, dirs):
        path = d / JSON_NAME
        doc = read_json(path, "a patterns.json of 'genomics-lm draw-pattern'",
                        "give the --out-dir of 'genomics-lm draw-pattern'")
        try:
            patterns = doc["patterns"]
            length = doc["length"]
        except (KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a patterns.json of 'genomics-lm draw-pattern' (missing {exc!r})") from None
        recs = []
        for attention, rec in patterns.items():
            for layer in rec.get("layers", []):
                recs.append({"attention": attention, "parameters": rec.get("describe", ""),
                             "layer": str(layer.get("layer")),
                             "attended per head": ", ".join(f"{f:.1%}" for f in layer.get("heads", [])),
                             "density (kernels)": f"{layer.get('density', float('nan')):.1%}"})
        parts.append(f"<h3>{esc(d)}</h3>")
        parts.append(f'<p class="meta">{esc(doc.get("source", ""))} at {esc(length)} tokens; each panel is the '
                     "query (row) x key (column) mask of one layer and head, black = attended.</p>")
        if recs:
            parts.append(html_table(recs))
        for attention, rec in patterns.items():
            png = d / str(rec.get("png", f"pattern_{attention}.png"))
            if png.is_file():
                parts.append(figure(read_png(png), f"{attention}: {rec.get('describe', '')}"))
            else:
                parts.append(f'<p class="note">{esc(png)}: not found</p>')
    return section("patterns", "Attention patterns", "\n".join(parts))


# --------------------------------------------------------------------------------------------------------- report


def build_report(title: str = "genomics_lm report", evals: Sequence[str | os.PathLike] = (),
                 published: str | os.PathLike | None = None, context: Sequence[str | os.PathLike] = (),
                 bench_attention: Sequence[str | os.PathLike] = (), pretrain_runs: Sequence[str] = (),
                 finetune_runs: Sequence[str] = (), patterns: Sequence[str | os.PathLike] = (),
                 notes: str | os.PathLike | None = None, now: datetime.datetime | None = None) -> str:
    """The whole page as one string (nothing written). Sections whose inputs are empty are left out.

    Raises:
        UserError: any unreadable or wrong input, naming the file.
    """
    from genomics_lm import __version__

    sections: list[tuple[str, str, str]] = []  # (anchor, title, html)
    if evals:
        sections.append(("evaluations", "Evaluations", evaluations_section(evals, published)))
    if context:
        sections.append(("long-context", "Long context", context_section(context)))
    if bench_attention:
        sections.append(("bench-attention", "Attention benchmark", bench_section(bench_attention)))
    if pretrain_runs:
        sections.append(("pretraining", "Pretraining curves",
                         curves_section("pretraining", "Pretraining curves", pretrain_runs, "--pretrain-runs")))
    if finetune_runs:
        sections.append(("finetuning", "Fine-tuning curves",
                         curves_section("finetuning", "Fine-tuning curves", finetune_runs, "--finetune-runs")))
    if patterns:
        sections.append(("patterns", "Attention patterns", patterns_section(patterns)))
    if notes is not None:
        p = Path(notes)
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{p}: cannot read the notes ({getattr(exc, 'strerror', None) or exc})") from None
        sections.append(("notes", "Notes", section("notes", "Notes", f"<pre>{esc(text)}</pre>")))
    when = (now or datetime.datetime.now().astimezone()).isoformat(timespec="seconds")
    nav = ("<nav><ul>" + "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in sections) + "</ul></nav>"
           if sections else '<p class="note">No inputs were given: nothing to report.</p>')
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<header><h1>{esc(title)}</h1>",
        f'<p class="meta">generated {esc(when)} by genomics_lm {esc(__version__)}</p></header>',
        nav, *(body for _, _, body in sections), "</body>", "</html>", ""])


def write_report(page: str, out: str | os.PathLike) -> Path:
    """Write the page atomically (a temporary name, renamed when complete)."""
    with atomic_write(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out)
