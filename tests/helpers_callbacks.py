"""Test-only Lightning callbacks, passed to ``genomics-lm pretrain fit`` subprocesses with ``--trainer.callbacks``
(the test puts ``tests/`` on PYTHONPATH).

* :class:`SignalAtStep` - the process signals itself after optimizer step ``step``: a stop at a known step,
  independent of timing.
* :class:`RecordBatches` - each rank writes a fingerprint of every training sample it trained on, so a test can
  tell which samples each DDP rank saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import torch
from pytorch_lightning.callbacks import Callback


class SignalAtStep(Callback):
    """Send ``signame`` (e.g. ``SIGTERM``, ``SIGUSR1``) to this process when ``trainer.global_step`` reaches
    ``step`` at the end of a training batch (once)."""

    def __init__(self, step: int, signame: str = "SIGTERM"):
        self.step, self.signum, self.sent = int(step), int(getattr(signal, signame)), False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.sent and trainer.global_step == self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def sample_fingerprint(input_ids: torch.Tensor, labels: torch.Tensor) -> str:
    """One sample (its (T,) input ids and labels) as a short hex digest."""
    data = torch.stack([input_ids.long(), labels.long()]).cpu().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:20]


class RecordBatches(Callback):
    """Write ``{prefix}.rank{R}.json``: ``{"rank", "world_size", "samples"}``, the fingerprints
    (:func:`sample_fingerprint`) of the training samples this rank trained on, in order."""

    def __init__(self, prefix: str):
        self.prefix, self.samples = prefix, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.samples += [sample_fingerprint(i, l) for i, l in zip(batch["input_ids"], batch["labels"])]

    def on_train_end(self, trainer, pl_module) -> None:
        with open(f"{self.prefix}.rank{trainer.global_rank}.json", "w") as fh:
            json.dump({"rank": trainer.global_rank, "world_size": trainer.world_size, "samples": self.samples}, fh)
