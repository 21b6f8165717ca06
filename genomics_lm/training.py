"""Training machinery shared by the LightningModules (pretraining now, fine-tuning next).

* :func:`adamw_groups` / :func:`configure_adamw` - AdamW with no weight decay on biases and norm weights
  (every 1-D parameter), and a per-step linear warm-up + cosine schedule (:func:`warmup_cosine`).
* :class:`LastCheckpoint` - keeps ``last.ckpt`` current at the end of fit and when a fit is stopped by a
  signal, so ``--resume`` always continues from the newest state.
* :func:`find_resume_checkpoint` - the newest of ``last*.ckpt`` and SLURM's ``hpc_ckpt_N.ckpt``.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genomics_lm.errors import UserError


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear from 1/warmup to 1 over ``warmup_steps``, cosine to ``min_lr_ratio`` at
    ``total_steps``, then flat."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def adamw_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two parameter groups: matrices and embeddings with ``weight_decay``; biases, norm weights and every
    other 1-D parameter without."""
    decay, no_decay = [], []
    for _, p in named_parameters:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def configure_adamw(module: pl.LightningModule) -> dict:
    """What ``configure_optimizers`` returns for ``module.model``: AdamW + a per-step warm-up/cosine ``LambdaLR``.

    The settings are the module's hyper-parameters ``lr, weight_decay, betas, eps, warmup_steps, min_lr_ratio,
    total_steps``; ``total_steps`` defaults to the Trainer's ``estimated_stepping_batches`` (``max_steps`` or
    ``max_epochs`` worth of optimizer steps).
    """
    hp = module.hparams
    lr, weight_decay, betas, eps = hp.lr, hp.weight_decay, hp.betas, hp.eps
    warmup_steps, min_lr_ratio, total_steps = hp.warmup_steps, hp.min_lr_ratio, hp.total_steps
    model = module.model
    optimizer = torch.optim.AdamW(adamw_groups(model.named_parameters(), weight_decay), lr=lr,
                                  betas=tuple(betas), eps=eps)
    total = total_steps
    if not total:
        est = module.trainer.estimated_stepping_batches
        if not math.isfinite(est):
            raise UserError("set trainer.max_steps (or trainer.max_epochs, or model.total_steps): the "
                            "learning-rate schedule needs a length")
        total = int(est)
    warmup, floor = int(warmup_steps), float(min_lr_ratio)

    def lr_lambda(step: int) -> float:  # a plain function: LambdaLR stores no state for it
        return warmup_cosine(step, warmup, total, floor)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


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
        prog: the command named in the message printed after a signal.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last", prog: str = "genomics-lm"):
        self.dirpath, self.filename, self.prog = dirpath, filename, prog
        self.saved_path: str | None = None

    @staticmethod
    def _handles_sigusr1() -> bool:
        from lightning_fabric.plugins.environments import SLURMEnvironment

        return (hasattr(signal, "SIGUSR1") and not SLURMEnvironment.detect()
                and threading.current_thread() is threading.main_thread())

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self._handles_sigusr1():
            signal.signal(signal.SIGUSR1, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self._handles_sigusr1():
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
            print(f"{self.prog}: stopped by a signal at step {trainer.global_step}; saved {path} "
                  "(continue with --resume)", file=sys.stderr, flush=True)


def find_resume_checkpoint(root_dir: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None) -> str | None:
    """The newest of ``<ckpt_dir>/last*.ckpt`` and SLURM's ``<root_dir>/hpc_ckpt_*.ckpt``, or None."""
    root = Path(root_dir)
    candidates = list(Path(ckpt_dir or root / "checkpoints").glob("last*.ckpt")) + list(root.glob("hpc_ckpt_*.ckpt"))
    candidates = [p for p in candidates if p.is_file()]
    if not candidates:
        return None
    return str(max(candidates, key=lambda p: p.stat().st_mtime))


def run_csv_logger(root_dir: str | os.PathLike, resume_step: int | None = None):
    """A CSVLogger writing one metrics file per run, ``ROOT/csv/metrics.csv``, appended when the run resumes.

    Lightning's own CSVLogger starts a ``version_N`` folder per start (or deletes the old file), which scatters
    a resumed run's metrics. Here a resumed run (``resume_step`` = the checkpoint's global step) keeps the rows
    logged before that step and drops later ones (logged after the checkpoint was written, and logged again
    now), so the file reads as one uninterrupted run.
    """
    import csv

    from lightning_fabric.loggers.logger import rank_zero_experiment
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    class _AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:  # Lightning's deletes an existing metrics file
            if not os.path.isfile(self.metrics_file_path):
                return
            with open(self.metrics_file_path, newline="") as fh:
                reader = csv.DictReader(fh)
                rows, fields = list(reader), list(reader.fieldnames or [])
            if resume_step is None:  # a fresh run in a used folder: start the file anew
                os.remove(self.metrics_file_path)
                return
            keep = [r for r in rows if r.get("step", "") == "" or int(float(r["step"])) < resume_step]
            if len(keep) != len(rows):
                with open(self.metrics_file_path, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=fields)
                    writer.writeheader()
                    writer.writerows(keep)
            self.metrics_keys = sorted(fields)

    class RunCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self):
            if self._experiment is None:
                os.makedirs(self.root_dir, exist_ok=True)
                self._experiment = _AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    return RunCSVLogger(save_dir=str(root_dir), name="csv", version="")
