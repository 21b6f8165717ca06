"""Datasets and LightningDataModules over HDF5 token stores: crops, reverse complement, MLM masking.

Pretraining data flow (one sample)::

    TokenStore row (L,) uint16 ──► crop of seq_len tokens (random in training, fixed tiles in validation)
        ──► reverse complement with probability rc_prob (exact token-level map, training only)
        ──► optional [CLS] in front ──► MLM masking ──► {"input_ids": (T,) long, "labels": (T,) long, -100 = no target}

Rows hold no padding (every row of a store has L tokens), so samples carry no attention mask; the model's
default mask (``input_ids != pad_id``) is all True.

* **Lazy HDF5.** :class:`~genomics_lm.store.TokenStore` opens its h5py handle on first access in each
  process (and drops it when pickled), so every DataLoader worker and every DDP rank reads through its own
  handle; nothing h5py-related crosses a process boundary.
* **Reproducible randomness.** Crops, the strand flip and the masking of sample ``i`` in epoch ``e`` come
  from a numpy ``Generator`` seeded with ``(seed, e, i)`` (a ``SeedSequence``), never from a global RNG. The
  same sample is therefore identical whatever the number of workers, ranks or restarts. Validation samples
  are seeded with ``(seed, i)`` only: the validation set is the same every epoch.
* **Masking** (BERT): ``mask_prob`` (15%) of the eligible tokens become prediction targets; of those 80% are
  replaced by [MASK], 10% by a random k-mer and 10% left unchanged. Special tokens and [UNK] are never
  targets (their label is -100, the ignore index). For overlapping k-mers (``stride < k``) a masked k-mer
  could be read off its neighbours, which share ``k - stride`` of its bases; masking is then done in
  contiguous spans of ``ceil(k / stride)`` tokens (k tokens for DNABERT's stride 1), so that every token
  in a span contains at least one base no unmasked token shows. Span starts are drawn with probability
  ``1 - (1 - mask_prob) ** (1 / span)`` at every position (including ``span - 1`` virtual positions before
  the crop, so edge tokens are masked as often as the rest): each token is then a target with probability exactly
  ``mask_prob``. The 80/10/10 choice is made per span. Validation replaces every target by [MASK] by default
  (``val_full_mask``): a kept token can be copied from the input, so 80/10/10 would inflate validation
  accuracy by about 10 points; with all targets masked, val accuracy and loss measure prediction from
  context alone and compare directly with context-free baselines (:func:`mlm_baselines`).
* **Data order.** :class:`EpochSeededSampler` is a ``DistributedSampler`` (Lightning does not replace it)
  whose permutation depends on ``(seed, epoch)`` only, and :class:`ResumableDataLoader` saves how many
  batches of the current epoch the training loop consumed; Lightning stores that in its checkpoints and
  hands it back on resume, and the sampler skips exactly those samples. A run resumed mid-epoch sees the
  same batches in the same order as an uninterrupted one (same seed, world size and batch size). With
  gradient accumulation, a stop between two optimizer steps loses the partial accumulation (Lightning does
  not checkpoint gradients); checkpoints written by ModelCheckpoint are always at step boundaries.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from genomics_lm.errors import UserError
from genomics_lm.store import TokenStore
from genomics_lm.tokenizer import CLS_ID, MASK_ID, N_SPECIAL, KmerTokenizer, check_same_tokenizer, reverse_complement_ids

IGNORE_INDEX = -100  # label of positions that are not prediction targets (torch cross_entropy's default)
_TRAIN, _VAL = 0x7A11, 0x7A12  # stream ids mixed into the seeds of training and validation samples


# ----------------------------------------------------------------------------------------------------
# Masking
# ----------------------------------------------------------------------------------------------------


def default_span(k: int, stride: int) -> int:
    """Tokens per masked span: ``ceil(k / stride)`` (1 for non-overlapping k-mers, k for stride 1)."""
    return max(1, math.ceil(k / stride))


def mask_tokens(
    ids: np.ndarray,
    rng: np.random.Generator,
    *,
    vocab_size: int,
    mask_prob: float = 0.15,
    span: int = 1,
    mask_token_frac: float = 0.8,
    random_token_frac: float = 0.1,
    mask_id: int = MASK_ID,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT-style masking of one token sequence.

    Args:
        ids: (T,) integer token ids (k-mer ids are ``>= N_SPECIAL``; specials and [UNK] are never targets).
        rng: the numpy Generator that makes all random choices.
        vocab_size: size of the vocabulary (random replacements are drawn from the k-mer ids).
        mask_prob: probability that an eligible token is a prediction target.
        span: tokens per masked span (see the module docstring); 1 = independent tokens.
        mask_token_frac, random_token_frac: of the targets (per span), the fractions replaced by [MASK] and
            by a random k-mer; the rest keep their token.
    Returns:
        ``(input_ids, labels)``, both (T,) int64: the corrupted input and the original ids at target
        positions, ``IGNORE_INDEX`` (-100) elsewhere. At least one target when any token is eligible.
    """
    ids = np.asarray(ids, dtype=np.int64)
    T = ids.shape[0]
    eligible = ids >= N_SPECIAL
    span = max(1, int(span))
    # decision per span start: 0 = [MASK], 1 = random k-mer, 2 = keep; 3 = position not selected
    q = 1.0 - (1.0 - mask_prob) ** (1.0 / span)
    starts = np.flatnonzero(rng.random(T + span - 1) < q) - (span - 1)  # may start before position 0
    u = rng.random(starts.shape[0])
    decision = np.where(u < mask_token_frac, 0, np.where(u < mask_token_frac + random_token_frac, 1, 2))
    code = np.full(T, 3, dtype=np.int64)
    for offset in range(span):  # a loop over the span length, never over positions
        pos = starts + offset
        ok = (pos >= 0) & (pos < T)
        np.minimum.at(code, pos[ok], decision[ok])  # overlapping spans: [MASK] wins over random over keep
    target = (code < 3) & eligible
    if not target.any() and eligible.any():  # short input drew no target: force one span
        t = int(rng.choice(np.flatnonzero(eligible)))
        code[t : t + span] = 0
        target = (code < 3) & eligible
    inputs = ids.copy()
    inputs[target & (code == 0)] = mask_id
    rand = target & (code == 1)
    n_rand = int(rand.sum())
    if n_rand:
        inputs[rand] = rng.integers(N_SPECIAL, vocab_size, size=n_rand)
    labels = np.where(target, ids, IGNORE_INDEX)
    return inputs, labels


def _rng(*words: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words])))


# ----------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------


class MLMDataset(Dataset):
    """Masked-LM samples from a token store.

    Training (``train=True``): ``len = rows * crops_per_row``; item ``i`` is a random crop of ``seq_len``
    tokens from row ``i // crops_per_row``, reverse-complemented with probability ``rc_prob``, then masked.
    Validation (``train=False``): every row is cut into ``crops_per_row`` fixed, non-overlapping tiles; no
    reverse complement; masking seeded by the item index only (the same every epoch).

    An item may be fetched as ``ds[i]`` (epoch 0) or ``ds[(epoch, i)]`` (what :class:`EpochSeededSampler`
    yields), so the randomness of a sample depends on ``(seed, epoch, i)`` and nothing else.

    Args:
        store: a :class:`TokenStore` or the path of one (refused unless its tokenizer is ``expect``, if given).
        seq_len: model input length in tokens (including [CLS] when ``add_cls``).
        train: training (random crops, augmentation) or validation (fixed tiles) behaviour.
        crops_per_row: samples per row and epoch (default: ``window_tokens // crop length``, at least 1).
        mask_prob, mask_token_frac, random_token_frac, span: see :func:`mask_tokens` (span default
            ``ceil(k / stride)``).
        rc_prob: probability of the reverse-complement strand (training only).
        add_cls: put [CLS] in front of every sample (never a target).
        seed: base seed of all random choices.
    """

    def __init__(
        self,
        store: TokenStore | str | Path,
        seq_len: int,
        *,
        train: bool = True,
        crops_per_row: int | None = None,
        mask_prob: float = 0.15,
        mask_token_frac: float = 0.8,
        random_token_frac: float = 0.1,
        span: int | None = None,
        rc_prob: float = 0.5,
        add_cls: bool = False,
        seed: int = 0,
        expect: KmerTokenizer | None = None,
    ):
        if not isinstance(store, TokenStore):
            store = TokenStore(store, expect=expect)
        self.store = store
        self.tokenizer = store.tokenizer
        self.k, self.stride = self.tokenizer.k, self.tokenizer.stride
        self.vocab_size = self.tokenizer.vocab_size
        self.seq_len = int(seq_len)
        self.add_cls = bool(add_cls)
        self.crop_len = self.seq_len - int(self.add_cls)
        if self.crop_len < 1:
            raise UserError(f"seq_len={seq_len} leaves no room for tokens")
        if self.crop_len > store.window_tokens:
            raise UserError(
                f"{store.path}: rows have {store.window_tokens} tokens but the model input needs {self.crop_len} "
                f"(seq_len={seq_len}{' with [CLS]' if add_cls else ''}); lower data.seq_len or re-tokenize with "
                f"'genomics-lm tokenize --window-tokens {self.crop_len}' or more"
            )
        if not 0.0 < mask_prob < 1.0:
            raise UserError(f"mask_prob must be in (0, 1), got {mask_prob}")
        if mask_token_frac < 0 or random_token_frac < 0 or mask_token_frac + random_token_frac > 1:
            raise UserError(f"mask_token_frac={mask_token_frac} and random_token_frac={random_token_frac} must be "
                            f">= 0 and sum to at most 1")
        if not 0.0 <= rc_prob <= 1.0:
            raise UserError(f"rc_prob must be in [0, 1], got {rc_prob}")
        self.train = bool(train)
        tiles = max(1, store.window_tokens // self.crop_len)
        self.crops_per_row = int(crops_per_row) if crops_per_row else tiles
        if not self.train:
            self.crops_per_row = min(self.crops_per_row, tiles)  # validation tiles never overlap
        self.mask_prob = float(mask_prob)
        self.mask_token_frac, self.random_token_frac = float(mask_token_frac), float(random_token_frac)
        self.span = int(span) if span else default_span(self.k, self.stride)
        self.rc_prob = float(rc_prob) if self.train else 0.0
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.store) * self.crops_per_row

    def _crop(self, i: int, rng: np.random.Generator) -> np.ndarray:
        row, tile = divmod(i, self.crops_per_row)
        L, n = self.store.window_tokens, self.crop_len
        if self.train:
            start = int(rng.integers(0, L - n + 1))
        else:
            start = tile * n
        return np.asarray(self.store.h5["tokens"][row, start : start + n], dtype=np.int64)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        rng = _rng(self.seed, _TRAIN, epoch, i) if self.train else _rng(self.seed, _VAL, i)
        ids = self._crop(i, rng)
        if self.rc_prob and rng.random() < self.rc_prob:
            ids = reverse_complement_ids(ids, self.k).astype(np.int64)
        if self.add_cls:
            ids = np.concatenate([[CLS_ID], ids])
        inputs, labels = mask_tokens(
            ids, rng, vocab_size=self.vocab_size, mask_prob=self.mask_prob, span=self.span,
            mask_token_frac=self.mask_token_frac, random_token_frac=self.random_token_frac,
        )
        return {
            "input_ids": torch.from_numpy(inputs),
            "labels": torch.from_numpy(labels),
        }


# ----------------------------------------------------------------------------------------------------
# Sampler and resumable loader
# ----------------------------------------------------------------------------------------------------


class EpochSeededSampler(DistributedSampler):
    """A ``DistributedSampler`` that yields ``(epoch, index)`` keys and can skip a prefix on resume.

    The permutation is ``torch.randperm(n, generator=seed + epoch)`` (DistributedSampler's), split across
    ``num_replicas`` ranks; with one replica it is a plain seeded shuffle. Being a ``DistributedSampler``,
    Lightning keeps it (it injects its own sampler only into loaders that have none) and calls
    ``set_epoch`` every epoch. ``skip`` samples of this rank's share are dropped once, at the start of the
    next iteration (what :class:`ResumableDataLoader` sets after a mid-epoch restart).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0
        epoch = int(self.epoch)
        indices = list(super().__iter__())[skip:]
        return iter([(epoch, int(i)) for i in indices])


class ResumableDataLoader(DataLoader):
    """A DataLoader with ``state_dict``/``load_state_dict`` (Lightning checkpoints and restores it).

    The state is the sampler's epoch and the number of batches the training loop has taken from the
    current epoch's iterator (counted where batches are handed out, not where workers prefetch them).
    ``load_state_dict`` sets the sampler's epoch and makes the next iterator skip those batches; Lightning
    calls it before it creates the first iterator of a resumed run.
    """

    def __init__(self, dataset: Dataset, *, sampler: EpochSeededSampler, **kwargs: Any):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._epoch = 0
        self._consumed = 0
        self._skip_batches = 0

    def __iter__(self):
        sampler: EpochSeededSampler = self.sampler  # type: ignore[assignment]
        skip, self._skip_batches = self._skip_batches, 0
        sampler.skip = skip * int(self.batch_size)
        self._epoch = int(sampler.epoch)
        self._consumed = skip
        return _CountingIterator(self, super().__iter__())

    def state_dict(self) -> dict[str, int]:
        sampler: EpochSeededSampler = self.sampler  # type: ignore[assignment]
        return {"epoch": self._epoch, "batches": self._consumed, "batch_size": int(self.batch_size),
                "num_replicas": int(sampler.num_replicas), "seed": int(sampler.seed), "num_batches": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochSeededSampler = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        same = (state.get("batch_size") == self.batch_size and state.get("num_replicas") == sampler.num_replicas
                and state.get("num_batches") == len(self))
        if batches >= len(self):  # the saved epoch was complete: start the next one from its beginning
            epoch, batches = epoch + 1, 0
        elif batches and not same:
            warnings.warn(
                f"resuming mid-epoch with another batch size / world size / dataset than the checkpoint "
                f"(saved {state}); epoch {epoch} restarts from its first batch", stacklevel=2)
            batches = 0
        sampler.set_epoch(epoch)
        self._epoch = epoch
        self._skip_batches = batches


class _CountingIterator:
    def __init__(self, loader: ResumableDataLoader, it):
        self.loader, self.it = loader, it

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.it)
        self.loader._consumed += 1
        return batch

    def __len__(self) -> int:
        return len(self.it)

    def __getattr__(self, name):  # e.g. _shutdown_workers, used by Lightning's teardown
        return getattr(self.it, name)


# ----------------------------------------------------------------------------------------------------
# Statistics (baselines for the learning test and the report)
# ----------------------------------------------------------------------------------------------------


def kmer_counts(store: TokenStore, chunk_rows: int = 256) -> np.ndarray:
    """(vocab_size,) int64 counts of every id in the store (streamed in chunks of rows)."""
    counts = np.zeros(store.vocab_size, dtype=np.int64)
    tokens = store.h5["tokens"]
    for a in range(0, len(store), chunk_rows):
        counts += np.bincount(np.asarray(tokens[a : a + chunk_rows]).ravel(), minlength=store.vocab_size)[: store.vocab_size]
    return counts


def mlm_baselines(train: TokenStore, val: TokenStore) -> dict[str, float]:
    """What a model that ignores context achieves on the k-mers (specials and [UNK] excluded).

    Returns:
        ``unigram_entropy``: entropy (nats) of the training k-mer distribution;
        ``unigram_cross_entropy_val``: cross-entropy (nats) of the validation k-mers under that distribution
        (add-one smoothed), the loss of the best context-free model fitted on the training data;
        ``const_acc_val``: accuracy on validation k-mers of always predicting the most frequent training
        k-mer (the best constant predictor); ``top_kmer_id``.
    """
    ct = kmer_counts(train)[N_SPECIAL:].astype(np.float64)
    cv = kmer_counts(val)[N_SPECIAL:].astype(np.float64)
    p = ct / ct.sum()
    nz = p > 0
    entropy = float(-(p[nz] * np.log(p[nz])).sum())
    ps = (ct + 1) / (ct.sum() + ct.size)
    cross = float(-(cv * np.log(ps)).sum() / cv.sum())
    top = int(np.argmax(ct))
    return {"unigram_entropy": entropy, "unigram_cross_entropy_val": cross,
            "const_acc_val": float(cv[top] / cv.sum()), "top_kmer_id": top + N_SPECIAL}


# ----------------------------------------------------------------------------------------------------
# LightningDataModule
# ----------------------------------------------------------------------------------------------------

try:  # the DataModule needs Lightning; the Dataset above does not
    import pytorch_lightning as pl
except ImportError:  # pragma: no cover
    pl = None


def _split_path(data_dir: str | Path | None, explicit: str | Path | None, split: str) -> Path:
    if explicit:
        return Path(explicit)
    if data_dir is None:
        raise UserError(f"no {split} token store: set data.data_dir (the --out-dir of 'genomics-lm tokenize') "
                        f"or data.{split}_path")
    return Path(data_dir) / f"{split}.h5"


class MLMDataModule(pl.LightningDataModule if pl is not None else object):
    """Train/val masked-LM data from the token stores written by ``genomics-lm tokenize``.

    Args:
        data_dir: folder with ``train.h5`` and ``val.h5`` (``genomics-lm tokenize --out-dir``).
        train_path, val_path: explicit store files (override ``data_dir``).
        seq_len: tokens per sample (crop length, plus [CLS] when ``add_cls``).
        batch_size: samples per batch and device (the global batch is ``batch_size x devices x
            accumulate_grad_batches``). val_batch_size: default ``batch_size``.
        num_workers: DataLoader worker processes (each opens its own HDF5 handle).
        mask_prob, mask_token_frac, random_token_frac, span: MLM masking (:func:`mask_tokens`).
        rc_prob: probability of the reverse-complement strand in training.
        crops_per_row: training samples per row and epoch (default ``window_tokens // seq_len``).
        val_crops_per_row: validation tiles per row (default all non-overlapping tiles).
        val_full_mask: in validation replace every target by [MASK] (default) instead of 80/10/10.
        add_cls: prepend [CLS] to every sample.
        seed: seed of the data order and of every crop / strand / mask.
        pin_memory: pin host memory (GPU runs).

    The stores' tokenizer is compared with the model's by :meth:`check_tokenizer` (the LightningModule calls
    it in ``setup``); train and val stores must agree with each other.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        train_path: str | None = None,
        val_path: str | None = None,
        seq_len: int = 512,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        mask_prob: float = 0.15,
        mask_token_frac: float = 0.8,
        random_token_frac: float = 0.1,
        span: int | None = None,
        rc_prob: float = 0.5,
        crops_per_row: int | None = None,
        val_crops_per_row: int | None = None,
        val_full_mask: bool = True,
        add_cls: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.train_path = _split_path(data_dir, train_path, "train")
        self.val_path = _split_path(data_dir, val_path, "val")
        self.seq_len, self.batch_size = int(seq_len), int(batch_size)
        if self.batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.seed = int(seed)
        self._ds_kwargs = dict(mask_prob=mask_prob, mask_token_frac=mask_token_frac,
                               random_token_frac=random_token_frac, span=span, add_cls=add_cls, seed=seed)
        self.rc_prob, self.crops_per_row, self.val_crops_per_row = rc_prob, crops_per_row, val_crops_per_row
        self.val_full_mask = bool(val_full_mask)
        self.train_ds: MLMDataset | None = None
        self.val_ds: MLMDataset | None = None

    def _open(self, path: Path, split: str) -> TokenStore:
        if not path.exists():
            hint = f" (expected the {split} split written by 'genomics-lm tokenize --out-dir {path.parent}')"
            raise UserError(f"{path}: no such token store{hint}")
        return TokenStore(path)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_ds is None:
            self.train_ds = MLMDataset(self._open(self.train_path, "train"), self.seq_len, train=True,
                                       crops_per_row=self.crops_per_row, rc_prob=self.rc_prob, **self._ds_kwargs)
        if stage in (None, "fit", "validate") and self.val_ds is None:
            kw = dict(self._ds_kwargs)
            if self.val_full_mask:
                kw.update(mask_token_frac=1.0, random_token_frac=0.0)
            self.val_ds = MLMDataset(self._open(self.val_path, "val"), self.seq_len, train=False,
                                     crops_per_row=self.val_crops_per_row, rc_prob=0.0, **kw)
        if self.train_ds is not None and self.val_ds is not None:
            check_same_tokenizer(self.val_ds.tokenizer, self.train_ds.tokenizer, f"val store {self.val_path}",
                                 f"train store {self.train_path}")

    def check_tokenizer(self, tokenizer: KmerTokenizer, name: str) -> None:
        """Raise a one-line error naming both sides unless every opened store has ``tokenizer``."""
        for ds, path in ((self.train_ds, self.train_path), (self.val_ds, self.val_path)):
            if ds is not None:
                check_same_tokenizer(ds.tokenizer, tokenizer, f"token store {path}", name)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> ResumableDataLoader:
        if self.train_ds is None:
            self.setup("fit")
        world, rank = self._world()
        sampler = EpochSeededSampler(self.train_ds, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return ResumableDataLoader(
            self.train_ds, sampler=sampler, batch_size=self.batch_size, num_workers=self.num_workers,
            pin_memory=self.pin_memory, drop_last=False, persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        if self.val_ds is None:
            self.setup("validate")
        return DataLoader(self.val_ds, batch_size=self.val_batch_size, shuffle=False,
                          num_workers=self.num_workers, pin_memory=self.pin_memory)

    def provenance(self) -> dict[str, Any]:
        """Where the data came from (recorded in checkpoints): store paths, the FASTA's name and sha256."""
        ds = self.train_ds or self.val_ds
        if ds is None:
            return {}
        s = ds.store
        return {"train_store": str(self.train_path), "val_store": str(self.val_path), "source": s.source,
                "seq_len": self.seq_len, "window_tokens": s.window_tokens}


# ----------------------------------------------------------------------------------------------------
# Labelled task stores (fine-tuning)
# ----------------------------------------------------------------------------------------------------


def task_label_names(task_dir: str | Path | None) -> list[str]:
    """The label names of a task folder's train store (what the classifier head predicts)."""
    if task_dir is None:
        raise UserError("set data.task_dir (the --out-dir of 'genomics-lm make-task')")
    path = Path(task_dir) / "train.h5"
    if not path.exists():
        raise UserError(f"{path}: no such task store (expected the train split written by 'genomics-lm make-task "
                        f"--out-dir {task_dir}')")
    store = TokenStore(path)
    if not store.has_labels or not store.label_names:
        raise UserError(f"{path}: a token store without labels (not written by 'genomics-lm make-task')")
    return list(store.label_names)


class TaskDataset(Dataset):
    """Labelled sequences of a task store: ``{"tokens": (n,) long, "labels": (C,) float (NaN = unobserved)}``.

    Rows are stored right-padded with [PAD]; a sample is the row without its padding (variable length, batched
    by :func:`collate_task`). In training the reverse-complement strand is taken with probability ``rc_prob``,
    drawn from a generator seeded with ``(seed, epoch, i)`` (the same sample whatever the workers or restarts).
    """

    def __init__(self, store: TokenStore, *, train: bool, rc_prob: float = 0.0, seed: int = 0):
        if not store.has_labels:
            raise UserError(f"{store.path}: token store has no labels (write it with 'genomics-lm make-task')")
        if not 0.0 <= rc_prob <= 1.0:
            raise UserError(f"rc_prob must be in [0, 1], got {rc_prob}")
        self.store, self.train = store, bool(train)
        self.tokenizer = store.tokenizer
        self.rc_prob, self.seed = float(rc_prob) if train else 0.0, int(seed)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        from genomics_lm.score import trim_padding

        epoch, i = key if isinstance(key, tuple) else (0, key)
        i = int(i)
        ids = trim_padding(np.asarray(self.store[i]))
        if self.rc_prob and _rng(self.seed, _TRAIN, epoch, i).random() < self.rc_prob:
            ids = reverse_complement_ids(ids, self.tokenizer.k)
        return {"tokens": torch.from_numpy(ids.astype(np.int64)),
                "labels": torch.from_numpy(np.asarray(self.store.labels(i), dtype=np.float32))}


def collate_task(samples: list[dict[str, torch.Tensor]], add_cls: bool = False) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member: ``input_ids``/``attention_mask`` (B, T), ``labels`` (B, C)."""
    from genomics_lm.score import pad_batch

    ids, mask = pad_batch([s["tokens"].numpy() for s in samples], add_cls)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.stack([s["labels"] for s in samples])}


class TaskDataModule(pl.LightningDataModule if pl is not None else object):
    """Train/val data of a task folder written by ``genomics-lm make-task`` (train.h5, val.h5).

    Args:
        task_dir: the --out-dir of 'genomics-lm make-task'.
        batch_size: sequences per batch and device (padded to the longest of the batch).
        val_batch_size: default batch_size.
        num_workers: DataLoader worker processes (each opens its own HDF5 handle).
        rc_prob: probability of the reverse-complement strand in training (augmentation).
        add_cls: put [CLS] in front of every sequence (for pooling="cls"; linked to the model).
        seed: seed of the data order and of the strand draws.
        pin_memory: pin host memory (GPU runs).
    """

    def __init__(self, task_dir: str | None = None, batch_size: int = 32, val_batch_size: int | None = None,
                 num_workers: int = 0, rc_prob: float = 0.5, add_cls: bool = False, seed: int = 0,
                 pin_memory: bool = False):
        super().__init__()
        self.save_hyperparameters()
        if task_dir is None:
            raise UserError("set data.task_dir (the --out-dir of 'genomics-lm make-task')")
        self.task_dir = Path(task_dir)
        self.batch_size, self.val_batch_size = int(batch_size), int(val_batch_size or batch_size)
        if self.batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.rc_prob, self.add_cls, self.seed = float(rc_prob), bool(add_cls), int(seed)
        self.train_ds: TaskDataset | None = None
        self.val_ds: TaskDataset | None = None

    def _open(self, split: str) -> TokenStore:
        path = self.task_dir / f"{split}.h5"
        if not path.exists():
            raise UserError(f"{path}: no such task store (expected the {split} split written by 'genomics-lm "
                            f"make-task --out-dir {self.task_dir}')")
        return TokenStore(path)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_ds is None:
            self.train_ds = TaskDataset(self._open("train"), train=True, rc_prob=self.rc_prob, seed=self.seed)
        if stage in (None, "fit", "validate") and self.val_ds is None:
            self.val_ds = TaskDataset(self._open("val"), train=False)
        if self.train_ds is not None and self.val_ds is not None:
            a, b = self.train_ds.store, self.val_ds.store
            check_same_tokenizer(b.tokenizer, a.tokenizer, f"val store {b.path}", f"train store {a.path}")
            if a.label_names != b.label_names:
                raise UserError(f"{b.path} has labels {b.label_names} but {a.path} has {a.label_names}")

    def check_tokenizer(self, tokenizer: KmerTokenizer, name: str) -> None:
        """Raise a one-line error naming both sides unless every opened store has ``tokenizer``."""
        for ds in (self.train_ds, self.val_ds):
            if ds is not None:
                check_same_tokenizer(ds.store.tokenizer, tokenizer, f"task store {ds.store.path}", name)

    def label_names(self) -> list[str]:
        ds = self.train_ds or self.val_ds
        return list(ds.store.label_names) if ds is not None else task_label_names(self.task_dir)

    def positive_fraction(self) -> np.ndarray:
        """(C,) fraction of positives among the observed training labels (for pos_weight="auto")."""
        if self.train_ds is None:
            self.setup("fit")
        labels = np.asarray(self.train_ds.store.h5["labels"][:], dtype=np.float64)
        observed = ~np.isnan(labels)
        return np.nansum(labels, axis=0) / np.maximum(observed.sum(axis=0), 1)

    def provenance(self) -> dict[str, Any]:
        ds = self.train_ds or self.val_ds
        if ds is None:
            return {}
        # window_tokens: the store's row width (its longest sequence), the default scoring window of the checkpoint
        return {"task_dir": str(self.task_dir), "source": ds.store.source, "label_names": ds.store.label_names,
                "window_tokens": int(ds.store.window_tokens)}

    def _collate(self):
        import functools

        return functools.partial(collate_task, add_cls=self.add_cls)  # picklable for worker processes

    def train_dataloader(self) -> ResumableDataLoader:
        if self.train_ds is None:
            self.setup("fit")
        world, rank = (1, 0) if getattr(self, "trainer", None) is None else (
            int(self.trainer.world_size), int(self.trainer.global_rank))
        sampler = EpochSeededSampler(self.train_ds, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return ResumableDataLoader(self.train_ds, sampler=sampler, batch_size=self.batch_size,
                                   num_workers=self.num_workers, pin_memory=self.pin_memory,
                                   collate_fn=self._collate())

    def val_dataloader(self) -> DataLoader:
        if self.val_ds is None:
            self.setup("validate")
        return DataLoader(self.val_ds, batch_size=self.val_batch_size, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, collate_fn=self._collate())
