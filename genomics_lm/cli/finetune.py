"""``genomics-lm finetune {fit,validate}``: fine-tuning on a task folder through a LightningCLI.

``fit`` trains a classifier on ``data.task_dir`` (written by ``genomics-lm make-task``), from scratch or from a
pretrained checkpoint (``--model.pretrained RUN/pretrained.pt``); ``validate`` evaluates a checkpoint. The label
names come from the task store, ``model.add_cls`` from ``data.add_cls``. The LightningModule is
:class:`genomics_lm.finetune.FinetuneModule`, the data :class:`genomics_lm.data.TaskDataModule`; the machinery
(run folder, resume, signals, errors, help) is :mod:`genomics_lm.cli.lightning`.

Run folder (``trainer.default_root_dir``): ``checkpoints/best.ckpt`` (highest val/auprc) and ``last.ckpt``,
``csv/metrics.csv``, ``csv/config.yaml`` and ``finetuned.pt``, the model-only export that ``genomics-lm
evaluate`` reads.
"""

from __future__ import annotations

from genomics_lm.cli.lightning import TrainCommand, run

COMMAND = TrainCommand(
    prog="genomics-lm finetune",
    description=(
        "Fine-tune a BigBird / Longformer / dense encoder on a task folder of 'genomics-lm make-task' (binary or "
        "multi-label, missing labels masked), from scratch or from a pretrained checkpoint (--model.pretrained). "
        "'fit' trains (--resume continues the run in --trainer.default_root_dir); 'validate' evaluates a "
        "checkpoint. Start from configs/finetune/tiny.yaml (CPU) or base.yaml (GPUs)."),
    module="genomics_lm.finetune:FinetuneModule",
    datamodule="genomics_lm.data:TaskDataModule",
    export_name="finetuned.pt",
    export="genomics_lm.checkpoint:export_classifier",
    monitor="val/auprc",
    mode="max",
    links=(("data.task_dir", "model.label_names", "genomics_lm.data:task_label_names"),
           ("data.add_cls", "model.add_cls", None)),
)


def main(argv: list[str]) -> int:
    """``genomics-lm finetune fit|validate --config CONFIG.yaml --data.task_dir DIR [...]``."""
    return run(COMMAND, argv)
