"""HDF5 token store: one file per genome x split (or task x split), the schema of DESIGN.md.

Layout::

    /tokens   (N, L) uint16 (uint32 for k = 8), chunked by rows
    /labels   (N, C) float32, NaN = unobserved (task files only)
    /seqid    (N,)   UTF-8 strings       record name of each row
    /start    (N,)   int64               0-based start of the row's window
    /end      (N,)   int64               half-open end
    /strand   (N,)   S1  b"+" / b"-"
    /softmask (N, L) uint8  optional: 1 where the token's k-mer holds a lower-case (soft-masked) base
    attributes: format="genomics_lm.tokens", format_version, k, stride, vocab_size, window_bp,
        window_tokens, source (JSON: file, sha256, ...), split, label_names (JSON list), genomics_lm
        (version), config (JSON of the full config), created (UTC ISO time), n_rows

Files are written under a temporary name in the same folder and renamed when complete, so a killed
job never leaves a file that looks whole. The reader opens the HDF5 handle lazily, once per process,
so a :class:`TokenStore` can be handed to DataLoader workers (each worker opens its own handle).

Compression and chunks: k-mer ids barely compress while gzip writes far slower (``genomics-lm bench
tokenizer``; figures in the README's Benchmarks section), so the default is no compression;
``compression="lzf"`` or ``"gzip"`` is available. Chunks hold whole rows (a DataLoader reads one row at a
time) and about 64 KiB each, so a random read touches one chunk.

The tokenizer (``k``, ``stride``) is one :class:`~genomics_lm.tokenizer.KmerTokenizer` record: the writer
takes it, the reader gives it back as :attr:`TokenStore.tokenizer` and compares it with what a model expects
by :func:`~genomics_lm.tokenizer.check_same_tokenizer`. In the file it is the attributes ``k``, ``stride``
and ``vocab_size``, as always.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from genomics_lm import __version__
from genomics_lm.errors import UserError
from genomics_lm.files import PerProcess, atomic_write, check_output_path
from genomics_lm.tokenizer import KmerTokenizer, TokenizerError, check_same_tokenizer

FORMAT = "genomics_lm.tokens"
FORMAT_VERSION = 1
CHUNK_BYTES = 64 * 1024
COMPRESSIONS = ("none", "lzf", "gzip")


class TokenStoreWriter:
    """Append rows of token windows to a new HDF5 token store; atomic on success.

    Use as a context manager::

        with TokenStoreWriter("train.h5", tokenizer=KmerTokenizer(6), window_tokens=4096,
                              source=genome.source(), split="train", config=cfg) as w:
            w.append(tokens, seqid=["chr1"], start=[0], end=[24576])

    The file is written under a temporary name and renamed when the ``with`` block completes. On an exception
    inside the block the temporary file is deleted, the folders the writer created are removed again, and
    nothing is left behind.

    Args:
        path: final file name. tokenizer: the :class:`~genomics_lm.tokenizer.KmerTokenizer` (or its dict),
            stored as the attributes ``k``, ``stride`` and ``vocab_size``. window_tokens: row length L.
        window_bp: bases per row (default ``(L - 1) * stride + k``).
        source: provenance dict (``file``, ``sha256``, ...). split: split name.
        config: the full config (JSON-able) that produced the file. label_names: for task files.
        softmask: also store the per-token soft-mask flag track (``append(..., softmask=...)``).
        compression: ``none`` (default), ``lzf`` or ``gzip``. overwrite: replace an existing file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        tokenizer: KmerTokenizer | dict,
        window_tokens: int,
        source: dict,
        split: str,
        config: dict | None = None,
        window_bp: int | None = None,
        label_names: Sequence[str] | None = None,
        softmask: bool = False,
        compression: str = "none",
        overwrite: bool = False,
    ):
        if compression not in COMPRESSIONS:
            raise UserError(f"unknown compression {compression!r} (choose {', '.join(COMPRESSIONS)})")
        if window_tokens <= 0:
            raise UserError(f"window_tokens must be positive, got {window_tokens}")
        self.path = check_output_path(path, overwrite)
        self.tokenizer = KmerTokenizer.from_dict(tokenizer)
        self.L = int(window_tokens)
        self.dtype = self.tokenizer.dtype
        self.label_names = list(label_names) if label_names is not None else None
        self.softmask = bool(softmask)
        self.attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.tokenizer.to_dict(),  # k, stride, vocab_size
            "window_tokens": self.L,
            "window_bp": int(window_bp if window_bp is not None else self.tokenizer.window_bp(self.L)),
            "source": json.dumps(source, sort_keys=True),
            "split": split,
            "label_names": json.dumps(self.label_names or []),
            "genomics_lm": __version__,
            "config": json.dumps(config or {}, sort_keys=True, default=str),
        }
        self.compression = None if compression == "none" else compression
        self.n = 0
        self._h5 = None
        self._write = None  # the atomic_write context of the open file

    def __enter__(self) -> "TokenStoreWriter":
        import h5py

        self._write = atomic_write(self.path)  # creates missing folders; removes them again on failure
        tmp = self._write.__enter__()
        try:
            self._h5 = f = h5py.File(tmp, "w")
            rows = max(1, CHUNK_BYTES // (self.L * self.dtype.itemsize))
            f.create_dataset("tokens", shape=(0, self.L), maxshape=(None, self.L), dtype=self.dtype,
                             chunks=(rows, self.L), compression=self.compression)
            # per-row coordinates are small (a few bytes a row): kept in memory, written contiguously at close
            self._meta = {"seqid": [], "start": [], "end": [], "strand": []}
            if self.softmask:
                f.create_dataset("softmask", shape=(0, self.L), maxshape=(None, self.L), dtype=np.uint8,
                                 chunks=(max(1, CHUNK_BYTES // self.L), self.L), compression="lzf")
            if self.label_names is not None:
                C = len(self.label_names)
                f.create_dataset("labels", shape=(0, C), maxshape=(None, C), dtype=np.float32,
                                 chunks=(max(1, 65536 // max(C, 1)), C))
        except BaseException:
            self._abort(*sys.exc_info())
            raise
        return self

    def append(self, tokens, *, seqid, start, end, strand=None, labels=None, softmask=None) -> None:
        """Append ``n`` rows: ``tokens`` (n, L); per-row ``seqid``, ``start``, ``end`` (n,), ``strand``
        (n,) of ``"+"``/``"-"`` (default ``"+"``), ``labels`` (n, C) float with NaN for unobserved,
        ``softmask`` (n, L) uint8 flags when the store was opened with ``softmask=True``."""
        tokens = np.asarray(tokens)
        if tokens.ndim == 1:
            tokens = tokens[None]
        n = tokens.shape[0]
        if tokens.shape[1] != self.L:
            raise ValueError(f"rows must have {self.L} tokens, got {tokens.shape[1]}")
        cols = {"seqid": list(seqid), "start": np.asarray(start, np.int64), "end": np.asarray(end, np.int64)}
        strand = np.asarray(["+"] * n if strand is None else strand, dtype="S1")
        for name, col in list(cols.items()) + [("strand", strand)]:
            if len(col) != n:
                raise ValueError(f"{name} has {len(col)} entries for {n} rows")
        if n == 0:
            return
        f, a, b = self._h5, self.n, self.n + n
        f["tokens"].resize(b, axis=0)
        f["tokens"][a:b] = tokens.astype(self.dtype, copy=False)
        for name, col in list(cols.items()) + [("strand", strand)]:
            self._meta[name].append(col)
        if self.softmask:
            if softmask is None:
                raise ValueError("this store has a softmask track: pass softmask=(n, L)")
            f["softmask"].resize(b, axis=0)
            f["softmask"][a:b] = np.asarray(softmask, np.uint8).reshape(n, self.L)
        if self.label_names is not None:
            if labels is None:
                raise ValueError("this store has labels: pass labels=(n, C)")
            labels = np.asarray(labels, np.float32).reshape(n, len(self.label_names))
            f["labels"].resize(b, axis=0)
            f["labels"][a:b] = labels
        self.n = b

    def _finish(self) -> None:
        """Write the per-row coordinates and the attributes, and close the file."""
        import h5py

        f = self._h5
        meta = {name: (np.concatenate(parts) if parts else np.zeros(0)) for name, parts in self._meta.items()}
        f.create_dataset("seqid", data=np.asarray(meta["seqid"], dtype=object).astype(str).tolist() if self.n else [],
                         dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("start", data=meta["start"].astype(np.int64))
        f.create_dataset("end", data=meta["end"].astype(np.int64))
        f.create_dataset("strand", data=meta["strand"].astype("S1"))
        f.attrs.update(self.attrs)
        f.attrs["n_rows"] = self.n
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._h5 = None
        f.close()

    def _abort(self, exc_type, exc, tb) -> None:
        """Close and delete the temporary file; remove the folders this writer created."""
        f, self._h5 = self._h5, None
        if f is not None:
            try:
                f.close()
            except Exception:
                pass
        write, self._write = self._write, None
        write.__exit__(exc_type, exc, tb)  # atomic_write: unlink the temporary file, remove created folders

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort(exc_type, exc, tb)
            return
        try:
            self._finish()
        except BaseException:
            self._abort(*sys.exc_info())
            raise
        write, self._write = self._write, None
        write.__exit__(None, None, None)  # rename into place


class TokenStore:
    """Lazy reader of an HDF5 token store, validated on construction.

    Args:
        path: the ``.h5`` file.
        expect: refuse a store made with another tokenizer (e.g. a model trained on 6-mers given a 4-mer
            store); the message names both sides, the other one as ``expect_name``.
        expect_name: how to name the expecting side in that message (default ``"the model"``).
        allow_empty: accept a store without rows.
    Raises:
        UserError: missing file, not HDF5 / truncated, not a genomics_lm token store, unsupported
            format version, invalid or mismatched tokenizer attributes, no rows.

    ``store[i]`` returns the token row ``i`` as a numpy array (L,). The h5py handle is opened on first
    access in each process and never shared across processes (pickling drops it).
    """

    def __init__(self, path: str | os.PathLike, *, expect: KmerTokenizer | None = None,
                 expect_name: str = "the model", allow_empty: bool = False):
        import h5py

        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"{self.path}: no such token store")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
                shape = f["tokens"].shape if "tokens" in f else None
                has_labels = "labels" in f
                has_softmask = "softmask" in f
        except OSError as exc:
            raise UserError(f"{self.path}: not a readable HDF5 file (empty, truncated or corrupt: {str(exc).splitlines()[0]})") from None
        if attrs.get("format") != FORMAT:
            raise UserError(f"{self.path}: not a genomics_lm token store (format attribute {attrs.get('format')!r}, expected {FORMAT!r})")
        if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise UserError(f"{self.path}: token store format_version {attrs.get('format_version')} is not supported (this genomics_lm reads {FORMAT_VERSION})")
        if shape is None or len(shape) != 2:
            raise UserError(f"{self.path}: token store has no 2-D /tokens dataset")
        self.attrs = attrs
        try:
            self.tokenizer = KmerTokenizer.from_dict({key: attrs.get(key) for key in ("k", "stride", "vocab_size")})
        except (TokenizerError, TypeError, ValueError) as exc:
            raise UserError(f"{self.path}: invalid tokenizer attributes ({exc})") from None
        if expect is not None:
            check_same_tokenizer(self.tokenizer, KmerTokenizer.from_dict(expect), f"token store {self.path}", expect_name)
        self.n_rows, self.window_tokens = int(shape[0]), int(shape[1])
        if self.n_rows == 0 and not allow_empty:
            raise UserError(f"{self.path}: token store has no rows (split {attrs.get('split')!r} is empty)")
        self.split = attrs.get("split")
        self.label_names = json.loads(attrs.get("label_names", "[]"))
        self.has_labels = has_labels
        self.has_softmask = has_softmask
        self._handle = PerProcess(self._open)

    # -- tokenizer conveniences (read-only, from the record) ----------------------------------------
    @property
    def k(self) -> int:
        return self.tokenizer.k

    @property
    def stride(self) -> int:
        return self.tokenizer.stride

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    # -- lazy per-process handle -----------------------------------------------------------------
    def _open(self):
        import h5py

        return h5py.File(self.path, "r")

    @property
    def h5(self):
        """The h5py file, opened lazily once per process (safe with DataLoader workers)."""
        return self._handle.get()

    def close(self) -> None:
        self._handle.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- access ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, i: int) -> np.ndarray:
        return self.h5["tokens"][i]

    def labels(self, i) -> np.ndarray:
        if not self.has_labels:
            raise UserError(f"{self.path}: token store has no labels")
        return self.h5["labels"][i]

    def softmask(self, i) -> np.ndarray:
        """Soft-mask flags of row ``i`` (L,) uint8: 1 where the k-mer holds a lower-case base."""
        if not self.has_softmask:
            raise UserError(f"{self.path}: token store has no softmask track (tokenize with --softmask)")
        return self.h5["softmask"][i]

    def coords(self, i: int) -> tuple[str, int, int, str]:
        """``(seqid, start, end, strand)`` of row ``i`` (0-based, half-open)."""
        f = self.h5
        seqid = f["seqid"][i]
        return (seqid.decode() if isinstance(seqid, bytes) else seqid, int(f["start"][i]), int(f["end"][i]),
                f["strand"][i].decode())

    @property
    def source(self) -> dict:
        return json.loads(self.attrs.get("source", "{}"))

    @property
    def config(self) -> dict:
        return json.loads(self.attrs.get("config", "{}"))

    def __repr__(self) -> str:
        return (f"TokenStore({str(self.path)!r}, rows={self.n_rows}, L={self.window_tokens}, "
                f"{self.tokenizer.describe()}, split={self.split!r})")
