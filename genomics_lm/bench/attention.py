"""The attention benchmark: one attention layer, time and peak memory per method/backend/length/pass.

The command is ``genomics-lm bench attention`` (:mod:`genomics_lm.cli.bench_attention`); this module measures
and formats, and prints nothing but the worker protocol below. Figures: see the README's Benchmarks section.

The layer: hidden 256, 8 heads x 32, fp32, batch 1: a fused q/k/v projection followed by the attention (no
output projection, like Hugging Face's attention modules). With ``core=True`` only the attention is timed: q, k, v
(1, 8, T, 32) are the inputs (HF BigBird through its ``bigbird_block_sparse_attention``; HF Longformer has no
attention-only entry point and is skipped). Methods, all in the same run:

* ``dense/sdpa``        ``attend(dense())``: torch ``scaled_dot_product_attention`` (the baseline);
* ``bigbird/<backend>`` ``bigbird(64, window_blocks=3, global_blocks=2, random_blocks=3)``;
* ``longformer/<backend>`` ``longformer(512, global_tokens=(0,))``;
* ``hf-bigbird/hf``     transformers' ``BigBirdBlockSparseAttention`` (block 64, 3 random blocks, train mode so
  the random blocks are used);
* ``hf-longformer/hf``  transformers' ``LongformerSelfAttention`` (attention_window 512, token 0 global).

Backends for our patterns: ``blocked`` and ``flex`` (forward only on CPU: FlexAttention has no CPU backward).

Passes: ``fwd`` (inference, under ``torch.no_grad``) and ``fwd+bwd`` (forward, then backward of a random
output gradient into the input and the weights).

Time: the median of ``repeats`` runs after one warm-up run (which also absorbs FlexAttention's compilation).
A run whose warm-up is slow gets fewer repeats (at least 1) so that a case stays within ``max_seconds``; a case
whose estimated single run (from the previous length: quadratic for dense, linear otherwise) exceeds
``max_seconds`` is skipped with the reason in its record, as is a case whose estimated memory exceeds the memory
available on the machine. The records keep the repeats actually used.

Peak memory (CPU): each method runs in its own fresh Python process. After the warm-up the process returns
freed heap memory to the OS (``malloc_trim(0)``) and resets its resident-set high-water mark (``echo 5 >
/proc/self/clear_refs``); the peak is then ``VmHWM - VmRSS(before the timed runs)`` from ``/proc/self/status``:
the most resident memory the timed runs needed on top of inputs, weights and compiled kernels, as the
kernel counts it (everything malloc'ed and touched, including allocator slack: glibc keeps freed medium-sized
blocks, so repeated runs can add fragmentation). A second figure, ``tensor_peak_mb``, is allocator-independent:
one more run under ``torch.profiler`` with ``profile_memory=True``, summing its allocation/free events in time
order (the peak of live tensor bytes, what ``torch.cuda.max_memory_allocated`` reports on a GPU). The profiler
only sees allocations of its own thread, so this run uses one intra-op thread (the ``blocked`` backend then
runs serially; with several threads each of its worker threads adds its own scratch buffers, which this figure
leaves out). It is skipped (``-``) for cases whose warm-up took more than a quarter of ``max_seconds``. Where
``clear_refs`` is not writable, the peak is the growth of ``ru_maxrss`` over the case's warm-up run (an
approximation: it includes compilation and misses memory the process had already touched; ``mem_method`` in the
record says which). On CUDA the peak is the growth of ``torch.cuda.max_memory_allocated``.

Worker protocol: :func:`run_method` starts ``python -m genomics_lm.bench.attention --worker SPEC`` (SPEC: a
JSON object, see :func:`run_method`); the worker prints one ``RESULT {json record}`` line per case on stdout,
the only ``print`` of this module. That entry point is for this module's own use, not a command.

Mind the machine: other processes on a 2-core machine inflate times; :func:`run` stores the load average.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HIDDEN, HEADS = 256, 8
DEFAULT_LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768)
MIN_LENGTH = 64  # one BigBird block
# (method, backend); the order is the order of the table
METHODS = [
    ("dense", "sdpa"),
    ("bigbird", "blocked"),
    ("bigbird", "flex"),
    ("longformer", "blocked"),
    ("longformer", "flex"),
    ("hf-bigbird", "hf"),
    ("hf-longformer", "hf"),
]
PASSES = ("fwd", "fwd+bwd")
BIGBIRD = {"block_size": 64, "window_blocks": 3, "global_blocks": 2, "random_blocks": 3}
LONGFORMER = {"window": 512, "global_tokens": [0]}

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """One run of the benchmark; the defaults are the command's defaults."""

    lengths: tuple[int, ...] = DEFAULT_LENGTHS  # sequence lengths (tokens), each >= MIN_LENGTH
    methods: tuple[tuple[str, str], ...] = tuple(METHODS)  # (method, backend) pairs, from METHODS
    passes: tuple[str, ...] = PASSES  # from PASSES
    repeats: int = 5  # timed runs per case (median reported), after one warm-up run
    threads: int = 2  # torch intra-op threads of each worker
    max_seconds: float = 20.0  # time budget per case
    device: str = "cpu"  # "cpu" or "cuda"
    core: bool = False  # time the attention alone (q, k, v given), no projections
    tensor_memory: bool = True  # one more profiled run per case for the peak of live tensor bytes (CPU)

    def __post_init__(self):
        if not self.lengths or min(self.lengths) < MIN_LENGTH:
            raise ValueError(f"lengths must be >= {MIN_LENGTH} tokens each, got {list(self.lengths)}")
        unknown = [f"{m}/{b}" for m, b in self.methods if (m, b) not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {unknown} (choose from {', '.join(method_names())})")
        bad = [p for p in self.passes if p not in PASSES]
        if bad or not self.passes:
            raise ValueError(f"unknown passes {bad or list(self.passes)} (choose from {', '.join(PASSES)})")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


def method_names() -> list[str]:
    """``method/backend`` of every method, in table order."""
    return [f"{m}/{b}" for m, b in METHODS]


# ----------------------------------------------------------------------------------------------- layers


def _make_layer(method: str, backend: str, T: int, device: str):
    """(callable x -> y, module) for one method; x (1, T, 256)."""
    import torch

    from genomics_lm.attention import attend

    torch.manual_seed(0)
    if method.startswith("hf-"):
        if method == "hf-bigbird":
            from transformers import BigBirdConfig
            from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention, BigBirdModel

            cfg = BigBirdConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, block_size=64, num_random_blocks=3,
                                attention_type="block_sparse", max_position_embeddings=max(4096, T))
            mod = BigBirdBlockSparseAttention(cfg, seed=0).to(device).train()  # train: random blocks are used
            mask = torch.ones(1, T, device=device)
            blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(mask, 64)

            def fn(x):
                return mod(x, band_mask=band, from_mask=from_mask, to_mask=to_mask,
                           from_blocked_mask=blocked, to_blocked_mask=blocked)[0]

            return fn, mod
        from transformers import LongformerConfig
        from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

        cfg = LongformerConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, attention_window=[512],
                               attention_probs_dropout_prob=0.0)
        mod = LongformerSelfAttention(cfg, layer_id=0).to(device)
        amask = torch.zeros(1, T, device=device)
        amask[:, 0] = 10000.0  # token 0 global, like longformer(512, global_tokens=(0,))

        def fn(x):
            return mod(x, attention_mask=amask, is_index_masked=amask < 0, is_index_global_attn=amask > 0,
                       is_global_attn=True)[0]

        return fn, mod

    pattern = _pattern(method)
    mod = torch.nn.Linear(HIDDEN, 3 * HIDDEN).to(device)
    be = "blocked" if backend == "sdpa" else backend

    def fn(x):
        B, T_, _ = x.shape
        q, k, v = mod(x).view(B, T_, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D)
        y = attend(q, k, v, pattern, backend=be)
        return y.transpose(1, 2).reshape(B, T_, HIDDEN)

    return fn, mod


def _make_core(method: str, backend: str, T: int, device: str):
    """(callable (q, k, v) -> (1, H, T, D), module or None): the attention alone, q/k/v (1, 8, T, 32) given."""
    import torch

    from genomics_lm.attention import attend

    if method == "hf-longformer":
        raise _Skip("LongformerSelfAttention computes its global projections inside: no attention-only entry point")
    if method == "hf-bigbird":
        from transformers import BigBirdConfig
        from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention, BigBirdModel

        cfg = BigBirdConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, block_size=64, num_random_blocks=3,
                            attention_type="block_sparse", max_position_embeddings=max(4096, T))
        mod = BigBirdBlockSparseAttention(cfg, seed=0).to(device).train()
        mask = torch.ones(1, T, device=device)
        blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(mask, 64)

        def fn(q, k, v):
            ctx, _ = mod.bigbird_block_sparse_attention(
                q, k, v, band, from_mask, to_mask, blocked, blocked, HEADS, 3, HIDDEN // HEADS, 64, 64, 1, T, T,
                seed=0, plan_from_length=None, plan_num_rand_blocks=None, output_attentions=False)
            return ctx.transpose(1, 2)  # (1, T, H, D) -> (1, H, T, D)

        return fn, None
    pattern = _pattern(method)
    be = "blocked" if backend == "sdpa" else backend
    return (lambda q, k, v: attend(q, k, v, pattern, backend=be)), None


def _pattern(method: str):
    """Our pattern of ``method``: BIGBIRD / LONGFORMER settings (what the meta records), or dense."""
    from genomics_lm.attention import bigbird, dense, longformer

    if method == "bigbird":
        return bigbird(**BIGBIRD, seed=0)
    if method == "longformer":
        return longformer(LONGFORMER["window"], global_tokens=tuple(LONGFORMER["global_tokens"]))
    return dense()


class _Skip(Exception):
    """A case that cannot run, with the reason."""


# ----------------------------------------------------------------------------------------------- memory


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Release free heap memory and reset the RSS high-water mark; False where the kernel does not allow it."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _mem_available_mb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


# ----------------------------------------------------------------------------------------------- worker


def _scaling(method: str) -> float:
    return 2.0 if method == "dense" else 1.0


def _run_worker(spec: dict) -> int:
    import torch

    torch.set_num_threads(spec["threads"])
    method, backend, device = spec["method"], spec["backend"], spec["device"]
    cuda = device.startswith("cuda")
    done: dict[str, tuple[int, float, float]] = {}  # pass -> (T, time, mem) of the previous length
    for T in spec["lengths"]:
        for pas in spec["passes"]:
            rec = {"method": method, "backend": backend, "length": T, "pass": pas, "threads": spec["threads"],
                   "device": device}
            if backend == "flex" and pas == "fwd+bwd" and not cuda:
                _emit({**rec, "skipped": "FlexAttention has no backward on CPU"})
                continue
            if pas in done:
                T0, t0, m0 = done[pas]
                f = (T / T0) ** _scaling(method)
                est_t, est_m = t0 * f, m0 * (T / T0) ** _scaling(method)
                if est_t > spec["max_seconds"]:
                    why = f"estimated {est_t:.1f} s per run > --max-seconds {spec['max_seconds']:g}"
                    _emit({**rec, "skipped": why})
                    continue
                avail = _mem_available_mb()
                if est_m > 0.8 * avail:
                    _emit({**rec, "skipped": f"estimated {est_m:.0f} MB > 80% of the {avail:.0f} MB available"})
                    continue
            try:
                rec.update(_measure(method, backend, T, pas, spec, torch, cuda))
            except _Skip as exc:
                _emit({**rec, "skipped": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - a failed case is reported, not fatal
                _emit({**rec, "skipped": f"failed: {type(exc).__name__}: {exc}"[:300]})
                continue
            done[pas] = (T, rec["time_s"], max(rec["peak_mem_mb"], 1.0))
            _emit(rec)
    return 0


def _emit(rec: dict) -> None:
    print("RESULT " + json.dumps(rec), flush=True)


def _measure(method, backend, T, pas, spec, torch, cuda) -> dict:
    device = spec["device"]
    g = torch.Generator(device="cpu").manual_seed(T)
    if spec.get("core"):
        fn, mod = _make_core(method, backend, T, device)
        shape = (1, HEADS, T, HIDDEN // HEADS)
        xs = [torch.randn(*shape, generator=g).to(device) for _ in range(3)]
    else:
        fn, mod = _make_layer(method, backend, T, device)
        shape = (1, T, HIDDEN)
        xs = [torch.randn(*shape, generator=g).to(device)]
    gy = torch.randn(*shape, generator=g).to(device)
    bwd = pas == "fwd+bwd"
    if bwd:
        for x in xs:
            x.requires_grad_(True)

    def once():
        if bwd:
            for x in xs:
                x.grad = None
            if mod is not None:
                mod.zero_grad(set_to_none=True)
            fn(*xs).backward(gy)
        else:
            with torch.no_grad():
                fn(*xs)
        if cuda:
            torch.cuda.synchronize()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    once()  # warm-up (and compilation)
    t_warm = time.perf_counter() - t
    warm_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
    budget = spec["max_seconds"] - t_warm
    repeats = max(1, min(spec["repeats"], int(budget / max(t_warm, 1e-9))))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        mem_method = "cuda max_memory_allocated"
    elif _reset_peak():
        base = _status_kb("VmRSS") * 1024
        mem_method = "VmHWM after malloc_trim + clear_refs"
    else:
        base = None
        mem_method = "ru_maxrss growth over the warm-up run (clear_refs unavailable)"
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    elif base is not None:
        peak = _status_kb("VmHWM") * 1024 - base
    else:
        peak = warm_growth
    rec = {"time_s": statistics.median(times), "times_s": times, "repeats": repeats, "warmup_s": t_warm,
           "peak_mem_mb": peak / 2**20, "mem_method": mem_method}
    if not cuda and spec.get("tensor_memory", True) and t_warm < spec["max_seconds"] / 4:
        rec["tensor_peak_mb"] = _tensor_peak(once, torch)  # one more (profiled) run: skipped for slow cases
    return rec


def _tensor_peak(once, torch) -> float | None:
    """Peak of live torch tensor bytes during one run, from the profiler's allocation events (MB)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the profiler records the allocations of its own thread only: no worker threads
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            once()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        mem = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            mem += e.nbytes()
            peak = max(peak, mem)
        return peak / 2**20
    except Exception:  # noqa: BLE001 - a private profiler API; the RSS peak stays the primary figure
        return None
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------- parent


def run_method(method: str, backend: str, settings: Settings, log: Log | None = None) -> list[dict]:
    """Every (length, pass) case of one method in a fresh worker process; one record per case.

    The worker gets a JSON spec (method, backend, lengths, passes, repeats, threads, max_seconds, device,
    tensor_memory, core). A case that fails, or that the worker did not reach, gets a ``skipped`` record with the
    reason. ``log`` receives one progress line per case.
    """
    spec = {"method": method, "backend": backend, "lengths": list(settings.lengths),
            "passes": list(settings.passes), "repeats": settings.repeats, "threads": settings.threads,
            "max_seconds": settings.max_seconds, "device": settings.device,
            "tensor_memory": settings.tensor_memory, "core": settings.core}
    cmd = [sys.executable, "-m", "genomics_lm.bench.attention", "--worker", json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS=str(settings.threads))
    records = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                rec = json.loads(line[7:])
                records.append(rec)
                if log is not None:
                    log(progress_line(rec))
        err = proc.stderr.read()
    except BaseException:  # interrupted: do not leave the worker running
        proc.kill()
        raise
    if proc.wait() != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
        if log is not None:
            log(f"  {method}/{backend}: worker failed: {reason}")
        seen = {(r["length"], r["pass"]) for r in records}
        for T in settings.lengths:
            for pas in settings.passes:
                if (T, pas) not in seen:
                    records.append({"method": method, "backend": backend, "length": T, "pass": pas,
                                    "skipped": f"worker failed: {reason}"[:300]})
    return records


def run(settings: Settings, log: Log | None = None) -> dict:
    """Run every method of ``settings``, one worker process each, in table order.

    Returns ``{"meta": {...}, "records": [...]}`` (what :func:`write_json` writes): ``meta`` holds the layer,
    the patterns, the settings, library versions and the load average at the start and end. ``log`` receives
    one progress line per case.
    """
    import torch

    try:
        import transformers  # noqa: F401

        have_hf = True
    except ImportError:
        have_hf = False
    load = os.getloadavg()
    records: list[dict] = []
    for m, b in settings.methods:
        if m.startswith("hf-") and not have_hf:
            for T in settings.lengths:
                for pas in settings.passes:
                    rec = {"method": m, "backend": b, "length": T, "pass": pas,
                           "skipped": "transformers is not installed"}
                    records.append(rec)
                    if log is not None:
                        log(progress_line(rec))
            continue
        records += run_method(m, b, settings, log)
    meta = {
        "layer": {"hidden": HIDDEN, "heads": HEADS, "head_dim": HIDDEN // HEADS, "dtype": "float32", "batch": 1},
        "mode": "attention core (q, k, v given)" if settings.core else "layer (q/k/v projections + attention)",
        "bigbird": BIGBIRD, "longformer": LONGFORMER,
        "threads": settings.threads, "repeats": settings.repeats, "max_seconds": settings.max_seconds,
        "device": settings.device,
        "torch": torch.__version__, "transformers": _version("transformers"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count() or 1, "load_average_start": load,
        "load_average_end": os.getloadavg(),
        "time": "median of repeats after one warm-up run",
        "memory": "peak_mem_mb: peak resident memory growth over the timed runs (VmHWM after malloc_trim + "
                  "clear_refs); tensor_peak_mb: peak of live tensor bytes in one profiled run",
    }
    return {"meta": meta, "records": records}


def write_json(result: dict, path: Path) -> None:
    """Write :func:`run`'s result as JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def progress_line(rec: dict) -> str:
    """One line for one record: time, peak memory and repeats, or the reason it was skipped."""
    name = f"{rec['method']}/{rec['backend']}"
    if "skipped" in rec:
        return f"  {name:<22} {rec['length']:>6} {rec['pass']:<8} skipped: {rec['skipped']}"
    return (f"  {name:<22} {rec['length']:>6} {rec['pass']:<8} {rec['time_s'] * 1e3:10.1f} ms "
            f"{rec['peak_mem_mb']:9.1f} MB  ({rec['repeats']} runs)")


def _index(records):
    return {(r["method"], r["backend"], r["length"], r["pass"]): r for r in records if "skipped" not in r}


def format_table(records: list[dict]) -> str:
    """Table: time, peak memory, speed-up vs dense SDPA and vs HF BigBird, memory ratio vs HF BigBird."""
    idx = _index(records)
    lines = [f"{'length':>6} {'pass':<8} {'method/backend':<22} {'time ms':>10} {'RSS MB':>8} {'tensor MB':>9} "
             f"{'vs dense':>9} {'vs HF BB':>9} {'RSS/HF':>7} {'tens/HF':>7}"]
    keys = sorted({(r["length"], PASSES.index(r["pass"])) for r in records})
    order = {m: i for i, m in enumerate(METHODS)}
    for T, pi in keys:
        pas = PASSES[pi]
        dense_r = idx.get(("dense", "sdpa", T, pas))
        hf_r = idx.get(("hf-bigbird", "hf", T, pas))
        rows = sorted((r for r in records if r["length"] == T and r["pass"] == pas),
                      key=lambda r: order.get((r["method"], r["backend"]), 99))
        for r in rows:
            name = f"{r['method']}/{r['backend']}"
            if "skipped" in r:
                lines.append(f"{T:>6} {pas:<8} {name:<22} skipped: {r['skipped']}")
                continue
            vs_dense = f"{dense_r['time_s'] / r['time_s']:8.1f}x" if dense_r else f"{'-':>9}"
            vs_hf = f"{hf_r['time_s'] / r['time_s']:8.1f}x" if hf_r else f"{'-':>9}"
            mem_hf = (f"{r['peak_mem_mb'] / hf_r['peak_mem_mb']:7.3f}"
                      if hf_r and hf_r["peak_mem_mb"] > 0 else f"{'-':>7}")
            tp, hf_tp = r.get("tensor_peak_mb"), (hf_r or {}).get("tensor_peak_mb")
            tens = f"{tp:9.1f}" if tp is not None else f"{'-':>9}"
            tens_hf = f"{tp / hf_tp:7.3f}" if tp is not None and hf_tp else f"{'-':>7}"
            lines.append(f"{T:>6} {pas:<8} {name:<22} {r['time_s'] * 1e3:10.1f} {r['peak_mem_mb']:8.1f} {tens} "
                         f"{vs_dense} {vs_hf} {mem_hf} {tens_hf}")
        lines.append("")
    lines.append("time: median of the timed runs; RSS MB: peak resident-set growth over the timed runs; tensor MB: peak "
                 "of live tensor bytes (profiler);\nvs dense / vs HF BB: speed-up (their time / this time); RSS/HF, "
                 "tens/HF: this peak / HF BigBird's peak")
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    """Three log-log panels (fwd time, fwd+bwd time, fwd+bwd peak memory) against length, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(records)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = [("fwd", "time_s", "forward time (s)"), ("fwd+bwd", "time_s", "forward+backward time (s)"),
              ("fwd+bwd", "peak_mem_mb", "forward+backward peak memory (MB)")]
    for ax, (pas, key, title) in zip(axes, panels):
        drawn = False
        for i, (m, b) in enumerate(METHODS):  # one fixed colour per method in every panel
            pts = sorted((T, r[key]) for (mm, bb, T, pp), r in idx.items() if (mm, bb, pp) == (m, b, pas))
            if pts:
                ax.plot([p[0] for p in pts], [max(p[1], 1e-6) for p in pts], marker="o", color=f"C{i}",
                        label=f"{m}/{b}")
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(title)
            continue
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
            break
    fig.suptitle("one attention layer: hidden 256, 8 heads x 32, fp32, batch 1")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def _worker_main(argv: list[str]) -> int:
    """The worker entry of :func:`run_method`: ``python -m genomics_lm.bench.attention --worker SPEC``."""
    if len(argv) != 2 or argv[0] != "--worker":
        sys.stderr.write("usage: python -m genomics_lm.bench.attention --worker SPEC  (internal: run by "
                         "'genomics-lm bench attention')\n")
        return 2
    return _run_worker(json.loads(argv[1]))


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
