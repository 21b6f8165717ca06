"""genomics_lm.data: MLM masking, crops, reverse complement, samplers, resumable loaders, DataModule errors.

Token stores are made from the real E. coli genome (../shared/data) with ``genomics-lm tokenize``.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from genomics_lm.data import (
    IGNORE_INDEX,
    EpochSeededSampler,
    MLMDataModule,
    MLMDataset,
    ResumableDataLoader,
    default_span,
    kmer_counts,
    mask_tokens,
    mlm_baselines,
)
from genomics_lm.errors import UserError
from genomics_lm.store import TokenStore, TokenStoreWriter
from genomics_lm.tokenizer import KmerTokenizer
from genomics_lm.tokenizer import CLS_ID, MASK_ID, N_SPECIAL, UNK_ID, decode, reverse_complement, reverse_complement_ids


@pytest.fixture(scope="session")
def ecoli_k6(ecoli_stores):
    """E. coli, non-overlapping 6-mers, 512-token rows: train/val/test.h5."""
    return ecoli_stores("ecoli_k6", 6, 6, 512)


@pytest.fixture(scope="session")
def ecoli_k6s1(ecoli_stores):
    """E. coli, overlapping 6-mers (stride 1), 256-token rows."""
    return ecoli_stores("ecoli_k6s1", 6, 1, 256)


# ---------------------------------------------------------------------------------------------------
# masking
# ---------------------------------------------------------------------------------------------------


def test_mask_tokens_rates_and_targets():
    rng = np.random.default_rng(0)
    ids = rng.integers(N_SPECIAL, 4101, size=200_000)
    ids[::97] = UNK_ID  # specials and [UNK] sprinkled in: never targets
    ids[5::211] = CLS_ID
    inputs, labels = mask_tokens(ids, np.random.default_rng(1), vocab_size=4101)
    target = labels != IGNORE_INDEX
    eligible = ids >= N_SPECIAL
    assert not target[~eligible].any()
    assert np.array_equal(labels[target], ids[target])
    assert abs(target[eligible].mean() - 0.15) < 0.005
    masked = (inputs[target] == MASK_ID).mean()
    kept = (inputs[target] == ids[target]).mean()
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01  # kept includes ~1/4096 random == original
    assert np.array_equal(inputs[~target], ids[~target])  # nothing else changes
    rand = target & (inputs != MASK_ID) & (inputs != ids)
    assert (inputs[rand] >= N_SPECIAL).all() and (inputs[rand] < 4101).all()


def test_mask_tokens_short_input_gets_a_target():
    ids = np.array([CLS_ID, 7, UNK_ID])
    for seed in range(20):
        _, labels = mask_tokens(ids, np.random.default_rng(seed), vocab_size=4101)
        assert (labels != IGNORE_INDEX).sum() >= 1 and labels[0] == labels[2] == IGNORE_INDEX


@pytest.mark.parametrize("k,stride", [(6, 1), (4, 2), (3, 3)])
def test_span_masking_hides_a_base_of_every_target(k, stride):
    """For overlapping k-mers no masked token can be reconstructed from the unmasked tokens' bases."""
    span = default_span(k, stride)
    assert span == math.ceil(k / stride)
    T = 3000
    ids = np.random.default_rng(k).integers(N_SPECIAL, N_SPECIAL + 4**k, size=T)
    inputs, labels = mask_tokens(ids, np.random.default_rng(0), vocab_size=N_SPECIAL + 4**k, span=span,
                                 mask_token_frac=1.0, random_token_frac=0.0)
    target = labels != IGNORE_INDEX
    assert abs(target.mean() - 0.15) < 0.03
    visible = np.zeros(T * stride + k, dtype=bool)
    for j in np.flatnonzero(~target):
        visible[j * stride : j * stride + k] = True
    for j in np.flatnonzero(target):
        assert not visible[j * stride : j * stride + k].all(), f"target token {j} readable from neighbours"


def test_span_masking_uniform_over_positions():
    ids = np.full(200, 100)
    hits = np.zeros(200)
    for seed in range(1500):
        _, labels = mask_tokens(ids, np.random.default_rng(seed), vocab_size=4101, span=6)
        hits += labels != IGNORE_INDEX
    rate = hits / 1500
    assert abs(rate.mean() - 0.15) < 0.01
    assert abs(rate[:3].mean() - 0.15) < 0.03 and abs(rate[-3:].mean() - 0.15) < 0.03  # edges as often as the rest


# ---------------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------------


def test_dataset_items_reproducible_and_epoch_dependent(ecoli_k6):
    ds = MLMDataset(ecoli_k6 / "train.h5", 128, seed=3)
    assert len(ds) == len(ds.store) * 4  # 512-token rows -> 4 crops of 128 per row and epoch
    a, b, c = ds[(2, 17)], ds[(2, 17)], ds[(3, 17)]
    assert set(a) == {"input_ids", "labels"}
    assert a["input_ids"].dtype == torch.long and a["input_ids"].shape == (128,)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["input_ids"], c["input_ids"])
    assert torch.equal(ds[17]["input_ids"], ds[(0, 17)]["input_ids"])
    other_seed = MLMDataset(ecoli_k6 / "train.h5", 128, seed=4)
    assert not torch.equal(a["input_ids"], other_seed[(2, 17)]["input_ids"])


def original(item) -> np.ndarray:
    """The uncorrupted ids of a sample: labels at targets, inputs elsewhere."""
    return torch.where(item["labels"] != IGNORE_INDEX, item["labels"], item["input_ids"]).numpy()


def test_dataset_crop_comes_from_its_row(ecoli_k6):
    store = TokenStore(ecoli_k6 / "train.h5")
    ds = MLMDataset(store, 100, rc_prob=0.0, crops_per_row=2)
    starts = set()
    for i in (0, 1, 7, len(ds) - 1):
        row = store[i // 2].astype(np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(row, 100)
        match = np.flatnonzero((windows == original(ds[(5, i)])).all(axis=1))
        assert match.size >= 1
        starts.add(int(match[0]))
    assert len(starts) > 1  # random offsets


def test_reverse_complement_augmentation_is_exact(ecoli_k6):
    fwd = MLMDataset(ecoli_k6 / "train.h5", 128, rc_prob=0.0, seed=1)
    rev = MLMDataset(ecoli_k6 / "train.h5", 128, rc_prob=1.0, seed=1)
    for i in (0, 3, 99):
        orig, borig = original(fwd[(0, i)]), original(rev[(0, i)])
        # the original ids of the reverse sample are the exact token-level reverse complement of the crop
        assert np.array_equal(reverse_complement_ids(orig, 6), borig)
        assert decode(borig, 6) == reverse_complement(decode(orig, 6))


def test_reverse_complement_of_overlapping_crop_is_exact(ecoli_k6s1):
    store = TokenStore(ecoli_k6s1 / "train.h5")
    crop = store[3][17:17 + 120].astype(np.int64)
    rc = reverse_complement_ids(crop, 6)
    assert decode(rc, 6, 1) == reverse_complement(decode(crop, 6, 1))


def test_overlapping_store_uses_spans_of_k(ecoli_k6s1):
    ds = MLMDataset(ecoli_k6s1 / "train.h5", 256, rc_prob=0.0)
    assert ds.span == 6
    lab = np.stack([ds[(0, i)]["labels"].numpy() for i in range(20)])
    t = (lab != IGNORE_INDEX).astype(np.int8)
    runs = []
    for r in t:
        d = np.diff(np.concatenate([[0], r, [0]]))
        s, e = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        inner = (s > 0) & (e < len(r))  # runs not cut by the crop edges
        runs += list((e - s)[inner])
    assert min(runs) >= 6


def test_validation_set_fixed_tiles_full_mask(ecoli_k6):
    dm = MLMDataModule(data_dir=str(ecoli_k6), seq_len=128, batch_size=4)
    dm.setup("validate")
    val = dm.val_ds
    assert len(val) == len(val.store) * 4 and val.rc_prob == 0.0
    a = val[5]
    assert torch.equal(a["input_ids"], val[5]["input_ids"])
    tgt = a["labels"] != IGNORE_INDEX
    assert (a["input_ids"][tgt] == MASK_ID).all()  # every validation target is [MASK]
    assert np.array_equal(original(a), val.store[1][128:256])  # item 5 = tile 1 of row 1


def test_add_cls(ecoli_k6):
    ds = MLMDataset(ecoli_k6 / "train.h5", 129, add_cls=True)
    item = ds[(0, 0)]
    assert item["input_ids"].shape == (129,) and item["input_ids"][0] == CLS_ID
    assert item["labels"][0] == IGNORE_INDEX


def test_seq_len_longer_than_rows_is_refused(ecoli_k6):
    with pytest.raises(UserError, match="rows have 512 tokens"):
        MLMDataset(ecoli_k6 / "train.h5", 1024)


# ---------------------------------------------------------------------------------------------------
# sampler and resumable loader
# ---------------------------------------------------------------------------------------------------


def test_sampler_depends_on_seed_and_epoch_and_splits_ranks():
    ds = list(range(101))
    s = EpochSeededSampler(ds, seed=5)
    s.set_epoch(2)
    e2 = list(s)
    assert all(epoch == 2 for epoch, _ in e2) and sorted(i for _, i in e2) == ds
    s.set_epoch(2)
    assert list(s) == e2
    s.set_epoch(3)
    assert [i for _, i in s] != [i for _, i in e2]
    assert [i for _, i in EpochSeededSampler(ds, seed=6)] != [i for _, i in EpochSeededSampler(ds, seed=5)]
    r0, r1 = EpochSeededSampler(ds, 2, 0, seed=5), EpochSeededSampler(ds, 2, 1, seed=5)
    a, b = [i for _, i in r0], [i for _, i in r1]
    assert len(a) == len(b) == 51 and set(a) | set(b) == set(ds)
    s = EpochSeededSampler(ds, seed=5)
    s.skip = 10
    assert [i for _, i in s] == [i for _, i in EpochSeededSampler(ds, seed=5)][10:]
    assert len(list(s)) == 101  # skip applies once


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_continues_mid_epoch(ecoli_k6, num_workers):
    ds = MLMDataset(ecoli_k6 / "train.h5", 64, seed=0, crops_per_row=1)

    def loader():
        return ResumableDataLoader(ds, sampler=EpochSeededSampler(ds, seed=0), batch_size=8, num_workers=num_workers)

    full = loader()
    full.sampler.set_epoch(1)
    reference = [b["input_ids"] for b in full]
    first = loader()
    first.sampler.set_epoch(1)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 3
    second = loader()
    second.load_state_dict(state)
    rest = [b["input_ids"] for b in second]
    assert len(rest) == len(reference) - 3
    assert all(torch.equal(x, y) for x, y in zip(rest, reference[3:]))
    # a state saved at the end of an epoch resumes at the start of the next one
    end = loader()
    end.load_state_dict({**state, "batches": len(end)})
    assert end.sampler.epoch == 2 and len(list(end)) == len(end)


def test_workers_do_not_change_samples(ecoli_k6):
    ds = MLMDataset(ecoli_k6 / "train.h5", 64, seed=0)
    out = []
    for nw in (0, 2):
        dl = ResumableDataLoader(ds, sampler=EpochSeededSampler(ds, seed=0), batch_size=16, num_workers=nw)
        out.append(torch.cat([b["input_ids"] for b, _ in zip(dl, range(4))]))
    assert torch.equal(out[0], out[1])


class _Keys(torch.utils.data.Dataset):
    """n samples; a sample is its own (epoch, index) key, so batches show exactly which samples were drawn."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        epoch, i = key
        return torch.tensor([epoch, i])


def test_sampler_shards_are_disjoint_and_cover_the_epoch():
    for n in (100, 101):
        shards = [[i for _, i in EpochSeededSampler(_Keys(n), 2, r, seed=3)] for r in (0, 1)]
        assert len(shards[0]) == len(shards[1]) == math.ceil(n / 2)
        assert set(shards[0]) | set(shards[1]) == set(range(n))
        assert len(set(shards[0])) == len(set(shards[1])) == len(shards[0])  # no repeat within a rank
        overlap = set(shards[0]) & set(shards[1])
        assert len(overlap) == (0 if n % 2 == 0 else 1)  # DistributedSampler pads an odd epoch with 1 repeat


def test_ddp_mid_epoch_resume_each_rank_continues_its_own_share():
    """Two ranks (of 2) stop after 3 batches of epoch 1 and resume from their loaders' state dicts: each rank's
    resumed sequence is its uninterrupted one, and over both ranks every sample of the epoch comes exactly once."""
    n, batch, world, stop = 50, 4, 2, 3
    ds = _Keys(n)

    def loader(rank, replicas=world):
        return ResumableDataLoader(ds, sampler=EpochSeededSampler(ds, replicas, rank, seed=7), batch_size=batch)

    seen, resumed = [], []
    for rank in range(world):
        ref = loader(rank)
        ref.sampler.set_epoch(1)
        reference = [b for b in ref]
        first = loader(rank)
        first.sampler.set_epoch(1)
        it = iter(first)
        before = [next(it) for _ in range(stop)]
        state = first.state_dict()
        assert state == {"epoch": 1, "batches": stop, "batch_size": batch, "num_replicas": world, "seed": 7,
                         "num_batches": 7}
        second = loader(rank)  # a fresh process: new loader, new sampler
        second.load_state_dict(state)
        after = [b for b in second]
        got = before + after
        assert len(got) == len(reference) == 7
        assert all(torch.equal(x, y) for x, y in zip(got, reference)), rank
        assert all((b[:, 0] == 1).all() for b in got)  # epoch 1 throughout
        seen.append(torch.cat(got)[:, 1].tolist())
        resumed.append(set(torch.cat(after)[:, 1].tolist()))
        assert len(seen[rank]) == len(set(seen[rank])) == n // world
        # the skip applies once: the next epoch is the rank's whole share again
        second.sampler.set_epoch(2)
        assert len(list(second)) == 7
    assert sorted(seen[0] + seen[1]) == list(range(n))  # over both ranks: no sample twice, none missing
    assert not resumed[0] & resumed[1]
    # resuming a mid-epoch state with another world size restarts the epoch (with a warning), never skips
    other = loader(0, replicas=1)
    with pytest.warns(UserWarning, match="another batch size / world size"):
        other.load_state_dict(state)
    assert sorted(torch.cat(list(other))[:, 1].tolist()) == list(range(n))


# ---------------------------------------------------------------------------------------------------
# DataModule and bad input
# ---------------------------------------------------------------------------------------------------


def test_datamodule_loaders(ecoli_k6):
    dm = MLMDataModule(data_dir=str(ecoli_k6), seq_len=128, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 128) and batch["labels"].shape == (4, 128)
    assert next(iter(dm.val_dataloader()))["input_ids"].shape == (4, 128)
    info = dm.provenance()
    assert info["train_store"].endswith("train.h5") and info["source"]["sha256"]
    dm.check_tokenizer(KmerTokenizer(6, 6), "the model")


def test_store_with_other_k_is_refused(ecoli_k6):
    dm = MLMDataModule(data_dir=str(ecoli_k6), seq_len=128)
    dm.setup("fit")
    with pytest.raises(UserError, match=r"^token store .*train\.h5 has k=6 stride=6, the model has k=4 stride=4$"):
        dm.check_tokenizer(KmerTokenizer(4, 4), "the model")


def test_missing_split_is_refused(ecoli_k6, tmp_path):
    shutil.copy(ecoli_k6 / "train.h5", tmp_path / "train.h5")
    dm = MLMDataModule(data_dir=str(tmp_path), seq_len=128)
    with pytest.raises(UserError, match=r"val\.h5: no such token store.*val split"):
        dm.setup("fit")
    with pytest.raises(UserError, match="no train token store"):
        MLMDataModule(seq_len=128)


def test_empty_and_truncated_stores_are_refused(ecoli_k6, tmp_path):
    (tmp_path / "train.h5").write_bytes(b"")
    shutil.copy(ecoli_k6 / "val.h5", tmp_path / "val.h5")
    dm = MLMDataModule(data_dir=str(tmp_path), seq_len=128)
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        dm.setup("fit")
    data = (ecoli_k6 / "train.h5").read_bytes()
    (tmp_path / "train.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="HDF5|truncated|token store"):
        MLMDataModule(data_dir=str(tmp_path), seq_len=128).setup("fit")


def _write_store(path, rows, split, k=2):
    with TokenStoreWriter(path, tokenizer=KmerTokenizer(k, k), window_tokens=len(rows[0]), source={"file": "hand"},
                          split=split) as w:
        w.append(np.asarray(rows), seqid=["s"] * len(rows), start=[10 * i for i in range(len(rows))],
                 end=[10 * i + 10 for i in range(len(rows))])
    return TokenStore(path)


def test_baselines_exact_on_hand_made_stores(tmp_path):
    """Train and val with different k-mer distributions: every baseline is the documented formula on the right
    split (the top k-mer and the entropy from train, the accuracy and cross-entropy on val), computed by hand."""
    a, b, c, d = N_SPECIAL + 0, N_SPECIAL + 3, N_SPECIAL + 7, N_SPECIAL + 12  # 2-mers AA, AT, CT, TA
    train = _write_store(tmp_path / "train.h5", [[a, a, b, a, UNK_ID], [a, c, a, b, a]], "train")
    val = _write_store(tmp_path / "val.h5", [[b, b, a, b, d], [b, UNK_ID, d, b, c]], "val")
    # train k-mers: a 6, b 2, c 1 (9; [UNK] is not a k-mer); val: a 1, b 5, c 1, d 2 (9); 16 possible 2-mers
    counts = kmer_counts(train, chunk_rows=1)
    assert counts.shape == (N_SPECIAL + 16,) and counts[a] == 6 and counts[b] == 2 and counts[c] == 1
    assert counts[UNK_ID] == 1 and counts.sum() == 10
    assert np.array_equal(kmer_counts(val), kmer_counts(val, chunk_rows=1))
    got = mlm_baselines(train, val)
    assert got["top_kmer_id"] == a, "the top k-mer must be the most frequent TRAIN k-mer (val's is b)"
    assert got["const_acc_val"] == pytest.approx(1 / 9, rel=1e-12)  # a is 1 of val's 9 k-mers
    entropy = -(6 / 9 * math.log(6 / 9) + 2 / 9 * math.log(2 / 9) + 1 / 9 * math.log(1 / 9))
    assert got["unigram_entropy"] == pytest.approx(entropy, rel=1e-12)
    # add-one smoothing over the 16 2-mers: p(x) = (train count + 1) / (9 + 16)
    cross = -(1 * math.log(7 / 25) + 5 * math.log(3 / 25) + 1 * math.log(2 / 25) + 2 * math.log(1 / 25)) / 9
    assert got["unigram_cross_entropy_val"] == pytest.approx(cross, rel=1e-12)
    assert set(got) == {"unigram_entropy", "unigram_cross_entropy_val", "const_acc_val", "top_kmer_id"}


def test_baselines_on_real_stores_match_a_recount(ecoli_k6):
    """The real E. coli 6-mer stores: the baselines equal a recount of the raw token arrays (np.unique)."""
    import h5py

    def count(path):
        with h5py.File(path, "r") as f:
            ids, n = np.unique(np.asarray(f["tokens"][:]).ravel(), return_counts=True)
        keep = ids >= N_SPECIAL
        return dict(zip(ids[keep].tolist(), n[keep].tolist()))

    ct, cv = count(ecoli_k6 / "train.h5"), count(ecoli_k6 / "val.h5")
    nt, nv, V = sum(ct.values()), sum(cv.values()), 4**6
    top = max(ct, key=lambda i: (ct[i], -i))  # ties: the lowest id, as argmax
    entropy = -sum(n / nt * math.log(n / nt) for n in ct.values())
    cross = -sum(n * math.log((ct.get(i, 0) + 1) / (nt + V)) for i, n in cv.items()) / nv
    got = mlm_baselines(TokenStore(ecoli_k6 / "train.h5"), TokenStore(ecoli_k6 / "val.h5"))
    assert got["top_kmer_id"] == top
    assert got["const_acc_val"] == pytest.approx(cv.get(top, 0) / nv, rel=1e-12)
    assert got["unigram_entropy"] == pytest.approx(entropy, rel=1e-9)
    assert got["unigram_cross_entropy_val"] == pytest.approx(cross, rel=1e-9)
