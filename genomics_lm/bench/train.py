"""The training benchmark: masked-LM training throughput per attention type vs HF BigBird, same run.

The command is ``genomics-lm bench train`` (:mod:`genomics_lm.cli.bench_train`); this module measures and
formats, and prints nothing. Figures: see the README's Benchmarks section.

One training step = forward + MLM loss + backward + AdamW step, on a batch of ``batch`` sequences of
``seq_len`` tokens with 15% of them masked (80/10/10). Ours is exactly the step of
:class:`~genomics_lm.pretrain.MLMPretrainModule` (vocabulary projection on the masked positions only, as in
training); the peer is ``transformers``' ``BigBirdForMaskedLM`` with ``attention_type="block_sparse"`` of the
same size (hidden, layers, heads, MLP width, vocabulary, block size, 3 random blocks, dropout), trained with
its own loss. ``full_logits`` makes ours project every position too (an apples-to-apples head).

Each method runs in its own process (``multiprocessing``, spawn; messages through queues), so the peak memory
of one does not hide another's: on CPU the peak is the process's peak RSS minus its RSS before the model was
built (weights + optimizer state + activations); on CUDA it is ``torch.cuda.max_memory_allocated``. After
``warmup`` untimed steps, the timed steps are interleaved (round r: step r of each method in turn, the other
processes idle), so a change of background load on a shared machine affects every method alike; tokens/s is
the median over ``steps`` rounds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable

METHODS = ("bigbird", "longformer", "dense", "hf-bigbird")
RANDOM_BLOCKS = 3  # BigBird random blocks per query block, ours and HF's

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """One run of the benchmark; the defaults are the command's defaults."""

    seq_len: int = 4096  # tokens per sequence (a multiple of block_size: HF BigBird needs it)
    batch: int = 1  # sequences per step
    layers: int = 4  # transformer blocks
    d_model: int = 256  # hidden width
    heads: int = 8  # attention heads
    d_ff: int = 1024  # MLP inner width
    k: int = 6  # k-mer length (vocabulary 5 + 4**k); non-overlapping k-mers
    block_size: int = 64  # BigBird block size, ours and HF's
    longformer_window: int = 512  # Longformer band width in tokens
    dropout: float = 0.1
    backend: str = "auto"  # attention backend of ours (auto: blocked on CPU, flex on CUDA)
    device: str = "cpu"
    bf16: bool = False  # bf16 autocast
    full_logits: bool = False  # ours projects every position to the vocabulary, as HF does
    steps: int = 5  # timed rounds (median reported)
    warmup: int = 1  # untimed steps per method first
    pause: float = 0.5  # seconds of rest before each timed step (lets the previous process's threads settle)
    threads: int = 0  # torch threads per process (0: torch's default)
    timeout: float = 900.0  # seconds allowed for building + warm-up, and for each step, per method

    def __post_init__(self):
        for name in ("seq_len", "batch", "layers", "d_model", "heads", "d_ff", "block_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "threads", "pause", "dropout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        self.vocab_size  # noqa: B018 - checks k (a ValueError naming k)
        if self.seq_len % self.block_size:
            raise ValueError(f"seq_len {self.seq_len} must be a multiple of block_size {self.block_size} "
                             "(HF BigBird needs it)")

    @property
    def vocab_size(self) -> int:
        from genomics_lm.tokenizer import KmerTokenizer

        return KmerTokenizer(self.k, self.k).vocab_size


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _batch(s: Settings, vocab: int):
    import numpy as np
    import torch

    from genomics_lm.data import mask_tokens
    from genomics_lm.tokenizer import N_SPECIAL

    rng = np.random.default_rng(0)
    ids = rng.integers(N_SPECIAL, vocab, size=(s.batch, s.seq_len))
    pairs = [mask_tokens(row, rng, vocab_size=vocab) for row in ids]
    inputs = torch.from_numpy(np.stack([p[0] for p in pairs]))
    labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return inputs, labels


def model_config(method: str, s: Settings):
    """Our :class:`~genomics_lm.model.ModelConfig` for ``method`` (bigbird, longformer or dense) at ``s``'s size."""
    from genomics_lm.model import ModelConfig
    from genomics_lm.tokenizer import KmerTokenizer

    return ModelConfig(
        tokenizer=KmerTokenizer(s.k, s.k), d_model=s.d_model, n_layers=s.layers, n_heads=s.heads, d_ff=s.d_ff,
        dropout=s.dropout, attention=method, backend=s.backend,
        bigbird={"block_size": s.block_size, "window_blocks": 3, "global_blocks": 2,
                 "random_blocks": RANDOM_BLOCKS, "seed": 0},
        longformer={"window": s.longformer_window, "global_tokens": [0], "dilation": 1,
                    "block_size": s.block_size},
    )


def _run_one(method: str, s: Settings, inbox, out) -> None:
    """Child process: build one model, run the warm-up, then time one step per "step" message from
    ``inbox``; report through ``out``; a "stop" message ends it with the peak memory."""
    try:
        import torch
        import torch.nn.functional as F

        if s.threads:
            torch.set_num_threads(s.threads)
        torch.manual_seed(0)
        device = torch.device(s.device)
        cuda = device.type == "cuda"
        if method == "hf-bigbird":  # imports first: the memory figure is the model's, not the libraries'
            from transformers import BigBirdConfig, BigBirdForMaskedLM
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
        else:
            from genomics_lm.data import IGNORE_INDEX
            from genomics_lm.pretrain import MLMPretrainModule
        rss0 = _rss_mb()
        vocab = s.vocab_size
        inputs, labels = _batch(s, vocab)
        inputs, labels = inputs.to(device), labels.to(device)
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if s.bf16 else torch.autocast(device.type, enabled=False)

        if method == "hf-bigbird":
            cfg = BigBirdConfig(
                vocab_size=vocab, hidden_size=s.d_model, num_hidden_layers=s.layers,
                num_attention_heads=s.heads, intermediate_size=s.d_ff,
                max_position_embeddings=s.seq_len, attention_type="block_sparse",
                block_size=s.block_size, num_random_blocks=RANDOM_BLOCKS, hidden_dropout_prob=s.dropout,
                attention_probs_dropout_prob=s.dropout, pad_token_id=0,
            )
            model = BigBirdForMaskedLM(cfg).to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step():
                with amp:
                    loss = model(input_ids=inputs, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            label = "HF BigBirdForMaskedLM block_sparse"
        else:
            module = MLMPretrainModule(model_config(method, s), total_steps=1000, warmup_steps=10)
            module = module.to(device).train()
            model = module.model
            opt = module.configure_optimizers()["optimizer"]
            batch = {"input_ids": inputs, "labels": labels}

            def step():
                with amp:
                    if s.full_logits:
                        logits = module(inputs)
                        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
                    else:
                        logits, target = module.masked_logits(batch)
                        loss = F.cross_entropy(logits, target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            backend = s.backend if s.backend != "auto" else ("flex" if cuda else "blocked")
            label = f"{method} ({'sdpa' if method == 'dense' else backend}{', full logits' if s.full_logits else ''})"

        params = sum(p.numel() for p in model.parameters())
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(s.warmup):
            step()
        out.put({"method": method, "label": label, "params": params, "ready": True})
        times = []
        while True:  # the parent asks for one timed step at a time, round-robin over the methods
            if inbox.get() != "step":
                break
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            out.put({"step_s": times[-1]})
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb() - rss0
        out.put({"peak_mb": peak, "times": times})
    except BaseException as exc:  # report, never hang the parent
        import traceback

        out.put({"method": method, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def run(s: Settings, methods=METHODS, log: Log | None = None) -> list[dict]:
    """Time every method in its own process, interleaved: round r times step r of each method in turn, so
    that a change of background load on a shared machine hits all methods alike.

    Returns one record per method, in ``methods`` order: ``label``, ``params``, ``times`` (seconds per timed
    step), ``step_s`` (median), ``tokens_per_s``, ``peak_mb``; or ``error`` (and ``traceback``) for a method
    that failed. ``log`` receives one line per method when it fails or finishes.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown} (choose from {', '.join(METHODS)})")
    ctx = mp.get_context("spawn")
    workers, results = {}, {}
    for method in methods:  # one at a time: building and warming up do not overlap
        inbox, out = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_run_one, args=(method, s, inbox, out), daemon=True)
        proc.start()
        try:
            res = out.get(timeout=s.timeout)
        except Exception:
            res = {"method": method, "error": f"not ready within {s.timeout:g} s"}
        results[method] = res
        if "error" in res:
            proc.kill()
            if log is not None:
                log(f"  {method}: ERROR {res['error']}")
        else:
            workers[method] = (proc, inbox, out)
            res["times"] = []
    for _ in range(s.steps):
        for method, (proc, inbox, out) in list(workers.items()):
            time.sleep(s.pause)  # let the previous process's OpenMP threads stop spinning
            inbox.put("step")
            try:
                msg = out.get(timeout=s.timeout)
            except Exception:
                msg = {"error": f"step not done within {s.timeout:g} s"}
            if "error" in msg:
                results[method].update(msg)
                proc.kill()
                del workers[method]
                if log is not None:
                    log(f"  {method}: ERROR {msg['error']}")
            else:
                results[method]["times"].append(msg["step_s"])
    for method, (proc, inbox, out) in workers.items():
        inbox.put("stop")
        try:
            results[method]["peak_mb"] = out.get(timeout=120)["peak_mb"]
        except Exception:
            results[method]["peak_mb"] = float("nan")
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        r = results[method]
        r["step_s"] = statistics.median(r["times"])
        r["tokens_per_s"] = s.batch * s.seq_len / r["step_s"]
        if log is not None:
            log(f"  {method}: {r['tokens_per_s']:,.0f} tokens/s, {r['step_s']:.2f} s/step (steps "
                f"{', '.join(f'{t:.2f}' for t in r['times'])}), peak {r['peak_mb']:,.0f} MB")
    return [results[m] for m in methods]


def format_table(results: list[dict], s: Settings) -> str:
    """The settings in one line, then one row per method: tokens/s, s/step, peak MB, parameters, ratio vs HF."""
    hf = next((r for r in results if r["method"] == "hf-bigbird" and "error" not in r), None)
    mem = "peak MB (CUDA alloc)" if s.device.startswith("cuda") else "peak MB (RSS - start)"
    lines = [
        f"MLM training step (fwd+bwd+AdamW): batch {s.batch} x {s.seq_len} tokens, {s.layers} layers, "
        f"d_model {s.d_model}, {s.heads} heads, d_ff {s.d_ff}, k={s.k} (vocab {s.vocab_size}), "
        f"block {s.block_size}, longformer window {s.longformer_window}, dropout {s.dropout}, "
        f"device {s.device}{', bf16 autocast' if s.bf16 else ''}, torch threads {s.threads or 'default'}"
        f"{', ours with full logits' if s.full_logits else ''}",
        f"{'method':<52} {'tokens/s':>10} {'s/step':>8} {mem:>22} {'params':>10} {'vs HF':>7}",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"{r['method']:<52} ERROR: {r['error']}")
            continue
        ratio = f"{r['tokens_per_s'] / hf['tokens_per_s']:.2f}x" if hf else "-"
        lines.append(f"{r['label']:<52} {r['tokens_per_s']:>10,.0f} {r['step_s']:>8.3f} {r['peak_mb']:>22,.0f} "
                     f"{r['params']:>10,} {ratio:>7}")
    return "\n".join(lines)
