"""The fine-tuning benchmark: examples/s and sequences/s per attention type and input length, k-mer baseline time.

The command is ``genomics-lm bench finetune`` (:mod:`genomics_lm.cli.bench_finetune`); this module measures and
formats, and prints nothing. Figures: see the README's Benchmarks section.

The model is the tiny fine-tuning model of ``configs/finetune/tiny.yaml`` (``model.arch``: single bases, conv stem
15, d_model 128, 2 layers, 4 heads, d_ff 512, BigBird blocks of 32, Longformer window 96), one output, built with
``attention`` set to each of bigbird, longformer and dense; fp32 on the CPU.

Inputs (real sequences, tokenized with the config's tokenizer, single bases by default):

* 70 bp: ``promoters/gue_prom_core_all`` (train.csv / dev.csv / test.csv, their real labels);
* 300 bp: ``promoters/gue_prom_300_tata`` (the same three files);
* any other length (1 kb by default): windows of that length cut from ``genomes/ecoli_k12_mg1655.fna.gz``
  at random non-overlapping positions (windows with a base other than ACGT skipped), with RANDOM 0/1 labels:
  they are for timing only, the baseline's and the model's scores on them mean nothing.

Per length there are three splits: ``train`` (the fine-tuning batches and the baseline's fit), ``val`` (the
baseline's choice of k and C) and ``eval`` (evaluation and the baseline's predictions); for the promoter sets they
come from train.csv, dev.csv and test.csv (seeded shuffles, capped at the sizes asked for: test.csv of the 300 bp
set holds 613 rows).

Measured per cell (attention x length), each cell in its own process (``multiprocessing``, spawn):

* **train examples/s**: one step is exactly one optimizer step of fine-tuning as ``genomics-lm finetune`` runs
  it with tiny.yaml: :meth:`FinetuneModule._step <genomics_lm.finetune.FinetuneModule._step>` (forward, masked
  BCE loss) on a collated batch (:func:`~genomics_lm.data.collate_task`) of ``batch`` training rows, backward,
  gradient-norm clipping at the config's ``trainer.gradient_clip_val``, AdamW step, learning-rate schedule step.
  Consecutive steps take consecutive batches of the (shuffled) training rows. After ``warmup`` untimed steps,
  ``batch / median(step seconds)`` over ``steps`` timed steps.
* **eval sequences/s**: :func:`~genomics_lm.score.predict_proba` (eval mode, no gradients, batches of
  ``eval_batch``) over the first ``eval_rows`` rows of the eval split; one untimed batch first, then
  ``eval_rows / median(pass seconds)`` over ``eval_repeats`` passes.
* **complete**: whether the attention pattern covers every query/key pair at the input's token length in every
  layer (``pattern.is_complete``): such a pattern is computed by SDPA (the dense path of
  :func:`genomics_lm.attention.attend`), otherwise by the ``blocked`` kernel (the CPU backend of ``auto``).
* **peak RSS**: the process's peak resident set (``ru_maxrss``), and its growth over the RSS before the model
  was built (weights, optimizer state, activations; the libraries and the inputs are in the total only).

The three processes of a length are started together (imports and warm-up are not timed); then the timed steps
are interleaved (round r: step r of each attention in turn, the other processes idle, ``pause`` seconds of rest
before each), and so are the evaluation passes, so a change of background load on a shared machine affects every
attention alike. The ratios are against dense at the same length.

**k-mer baseline**, in the same run, after the model cells of each length, in this process:
:func:`genomics_lm.evaluate.kmer_baseline` (k-mer spectra, logistic regression, k and C chosen on val AUPRC)
fitted on the same train rows, chosen on the val rows, predicting the eval rows, from the token rows as
``genomics-lm evaluate`` does; its wall time (features + every fit of the grid + predictions) next to the time
one fine-tuning epoch over the same train rows plus one evaluation of the same eval rows would take at the
measured speeds.

``in_process=True`` runs every cell in the calling process instead (the same interleaving; quicker to start;
the peak RSS is then the shared process's): for tests.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ATTENTIONS = ("bigbird", "longformer", "dense")
DEFAULT_LENGTHS = (70, 300, 1000)
# bp -> promoter dataset (folder under <data>/promoters) with train.csv, dev.csv, test.csv
PROMOTER_SETS = {70: "gue_prom_core_all", 300: "gue_prom_300_tata"}
GENOME = "ecoli_k12_mg1655.fna.gz"  # under <data>/genomes: the windows of every other length
SPLIT_FILES = {"train": "train.csv", "val": "dev.csv", "eval": "test.csv"}
MIN_LENGTH = 30  # bp

Log = Callable[[str], None]


def default_config() -> Path:
    from genomics_lm.files import REPO_ROOT

    return REPO_ROOT / "configs" / "finetune" / "tiny.yaml"


@dataclass(frozen=True)
class Settings:
    """One run of the benchmark; the defaults are the command's defaults."""

    lengths: tuple[int, ...] = DEFAULT_LENGTHS  # input lengths in bp
    attentions: tuple[str, ...] = ATTENTIONS
    steps: int = 10  # timed training steps per cell (median)
    warmup: int = 2  # untimed training steps per cell first
    batch: int = 32  # training batch size
    eval_batch: int = 64  # predict_proba batch size
    eval_rows: int = 256  # sequences per timed evaluation pass
    eval_repeats: int = 3  # timed evaluation passes per cell (median)
    threads: int = 2  # torch intra-op threads per process
    baseline: bool = True  # run the k-mer baseline
    baseline_rows: tuple[int, int, int] = (2000, 500, 500)  # train, val, eval rows per length
    baseline_ks: tuple[int, ...] = (3, 4)
    baseline_cs: tuple[float, ...] = (0.1, 1.0)
    config: str = ""  # fine-tuning YAML whose model.arch is used ("" = configs/finetune/tiny.yaml)
    data_dir: str = ""  # real-data folder ("" = $GENOMICS_LM_DATA or ../shared/data)
    seed: int = 0  # row shuffles, genome windows, random labels, model init
    pause: float = 0.2  # seconds of rest before each timed step or pass
    timeout: float = 900.0  # seconds allowed for start-up + warm-up, and for each timed step or pass, per cell
    in_process: bool = False  # every cell in this process (tests)

    def __post_init__(self):
        if not self.lengths:
            raise ValueError("lengths is empty")
        if min(self.lengths) < MIN_LENGTH:
            raise ValueError(f"lengths must be >= {MIN_LENGTH} bp each, got {list(self.lengths)}")
        bad = [a for a in self.attentions if a not in ATTENTIONS]
        if bad or not self.attentions:
            raise ValueError(f"unknown attentions {bad or list(self.attentions)} (choose from {', '.join(ATTENTIONS)})")
        for name in ("steps", "batch", "eval_batch", "eval_rows", "eval_repeats", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "pause"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if len(self.baseline_rows) != 3 or min(self.baseline_rows) < 2:
            raise ValueError("baseline_rows must be three counts (train, val, eval) >= 2, "
                             f"got {list(self.baseline_rows)}")
        if not self.baseline_ks or not self.baseline_cs:
            raise ValueError("baseline_ks and baseline_cs need one value each at least")
        bad_k = [k for k in self.baseline_ks if not 1 <= k <= 6]
        if bad_k:
            raise ValueError(f"baseline_ks must be from 1 to 6, got {bad_k}")
        if min(self.baseline_cs) <= 0:
            raise ValueError(f"baseline_cs must be positive, got {list(self.baseline_cs)}")

    @property
    def config_path(self) -> Path:
        return Path(self.config) if self.config else default_config()

    @property
    def data_path(self) -> Path:
        from genomics_lm.files import default_data_dir

        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def split_sizes(self) -> dict[str, int]:
        """Rows wanted per split: the baseline's, and enough for the model's evaluation and training batches."""
        tr, va, ev = self.baseline_rows
        return {"train": max(tr, self.batch), "val": va, "eval": max(ev, self.eval_rows)}


# ---------------------------------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """One length's rows (token-id arrays, no padding) and 0/1 labels per split, and where they come from."""

    length: int
    source: str
    real_labels: bool
    rows: dict[str, list] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return max(len(r) for r in self.rows["train"])

    def describe(self) -> dict[str, Any]:
        return {"length_bp": self.length, "tokens": self.tokens, "source": self.source,
                "labels": "real" if self.real_labels else "random 0/1 (timing only)",
                "rows": {s: len(r) for s, r in self.rows.items()}}


def read_model_config(path: str | Path) -> dict[str, Any]:
    """``model.arch`` (the ModelConfig dict) and ``trainer.gradient_clip_val`` of a fine-tuning YAML."""
    import yaml

    from genomics_lm.errors import UserError

    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    arch = ((cfg or {}).get("model") or {}).get("arch")
    if not isinstance(arch, dict):
        raise UserError(f"{path}: no model.arch section (give a fine-tuning config such as configs/finetune/tiny.yaml)")
    model = cfg["model"]
    return {"arch": arch, "pooling": model.get("pooling", "mean"), "lr": float(model.get("lr", 1e-3)),
            "weight_decay": float(model.get("weight_decay", 0.01)),
            "warmup_steps": int(model.get("warmup_steps", 50)),
            "min_lr_ratio": float(model.get("min_lr_ratio", 0.1)),
            "clip": (cfg.get("trainer") or {}).get("gradient_clip_val")}


def _read_csv(path: Path) -> tuple[list[str], list[int]]:
    from genomics_lm.errors import UserError

    if not path.is_file():
        raise UserError(f"{path}: no such file (set --data-dir to the shared data folder)")
    seqs, labels = [], []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            seqs.append(rec["sequence"])
            labels.append(int(rec["label"]))
    return seqs, labels


def load_inputs(length: int, s: Settings, k: int, stride: int, cache_dir: str | Path) -> Inputs:
    """The rows of one length: a promoter set for 70 and 300 bp, E. coli windows with random labels otherwise."""
    import numpy as np

    from genomics_lm.errors import UserError
    from genomics_lm.tokenizer import encode

    sizes = s.split_sizes()
    rng = np.random.default_rng([s.seed, length])
    if length in PROMOTER_SETS:
        folder = s.data_path / "promoters" / PROMOTER_SETS[length]
        inp = Inputs(length, f"promoters/{PROMOTER_SETS[length]} ({', '.join(SPLIT_FILES.values())})", True)
        for split, name in SPLIT_FILES.items():
            seqs, labels = _read_csv(folder / name)
            keep = [i for i in rng.permutation(len(seqs)) if len(seqs[i]) == length][: sizes[split]]
            if len(keep) < 2:
                raise UserError(f"{folder / name}: fewer than 2 sequences of {length} bp")
            inp.rows[split] = [encode(seqs[i], k, stride) for i in keep]
            inp.labels[split] = np.array([labels[i] for i in keep], dtype=np.float32)
        return inp

    from genomics_lm.genome import Genome

    path = s.data_path / "genomes" / GENOME
    genome = Genome(path, cache_dir=cache_dir)
    try:
        tiles = [(name, a) for name, n in genome.lengths.items() for a in range(0, n - length + 1, length)]
        need = sum(sizes.values())
        inp = Inputs(length, f"genomes/{GENOME}: random non-overlapping {length} bp windows", False)
        picked: list[bytes] = []
        for i in rng.permutation(len(tiles)):
            name, a = tiles[i]
            seq = genome.fetch_bytes(name, a, a + length)
            if len(seq.upper().translate(None, b"ACGT")) == 0:  # ACGT only
                picked.append(seq)
                if len(picked) == need:
                    break
    finally:
        genome.close()
    if len(picked) < need:
        raise UserError(f"{path}: {len(picked)} windows of {length} bp without N, the benchmark needs {need} "
                        "(lower --baseline-rows or --eval-rows)")
    at = 0
    for split, n in sizes.items():
        inp.rows[split] = [encode(q, k, stride) for q in picked[at: at + n]]
        inp.labels[split] = rng.integers(0, 2, size=n).astype(np.float32)  # random: timing only
        at += n
    return inp


# ---------------------------------------------------------------------------------------------------- one cell


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Cell:
    """One (attention, length) cell: the fine-tuning module, its batches and the evaluation rows.

    ``spec``: ``attention``, ``length``, ``model`` (:func:`read_model_config`), ``settings`` (a dict of
    :class:`Settings`), ``train_rows``, ``train_labels``, ``eval_rows``. :meth:`handle` answers "train" (one timed
    step), "eval" (one timed pass) and "stop" (the memory figures).
    """

    def __init__(self, spec: dict[str, Any]):
        import torch

        from genomics_lm.data import collate_task
        from genomics_lm.finetune import FinetuneModule
        from genomics_lm.model import ModelConfig

        s = spec["settings"]
        torch.set_num_threads(s["threads"])
        self.rss0 = _rss_mb()
        torch.manual_seed(s["seed"])
        m = spec["model"]
        arch = ModelConfig.from_dict({**m["arch"], "attention": spec["attention"]})
        self.module = FinetuneModule(arch=arch, label_names=["label"], pos_weight=None, pooling=m["pooling"],
                                     lr=m["lr"], weight_decay=m["weight_decay"], warmup_steps=m["warmup_steps"],
                                     min_lr_ratio=m["min_lr_ratio"], total_steps=1000).train()
        opt = self.module.configure_optimizers()
        self.opt, self.sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        self.clip = m["clip"]
        rows, labels = spec["train_rows"], spec["train_labels"]
        B = s["batch"]
        self.batches = []
        for b in range(s["warmup"] + s["steps"]):  # consecutive batches, cycling over the training rows
            idx = [(b * B + j) % len(rows) for j in range(B)]
            self.batches.append(collate_task([
                {"tokens": torch.as_tensor(rows[i].astype("int64")), "labels": torch.tensor([float(labels[i])])}
                for i in idx]))
        self.eval_rows = spec["eval_rows"][: s["eval_rows"]]
        self.eval_batch = s["eval_batch"]
        self.n_step = 0
        T = max(len(r) for r in rows)
        pattern = arch.attention_pattern()
        self.complete = all(pattern.is_complete(T, arch.n_heads, layer) for layer in range(arch.n_layers))
        from genomics_lm.attention.api import resolve_backend

        backend = resolve_backend(arch.backend, torch.empty(0), True)
        self.info = {"tokens": T, "complete": self.complete, "path": "sdpa" if self.complete else backend,
                     "params": sum(p.numel() for p in self.module.parameters()), "pattern": pattern.describe()}

    def train_step(self) -> float:
        import torch

        batch = self.batches[self.n_step % len(self.batches)]
        self.n_step += 1
        t0 = time.perf_counter()
        _, _, loss = self.module._step(batch)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), float(self.clip))
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def eval_pass(self, rows=None) -> float:
        from genomics_lm.score import predict_proba

        t0 = time.perf_counter()
        predict_proba(self.module.model, self.eval_rows if rows is None else rows, batch_size=self.eval_batch)
        return time.perf_counter() - t0

    def warm_up(self, warmup: int) -> dict[str, Any]:
        for _ in range(warmup):
            self.train_step()
        self.eval_pass(self.eval_rows[: self.eval_batch])
        return dict(self.info)

    def memory(self) -> dict[str, float]:
        peak = _peak_rss_mb()
        return {"peak_rss_mb": peak, "rss_start_mb": self.rss0, "peak_growth_mb": peak - self.rss0}

    def handle(self, msg: str) -> dict[str, Any]:
        if msg == "train":
            return {"train_s": self.train_step()}
        if msg == "eval":
            return {"eval_s": self.eval_pass()}
        return self.memory()



def _worker(spec: dict[str, Any], inbox, out) -> None:
    """Child process: build one cell and warm it up, then answer the parent's messages until "stop"."""
    try:
        cell = Cell(spec)
        out.put({"ready": True, **cell.warm_up(spec["settings"]["warmup"])})
        while True:
            msg = inbox.get()
            out.put(cell.handle(msg))
            if msg == "stop":
                break
    except BaseException as exc:  # report, never hang the parent
        import traceback

        out.put({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


class _Proc:
    """A cell in its own process (the parent's side)."""

    def __init__(self, ctx, spec, timeout):
        self.inbox, self.out, self.timeout = ctx.Queue(), ctx.Queue(), timeout
        self.proc = ctx.Process(target=_worker, args=(spec, self.inbox, self.out), daemon=True)
        self.proc.start()

    def ready(self) -> dict:
        return self._get(self.timeout, "not ready")

    def ask(self, msg: str) -> dict:
        self.inbox.put(msg)
        return self._get(self.timeout if msg != "stop" else 120, f"{msg} not done")

    def _get(self, timeout, what) -> dict:
        try:
            return self.out.get(timeout=timeout)
        except Exception:
            return {"error": f"{what} within {timeout:g} s"}

    def close(self) -> None:
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()


class _Local:
    """A cell in this process (``in_process``)."""

    def __init__(self, spec):
        self.spec, self.cell = spec, None

    def ready(self) -> dict:
        try:
            self.cell = Cell(self.spec)
            return {"ready": True, **self.cell.warm_up(self.spec["settings"]["warmup"])}
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def ask(self, msg: str) -> dict:
        try:
            out = self.cell.handle(msg)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        if msg == "stop":
            out["memory_note"] = "in-process: the peak RSS of the shared process"
        return out

    def close(self) -> None:
        self.cell = None


# ---------------------------------------------------------------------------------------------------- run


def _measure_length(inp: Inputs, s: Settings, model: dict, log: Log | None) -> list[dict]:
    """The cells of one length: start them together, then interleaved timed steps and passes."""
    settings = asdict(s)
    if s.in_process:
        import torch

        threads = torch.get_num_threads()
        try:
            return _measure_cells(inp, s, model, settings, log)
        finally:
            torch.set_num_threads(threads)
    return _measure_cells(inp, s, model, settings, log)


def _measure_cells(inp: Inputs, s: Settings, model: dict, settings: dict, log: Log | None) -> list[dict]:
    ctx = mp.get_context("spawn")
    handles, records = {}, {}
    for att in s.attentions:
        spec = {"attention": att, "length": inp.length, "model": model, "settings": settings,
                "train_rows": inp.rows["train"], "train_labels": inp.labels["train"],
                "eval_rows": inp.rows["eval"][: s.eval_rows]}
        handles[att] = _Local(spec) if s.in_process else _Proc(ctx, spec, s.timeout)
        records[att] = {"attention": att, "length_bp": inp.length, "train_times": [], "eval_times": []}
    live = {}
    for att, h in handles.items():  # processes started together: imports and warm-up overlap, untimed
        msg = h.ready()
        records[att].update({k: v for k, v in msg.items() if k != "ready"})
        if "error" in msg:
            h.close()
            if log is not None:
                log(f"  {inp.length} bp {att}: ERROR {msg['error']}")
        else:
            live[att] = h

    def interleave(msg: str, n: int, key: str) -> None:
        for _ in range(n):
            for att, h in list(live.items()):
                time.sleep(s.pause)  # let the previous process's threads stop spinning
                reply = h.ask(msg)
                if "error" in reply:
                    records[att].update(reply)
                    h.close()
                    del live[att]
                    if log is not None:
                        log(f"  {inp.length} bp {att}: ERROR {reply['error']}")
                else:
                    records[att][f"{msg}_times"].append(reply[key])

    interleave("train", s.steps, "train_s")
    interleave("eval", s.eval_repeats, "eval_s")
    for att, h in live.items():
        reply = h.ask("stop")
        if "error" in reply:
            reply = {"peak_rss_mb": float("nan"), "peak_growth_mb": float("nan"), "memory_error": reply["error"]}
        records[att].update(reply)
        h.close()
        r = records[att]
        r["train_step_s"] = statistics.median(r["train_times"])
        r["train_examples_per_s"] = s.batch / r["train_step_s"]
        r["eval_pass_s"] = statistics.median(r["eval_times"])
        r["eval_rows"] = min(s.eval_rows, len(inp.rows["eval"]))
        r["eval_seqs_per_s"] = r["eval_rows"] / r["eval_pass_s"]
        if log is not None:
            steps = ", ".join(f"{t:.2f}" for t in r["train_times"])
            log(f"  {inp.length} bp {att:<10} {'complete (sdpa)' if r['complete'] else r['path']:<15} "
                f"train {r['train_examples_per_s']:8.1f} ex/s (steps {steps} s)"
                f"  eval {r['eval_seqs_per_s']:8.1f} seq/s  peak RSS {r['peak_rss_mb']:,.0f} MB")
    dense = records.get("dense")
    for r in records.values():
        for what in ("train_examples_per_s", "eval_seqs_per_s"):
            if dense is not None and what in r and what in dense:
                r[what.replace("_per_s", "_vs_dense")] = r[what] / dense[what]
    return [records[a] for a in s.attentions]


def run_baseline(inp: Inputs, s: Settings, tokenizer) -> dict[str, Any]:
    """The k-mer baseline on one length's rows: wall time of fit (every grid point) + choice + predictions.

    scikit-learn is imported before the clock starts (its first import takes 1-2 s)."""
    import importlib

    for name in ("sklearn.linear_model", "sklearn.metrics", "sklearn.preprocessing"):  # not inside the timed call
        importlib.import_module(name)
    from genomics_lm.evaluate import kmer_baseline

    n_tr, n_va, n_ev = s.baseline_rows
    tr, va, ev = inp.rows["train"][:n_tr], inp.rows["val"][:n_va], inp.rows["eval"][:n_ev]
    t0 = time.perf_counter()
    _, params = kmer_baseline(tr, inp.labels["train"][: len(tr)], va, inp.labels["val"][: len(va)], ev, tokenizer,
                              ks=s.baseline_ks, Cs=s.baseline_cs)
    seconds = time.perf_counter() - t0
    chosen = params["chosen"]["label0"]
    return {"length_bp": inp.length, "rows": {"train": len(tr), "val": len(va), "eval": len(ev)},
            "ks": list(params["ks"]), "Cs": list(params["Cs"]), "fits": len(params["ks"]) * len(params["Cs"]),
            "seconds": seconds, "chosen_k": chosen["k"], "chosen_C": chosen["C"], "val_auprc": chosen["val_auprc"],
            "labels": "real" if inp.real_labels else "random 0/1 (timing only)"}


def run(s: Settings, log: Log | None = None) -> dict[str, Any]:
    """Every cell, length by length, and the baseline after each length's cells.

    Returns ``{"settings", "model", "inputs": [...], "records": [...], "baseline": [...], "load_avg": [start,
    end], "cpus"}``; a record holds ``attention``, ``length_bp``, ``tokens``, ``complete``, ``path``, ``params``,
    ``train_times``/``eval_times`` (seconds), ``train_examples_per_s``, ``eval_seqs_per_s``, their ``*_vs_dense``,
    ``peak_rss_mb``, ``peak_growth_mb``; or ``error`` for a cell that failed.
    """
    from genomics_lm.model import ModelConfig

    model = read_model_config(s.config_path)
    arch = ModelConfig.from_dict(model["arch"])
    tok = arch.tokenizer
    out: dict[str, Any] = {"settings": asdict(s), "config": str(s.config_path),
                           "model": {**model, "arch": arch.to_dict()}, "inputs": [], "records": [], "baseline": [],
                           "load_avg": [os.getloadavg()[0]], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_finetune_") as cache:
        for length in s.lengths:
            inp = load_inputs(length, s, tok.k, tok.stride, cache)
            out["inputs"].append(inp.describe())
            if log is not None:
                d = inp.describe()
                log(f"{length} bp = {d['tokens']} tokens: {d['source']}, labels {d['labels']}, rows {d['rows']}")
            out["records"] += _measure_length(inp, s, model, log)
            if s.baseline:
                b = run_baseline(inp, s, tok)
                out["baseline"].append(b)
                if log is not None:
                    log(f"  {length} bp k-mer baseline: {b['seconds']:.2f} s ({b['fits']} fits)")
    out["load_avg"].append(os.getloadavg()[0])
    return out


# ---------------------------------------------------------------------------------------------------- tables


def format_table(result: dict[str, Any]) -> str:
    """The settings in one line, then one row per length x attention."""
    s = result["settings"]
    a = result["model"]["arch"]
    pat = {"bigbird": a["bigbird"], "longformer": a["longformer"]}
    lines = [
        f"fine-tuning step (fwd + BCE + bwd + clip + AdamW) batch {s['batch']}, fp32, {s['threads']} threads, "
        f"median of {s['steps']} steps after {s['warmup']}; eval predict_proba batch {s['eval_batch']} over "
        f"{s['eval_rows']} rows, median of {s['eval_repeats']} passes",
        f"model {Path(result['config']).name}: k={a['tokenizer']['k']} stride {a['tokenizer']['stride']}, "
        f"d_model {a['d_model']}, {a['n_layers']} layers, {a['n_heads']} heads, d_ff {a['d_ff']}; "
        f"bigbird block {pat['bigbird']['block_size']} (window {pat['bigbird']['window_blocks']}, global "
        f"{pat['bigbird']['global_blocks']}, random {pat['bigbird']['random_blocks']} blocks), longformer window "
        f"{pat['longformer']['window']}; load average {result['load_avg'][0]:.2f} -> {result['load_avg'][-1]:.2f} "
        f"on {result['cpus']} CPUs",
        f"{'length':>7} {'tokens':>6}  {'attention':<10} {'complete?':<10} {'kernel':<8} {'train ex/s':>10} "
        f"{'vs dense':>8} {'eval seq/s':>10} {'vs dense':>8} {'peak RSS MB':>11} {'(+model)':>8}",
    ]
    for r in result["records"]:
        head = f"{str(r['length_bp']) + ' bp':>7} {r.get('tokens', '-'):>6}  {r['attention']:<10}"
        if "error" in r:
            lines.append(f"{head} ERROR: {r['error']}")
            continue

        def ratio(key):
            return f"{r[key]:.2f}x" if key in r else "-"

        lines.append(f"{head} {'yes' if r['complete'] else 'no':<10} {r['path']:<8} "
                     f"{r['train_examples_per_s']:>10.1f} {ratio('train_examples_vs_dense'):>8} "
                     f"{r['eval_seqs_per_s']:>10.1f} {ratio('eval_seqs_vs_dense'):>8} {r['peak_rss_mb']:>11,.0f} "
                     f"{r['peak_growth_mb']:>8,.0f}")
    return "\n".join(lines)


def format_baseline(result: dict[str, Any]) -> str:
    """One row per length: the baseline's time next to one model epoch + evaluation over the same rows."""
    if not result["baseline"]:
        return ""
    b0 = result["baseline"][0]
    atts = result["settings"]["attentions"]
    lines = [
        f"k-mer baseline (kmer_baseline of genomics-lm evaluate: k-mer spectra + logistic regression, liblinear); "
        f"grid ks {b0['ks']} x Cs {b0['Cs']} = {b0['fits']} fits, chosen on val AUPRC",
        "baseline s = wall time of the features, every fit of the grid, the choice and the predictions; "
        "model s = one fine-tuning epoch over the same train rows + one evaluation of the same eval rows at the "
        "speeds above (estimate)",
        f"{'length':>7} {'train/val/eval rows':>19} {'baseline s':>10} {'chosen':>12} {'val AUPRC':>9}  "
        + " ".join(f"{'model s ' + a:>18}" for a in atts) + "  labels",
    ]
    recs = {(r["length_bp"], r["attention"]): r for r in result["records"]}
    for b in result["baseline"]:
        n = b["rows"]
        model = []
        for a in atts:
            r = recs.get((b["length_bp"], a))
            if r is None or "error" in r:
                model.append(f"{'-':>18}")
            else:
                model.append(f"{n['train'] / r['train_examples_per_s'] + n['eval'] / r['eval_seqs_per_s']:>18.1f}")
        auprc = f"{b['val_auprc']:.3f}" if b["val_auprc"] is not None else "-"
        rows = f"{n['train']}/{n['val']}/{n['eval']}"
        chosen = f"k={b['chosen_k']} C={b['chosen_C']:g}"
        lines.append(f"{str(b['length_bp']) + ' bp':>7} {rows:>19} {b['seconds']:>10.2f} {chosen:>12} {auprc:>9}  "
                     + " ".join(model) + f"  {b['labels']}")
    return "\n".join(lines)
