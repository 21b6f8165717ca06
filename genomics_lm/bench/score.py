"""The scoring benchmark: sequences/s batched vs one at a time, variants/s, and the time to write a 1 Mb track.

The command is ``genomics-lm bench score`` (:mod:`genomics_lm.cli.bench_score`); this module measures and formats,
and prints nothing.

Models: ``model.arch`` of ``configs/finetune/tiny.yaml`` (single bases, conv stem, d_model 128, 2 layers, BigBird
blocks of 32) and ``configs/finetune/base.yaml`` (6-mers, d_model 512, 8 layers, BigBird blocks of 64), one output,
**randomly initialised** (seeded) and saved as a classifier checkpoint: timing only, the scores mean nothing.
fp32, on ``device`` (CPU by default), ``torch`` threads as set by the caller.

Measured in one run, all through the public scoring code:

* **sequences/s** per model and length (1 kb and 16 kb by default): :func:`genomics_lm.score.score_sequences` on
  ``n`` windows cut at random positions of the phage lambda genome (real bases; ``window`` = the length, so one
  window per sequence), **batched** (``batch`` sequences per forward pass) and **one at a time** (one call per
  sequence, batch 1): the baseline of the same run. ``n / median(seconds)`` over ``repeats`` passes, after one
  untimed warm-up call.
* **variants/s**: :func:`genomics_lm.variants.score_variants` (tiny model, 1 kb windows) on the first ``variants``
  SNVs of the real dbSNP VCF on the hg19 chr22 piece (two windows per variant), batched vs batch 1.
* **1 Mb track**: :func:`genomics_lm.tracks.score_track` over the whole hg19 chr22 piece (1 Mb; tiny model, 1 kb
  windows every ``track_step`` bp, bedGraph + bigWig when pyBigWig is installed): wall time of scoring and
  writing, and of writing alone. No one-at-a-time baseline (it would take minutes): its ratio is left empty.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genomics_lm.bench.tokenizer import median_time
from genomics_lm.files import REPO_ROOT, default_data_dir


@dataclass
class Settings:
    lengths: tuple[int, ...] = (1000, 16000)
    # sequences per (model, length); the base model at 16 kb is slow on a CPU: few sequences
    n: dict = field(default_factory=lambda: {("tiny", 1000): 32, ("tiny", 16000): 4, ("base", 1000): 8,
                                             ("base", 16000): 2})
    configs: tuple[str, ...] = ("tiny", "base")
    batch: int = 8
    repeats: int = 1
    variants: int = 64
    track: bool = True
    track_step: int = 1000
    device: str = "cpu"
    seed: int = 0


def _arch(name: str):
    import yaml

    from genomics_lm.model import ModelConfig

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "finetune" / f"{name}.yaml").read_text())
    arch = dict(cfg["model"]["arch"])
    arch["dropout"] = 0.0
    return ModelConfig.from_dict(arch)


def save_random_classifier(name: str, path: Path, seed: int = 0) -> Path:
    """A randomly initialised one-label classifier of ``configs/finetune/NAME.yaml`` saved as a checkpoint."""
    import torch

    from genomics_lm.checkpoint import make_record, save_model
    from genomics_lm.model import MultiLabelClassifier

    torch.manual_seed(seed)
    config = _arch(name)
    model = MultiLabelClassifier(config, 1, pooling="mean")
    save_model(model, make_record(config, "classify", label_names=["random"], pooling="mean", add_cls=False), path)
    return path


def _sequences(n: int, length: int, rng: np.random.Generator) -> list[str]:
    from genomics_lm.tasks import read_fasta

    genome = read_fasta(default_data_dir() / "genomes" / "lambda_phage.fa")[0].seq.upper()
    reps = -(-length // len(genome)) + 1
    text = genome * reps  # 16 kb fits in lambda (48.5 kb); longer lengths wrap around
    starts = rng.integers(0, len(genome), n)
    return [text[s: s + length] for s in starts.tolist()]


def run(s: Settings, progress=None) -> dict:
    """Every measurement of the module docstring: ``{"rows": [...], "settings": {...}, "load": ...}``.

    Each row: ``{"what", "model", "length", "n", "mode" ("batched" | "one at a time" | ""), "seconds", "rate",
    "unit", "ratio" (rate / the same row's one-at-a-time rate, None for the baseline itself)}``.
    """
    import os

    import torch

    from genomics_lm.score import load_model, score_sequences

    rng = np.random.default_rng(s.seed)
    rows: list[dict] = []
    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="bench_score_") as tmp:
        tmp = Path(tmp)
        ckpts = {name: save_random_classifier(name, tmp / f"{name}.pt", s.seed) for name in s.configs}
        for name in s.configs:
            model = load_model(ckpts[name], device=s.device)
            n_params = sum(p.numel() for p in model.parameters())
            for length in s.lengths:
                n = int(s.n.get((name, length), 4))
                seqs = _sequences(n, length, rng)
                kw = dict(device=s.device, window=length, step=length)
                with torch.no_grad():
                    score_sequences(model, seqs[:1], batch_size=1, **kw)  # warm-up (caches, allocator)
                    t_one = median_time(lambda: [score_sequences(model, [x], batch_size=1, **kw) for x in seqs],
                                         s.repeats)
                    t_b = median_time(lambda: score_sequences(model, seqs, batch_size=s.batch, **kw), s.repeats)
                base = n / t_one
                common = {"what": "sequences", "model": f"{name} ({n_params / 1e6:.1f} M)", "length": length, "n": n,
                          "unit": "seq/s"}
                rows.append({**common, "mode": "one at a time", "seconds": t_one, "rate": base, "ratio": None})
                rows.append({**common, "mode": f"batched ({s.batch})", "seconds": t_b, "rate": n / t_b,
                             "ratio": (n / t_b) / base})
                say(f"{name} {length} bp: {base:.2f} seq/s one at a time, {n / t_b:.2f} batched")
        data = default_data_dir()
        genome = data / "genomes" / "hg19_chr22_20-21Mb.fa"
        if s.variants and "tiny" in s.configs:
            from genomics_lm.variants import score_variants

            vcf = tmp / "bench.vcf"
            lines = (data / "variants" / "hg19_chr22_20-21Mb.dbsnp_snv.vcf").read_text().splitlines()
            head = [x for x in lines if x.startswith("#")]
            body = [x for x in lines if not x.startswith("#")][: s.variants]
            vcf.write_text("\n".join(head + body) + "\n")
            cache = tmp / "cache"
            res = {}
            for mode, bs in (("one at a time", 1), (f"batched ({s.batch})", s.batch)):
                t0 = time.perf_counter()
                out = score_variants(ckpts["tiny"], vcf, genome, tmp / f"eff{bs}.tsv", window=1000, batch_size=bs,
                                     device=s.device, cache_dir=cache, overwrite=True)
                res[mode] = (time.perf_counter() - t0, out["scored"])
            t_one, n = res["one at a time"]
            for mode, (t, n) in res.items():
                rows.append({"what": "variants", "model": "tiny", "length": 1000, "n": n, "mode": mode,
                             "seconds": t, "rate": n / t, "unit": "variants/s",
                             "ratio": None if mode == "one at a time" else (n / t) / (n / t_one)})
            say(f"variants: {rows[-2]['rate']:.1f}/s one at a time, {rows[-1]['rate']:.1f}/s batched")
        if s.track and "tiny" in s.configs:
            from genomics_lm.tracks import score_track

            t0 = time.perf_counter()
            out = score_track(ckpts["tiny"], genome, tmp / "track", window=1000, step=s.track_step,
                              batch_size=s.batch, device=s.device, cache_dir=tmp / "cache", overwrite=True)
            t = time.perf_counter() - t0
            rows.append({"what": "1 Mb track", "model": "tiny", "length": 1000, "n": out["windows"],
                         "mode": f"batched ({s.batch}), {len(out['files'])} files", "seconds": t,
                         "rate": out["windows"] / t, "unit": "windows/s", "ratio": None,
                         "write_seconds": out["seconds_write"]})
            say(f"track: {t:.1f} s ({out['seconds_write']:.2f} s writing)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"rows": rows, "settings": {"lengths": list(s.lengths), "batch": s.batch, "repeats": s.repeats,
                                       "variants": s.variants, "device": s.device,
                                       "threads": torch.get_num_threads()}, "load": load}


def format_table(result: dict) -> str:
    """One aligned table: what, model, length, n, mode, seconds, rate, ratio vs one at a time."""
    head = f"{'what':<11} {'model':<13} {'length':>7} {'n':>5}  {'mode':<24} {'seconds':>8} {'rate':>16} {'vs one':>7}"
    lines = [head]
    for r in result["rows"]:
        ratio = "1.00" if r["ratio"] is None and r["mode"] == "one at a time" else (
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}")
        rate = f"{r['rate']:.2f} {r['unit']}"
        lines.append(f"{r['what']:<11} {r['model']:<13} {r['length']:>7,} {r['n']:>5}  {r['mode']:<24} "
                     f"{r['seconds']:>8.2f} {rate:>16} {ratio:>7}")
        if "write_seconds" in r:
            lines.append(f"{'':<11} {'':<13} {'':>7} {'':>5}  {'(of which writing files)':<24} "
                         f"{r['write_seconds']:>8.2f}")
    st = result["settings"]
    lines.append(f"device {st['device']}, {st['threads']} torch threads, load average {result['load']:.2f}; "
                 "random-init models (timing only)")
    return "\n".join(lines)
