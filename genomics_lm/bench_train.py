"""``genomics-lm bench train``: masked-LM training throughput per attention type vs HF BigBird, same run.

One training step = forward + MLM loss + backward + AdamW step, on a batch of ``--batch`` sequences of
``--seq-len`` tokens with 15% of them masked (80/10/10). Ours is exactly the step of
:class:`~genomics_lm.lit.MLMPretrainModule` (vocabulary projection on the masked positions only, as in
training); the peer is ``transformers``' ``BigBirdForMaskedLM`` with ``attention_type="block_sparse"`` of the
same size (hidden, layers, heads, MLP width, vocabulary, block size, 3 random blocks, dropout), trained with
its own loss. ``--full-logits`` makes ours project every position too (an apples-to-apples head).

Each method runs in its own process, so the peak memory of one does not hide another's: on CPU the peak is
the process's peak RSS minus its RSS before the model was built (weights + optimizer state + activations);
on CUDA it is ``torch.cuda.max_memory_allocated``. After ``--warmup`` untimed steps, the timed steps are
interleaved (round r: step r of each method in turn, the other processes idle), so a change of background
load on a shared machine affects every method alike; tokens/s is the median over ``--steps`` rounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

METHODS = ("bigbird", "longformer", "dense", "hf-bigbird")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _batch(args, vocab: int):
    import numpy as np
    import torch

    from genomics_lm.data import mask_tokens
    from genomics_lm.tokenizer import N_SPECIAL

    rng = np.random.default_rng(0)
    ids = rng.integers(N_SPECIAL, vocab, size=(args["batch"], args["seq_len"]))
    pairs = [mask_tokens(row, rng, vocab_size=vocab) for row in ids]
    inputs = torch.from_numpy(np.stack([p[0] for p in pairs]))
    labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return inputs, labels


def _run_one(method: str, args: dict, inbox, out) -> None:
    """Child process: build one model, run the warm-up, then time one step per "step" message from
    ``inbox``; report through ``out``; a "stop" message ends it with the peak memory."""
    try:
        import torch
        import torch.nn.functional as F

        if args["threads"]:
            torch.set_num_threads(args["threads"])
        torch.manual_seed(0)
        device = torch.device(args["device"])
        cuda = device.type == "cuda"
        if method == "hf-bigbird":  # imports first: the memory figure is the model's, not the libraries'
            from transformers import BigBirdConfig, BigBirdForMaskedLM
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
        else:
            from genomics_lm.data import IGNORE_INDEX
            from genomics_lm.lit import MLMPretrainModule
            from genomics_lm.model import ModelConfig
        rss0 = _rss_mb()
        vocab = 5 + 4 ** args["k"]
        inputs, labels = _batch(args, vocab)
        inputs, labels = inputs.to(device), labels.to(device)
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if args["bf16"] else torch.autocast(device.type, enabled=False)

        if method == "hf-bigbird":
            cfg = BigBirdConfig(
                vocab_size=vocab, hidden_size=args["d_model"], num_hidden_layers=args["layers"],
                num_attention_heads=args["heads"], intermediate_size=args["d_ff"],
                max_position_embeddings=args["seq_len"], attention_type="block_sparse",
                block_size=args["block_size"], num_random_blocks=3, hidden_dropout_prob=args["dropout"],
                attention_probs_dropout_prob=args["dropout"], pad_token_id=0,
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
            arch = ModelConfig(
                k=args["k"], stride=args["k"], d_model=args["d_model"], n_layers=args["layers"], n_heads=args["heads"],
                d_ff=args["d_ff"], dropout=args["dropout"], attention=method, backend=args["backend"],
                block_size=args["block_size"], window_blocks=3, global_blocks=2, random_blocks=3,
                longformer_window=args["longformer_window"], global_tokens=(0,),
            )
            module = MLMPretrainModule(arch=arch, total_steps=1000, warmup_steps=10).to(device).train()
            model = module.model
            opt = module.configure_optimizers()["optimizer"]
            batch = {"input_ids": inputs, "labels": labels}

            def step():
                with amp:
                    if args["full_logits"]:
                        logits = module(inputs)
                        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
                    else:
                        logits, target = module.masked_logits(batch)
                        loss = F.cross_entropy(logits, target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            backend = args["backend"] if args["backend"] != "auto" else ("flex" if cuda else "blocked")
            label = f"{method} ({'sdpa' if method == 'dense' else backend}{', full logits' if args['full_logits'] else ''})"

        params = sum(p.numel() for p in model.parameters())
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args["warmup"]):
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


def run(args: dict, methods=METHODS, log=sys.stderr) -> list[dict]:
    """Time every method in its own process, interleaved: round r times step r of each method in turn, so
    that a change of background load on a shared machine hits all methods alike."""
    ctx = mp.get_context("spawn")
    workers, results = {}, {}
    for method in methods:  # one at a time: building and warming up do not overlap
        inbox, out = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_run_one, args=(method, args, inbox, out), daemon=True)
        proc.start()
        try:
            res = out.get(timeout=args["timeout"])
        except Exception:
            res = {"method": method, "error": f"not ready within {args['timeout']} s"}
        results[method] = res
        if "error" in res:
            proc.kill()
            if log is not None:
                print(f"  {method}: ERROR {res['error']}", file=log, flush=True)
        else:
            workers[method] = (proc, inbox, out)
            res["times"] = []
    for _ in range(args["steps"]):
        for method, (proc, inbox, out) in list(workers.items()):
            time.sleep(args["pause"])  # let the previous process's OpenMP threads stop spinning
            inbox.put("step")
            try:
                msg = out.get(timeout=args["timeout"])
            except Exception:
                msg = {"error": f"step not done within {args['timeout']} s"}
            if "error" in msg:
                results[method].update(msg)
                proc.kill()
                del workers[method]
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
        r["tokens_per_s"] = args["batch"] * args["seq_len"] / r["step_s"]
        if log is not None:
            print(f"  {method}: {r['tokens_per_s']:,.0f} tokens/s, {r['step_s']:.2f} s/step (steps "
                  f"{', '.join(f'{t:.2f}' for t in r['times'])}), peak {r['peak_mb']:,.0f} MB", file=log, flush=True)
    return [results[m] for m in methods]


def table(results: list[dict], args: dict) -> str:
    hf = next((r for r in results if r["method"] == "hf-bigbird" and "error" not in r), None)
    mem = "peak MB (CUDA alloc)" if args["device"].startswith("cuda") else "peak MB (RSS - start)"
    lines = [
        f"MLM training step (fwd+bwd+AdamW): batch {args['batch']} x {args['seq_len']} tokens, {args['layers']} layers, "
        f"d_model {args['d_model']}, {args['heads']} heads, d_ff {args['d_ff']}, k={args['k']} (vocab {5 + 4 ** args['k']}), "
        f"block {args['block_size']}, longformer window {args['longformer_window']}, dropout {args['dropout']}, "
        f"device {args['device']}{', bf16 autocast' if args['bf16'] else ''}, torch threads {args['threads'] or 'default'}"
        f"{', ours with full logits' if args['full_logits'] else ''}",
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genomics-lm bench train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--k", type=int, default=6, help="k-mer length (vocabulary 5 + 4**k)")
    p.add_argument("--block-size", type=int, default=64, help="BigBird block size (ours and HF)")
    p.add_argument("--longformer-window", type=int, default=512, help="Longformer band width in tokens")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--backend", default="auto", help="attention backend of ours (auto: blocked on CPU, flex on CUDA)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--full-logits", action="store_true", help="ours projects every position to the vocabulary")
    p.add_argument("--steps", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--pause", type=float, default=0.5, help="seconds of rest before each timed step")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per method")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def main(argv: list[str]) -> int:
    from genomics_lm.errors import UserError

    ns = build_parser().parse_args(argv)
    methods = [m.strip() for m in ns.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise UserError(f"unknown methods {unknown} (choose from {', '.join(METHODS)})")
    if ns.seq_len % ns.block_size:
        raise UserError(f"--seq-len {ns.seq_len} must be a multiple of --block-size {ns.block_size} (HF BigBird needs it)")
    args = {k: v for k, v in vars(ns).items() if k not in ("methods", "json")}
    print(f"genomics-lm bench train: {', '.join(methods)} (one process each, timed steps interleaved)",
          file=sys.stderr, flush=True)
    results = run(args, methods)
    print(table(results, args))
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump({"args": args, "results": results}, f, indent=2)
    return 1 if any("error" in r for r in results) else 0
