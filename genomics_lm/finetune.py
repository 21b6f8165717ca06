"""Fine-tuning: the LightningModule for binary and multi-label sequence classification.

:class:`FinetuneModule` holds a :class:`~genomics_lm.model.MultiLabelClassifier` (the encoder, pooling, one
logit per label; a binary task is one label) built from a :class:`~genomics_lm.model.ModelConfig` (``arch``),
optionally starting from a pretrained masked-LM checkpoint (``pretrained``: the encoder's weights are copied,
the tokenizer checked; the head starts fresh), or from scratch with the same code. Its shared step computes the
binary cross-entropy masked where a label is not observed (NaN), optionally weighting positives
(``pos_weight="auto"``: negatives/positives per label from the training split, for class balance); validation
logs ``val/loss``, ``val/auroc`` and ``val/auprc`` (macro over labels, missing labels ignored) and, for one
label, ``val/mcc`` at threshold 0.5. The best checkpoint is chosen on ``val/auprc`` (the CLI's monitor) and
early stopping is a Trainer callback in the config. Optimizer and schedule: :mod:`genomics_lm.training`.

The command line (``genomics-lm finetune``) is :mod:`genomics_lm.cli.finetune`.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn
from torchmetrics import Metric
from torchmetrics.classification import BinaryMatthewsCorrCoef
from torchmetrics.functional.classification import binary_auroc, binary_average_precision
from torchmetrics.utilities import dim_zero_cat

from genomics_lm.checkpoint import CLASSIFY, META_KEY, config_differences, load_pretrained, make_record, read_record
from genomics_lm.errors import UserError
from genomics_lm.model import DEFAULT_CONFIG, ModelConfig, MultiLabelClassifier, load_encoder_weights
from genomics_lm.training import configure_adamw

IGNORE = -1  # the label value torchmetrics ignores (unobserved labels)


class MacroOverLabels(Metric):
    """Macro mean of a binary ranking metric (AUROC or average precision) over labels, each on its observed rows.

    A label whose observed validation rows hold one class only (or none) has no AUROC/AUPRC: it is left out of
    the mean, as ``evaluate`` does (torchmetrics' Multilabel metrics with ``ignore_index`` fail on such a label).
    When no label has both classes the value is 0 with a warning, like torchmetrics' binary metrics.
    States are concatenated across processes (DDP) before :meth:`compute`.
    """

    full_state_update = False

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """probs (B, C) float in [0, 1]; target (B, C) long: 1, 0 or IGNORE (not observed)."""
        self.probs.append(probs.detach().float())
        self.target.append(target.detach().long())

    def compute(self) -> torch.Tensor:
        probs, target = dim_zero_cat(self.probs), dim_zero_cat(self.target)  # (N, C)
        values = []
        for c in range(probs.shape[1]):
            keep = target[:, c] != IGNORE
            t = target[keep, c]
            if t.numel() and 0 < int(t.sum()) < t.numel():  # both classes observed
                values.append(self.fn(probs[keep, c], t))
        if not values:
            rank_zero_warn("validation: no label has both classes among its observed rows; val metric set to 0")
            return torch.zeros((), device=probs.device)
        return torch.stack(values).mean()


class FinetuneModule(pl.LightningModule):
    """Fine-tuning of a BigBird / Longformer / dense encoder for binary or multi-label classification.

    Args:
        arch: the model: tokenizer, size and attention (see ModelConfig). With pretrained, its size and tokenizer
            must be the checkpoint's (the attention pattern may differ).
        label_names: the task's labels, one output each (linked from the task store by the CLI).
        pretrained: a pretraining checkpoint (pretrained.pt or a .ckpt) to start the encoder from; null =
            from scratch.
        pooling: mean (over real tokens) or cls (needs data.add_cls, linked).
        add_cls: whether inputs start with [CLS] (linked from data.add_cls; recorded in the checkpoint).
        pos_weight: weight of positives in the loss: auto (negatives/positives per label, from the training
            split), a number, or null (1).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not on biases and norm weights).
        betas: AdamW moment coefficients.
        eps: AdamW epsilon.
        warmup_steps: optimizer steps of linear warm-up.
        min_lr_ratio: the cosine decays to min_lr_ratio * lr.
        total_steps: schedule length in optimizer steps (default: max_steps or max_epochs worth of steps).
    """

    def __init__(
        self,
        arch: ModelConfig = DEFAULT_CONFIG,  # copied in __init__, never mutated
        label_names: list[str] | None = None,
        pretrained: str | None = None,
        pooling: Literal["mean", "cls"] = "mean",
        add_cls: bool = False,
        pos_weight: Literal["auto"] | float | None = "auto",
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        warmup_steps: int = 50,
        min_lr_ratio: float = 0.1,
        total_steps: int | None = None,
    ):
        super().__init__()
        self.arch = ModelConfig.copy_of(arch)
        if not label_names:
            raise UserError("model.label_names is empty: give the task (data.task_dir) the labels come from")
        if pooling == "cls" and not add_cls:
            raise UserError("model.pooling=cls needs a [CLS] token: set data.add_cls true")
        if not lr > 0:
            raise UserError(f"model.lr must be positive, got {lr}")
        if isinstance(pos_weight, (int, float)) and not pos_weight > 0:
            raise UserError(f"model.pos_weight must be positive, 'auto' or null, got {pos_weight}")
        self.label_names = list(label_names)
        self.save_hyperparameters({
            "arch": self.arch.to_dict(), "label_names": self.label_names, "pretrained": pretrained,
            "pooling": pooling, "add_cls": bool(add_cls), "pos_weight": pos_weight, "lr": float(lr),
            "weight_decay": float(weight_decay), "betas": [float(b) for b in betas], "eps": float(eps),
            "warmup_steps": int(warmup_steps), "min_lr_ratio": float(min_lr_ratio), "total_steps": total_steps,
        })
        C = len(self.label_names)
        self.model = MultiLabelClassifier(self.arch, C, pooling=pooling)
        if pretrained:
            self._load_pretrained(pretrained)
        self.register_buffer("pos_weight_t", torch.ones(C), persistent=False)
        self.val_auroc = MacroOverLabels(binary_auroc)  # macro over labels with both classes observed
        self.val_auprc = MacroOverLabels(binary_average_precision)
        self.val_mcc = BinaryMatthewsCorrCoef(ignore_index=IGNORE) if C == 1 else None
        self.data_info: dict[str, Any] = {}

    def _load_pretrained(self, path: str) -> None:
        mlm, config, _ = load_pretrained(path, expect=self.arch.tokenizer, expect_name="the fine-tuning config "
                                         "(model.arch.tokenizer)")
        try:
            load_encoder_weights(self.model, mlm)
        except ValueError as exc:
            raise UserError(f"{path}: {str(exc).splitlines()[0]} (set model.arch to the pretrained model's size: "
                            f"d_model={config.d_model}, n_layers={config.n_layers}, n_heads={config.n_heads}, "
                            f"d_ff={config.d_ff})") from None

    # -- forward / shared step -----------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids, attention_mask)  # (B, C) logits

    def _step(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (B, C), labels (B, C) with NaN, and the masked BCE loss (mean over observed labels)."""
        logits = self.model(batch["input_ids"], batch["attention_mask"]).float()  # (B, C)
        labels = batch["labels"].float()  # (B, C), NaN = not observed
        observed = ~torch.isnan(labels)
        target = torch.nan_to_num(labels, nan=0.0)
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight_t, reduction="none")
        loss = (loss * observed).sum() / observed.sum().clamp_min(1)
        return logits, labels, loss

    def training_step(self, batch, batch_idx):
        _, labels, loss = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.shape[0])
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=labels.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        logits, labels, loss = self._step(batch)
        target = torch.where(torch.isnan(labels), torch.full_like(labels, IGNORE), labels).long()  # (B, C)
        probs = torch.sigmoid(logits)  # (B, C)
        self.val_auroc.update(probs, target)
        self.val_auprc.update(probs, target)
        n = labels.shape[0]
        self.log("val/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("val/auroc", self.val_auroc, on_step=False, on_epoch=True, batch_size=n)
        self.log("val/auprc", self.val_auprc, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        if self.val_mcc is not None:  # one label: MCC at threshold 0.5 on column 0
            self.val_mcc.update(probs[:, 0], target[:, 0])
            self.log("val/mcc", self.val_mcc, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)

    def configure_optimizers(self):
        return configure_adamw(self)  # AdamW + warm-up/cosine from the hyper-parameters (shared with pretraining)

    # -- consistency with the data and the checkpoints -----------------------------------------------

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "check_tokenizer"):
            return
        dm.check_tokenizer(self.arch.tokenizer, "the model config (model.arch.tokenizer)")
        if dm.label_names() != self.label_names:
            raise UserError(f"the task has labels {dm.label_names()} but the model predicts {self.label_names}")
        if bool(getattr(dm, "add_cls", False)) != bool(self.hparams.add_cls):
            raise UserError("data.add_cls and model.add_cls differ (the CLI links them)")
        self.data_info = dm.provenance()
        pw = self.hparams.pos_weight
        if stage == "fit" and pw == "auto":
            frac = torch.as_tensor(dm.positive_fraction(), dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
            self.pos_weight_t = ((1 - frac) / frac).to(self.device)
        elif isinstance(pw, (int, float)):
            self.pos_weight_t = torch.full_like(self.pos_weight_t, float(pw))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        hp = self.hparams
        checkpoint[META_KEY] = make_record(
            self.arch, CLASSIFY, label_names=self.label_names, pooling=hp.pooling, add_cls=bool(hp.add_cls),
            pretrained=hp.pretrained, data=self.data_info, global_step=int(self.global_step))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved, meta = read_record(checkpoint, "the checkpoint")
        if meta.get("task") != CLASSIFY or meta.get("label_names") != self.label_names:
            raise UserError(f"the checkpoint holds a {meta.get('task')!r} model with labels {meta.get('label_names')}, "
                            f"not this task's classifier ({self.label_names})")
        diff = config_differences(saved.to_dict(), self.arch.to_dict())
        if diff:
            raise UserError("the checkpoint was trained with another model than this config: " + "; ".join(diff))
