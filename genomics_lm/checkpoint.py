"""The checkpoint format: what a genomics_lm checkpoint holds, how it is written and read back safely.

No Lightning import: scoring code and notebooks load models with :func:`load_pretrained` alone.

Every checkpoint (a Lightning ``.ckpt`` of a training run, or the model-only export ``pretrained.pt``) is a
dict with a ``"genomics_lm"`` record of plain JSON-able values next to the weights::

    {"genomics_lm": {
        "format": "genomics_lm.checkpoint", "format_version": 2, "genomics_lm_version": "0.1.0",
        "task": "mlm" | "classify",                      # the masked-LM model, or a fine-tuned classifier
        "label_names": [...], "pooling": "mean", "add_cls": false,   # classify only: C sigmoid outputs
        "model_config": ModelConfig.to_dict(),           # tokenizer record {k, stride, vocab_size}, sizes,
                                                         # attention kind and each pattern's own parameters
        "data": {...},                                   # provenance: token stores, their source FASTA sha256
        "global_step": N, "world_size": W, "ranks": [...]},
     "state_dict": {...}}                               # Lightning: "model." prefix; export: none

The tokenizer is recorded once, inside ``model_config``; the attention pattern is rebuilt from it with
``ModelConfig.attention_pattern()``. Reading uses ``torch.load(weights_only=True)`` only: a file that needs
unpickling of arbitrary objects is refused, never executed. Format version 1 records (flat ``k``/``stride``
and renamed attention fields) are upgraded on reading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from genomics_lm import __version__
from genomics_lm.errors import UserError
from genomics_lm.files import atomic_write
from genomics_lm.model import ConfigError, MaskedLM, ModelConfig, MultiLabelClassifier
from genomics_lm.tokenizer import KmerTokenizer, check_same_tokenizer

META_KEY = "genomics_lm"
FORMAT = "genomics_lm.checkpoint"
FORMAT_VERSION = 2
_V1_FORMAT = "genomics_lm.mlm"
# ModelConfig fields that may change between a checkpoint and the run resuming it (no effect on the weights)
RUNTIME_FIELDS = frozenset({"dropout", "gradient_checkpointing", "backend"})


def make_record(config: ModelConfig, task: str, **extra: Any) -> dict[str, Any]:
    """The ``genomics_lm`` record of a checkpoint of ``config`` (plain data; ``extra`` made JSON-able)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "genomics_lm_version": __version__,
            "task": task, "model_config": config.to_dict(), **{k: _jsonable(v) for k, v in extra.items()}}


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _upgrade_v1_config(old: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 ``model_config`` (flat k/stride/vocab_size, ``attn_seed``, ``longformer_*``) in today's form."""
    d = dict(old)
    out = {"tokenizer": {"k": d.pop("k"), "stride": d.pop("stride")}}
    d.pop("vocab_size", None)
    d.pop("pad_id", None)
    out["bigbird"] = {"block_size": d.get("block_size", 64), "window_blocks": d.pop("window_blocks", 3),
                      "global_blocks": d.pop("global_blocks", 2), "random_blocks": d.pop("random_blocks", 3),
                      "seed": d.pop("attn_seed", 0)}
    out["longformer"] = {"window": d.pop("longformer_window", 512), "global_tokens": list(d.pop("global_tokens", [0])),
                         "dilation": d.pop("longformer_dilation", 1), "block_size": d.pop("block_size", 64)}
    out.update(d)
    return out


def read_record(ckpt: Mapping[str, Any], path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The model config and the ``genomics_lm`` record of a loaded checkpoint (format 1 upgraded)."""
    meta = ckpt.get(META_KEY)
    if not isinstance(meta, dict) or "model_config" not in meta:
        raise UserError(f"{path}: not a genomics_lm checkpoint (no '{META_KEY}' record with a model config)")
    meta = dict(meta)
    if meta.get("format") == _V1_FORMAT and int(meta.get("format_version", 1)) == 1:
        meta["model_config"] = _upgrade_v1_config(meta["model_config"])
        meta.pop("tokenizer", None)
        meta.pop("attention_pattern", None)
        meta.setdefault("task", "mlm")
        meta.update(format=FORMAT, format_version=FORMAT_VERSION, upgraded_from=1)
    elif meta.get("format") != FORMAT:
        raise UserError(f"{path}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT!r})")
    elif int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format_version {meta.get('format_version')} is newer than this "
                        f"genomics_lm reads ({FORMAT_VERSION}); upgrade genomics_lm")
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except (ConfigError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: its model config is not valid for this genomics_lm: {exc}") from None
    return config, meta


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: checkpoint X vs config Y"`` for every model-defining field of two ``ModelConfig.to_dict()``."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in RUNTIME_FIELDS:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if _jsonable(a) != _jsonable(b):
            out.append(f"{key}: checkpoint {a!r} vs config {b!r}")
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, or an object weights_only refuses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot be read as a checkpoint with weights_only=True ({first})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a checkpoint (a {type(obj).__name__}, expected a dict)")
    return obj


def model_state(ckpt: Mapping[str, Any], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model's weights: the ``state_dict`` without Lightning's ``model.`` prefix."""
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise UserError(f"{path}: checkpoint has no state_dict")
    if any(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    return state


def load_pretrained(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    expect: KmerTokenizer | None = None, expect_name: str = "the data"
                    ) -> tuple[MaskedLM, ModelConfig, dict[str, Any]]:
    """Rebuild the pretrained :class:`MaskedLM` from a checkpoint alone (no config files, no pickles).

    Accepts a Lightning checkpoint of the pretraining module (``best.ckpt``/``last.ckpt``) or the
    model-only export ``pretrained.pt``; both are read with ``torch.load(weights_only=True)``.

    Args:
        path: the checkpoint file.
        map_location: where to put the weights.
        expect: the tokenizer of the data the model will see; a checkpoint trained with another one is
            refused, naming both (``expect_name`` names the data side in the message).
    Returns:
        ``(model in eval mode, ModelConfig, record)``, the record being the checkpoint's ``genomics_lm`` dict.
    Raises:
        UserError: missing/truncated/foreign file, no ``genomics_lm`` record, weights that do not fit, a
            tokenizer other than ``expect``.
    """
    ckpt = read_checkpoint(path)
    config, meta = read_record(ckpt, path)
    if expect is not None:
        check_same_tokenizer(expect, config.tokenizer, expect_name, f"checkpoint {path}")
    if meta.get("task", "mlm") != "mlm":
        raise UserError(f"{path}: a {meta.get('task')!r} checkpoint, not a pretrained masked LM")
    model = MaskedLM(config)
    _load_weights(model, model_state(ckpt, path), path)
    return model.to(map_location).eval(), config, meta


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """Load ``state`` into ``model`` or raise one line naming the missing, unexpected and misshapen tensors
    (checked before loading: torch raises its own multi-line error on a shape mismatch)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and v.shape != own[k].shape]
    if missing or unexpected or bad:
        raise UserError(f"{path}: weights do not fit the model config they came with "
                        f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape {bad[:5]})")
    model.load_state_dict(state, strict=True)


CLASSIFY = "classify"


def load_classifier(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[MultiLabelClassifier, ModelConfig, dict[str, Any]]:
    """Rebuild a fine-tuned classifier (C independent sigmoid outputs, one per label name) from its checkpoint.

    Returns ``(model in eval mode, ModelConfig, record)``; the record holds ``label_names``, ``pooling`` and
    ``add_cls`` (whether a [CLS] token goes in front of every input). A pretraining checkpoint is refused with
    a pointer to ``genomics-lm finetune``.
    """
    ckpt = read_checkpoint(path)
    config, meta = read_record(ckpt, path)
    if meta.get("task") != CLASSIFY:
        if meta.get("task") == "mlm":
            raise UserError(f"{path}: a pretraining checkpoint (masked LM, no label names): fine-tune it first "
                            "with 'genomics-lm finetune fit --model.pretrained ...'")
        raise UserError(f"{path}: checkpoint task {meta.get('task')!r} is not a fine-tuned classifier")
    names = meta.get("label_names")
    if not isinstance(names, list) or not names:
        raise UserError(f"{path}: fine-tuned checkpoint without label names")
    model = MultiLabelClassifier(config, len(names), pooling=meta.get("pooling", "mean"))
    _load_weights(model, model_state(ckpt, path), path)
    return model.to(map_location).eval(), config, meta


def save_model(model: torch.nn.Module, record: Mapping[str, Any], out_path: str | os.PathLike) -> Path:
    """Write ``{"genomics_lm": record, "state_dict": model weights}`` atomically (temporary name, then rename)."""
    out = Path(out_path)
    with atomic_write(out) as tmp:
        torch.save({META_KEY: dict(record), "state_dict": model.state_dict()}, tmp)
    return out


def export_classifier(ckpt_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write the model-only file of a fine-tuning checkpoint (what ``evaluate`` and ``score`` read)."""
    model, _, meta = load_classifier(ckpt_path)
    return save_model(model, {**meta, "exported_from": str(ckpt_path)}, out_path)


def export_pretrained(ckpt_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write the model-only file (``genomics_lm`` record + MaskedLM weights) of a Lightning checkpoint.

    About a third of the size of the full checkpoint (no optimizer state); :func:`load_pretrained` reads it.
    """
    model, _, meta = load_pretrained(ckpt_path)
    return save_model(model, {**meta, "exported_from": str(ckpt_path)}, out_path)
