"""``genomics-lm pretrain {fit,validate}``: masked-LM pretraining through a LightningCLI.

``fit`` trains (``--resume`` continues the run in ``trainer.default_root_dir``), ``validate`` evaluates a
checkpoint (``--ckpt_path``). Every option of the YAML config (``--config configs/pretrain/tiny.yaml``) can be
overridden (``--model.arch.attention longformer --trainer.max_steps 1000``). The LightningModule is
:class:`genomics_lm.pretrain.MLMPretrainModule`, the data :class:`genomics_lm.data.MLMDataModule`; the
machinery (run folder, resume, signals, errors, help) is :mod:`genomics_lm.cli.lightning`.

Run folder (``trainer.default_root_dir``)::

    RUN/checkpoints/best.ckpt   lowest val/loss          RUN/checkpoints/last.ckpt   newest state
    RUN/csv/metrics.csv         one metrics file per run (appended on resume); hparams.yaml
    RUN/csv/config.yaml         the resolved config       RUN/tb/                     TensorBoard (if installed)
    RUN/pretrained.pt           model-only export of best.ckpt, written when fit completes
"""

from __future__ import annotations

from genomics_lm.cli.lightning import TrainCommand, run

COMMAND = TrainCommand(
    prog="genomics-lm pretrain",
    description=(
        "Masked-LM pretraining of a BigBird / Longformer / dense encoder on the token stores of 'genomics-lm "
        "tokenize'. 'fit' trains (--resume continues the run in --trainer.default_root_dir); 'validate' evaluates "
        "a checkpoint (--ckpt_path). Start from configs/pretrain/tiny.yaml (CPU) or base.yaml (GPUs); any option "
        "can be overridden, e.g. --model.arch.attention longformer --trainer.max_steps 1000."),
    module="genomics_lm.pretrain:MLMPretrainModule",
    datamodule="genomics_lm.data:MLMDataModule",
    export_name="pretrained.pt",
    export="genomics_lm.checkpoint:export_pretrained",
    note=" (val masks every target with [MASK]: val/acc is prediction from context)",
)


def main(argv: list[str]) -> int:
    """``genomics-lm pretrain fit|validate --config CONFIG.yaml [--resume] [--section.option value ...]``."""
    return run(COMMAND, argv)
