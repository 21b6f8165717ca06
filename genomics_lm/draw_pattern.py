"""Pictures of the attention patterns, drawn from the pattern objects themselves.

Stage functions only (``genomics-lm draw-pattern`` parses and prints):

    CONFIG.yaml (its ``model.arch``) or a checkpoint (.pt / .ckpt: its recorded model config)
        ──► read_model_config   a validated :class:`~genomics_lm.model.ModelConfig`
        ──► pattern_for         the config with ``attention`` set to bigbird / longformer / dense, and its
                                :meth:`ModelConfig.attention_pattern` (the very object the model attends with)
        ──► layer_masks         ``pattern.dense_mask(T, n_heads, layer)``: the (H, T, T) boolean mask the
                                ``reference`` backend attends through, so a picture cannot disagree with the kernels
                                (they are tested against that mask)
        ──► render_png          one figure per attention type: rows = layers, columns = heads, each panel the
                                token-level mask (query rows, key columns) with the fraction of pairs attended
        ──► draw_patterns       ``DIR/pattern_<attention>.png`` and ``DIR/patterns.json``

``patterns.json`` holds, per attention type, the pattern's parameters and per layer the fraction of the T x T
pairs each head attends (the mean of its mask) next to ``pattern.density`` (the kernels' block-level count).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write

MAX_LENGTH = 2048  # tokens: beyond this a T x T panel is unreadable at any figure size
JSON_NAME = "patterns.json"
CHECKPOINT_SUFFIXES = (".pt", ".ckpt")


def png_name(attention: str) -> str:
    """The file name of one attention type's picture: ``pattern_<attention>.png``."""
    return f"pattern_{attention}.png"


def output_names(attentions: Sequence[str]) -> list[str]:
    """Every file :func:`draw_patterns` writes for ``attentions`` (the pictures, then ``patterns.json``)."""
    return [png_name(a) for a in attentions] + [JSON_NAME]


def read_model_config(path: str | os.PathLike):
    """The :class:`~genomics_lm.model.ModelConfig` of a config YAML (``model.arch``) or of a checkpoint.

    A ``.pt``/``.ckpt`` file is read with :func:`genomics_lm.checkpoint.read_checkpoint` and
    :func:`~genomics_lm.checkpoint.read_record` (``weights_only``, format-1 records upgraded); anything else is read
    as a pretraining or fine-tuning YAML whose ``model.arch`` section is the model config.

    Raises:
        UserError: a missing or unreadable file, no ``model.arch`` section, or an invalid model config (one line,
            naming the file).
    """
    from genomics_lm.model import ConfigError, ModelConfig

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (give a config YAML with a model.arch section, e.g. "
                        "configs/finetune/tiny.yaml, or a checkpoint .pt)")
    if path.suffix in CHECKPOINT_SUFFIXES:
        from genomics_lm.checkpoint import read_checkpoint, read_record

        config, _ = read_record(read_checkpoint(path), path)
        return config
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the config ({exc})") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not valid YAML ({first})") from None
    arch = ((cfg or {}).get("model") or {}).get("arch") if isinstance(cfg, dict) else None
    if not isinstance(arch, dict):
        raise UserError(f"{path}: no model.arch section (give a pretraining or fine-tuning config such as "
                        "configs/finetune/tiny.yaml, or a checkpoint .pt)")
    try:
        return ModelConfig.from_dict(arch)
    except (ConfigError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: model.arch: {str(exc).splitlines()[0]}") from None


def check_attentions(names: Sequence[str]) -> list[str]:
    """The attention types asked for, checked and deduplicated in order (one-line error for an unknown name)."""
    from genomics_lm.model import ATTENTION_TYPES

    out: list[str] = []
    for name in names:
        if name not in ATTENTION_TYPES:
            raise UserError(f"--attention {name!r}: unknown attention type (choose from {', '.join(ATTENTION_TYPES)})")
        if name not in out:
            out.append(name)
    if not out:
        raise UserError(f"--attention: give at least one of {', '.join(ATTENTION_TYPES)}")
    return out


def check_length(length: int | str) -> int:
    """``--length``: an integer from 1 to :data:`MAX_LENGTH` tokens."""
    try:
        value = int(str(length).strip())
    except ValueError:
        raise UserError(f"--length {length!r}: not an integer number of tokens") from None
    if value < 1:
        raise UserError(f"--length {value}: must be at least 1 token")
    if value > MAX_LENGTH:
        raise UserError(f"--length {value}: over {MAX_LENGTH} tokens a {value} x {value} panel is unreadable; "
                        f"draw a shorter --length (e.g. 512 or 1024): the pattern's structure is the same")
    return value


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """``"all"`` -> every layer; ``"0,2"`` -> those layers (sorted, deduplicated), each in ``[0, n_layers)``."""
    text = str(spec).strip()
    if text == "all":
        return list(range(n_layers))
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--layers {spec!r}: give 'all' or comma-separated layer numbers such as 0,1") from None
    bad = [x for x in layers if not 0 <= x < n_layers]
    if not layers or bad:
        raise UserError(f"--layers {spec!r}: the model has layers 0..{n_layers - 1} (n_layers={n_layers})")
    return layers


def pattern_for(config, attention: str, source: str | os.PathLike = "the config"):
    """``config`` with ``attention`` switched to ``attention``, validated, and its pattern.

    The pattern comes from :meth:`ModelConfig.attention_pattern`, the function the encoder builds its pattern with,
    using the config's own ``bigbird``/``longformer`` parameters. Returns ``(config, pattern)``.
    """
    from genomics_lm.model import ConfigError, ModelConfig

    try:
        cfg = ModelConfig.from_dict({**config.to_dict(), "attention": attention})
        return cfg, cfg.attention_pattern()
    except (ConfigError, ValueError, TypeError) as exc:
        raise UserError(f"{source}: {attention}: {str(exc).splitlines()[0]}") from None


def layer_masks(pattern, length: int, n_heads: int, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """``{layer: (H, T, T) bool}``: ``pattern.dense_mask(length, n_heads, layer)``, the reference backend's mask."""
    return {layer: pattern.dense_mask(length, n_heads, layer).numpy() for layer in layers}


def layer_records(pattern, masks: dict[int, np.ndarray], length: int, n_heads: int) -> list[dict[str, Any]]:
    """Per layer: each head's attended fraction (the mean of its mask), their mean, and ``pattern.density``."""
    out = []
    for layer, mask in masks.items():
        heads = [float(m.mean()) for m in mask]
        out.append({"layer": layer, "heads": heads, "fraction": float(np.mean(heads)),
                    "density": float(pattern.density(length, n_heads, layer))})
    return out


@dataclass
class PatternPicture:
    """One attention type drawn: its pattern, the per-layer records of its masks and the PNG bytes."""

    attention: str
    pattern: Any
    layers: list[dict[str, Any]]
    png: bytes

    def record(self) -> dict[str, Any]:
        """The JSON record: the pattern's parameters, the picture's name and the per-layer fractions."""
        return {"pattern": self.pattern.to_dict(), "describe": self.pattern.describe(),
                "png": png_name(self.attention), "layers": self.layers}


def render_png(pattern, masks: dict[int, np.ndarray], length: int, title: str = "") -> bytes:
    """A grid of the masks (rows = layers, columns = heads) as PNG bytes; each panel titled with its fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(masks)
    n_heads = next(iter(masks.values())).shape[0]
    panel = 2.3
    fig, axes = plt.subplots(len(layers), n_heads, figsize=(max(panel * n_heads, 6.0), panel * len(layers) + 1.0),
                             squeeze=False, layout="constrained")  # constrained: room for the suptitle
    total = np.mean([m.mean() for m in masks.values()])
    for r, layer in enumerate(layers):
        for h in range(n_heads):
            ax = axes[r][h]
            m = masks[layer][h]
            # black = attended; grey where a screen pixel covers both (antialiased downsampling of long masks)
            ax.imshow(m, cmap="Greys", vmin=0, vmax=1, interpolation="antialiased", aspect="equal")
            ax.set_title(f"layer {layer} head {h}: {m.mean():.1%}", fontsize=8)
            ax.tick_params(labelsize=6)
            if h == 0:
                ax.set_ylabel("query", fontsize=7)
            if r == len(layers) - 1:
                ax.set_xlabel("key", fontsize=7)
    fig.suptitle(f"{title or pattern.describe()}\nT = {length} tokens; attended pairs (black): {total:.1%} of "
                 f"{length} x {length}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def draw_pattern(config, attention: str, length: int, layers: Sequence[int],
                 source: str | os.PathLike = "the config") -> PatternPicture:
    """One attention type of ``config`` at ``length`` tokens, every head of ``layers``, drawn in memory."""
    cfg, pattern = pattern_for(config, attention, source)
    masks = layer_masks(pattern, length, cfg.n_heads, layers)  # (H, T, T) per layer: dropped once drawn
    return PatternPicture(attention, pattern, layer_records(pattern, masks, length, cfg.n_heads),
                          render_png(pattern, masks, length, pattern.describe()))


def draw_patterns(config_path: str | os.PathLike, attentions: Sequence[str], length: int, out_dir: str | os.PathLike,
                  layers: str = "all", overwrite: bool = False) -> tuple[dict[str, Any], list[Path]]:
    """Read the model config, draw each attention type and write ``out_dir/pattern_<attention>.png`` and
    ``out_dir/patterns.json``.

    Every input is checked and every picture drawn before anything is written, so a mistake leaves ``out_dir``
    as it was. Returns the JSON document and the written paths.

    Raises:
        UserError: a bad config, attention type, length or layer list, ``out_dir`` a file, or outputs that exist
            without ``overwrite``.
    """
    attentions = check_attentions(attentions)
    length = check_length(length)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out-dir {out}: is a file, not a folder")
    existing = [n for n in output_names(attentions) if (out / n).exists()]
    if existing and not overwrite:
        raise UserError(f"--out-dir {out}: already holds {', '.join(existing)} (use --overwrite)")
    config = read_model_config(config_path)
    layer_ids = parse_layers(layers, config.n_layers)
    pictures = [draw_pattern(config, a, length, layer_ids, config_path) for a in attentions]
    doc = {"source": str(config_path), "length": length, "n_layers": config.n_layers, "n_heads": config.n_heads,
           "layers": layer_ids,
           "fraction": "per head: the mean of pattern.dense_mask(length, n_heads, layer)[head], the query/key pairs "
                       "the head attends; density: pattern.density(length, n_heads, layer), the mean over heads",
           "patterns": {p.attention: p.record() for p in pictures}}
    written = []
    for p in pictures:
        path = out / png_name(p.attention)
        with atomic_write(path) as tmp:
            tmp.write_bytes(p.png)
        written.append(path)
    with atomic_write(out / JSON_NAME) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    written.append(out / JSON_NAME)
    return doc, written
