"""Masked-LM pretraining: the LightningModule.

:class:`MLMPretrainModule` holds a :class:`~genomics_lm.model.MaskedLM` built from a
:class:`~genomics_lm.model.ModelConfig` (``arch``) and computes, in its shared step, the cross-entropy on the
masked positions only (the vocabulary projection is applied to the targets, not to every token), the
masked-token accuracy and perplexity (torchmetrics) for train and val. AdamW with warm-up and cosine decay
comes from :mod:`genomics_lm.training` (shared with fine-tuning). Gradient clipping, accumulation, precision
and devices are Trainer options.

Checkpoints carry the ``genomics_lm`` record of :mod:`genomics_lm.checkpoint` (model config with the
tokenizer record, data provenance); the hyper-parameters are a plain dict too, so every checkpoint loads with
``torch.load(weights_only=True)``. Resuming a checkpoint of another model (shape, tokenizer or attention
pattern) is refused with the list of differences.

Metrics: ``train/loss``, ``train/acc``, ``train/ppl``, ``train/lr`` per step; ``val/loss``, ``val/acc``,
``val/ppl`` per validation. Validation masks every target with [MASK] (``MLMDataModule.val_full_mask``), so
val accuracy is prediction from context; train accuracy also counts the 10% of targets left unchanged
(easy to copy), so it reads far higher than val accuracy and is not comparable with it.

The command line (``genomics-lm pretrain``) is :mod:`genomics_lm.cli.pretrain`.
"""

from __future__ import annotations

from typing import Any, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from genomics_lm.checkpoint import META_KEY, config_differences, make_record, read_record
from genomics_lm.data import IGNORE_INDEX
from genomics_lm.errors import UserError
from genomics_lm.model import DEFAULT_CONFIG, MaskedLM, ModelConfig
from genomics_lm.training import configure_adamw

TASK = "mlm"


class MLMPretrainModule(pl.LightningModule):
    """Masked-LM pretraining of a BigBird / Longformer / dense encoder.

    Args:
        arch: the model: tokenizer, size and attention (see ModelConfig).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (not applied to biases, norm weights and other 1-D
            parameters).
        betas: AdamW moment coefficients.
        eps: AdamW epsilon.
        warmup_steps: optimizer steps of linear warm-up.
        min_lr_ratio: the cosine decays to min_lr_ratio * lr.
        total_steps: length of the schedule in optimizer steps (default: trainer.max_steps, or max_epochs
            worth of steps).
        label_smoothing: cross-entropy label smoothing in training.
    """

    def __init__(
        self,
        arch: ModelConfig = DEFAULT_CONFIG,  # copied in __init__, never mutated
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
        self.arch = ModelConfig.copy_of(arch)
        if not lr > 0:
            raise UserError(f"model.lr must be positive, got {lr}")
        if warmup_steps < 0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise UserError(f"model.warmup_steps must be >= 0 and model.min_lr_ratio in [0, 1], got "
                            f"{warmup_steps}, {min_lr_ratio}")
        if total_steps is not None and total_steps < 1:
            raise UserError(f"model.total_steps must be at least 1 (or null), got {total_steps}")
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
        self.data_info: dict[str, Any] = {}  # provenance of the token stores, recorded in checkpoints
        self._ranks: list[int] = []

    # -- forward / shared step -----------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids, attention_mask)  # (B, T, vocab)

    def masked_logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, vocab) and targets (N,) of the N masked positions of ``batch``."""
        input_ids, labels = batch["input_ids"], batch["labels"]  # (B, T) long each
        hidden = self.model.encoder(input_ids, batch.get("attention_mask"))  # (B, T, d_model)
        sel = labels != IGNORE_INDEX  # (B, T)
        logits = self.model.head(hidden[sel])  # (N, vocab)
        return logits.float(), labels[sel]

    def training_step(self, batch, batch_idx):
        logits, target = self.masked_logits(batch)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
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

    def configure_optimizers(self):
        return configure_adamw(self)  # AdamW + warm-up/cosine from the hyper-parameters (shared with pretraining)

    # -- consistency with the data and the checkpoints -----------------------------------------------

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "check_tokenizer"):
            dm.check_tokenizer(self.arch.tokenizer, "the model config")
            self.data_info = dm.provenance()

    def on_train_start(self) -> None:
        ranks = self.all_gather(torch.tensor([self.global_rank], device=self.device))
        self._ranks = sorted(int(r) for r in ranks.flatten().tolist())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        checkpoint[META_KEY] = make_record(
            self.arch, TASK, data=self.data_info, global_step=int(self.global_step), ranks=list(self._ranks),
            world_size=int(trainer.world_size) if trainer is not None else 1)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not isinstance(checkpoint.get(META_KEY), dict):
            raise UserError(f"the checkpoint is not a genomics_lm checkpoint (no '{META_KEY}' record)")
        saved, meta = read_record(checkpoint, "the checkpoint")
        if meta.get("task") != TASK:
            raise UserError(f"the checkpoint holds a {meta.get('task')!r} model, not a masked-LM pretraining run")
        diff = config_differences(saved.to_dict(), self.arch.to_dict())
        if diff:
            raise UserError("the checkpoint was trained with another model than this config: " + "; ".join(diff)
                            + " (resume with the config of that run, or start a new run without --resume/ckpt_path)")
