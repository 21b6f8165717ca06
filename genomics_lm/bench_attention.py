"""``genomics-lm bench attention``: one attention layer, time and peak memory per method/backend/length/pass.

The layer: hidden 256, 8 heads x 32, fp32, batch 1: a fused q/k/v projection followed by the attention (no
output projection, like Hugging Face's attention modules). With ``--core`` only the attention is timed: q, k, v
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

Time: the median of ``--repeats`` runs after one warm-up run (which also absorbs FlexAttention's
compilation). A run whose warm-up is slow gets fewer repeats (at least 1) so that a case stays within
``--max-seconds``; a case whose estimated single run (from the previous length: quadratic for dense, linear
otherwise) exceeds ``--max-seconds`` is skipped with a printed reason, as is a case whose estimated memory
exceeds the memory available on the machine. The JSON records the repeats actually used.

Peak memory (CPU): each method runs in its own fresh Python process. After the warm-up the process returns
freed heap memory to the OS (``malloc_trim(0)``) and resets its resident-set high-water mark (``echo 5 >
/proc/self/clear_refs``); the peak is then ``VmHWM - VmRSS(before the timed runs)`` from ``/proc/self/status``:
the most resident memory the timed runs needed on top of inputs, weights and compiled kernels, as the
kernel counts it (everything malloc'ed and touched, including allocator slack: glibc keeps freed medium-sized
blocks, so repeated runs can add fragmentation). A second figure, ``tensor_peak_mb``, is allocator-independent:
one more run under ``torch.profiler`` with ``profile_memory=True``, summing its allocation/free events in time
order (the peak of live tensor bytes, what ``torch.cuda.max_memory_allocated`` reports on a GPU). The profiler
only sees allocations of its own thread, so this run uses one intra-op thread (the ``blocked`` backend then
runs serially; with several threads each of its worker threads adds its own scratch buffers, about 7 MB at
16k tokens). It is skipped (``-``) for cases whose warm-up took more than a quarter of ``--max-seconds``. Where ``clear_refs`` is not
writable, the peak is the growth of ``ru_maxrss`` over the case's warm-up run (an approximation: it includes
compilation and misses memory the process had already touched; ``mem_method`` in the JSON says which). On
CUDA the peak is the growth of ``torch.cuda.max_memory_allocated``.

Mind the machine: other processes on a 2-core machine inflate times; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_LENGTHS = "1024,2048,4096,8192,16384,32768"
HIDDEN, HEADS = 256, 8
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genomics-lm bench attention",
        description=(
            "Time and peak memory of one attention layer (hidden 256, 8 heads x 32, fp32, batch 1) for dense SDPA, "
            "BigBird (block 64, 3 window, 2 global, 3 random blocks) and Longformer (window 512) on each backend, "
            "and Hugging Face's BigBird block-sparse and Longformer attention when transformers is installed. "
            "Prints a table with ratios against dense SDPA and HF BigBird, writes JSON and a PNG plot next to it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--lengths", default=DEFAULT_LENGTHS, help="comma-separated sequence lengths (tokens)")
    p.add_argument("--out", default="bench_attention.json", help="JSON output; the PNG plot goes next to it")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case (median reported), after a warm-up")
    p.add_argument("--methods", default=",".join(f"{m}/{b}" for m, b in METHODS),
                   help="comma-separated method/backend pairs to run")
    p.add_argument("--passes", default=",".join(PASSES), help="fwd, fwd+bwd or both")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="time budget per case: fewer repeats for slow cases, skip when one run is estimated longer")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--core", action="store_true",
                   help="time the attention alone: q, k, v (1, 8, T, 32) are the inputs, no projections "
                        "(HF BigBird through its bigbird_block_sparse_attention; HF Longformer has no such entry)")
    p.add_argument("--no-tensor-memory", action="store_true",
                   help="skip the extra profiled run that measures the peak of live tensor bytes")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


# ----------------------------------------------------------------------------------------------- layers


def _make_layer(method: str, backend: str, T: int, device: str):
    """(callable x -> y, module) for one method; x (1, T, 256)."""
    import torch

    from genomics_lm.attention import attend, bigbird, dense, longformer

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

    pattern = {"dense": dense(), "bigbird": bigbird(64, 3, 2, 3, seed=0),
               "longformer": longformer(512, global_tokens=(0,))}[method]
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

    from genomics_lm.attention import attend, bigbird, dense, longformer

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
    pattern = {"dense": dense(), "bigbird": bigbird(64, 3, 2, 3, seed=0),
               "longformer": longformer(512, global_tokens=(0,))}[method]
    be = "blocked" if backend == "sdpa" else backend
    return (lambda q, k, v: attend(q, k, v, pattern, backend=be)), None


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


def _run_method(method: str, backend: str, args, lengths: list[int], passes: list[str]) -> list[dict]:
    spec = {"method": method, "backend": backend, "lengths": lengths, "passes": passes, "repeats": args.repeats,
            "threads": args.threads, "max_seconds": args.max_seconds, "device": args.device,
            "tensor_memory": not args.no_tensor_memory, "core": args.core}
    cmd = [sys.executable, "-m", "genomics_lm.bench_attention", "--worker", json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    records = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                rec = json.loads(line[7:])
                records.append(rec)
                _print_progress(rec)
        err = proc.stderr.read()
    except BaseException:  # interrupted: do not leave the worker running
        proc.kill()
        raise
    if proc.wait() != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
        print(f"  {method}/{backend}: worker failed: {reason}", file=sys.stderr)
        seen = {(r["length"], r["pass"]) for r in records}
        for T in lengths:
            for pas in passes:
                if (T, pas) not in seen:
                    records.append({"method": method, "backend": backend, "length": T, "pass": pas,
                                    "skipped": f"worker failed: {reason}"[:300]})
    return records


def _print_progress(rec: dict) -> None:
    name = f"{rec['method']}/{rec['backend']}"
    if "skipped" in rec:
        print(f"  {name:<22} {rec['length']:>6} {rec['pass']:<8} skipped: {rec['skipped']}", flush=True)
    else:
        print(f"  {name:<22} {rec['length']:>6} {rec['pass']:<8} {rec['time_s'] * 1e3:10.1f} ms "
              f"{rec['peak_mem_mb']:9.1f} MB  ({rec['repeats']} runs)", flush=True)


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _run_worker(json.loads(args.worker))
    from genomics_lm.errors import UserError

    try:
        lengths = sorted({int(x) for x in args.lengths.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    if not lengths or min(lengths) < 64:
        raise UserError(f"--lengths must be >= 64 tokens each, got {args.lengths!r}")
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    bad = [p for p in passes if p not in PASSES]
    if bad or not passes:
        raise UserError(f"--passes: unknown {bad or passes} (choose from {', '.join(PASSES)})")
    if args.repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {args.repeats}")
    known = {f"{m}/{b}": (m, b) for m, b in METHODS}
    wanted = [s.strip() for s in args.methods.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserError(f"--methods: unknown {unknown} (choose from {', '.join(known)})")
    methods = [known[w] for w in wanted]
    try:
        import transformers  # noqa: F401

        have_hf = True
    except ImportError:
        have_hf = False
    load = os.getloadavg()
    ncpu = os.cpu_count() or 1
    print(f"bench attention ({'attention core' if args.core else 'layer'}): lengths {lengths}, passes {passes}, "
          f"{args.threads} threads, repeats {args.repeats}, load average {load[0]:.2f} on {ncpu} CPUs")
    if load[0] > 0.5 * ncpu:
        print(f"warning: the machine is busy (load {load[0]:.2f}); timings will be inflated", file=sys.stderr)
    records: list[dict] = []
    for m, b in methods:
        if m.startswith("hf-") and not have_hf:
            for T in lengths:
                for pas in passes:
                    rec = {"method": m, "backend": b, "length": T, "pass": pas,
                           "skipped": "transformers is not installed"}
                    records.append(rec)
                    _print_progress(rec)
            continue
        records += _run_method(m, b, args, lengths, passes)
    import torch

    meta = {
        "layer": {"hidden": HIDDEN, "heads": HEADS, "head_dim": HIDDEN // HEADS, "dtype": "float32", "batch": 1},
        "mode": "attention core (q, k, v given)" if args.core else "layer (q/k/v projections + attention)",
        "bigbird": {"block_size": 64, "window_blocks": 3, "global_blocks": 2, "random_blocks": 3},
        "longformer": {"window": 512, "global_tokens": [0]},
        "threads": args.threads, "repeats": args.repeats, "max_seconds": args.max_seconds, "device": args.device,
        "torch": torch.__version__, "transformers": _version("transformers"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": ncpu, "load_average_start": load, "load_average_end": os.getloadavg(),
        "time": "median of repeats after one warm-up run",
        "memory": "peak_mem_mb: peak resident memory growth over the timed runs (VmHWM after malloc_trim + "
                  "clear_refs); tensor_peak_mb: peak of live tensor bytes in one profiled run",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    png = out.with_suffix(".png")
    plot(records, png)
    print()
    print(format_table(records))
    print(f"\nwrote {out} and {png}")
    return 0


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":  # the worker entry: python -m genomics_lm.bench_attention --worker SPEC
    sys.exit(main())
