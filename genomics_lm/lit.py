"""Masked-LM pretraining with PyTorch Lightning, and ``genomics-lm pretrain`` (a LightningCLI).

Pieces:

* :class:`MLMPretrainModule` – the LightningModule: a :class:`~genomics_lm.model.MaskedLM` built from a
  :class:`~genomics_lm.model.ModelConfig` (``arch``), cross-entropy on the masked positions only (the
  vocabulary projection is applied to the targets, not to every token), AdamW (no decay on biases and norm
  weights), linear warm-up then cosine decay to ``min_lr_ratio * lr`` (per step), masked-token accuracy and
  perplexity from torchmetrics for train and val. Gradient clipping, accumulation, precision and devices
  are Trainer options (``trainer.gradient_clip_val`` etc.).
* Checkpoints carry ``checkpoint["genomics_lm"]``: the model config, the tokenizer (k, stride, vocab
  size), the attention pattern and the data provenance, all plain JSON-able values; the hyper-parameters are
  a plain dict too, so every checkpoint loads with ``torch.load(weights_only=True)`` (Lightning's resume
  does exactly that on torch >= 2.6; the CLI also passes ``weights_only=True`` explicitly).
  :func:`load_pretrained` rebuilds the model from a checkpoint alone. Resuming a checkpoint of another
  model (shape, tokenizer or attention pattern) is refused with the list of differences.
* :class:`LastCheckpoint` keeps ``checkpoints/last.ckpt`` current at the end of fit and when Lightning stops
  a fit on SIGTERM (after the current batch); outside SLURM SIGUSR1 is treated as SIGTERM. ``--resume`` then
  continues at the same step with the same optimizer and scheduler state and the same data position (the
  train loader is resumable mid-epoch, see :mod:`genomics_lm.data`). Under SLURM, Lightning's
  ``SLURMEnvironment`` handles SIGUSR1 (``sbatch --signal=SIGUSR1@120``): it writes ``hpc_ckpt_N.ckpt`` and
  requeues the job; ``--resume`` takes the newest of the two.
* :func:`main` – ``genomics-lm pretrain {fit,validate} --config configs/pretrain/tiny.yaml [--resume]
  [--model.arch.attention longformer] [--trainer.max_steps 500] ...`` (every option overridable; the
  resolved config is saved as ``config.yaml`` next to the CSV logs).

Run folder (``trainer.default_root_dir``)::

    RUN/checkpoints/best.ckpt            lowest val/loss
    RUN/checkpoints/last.ckpt            newest state (end of fit, every check, SIGTERM)
    RUN/csv/version_N/metrics.csv        CSV logs (always); hparams.yaml; config.yaml = the resolved config
    RUN/tb/version_N/                    TensorBoard events (when tensorboard is installed)
    RUN/pretrained.pt                    model-only export of best.ckpt, written when fit completes

Metrics: ``train/loss``, ``train/acc``, ``train/ppl``, ``train/lr`` per step; ``val/loss``, ``val/acc``,
``val/ppl`` per validation. Validation masks every target with [MASK] (see ``MLMDataModule.val_full_mask``),
so val accuracy is prediction from context; train accuracy includes the 10% kept tokens (easy to copy).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from genomics_lm import __version__
from genomics_lm.data import IGNORE_INDEX, MLMDataModule
from genomics_lm.errors import UserError
from genomics_lm.model import MaskedLM, ModelConfig

META_KEY = "genomics_lm"
CKPT_FORMAT = "genomics_lm.mlm"
CKPT_FORMAT_VERSION = 1
# ModelConfig fields that may change between a checkpoint and the run resuming it (no effect on weights)
RUNTIME_FIELDS = frozenset({"dropout", "gradient_checkpointing", "backend"})


# ----------------------------------------------------------------------------------------------------
# LightningModule
# ----------------------------------------------------------------------------------------------------


def _default_arch() -> ModelConfig:
    arch = ModelConfig()
    arch.vocab_size = None  # derived from k when the config is built (so --model.arch.k alone is enough)
    return arch


_DEFAULT_ARCH = _default_arch()


def _as_config(arch: ModelConfig | Mapping[str, Any] | None) -> ModelConfig:
    if arch is None:
        return ModelConfig().validate()
    if isinstance(arch, ModelConfig):
        return ModelConfig.from_dict(arch.to_dict())  # a private, validated copy
    return ModelConfig.from_dict(dict(arch))


def mlm_head(model: MaskedLM, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head of :class:`MaskedLM` applied to selected hidden states (N, d_model) -> logits (N, vocab).

    Identical to ``MaskedLM.forward`` restricted to those positions (tests check it); used so the vocabulary
    projection, the largest matmul of a small model, runs on the ~15% masked positions only.
    """
    if hasattr(model, "head"):  # a future MaskedLM.head(hidden) takes precedence
        return model.head(hidden)
    h = model.transform_norm(F.gelu(model.transform(hidden)))
    return F.linear(h, model.decoder_weight, model.decoder_bias)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear from 1/warmup to 1 over ``warmup_steps``, cosine to ``min_lr_ratio`` at
    ``total_steps``, then flat."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class MLMPretrainModule(pl.LightningModule):
    """Masked-LM pretraining of a BigBird / Longformer / dense encoder.

    Args:
        arch: the model (:class:`ModelConfig`, or its ``to_dict()``): size, tokenizer k/stride, attention.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (not applied to biases, norm weights and 1-D params).
        betas, eps: AdamW moments and epsilon.
        warmup_steps: optimizer steps of linear warm-up.
        min_lr_ratio: the cosine decays to ``min_lr_ratio * lr``.
        total_steps: length of the schedule in optimizer steps (default: the Trainer's
            ``estimated_stepping_batches``, i.e. ``max_steps`` or ``max_epochs`` worth of steps).
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(
        self,
        arch: ModelConfig = _DEFAULT_ARCH,  # copied in __init__, never mutated
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        total_steps: int | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.arch = _as_config(arch)
        if lr <= 0:
            raise UserError(f"lr must be positive, got {lr}")
        if warmup_steps < 0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise UserError(f"warmup_steps must be >= 0 and min_lr_ratio in [0, 1], got {warmup_steps}, {min_lr_ratio}")
        self.save_hyperparameters({
            "arch": self.arch.to_dict(), "lr": float(lr), "weight_decay": float(weight_decay),
            "betas": [float(b) for b in betas], "eps": float(eps), "warmup_steps": int(warmup_steps),
            "min_lr_ratio": float(min_lr_ratio), "total_steps": total_steps, "label_smoothing": float(label_smoothing),
        })
        self.model = MaskedLM(self.arch)
        V = self.arch.vocab_size
        self.train_acc = MulticlassAccuracy(num_classes=V, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=V, average="micro")
        self.train_ppl = Perplexity()
        self.val_ppl = Perplexity()
        self.val_loss = MeanMetric()
        self._data_info: dict[str, Any] = {}
        self._ranks: list[int] = []

    # -- forward / loss --------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids, attention_mask)

    def masked_logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, vocab) and targets (N,) of the N masked positions of ``batch``."""
        input_ids, labels = batch["input_ids"], batch["labels"]  # (B, T) long each
        hidden = self.model.encoder(input_ids, batch.get("attention_mask"))  # (B, T, d_model)
        sel = labels != IGNORE_INDEX  # (B, T)
        logits = mlm_head(self.model, hidden[sel])  # (N, vocab)
        return logits.float(), labels[sel]

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch, batch_idx):
        logits, target = self.masked_logits(batch)
        loss = self._loss(logits, target)
        n = target.numel()
        self.train_acc(logits, target)
        self.train_ppl(logits[None], target[None])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/acc", self.train_acc, prog_bar=True, batch_size=n)
        self.log("train/ppl", self.train_ppl, batch_size=n)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        logits, target = self.masked_logits(batch)
        loss = F.cross_entropy(logits, target)
        n = target.numel()
        self.val_loss.update(loss, weight=n)
        self.val_acc.update(logits, target)
        self.val_ppl.update(logits[None], target[None])
        self.log("val/loss", self.val_loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("val/acc", self.val_acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("val/ppl", self.val_ppl, on_step=False, on_epoch=True, batch_size=n)

    # -- optimizer ---------------------------------------------------------------------------------

    def configure_optimizers(self):
        hp = self.hparams
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps)
        total = hp.total_steps
        if not total:
            est = self.trainer.estimated_stepping_batches
            if not math.isfinite(est):
                raise UserError("set trainer.max_steps (or trainer.max_epochs, or model.total_steps): the "
                                "learning-rate schedule needs a length")
            total = int(est)
        warmup, floor = int(hp.warmup_steps), float(hp.min_lr_ratio)

        def lr_lambda(step: int) -> float:  # a plain function: LambdaLR stores no state for it
            return warmup_cosine(step, warmup, total, floor)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -- consistency with the data and the checkpoints ---------------------------------------------

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if isinstance(dm, MLMDataModule):
            info = dm.tokenizer_info()
            if info:
                for key in ("k", "stride", "vocab_size"):
                    have, want = info[key], getattr(self.arch, key)
                    if have != want:
                        raise UserError(f"token store {info.get('train_store') or info.get('val_store')} has "
                                        f"{key}={have} but the model config has {key}={want}")
                self._data_info = info

    def on_train_start(self) -> None:
        ranks = self.all_gather(torch.tensor([self.global_rank], device=self.device))
        self._ranks = sorted(int(r) for r in ranks.flatten().tolist())

    def checkpoint_meta(self) -> dict[str, Any]:
        """Everything needed to rebuild and use the model, as plain JSON-able values."""
        arch = self.arch
        trainer = self._trainer
        return {
            "format": CKPT_FORMAT,
            "format_version": CKPT_FORMAT_VERSION,
            "genomics_lm_version": __version__,
            "task": "mlm",
            "model_config": arch.to_dict(),
            "tokenizer": {"k": arch.k, "stride": arch.stride, "vocab_size": arch.vocab_size},
            "attention_pattern": pattern_dict(arch),
            "data": _jsonable(self._data_info),
            "world_size": int(trainer.world_size) if trainer is not None else 1,
            "ranks": list(self._ranks),
            "global_step": int(self.global_step),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = self.checkpoint_meta()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(META_KEY)
        if not isinstance(meta, dict) or meta.get("format") != CKPT_FORMAT:
            raise UserError("the checkpoint is not a genomics_lm masked-LM pretraining checkpoint (no "
                            f"'{META_KEY}' record with format={CKPT_FORMAT!r})")
        diff = config_differences(meta.get("model_config", {}), self.arch.to_dict())
        if diff:
            raise UserError("the checkpoint was trained with another model than this config: " + "; ".join(diff)
                            + " (resume with the config of that run, or start a new run without --resume/ckpt_path)")


def pattern_dict(arch: ModelConfig) -> Any:
    """The attention pattern of ``arch`` as plain data (``make_pattern(**d)`` rebuilds it)."""
    p = arch.attention_pattern()
    if isinstance(p, (list, tuple)):  # one pattern per layer
        return [x.to_dict() if hasattr(x, "to_dict") else x for x in p]
    return p.to_dict() if hasattr(p, "to_dict") else p


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: checkpoint X vs config Y"`` for every model-defining field that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in RUNTIME_FIELDS:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
            out.append(f"{key}: checkpoint {a!r} vs config {b!r}")
    return out


# ----------------------------------------------------------------------------------------------------
# Loading pretrained models
# ----------------------------------------------------------------------------------------------------


def _torch_load(path: str | os.PathLike) -> dict[str, Any]:
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


def load_pretrained(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    expect: Mapping[str, Any] | None = None) -> tuple[MaskedLM, ModelConfig, dict[str, Any]]:
    """Rebuild the pretrained :class:`MaskedLM` from a checkpoint alone (no config files, no pickles).

    Accepts a Lightning checkpoint of :class:`MLMPretrainModule` (``best.ckpt``/``last.ckpt``) or the
    model-only export ``pretrained.pt``; both are read with ``torch.load(weights_only=True)``.

    Args:
        path: the checkpoint file.
        map_location: where to put the weights.
        expect: optional ``{"k": 6, "stride": 6, ...}``: raise :class:`UserError` if the checkpoint's
            model config or tokenizer disagrees (e.g. a fine-tuning run on another k).
    Returns:
        ``(model in eval mode, ModelConfig, meta)`` where meta is the checkpoint's ``genomics_lm`` record
        (tokenizer, attention_pattern, data provenance, global_step, ...).
    Raises:
        UserError: missing/truncated/foreign file, no ``genomics_lm`` record, mismatched shapes or ``expect``.
    """
    ckpt = _torch_load(path)
    meta = ckpt.get(META_KEY)
    if not isinstance(meta, dict) or "model_config" not in meta:
        raise UserError(f"{path}: not a genomics_lm checkpoint (no '{META_KEY}' record with a model config)")
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: its model config is not valid for this genomics_lm: {exc}") from None
    for key, want in (expect or {}).items():
        have = meta.get("tokenizer", {}).get(key, getattr(config, key, None))
        if have != want:
            raise UserError(f"{path}: checkpoint has {key}={have!r} but {want!r} is expected")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise UserError(f"{path}: checkpoint has no state_dict")
    if any(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    model = MaskedLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and v.shape != own[k].shape]
    if missing or unexpected or bad:
        raise UserError(f"{path}: weights do not fit the model config they came with "
                        f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape {bad[:5]})")
    return model.to(map_location).eval(), config, meta


def export_pretrained(ckpt_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a model-only file (``genomics_lm`` record + MaskedLM weights) from a Lightning checkpoint.

    About a third of the size of the full checkpoint (no optimizer state); :func:`load_pretrained` reads it.
    Written under a temporary name and renamed, so a killed job never leaves a partial file.
    """
    model, config, meta = load_pretrained(ckpt_path)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    torch.save({META_KEY: {**meta, "exported_from": str(ckpt_path)}, "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------------------------------
# Interruption
# ----------------------------------------------------------------------------------------------------


class LastCheckpoint(Callback):
    """Keep ``last.ckpt`` current: at the end of fit and when a fit is stopped by SIGTERM (or SIGUSR1).

    ModelCheckpoint(save_last=True) writes ``last.ckpt`` only when it checks (after validation or at an
    epoch end); a run that reaches ``max_steps`` between two checks would leave an older ``last.ckpt``.

    Lightning turns SIGTERM into a clean stop after the current batch (``SIGTERMException``); this callback
    then writes the checkpoint through ``trainer.save_checkpoint`` (every rank takes part, rank 0 writes).
    Outside SLURM, SIGUSR1 (what many schedulers send before preemption) is treated like SIGTERM. Under
    SLURM, SIGUSR1 belongs to Lightning's SLURMEnvironment: it saves ``hpc_ckpt_N.ckpt`` and requeues the job.

    Args:
        dirpath: where to write (default: the checkpoint folder of the first ModelCheckpoint).
        filename: file stem (``last``: what ``--resume`` / ``ckpt_path="last"`` look for).
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last"):
        self.dirpath, self.filename = dirpath, filename
        self.saved_path: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from lightning_fabric.plugins.environments import SLURMEnvironment
        import threading

        if stage != "fit" or SLURMEnvironment.detect() or threading.current_thread() is not threading.main_thread():
            return
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))

    def teardown(self, trainer, pl_module, stage: str) -> None:
        import threading

        if stage == "fit" and hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
            from lightning_fabric.plugins.environments import SLURMEnvironment

            if not SLURMEnvironment.detect():
                signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    def _path(self, trainer: pl.Trainer) -> str:
        dirpath = self.dirpath
        if dirpath is None and trainer.checkpoint_callback is not None:
            dirpath = trainer.checkpoint_callback.dirpath
        dirpath = dirpath or os.path.join(trainer.default_root_dir, "checkpoints")
        return os.path.join(dirpath, f"{self.filename}.ckpt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0 and not trainer.sanity_checking:
            self.saved_path = self._path(trainer)
            trainer.save_checkpoint(self.saved_path, weights_only=False)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        path = self._path(trainer)
        trainer.save_checkpoint(path, weights_only=False)
        self.saved_path = path
        if trainer.is_global_zero:
            print(f"genomics-lm pretrain: stopped by a signal at step {trainer.global_step}; saved {path} "
                  "(continue with --resume)", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# Command line (LightningCLI)
# ----------------------------------------------------------------------------------------------------


def find_resume_checkpoint(root_dir: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None) -> str | None:
    """The newest of ``<ckpt_dir>/last*.ckpt`` and SLURM's ``<root_dir>/hpc_ckpt_*.ckpt``, or None."""
    root = Path(root_dir)
    candidates = list(Path(ckpt_dir or root / "checkpoints").glob("last*.ckpt")) + list(root.glob("hpc_ckpt_*.ckpt"))
    candidates = [p for p in candidates if p.is_file()]
    if not candidates:
        return None
    return str(max(candidates, key=lambda p: p.stat().st_mtime))


def _tensorboard_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def _build_cli_class():
    from pytorch_lightning.cli import LightningCLI

    class PretrainCLI(LightningCLI):
        """LightningCLI with linked tokenizer settings, a fixed run-folder layout and ``--resume``."""

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            base = LightningCLI.subcommands()
            return {name: base[name] for name in SUBCOMMANDS}

        def add_arguments_to_parser(self, parser) -> None:
            # the store must match the model's tokenizer: one source of truth, checked when the store opens
            parser.link_arguments("model.arch.k", "data.k")
            parser.link_arguments("model.arch.stride", "data.stride")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({
                "checkpoint.monitor": "val/loss", "checkpoint.mode": "min", "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best", "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False, "checkpoint.enable_version_counter": False,
            })
            parser.add_argument("--resume", type=bool, default=False,
                                help="continue from the newest checkpoint of the run folder (checkpoints/last.ckpt "
                                     "or SLURM's hpc_ckpt_N.ckpt); starts fresh when there is none")
            parser.add_argument("--export", type=bool, default=True,
                                help="after fit, write <default_root_dir>/pretrained.pt (model-only, from best.ckpt)")

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would silently replace the model config by the checkpoint's hyper-parameters.
            # fit (resume): a checkpoint of another model is refused with the list of differences instead
            # (MLMPretrainModule.on_load_checkpoint). validate: the model is the checkpoint's, so no model
            # config is needed to evaluate a checkpoint (runtime fields such as backend stay overridable).
            if self.config.get("subcommand") != "validate":
                return
            cfg = self.config["validate"]
            path = cfg.get("ckpt_path")
            if not path or not Path(path).is_file():
                return
            meta = _torch_load(path).get(META_KEY)
            if not isinstance(meta, dict) or "model_config" not in meta:
                raise UserError(f"{path}: not a genomics_lm checkpoint (no '{META_KEY}' record with a model config)")
            for key, value in meta["model_config"].items():
                if key not in RUNTIME_FIELDS:
                    cfg[f"model.arch.{key}"] = value
            cfg["data.k"], cfg["data.stride"] = meta["model_config"]["k"], meta["model_config"]["stride"]

        def before_instantiate_classes(self) -> None:
            cfg = self.config[self.subcommand] if self.subcommand else self.config
            root = cfg.trainer.get("default_root_dir") or os.path.join("results", "pretrain", "run")
            cfg.trainer.default_root_dir = root
            if not cfg.checkpoint.get("dirpath"):
                cfg.checkpoint.dirpath = os.path.join(root, "checkpoints")

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]):
            config = dict(config)
            root = config["default_root_dir"]
            if config.get("logger") in (None, True):
                from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

                loggers = [CSVLogger(save_dir=root, name="csv")]
                if _tensorboard_available():
                    loggers.append(TensorBoardLogger(save_dir=root, name="tb", default_hp_metric=False))
                config["logger"] = loggers
            return super()._instantiate_trainer(config, list(callbacks) + [LastCheckpoint()])

        def _weights_only(self) -> None:
            # Lightning's default (None) already means torch.load(weights_only=True) on torch >= 2.6; say it
            # explicitly so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn a resume into an unpickling
            cfg = self.config_init[self.subcommand]
            if "weights_only" in cfg and cfg.get("weights_only") is None:
                cfg["weights_only"] = True

        def before_validate(self) -> None:
            self._weights_only()
            self.datamodule.setup("validate")  # bad stores fail here, before the loggers create run folders

        def before_fit(self) -> None:
            self._weights_only()
            self.datamodule.setup("fit")  # bad stores fail here, before the loggers create run folders
            cfg = self.config_init[self.subcommand]
            if cfg.get("resume") and not cfg.get("ckpt_path"):
                ckpt_dir = self.trainer.checkpoint_callback.dirpath if self.trainer.checkpoint_callback else None
                found = find_resume_checkpoint(self.trainer.default_root_dir, ckpt_dir)
                if found:
                    print(f"genomics-lm pretrain: resuming from {found}", file=sys.stderr)
                    cfg["ckpt_path"] = found
                else:
                    print(f"genomics-lm pretrain: --resume: no checkpoint in {self.trainer.default_root_dir}; "
                          "starting a new run", file=sys.stderr)

        def after_fit(self) -> None:
            trainer = self.trainer
            cfg = self.config_init[self.subcommand]
            if trainer.interrupted:
                return
            cb = trainer.checkpoint_callback
            best = getattr(cb, "best_model_path", "") or getattr(cb, "last_model_path", "")
            if trainer.is_global_zero and best and cfg.get("export", True):
                out = export_pretrained(best, os.path.join(trainer.default_root_dir, "pretrained.pt"))
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
                shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
                print(f"genomics-lm pretrain: step {trainer.global_step}; {shown}; best {best}; exported {out}",
                      file=sys.stderr)

    return PretrainCLI


SUBCOMMANDS = ("fit", "validate")


def main(argv: list[str]) -> int:
    """``genomics-lm pretrain [fit|validate] --config CONFIG.yaml [--resume] [--section.option value ...]``."""
    argv = list(argv)
    if argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        pass
    elif not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv = ["fit"] + argv  # 'fit' is the default subcommand
    # '--resume' alone means '--resume true' (jsonargparse wants a value for bools)
    argv = [a if a != "--resume" else "--resume=true" for a in argv]
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # LightningCLI's own use of jsonargparse
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
    PretrainCLI = _build_cli_class()
    try:
        PretrainCLI(
            MLMPretrainModule,
            MLMDataModule,
            subclass_mode_model=False,
            subclass_mode_data=False,
            args=argv,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "genomics-lm pretrain", "default_env": False, "description": (
                "Masked-LM pretraining of a BigBird / Longformer / dense encoder on the token stores of "
                "'genomics-lm tokenize'. fit trains (--resume continues a run), validate evaluates a checkpoint. "
                "Start from configs/pretrain/tiny.yaml (CPU) or base.yaml (GPUs); any option can be overridden, "
                "e.g. --model.arch.attention longformer --trainer.max_steps 1000.")},
            auto_configure_optimizers=False,
            seed_everything_default=0,
            run=True,
        )
    except SIGTERMException:
        return 128 + int(signal.SIGTERM)
    return 0
