"""``genomics-lm report``: one self-contained HTML page built from real outputs of the pipeline's commands.

The inputs are made once per module (about half a minute on 2 busy cores): a task from the real E. coli sigma-70
promoters (``make-task --k 1``), a very small fine-tuning run (3 training batches), its evaluation (with the k-mer
baseline) and ``draw-pattern``; the attention-benchmark JSON, the long-context summary and a pretraining
``metrics.csv`` are small hand-written files of the documented layouts. The page is checked with Python's
``html.parser`` and, where a headless browser is installed, loaded in it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from genomics_lm.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 2 validation batches of unshuffled rows hold one class only: the run says so, and that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:validation. no label has both classes")
SECTION_ORDER = ["evaluations", "long-context", "bench-attention", "pretraining", "finetuning", "patterns", "notes"]


class Page(HTMLParser):
    """Every start tag with its attributes, the tables (header cells, data rows as lists of cell texts) and the
    section ids in order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.tables: list[dict] = []
        self.sections: list[str] = []
        self._table: dict | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "table":
            self._table = {"th": [], "rows": []}
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._table["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self._table["th"].append(text)
            else:
                self._table["rows"][-1].append(text)
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def data_rows(self, table: dict) -> list[list[str]]:
        return [r for r in table["rows"] if r]

    def images(self) -> list[str]:
        return [a.get("src", "") for t, a in self.tags if t == "img"]


def run_cli(argv: list[str]) -> None:
    assert cli_main(argv) == 0, argv


@pytest.fixture(scope="module")
def inputs(data_dir, tmp_path_factory):
    """Real outputs of make-task, finetune fit, evaluate and draw-pattern, plus small files of the documented
    layouts for the benchmark, the long-context summary and a pretraining run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a busy machine: one thread avoids waking a second per op
    root = tmp_path_factory.mktemp("report")
    d = data_dir / "promoters" / "ecoli_sigma70"
    task, run, ev = root / "sigma70", root / "run", root / "eval"
    try:
        run_cli(["make-task", "--out-dir", str(task), "--pos", str(d / "promoters.fa"), "--neg",
                 str(d / "non_promoters.fa"), "--k", "1", "--seed", "0"])
        run_cli(["finetune", "fit", "--config", str(REPO / "configs/finetune/tiny.yaml"), "--data.task_dir", str(task),
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches",
                 "2", "--trainer.log_every_n_steps", "1", "--model.arch.d_model", "32", "--model.arch.d_ff", "64",
                 "--model.arch.n_layers", "1", "--model.arch.n_heads", "2", "--trainer.enable_progress_bar",
                 "false", "--trainer.default_root_dir", str(run)])
        run_cli(["evaluate", "--checkpoint", str(run / "finetuned.pt"), "--task-dir", str(task), "--out-dir",
                 str(ev)])
        patterns = root / "patterns"
        run_cli(["draw-pattern", "--config", str(run / "finetuned.pt"), "--attention", "bigbird", "--attention", "longformer",
                 "--length", "320", "--out-dir", str(patterns)])
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((ev / "metrics.json").read_text())

    published = root / "published.tsv"
    published.write_text("# test figures\ntask\tmethod\tmetric\tvalue\tsource\n"
                         f"{metrics['task']}\tSomeModel <v2>\tauroc\t0.9\tA & B 2024\n"
                         "another_task\tOther\tmcc\t0.5\tnot this task\n")

    bench = root / "bench" / "bench_attention.json"  # no .png beside it: the report draws one
    bench.parent.mkdir()
    recs = []
    for T in (1024, 2048):
        for method, backend, t in (("dense", "sdpa", 0.01), ("bigbird", "blocked", 0.02)):
            recs.append({"method": method, "backend": backend, "length": T, "pass": "fwd", "time_s": t * T / 1024,
                         "peak_mem_mb": T / 64, "repeats": 3})
        recs.append({"method": "bigbird", "backend": "flex", "length": T, "pass": "fwd+bwd",
                     "skipped": "FlexAttention has no backward on CPU"})
    bench.write_text(json.dumps({"meta": {"mode": "layer", "layer": {"hidden": 256, "heads": 8}, "device": "cpu",
                                          "threads": 2}, "records": recs}))

    context = root / "context"
    context.mkdir()
    (context / "context.tsv").write_text(
        "task\tcontext_bp\tinput\tmethod\truns\tn\tauroc\n"
        "k562\t1000\tfull\tk-mer baseline\t2\t500\t0.700 ± 0.000\n"
        "k562\t1000\tfull\tbigbird\t2\t500\t0.750 ± 0.010\n")
    shutil.copy(ev / "roc.png", context / "metric_vs_context.png")

    pre = root / "pretrain"
    (pre / "csv").mkdir(parents=True)
    lines = ["epoch,step,train/acc,train/loss,train/lr,val/acc,val/loss"]
    for step in range(0, 40, 10):
        lines.append(f"0,{step},{0.3 + step / 200:.3f},{2.0 - step / 50:.3f},0.001,,")
        lines.append(f"0,{step},,,,{0.25 + step / 300:.3f},{2.1 - step / 60:.3f}")
    (pre / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")

    notes = root / "notes.md"
    notes.write_text("# Notes\nrun on <script>alert('x')</script> & friends\n")
    return {"root": root, "task": task, "run": run, "eval": ev, "metrics": metrics, "published": published,
            "bench": bench, "context": context, "pretrain": pre, "patterns": patterns, "notes": notes}


def full_argv(inp: dict, out: Path) -> list[str]:
    return ["report", "--out", str(out), "--title", "sigma70 <tiny> & co", "--evals", str(inp["eval"]),
            "--published", str(inp["published"]), "--context", str(inp["context"]),
            "--bench-attention", str(inp["bench"]), "--pretrain-runs", f"tiny={inp['pretrain']}",
            "--finetune-runs", f"bigbird={inp['run']}", "--patterns", str(inp["patterns"]),
            "--notes", str(inp["notes"])]


@pytest.fixture(scope="module")
def report(inputs):
    out = inputs["root"] / "out" / "report.html"
    run_cli(full_argv(inputs, out))
    text = out.read_text(encoding="utf-8")
    return out, text, Page(text)


def test_every_image_is_an_embedded_png_and_nothing_is_external(report):
    _, text, page = report
    srcs = page.images()
    # ROC + PR, metric_vs_context, the benchmark plot (drawn), pretraining, fine-tuning, 2 pattern pictures
    assert len(srcs) == 8
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:" if key == "src" else "#"), (tag, attrs[key][:80])
    assert "url(" not in text and "@import" not in text


def test_sections_in_order_and_text_escaped(report):
    _, text, page = report
    assert page.sections == SECTION_ORDER
    assert "<title>sigma70 &lt;tiny&gt; &amp; co</title>" in text
    assert "<script>" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    body = "".join(page.text)
    assert "genomics_lm 0.1.0" in body and "generated " in body


def test_tables_have_headers_and_rows_and_the_comparison_is_compare(report, inputs):
    from genomics_lm.compare import compare, read_evaluation, read_published, to_records

    _, _, page = report
    assert page.tables
    for table in page.tables:
        assert table["th"] and page.data_rows(table), table
    comparison = page.tables[0]
    expected = to_records(compare([read_evaluation(inputs["eval"])], read_published(inputs["published"])))
    assert comparison["th"] == list(expected[0])
    assert page.data_rows(comparison) == [list(rec.values()) for rec in expected]
    methods = [row[1] for row in page.data_rows(comparison)]
    assert methods == ["k-mer baseline", "bigbird scratch", "SomeModel <v2> (published, not reproduced)"]
    m = inputs["metrics"]
    baseline, ours, published = page.data_rows(comparison)
    cols = comparison["th"]
    assert ours[cols.index("n")] == baseline[cols.index("n")] == str(m["n"])
    assert ours[cols.index("mcc")] == f"{m['model']['mcc']:.3f}"
    assert baseline[cols.index("auroc")] == f"{m['kmer_baseline']['auroc']:.3f}"
    assert published[cols.index("auroc")] == "0.900" and published[cols.index("note")] == "A & B 2024"
    # the benchmark table: rows pass x method, one column per length, skipped cells say so
    bench = next(t for t in page.tables if t["th"][:2] == ["pass", "method/backend"])
    assert bench["th"][2:] == ["1024 tokens", "2048 tokens"]
    rows = {tuple(r[:2]): r[2:] for r in page.data_rows(bench)}
    assert rows[("fwd", "dense/sdpa")] == ["10.0 ms / 16.0 MB", "20.0 ms / 32.0 MB"]
    assert rows[("fwd+bwd", "bigbird/flex")] == ["skipped", "skipped"]
    # the curves tables: one row per run with its last values
    curves = [t for t in page.tables if t["th"][:3] == ["run", "folder", "last step"]]
    assert [page.data_rows(t)[0][0] for t in curves] == ["tiny", "bigbird"]
    pre = curves[0]
    assert page.data_rows(pre)[0][pre["th"].index("val/loss")] == f"{2.1 - 30 / 60:.4g}"
    assert "train/lr" not in pre["th"]
    # the patterns table: the fractions of patterns.json
    doc = json.loads((inputs["patterns"] / "patterns.json").read_text())
    pat = next(t for t in page.tables if t["th"][:2] == ["attention", "parameters"])
    assert [r[0] for r in page.data_rows(pat)] == ["bigbird", "longformer"]
    assert page.data_rows(pat)[0][3] == ", ".join(f"{f:.1%}" for f in doc["patterns"]["bigbird"]["layers"][0]["heads"])


def test_sections_are_left_out_without_their_inputs(inputs, tmp_path):
    out = tmp_path / "evals_only.html"
    run_cli(["report", "--out", str(out), "--evals", str(inputs["eval"])])
    page = Page(out.read_text())
    assert page.sections == ["evaluations"] and len(page.images()) == 2
    assert [r[1] for r in page.data_rows(page.tables[0])] == ["k-mer baseline", "bigbird scratch"]
    # a benchmark JSON with its .png beside it: that picture is shown as it is
    bench = tmp_path / "b" / "bench.json"
    bench.parent.mkdir()
    shutil.copy(inputs["bench"], bench)
    shutil.copy(inputs["eval"] / "pr.png", bench.with_suffix(".png"))
    out = tmp_path / "bench_only.html"
    run_cli(["report", "--out", str(out), "--bench-attention", str(bench)])
    page = Page(out.read_text())
    assert page.sections == ["bench-attention"]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in page.images()] == [(inputs["eval"] / "pr.png").read_bytes()]
    empty = tmp_path / "empty.html"
    run_cli(["report", "--out", str(empty)])
    page = Page(empty.read_text())
    assert page.sections == [] and page.images() == [] and page.tables == []


@pytest.mark.parametrize("case", ["eval_without_metrics", "run_without_csv", "bad_run_spec", "exists", "out_is_dir"])
def test_bad_inputs_are_one_line_errors_and_write_nothing(inputs, tmp_path, capsys, case):
    out = tmp_path / "sub" / "report.html"
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    argv, message = {
        "eval_without_metrics": (["--evals", str(inputs["eval"]), "--evals", str(empty)], f"{empty}: no metrics.json"),
        "run_without_csv": (["--finetune-runs", f"bigbird={inputs['run']}", f"broken={empty}"],
                            f"{empty / 'csv' / 'metrics.csv'}: no such file (--finetune-runs broken="),
        "bad_run_spec": (["--pretrain-runs", str(inputs["pretrain"])], "expected NAME=RUN_DIR"),
        "exists": ([], "output exists (use --overwrite"),
        "out_is_dir": ([], "--out is a folder"),
    }[case]
    if case == "exists":
        out.parent.mkdir()
        out.write_text("old")
    if case == "out_is_dir":
        out.mkdir(parents=True)
    assert cli_main(["report", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genomics-lm report: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    if case == "exists":
        assert out.read_text() == "old"
    elif case == "out_is_dir":
        assert list(out.iterdir()) == []
    else:
        assert not out.parent.exists()


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "firefox")


def _browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason=f"no headless browser installed ({', '.join(BROWSERS)})")
def test_a_headless_browser_loads_the_page_with_its_images(report, tmp_path):
    out, text, page = report
    browser = _browser()
    if "firefox" in Path(browser).name:
        cmd = [browser, "--headless", "--screenshot", str(tmp_path / "shot.png"), out.as_uri()]
    else:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", out.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    if "firefox" in Path(browser).name:
        assert (tmp_path / "shot.png").read_bytes().startswith(PNG_MAGIC)
        return
    dom = Page(res.stdout)
    assert dom.images() == page.images()  # every embedded image survives parsing by the browser
    assert dom.sections == SECTION_ORDER
    assert len(dom.tables) == len(page.tables)
