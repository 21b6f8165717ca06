"""HDF5 token store: schema, provenance, atomic writes, validation, multi-process reads."""

import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from genomics_lm.errors import UserError
from genomics_lm.store import FORMAT, TokenStore, TokenStoreWriter
from genomics_lm.tokenizer import KmerTokenizer, TokenizerMismatch, encode


def _write(path, rows=5, L=8, k=3, labels=None, **kw):
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 69, size=(rows, L))
    with TokenStoreWriter(path, tokenizer=KmerTokenizer(k), window_tokens=L, source={"file": "x.fa", "sha256": "ab"},
                          split="train", config={"a": 1}, label_names=labels, **kw) as w:
        w.append(toks[:2], seqid=["chr1", "chr1"], start=[0, 24], end=[24, 48],
                 labels=None if labels is None else np.ones((2, len(labels))))
        w.append(toks[2:], seqid=["chr2"] * (rows - 2), start=range(rows - 2), end=range(24, 24 + rows - 2),
                 strand=["-"] * (rows - 2), labels=None if labels is None else np.full((rows - 2, len(labels)), np.nan))
    return toks


def test_schema_and_round_trip(tmp_path):
    path = tmp_path / "s.h5"
    toks = _write(path)
    with h5py.File(path) as f:
        assert f["tokens"].dtype == np.uint16 and f["tokens"].shape == (5, 8)
        assert f["tokens"].chunks[1] == 8  # whole rows per chunk
        a = dict(f.attrs)
        assert a["format"] == FORMAT and a["format_version"] == 1
        assert (a["k"], a["stride"], a["vocab_size"], a["window_tokens"], a["window_bp"]) == (3, 3, 69, 8, 24)
        assert json.loads(a["source"]) == {"file": "x.fa", "sha256": "ab"}
        assert json.loads(a["config"]) == {"a": 1} and a["split"] == "train" and "genomics_lm" in a
    s = TokenStore(path, expect=KmerTokenizer(3))
    assert len(s) == 5 and s.window_tokens == 8
    assert s.tokenizer == KmerTokenizer(3, 3) and (s.k, s.stride, s.vocab_size) == (3, 3, 69)
    assert np.array_equal(s[3], toks[3])
    assert s.coords(0) == ("chr1", 0, 24, "+") and s.coords(4) == ("chr2", 2, 26, "-")


def test_labels_with_nan(tmp_path):
    path = tmp_path / "l.h5"
    _write(path, labels=["H3", "H4"])
    s = TokenStore(path)
    assert s.label_names == ["H3", "H4"] and s.has_labels
    assert s.labels(0).tolist() == [1.0, 1.0] and np.isnan(s.labels(4)).all()


def test_k8_uses_uint32(tmp_path):
    path = tmp_path / "k8.h5"
    ids = encode("T" * 64, 8)
    with TokenStoreWriter(path, tokenizer=KmerTokenizer(8), window_tokens=8, source={}, split="train") as w:
        w.append(ids, seqid=["a"], start=[0], end=[64])
    assert TokenStore(path)[0].tolist() == [65540] * 8


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError):
        with TokenStoreWriter(path, tokenizer=KmerTokenizer(3), window_tokens=4, source={}, split="train") as w:
            w.append(np.zeros((1, 4)), seqid=["a"], start=[0], end=[12])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_removes_the_folders_it_created(tmp_path):
    path = tmp_path / "new" / "deeper" / "s.h5"
    writer = TokenStoreWriter(path, tokenizer=KmerTokenizer(3), window_tokens=4, source={}, split="train")
    assert list(tmp_path.iterdir()) == []  # nothing is created before the with block
    with pytest.raises(ValueError, match="rows must have 4 tokens"):
        with writer as w:
            assert (tmp_path / "new" / "deeper").is_dir()
            w.append(np.zeros((1, 5)), seqid=["a"], start=[0], end=[15])
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        with TokenStoreWriter(tmp_path / "f" / "s.h5", tokenizer=KmerTokenizer(3), window_tokens=4, source={},
                              split="train"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_refuses_existing_output(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    with pytest.raises(UserError, match="output exists"):
        TokenStoreWriter(path, tokenizer=KmerTokenizer(3), window_tokens=8, source={}, split="train")
    _write(path, overwrite=True)


def test_file_format_is_unchanged_by_the_tokenizer_record(tmp_path):
    """The record is stored as the same three root attributes as before (k, stride, vocab_size)."""
    path = tmp_path / "s1.h5"
    with TokenStoreWriter(path, tokenizer=KmerTokenizer(6, 1), window_tokens=4, source={}, split="val") as w:
        w.append(encode("ACGTACGTA", 6, 1), seqid=["a"], start=[0], end=[9])
    with h5py.File(path) as f:
        assert {key: f.attrs[key] for key in ("k", "stride", "vocab_size", "window_bp")} == \
            {"k": 6, "stride": 1, "vocab_size": 4101, "window_bp": 9}
        assert f.attrs["format_version"] == 1
    assert TokenStore(path).tokenizer == KmerTokenizer(6, 1)


def test_reader_validation(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    with pytest.raises(TokenizerMismatch) as err:
        TokenStore(path, expect=KmerTokenizer(6))
    assert str(err.value) == f"token store {path} has k=3 stride=3, the model has k=6 stride=6"
    with pytest.raises(UserError) as err:
        TokenStore(path, expect=KmerTokenizer(3, 1), expect_name="the checkpoint")
    assert str(err.value) == f"token store {path} has k=3 stride=3, the checkpoint has k=3 stride=1"
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        TokenStore(trunc)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        TokenStore(empty)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1]
    with pytest.raises(UserError, match="not a genomics_lm token store"):
        TokenStore(other)
    with pytest.raises(UserError, match="no such token store"):
        TokenStore(tmp_path / "missing.h5")
    with h5py.File(path, "a") as f:
        f.attrs["vocab_size"] = 4101
    with pytest.raises(UserError) as err:
        TokenStore(path)
    assert str(err.value).startswith(f"{path}: invalid tokenizer attributes (vocab_size=4101 does not match k=3")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(UserError, match="format_version 99 is not supported"):
        TokenStore(path)


def test_tokenizer_attributes_are_read_only(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    s = TokenStore(path)
    with pytest.raises(AttributeError):
        s.k = 6
    assert repr(s) == f"TokenStore({str(path)!r}, rows=5, L=8, k=3 stride=3, split='train')"


def test_empty_store_refused_unless_allowed(tmp_path):
    path = tmp_path / "e.h5"
    with TokenStoreWriter(path, tokenizer=KmerTokenizer(3), window_tokens=4, source={}, split="val"):
        pass
    with pytest.raises(UserError, match="no rows"):
        TokenStore(path)
    assert len(TokenStore(path, allow_empty=True)) == 0


class _Rows(torch.utils.data.Dataset):
    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return torch.from_numpy(self.store[i].astype(np.int64))


def test_safe_in_dataloader_workers(tmp_path):
    path = tmp_path / "s.h5"
    toks = _write(path, rows=40)
    store = TokenStore(path)
    store[0]  # open a handle in the parent first: workers must not reuse it
    assert pickle.loads(pickle.dumps(store))._handle._obj is None
    loader = torch.utils.data.DataLoader(_Rows(store), batch_size=4, num_workers=2, multiprocessing_context="fork")
    got = torch.cat(list(loader)).numpy()
    assert np.array_equal(got, toks)
