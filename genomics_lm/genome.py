"""Genome access: validated FASTA through pyfaidx, fixed windows with an N filter, leak-free splits.

Coordinates are 0-based, half-open everywhere: a window ``(seqid, start, end)`` covers bases
``start .. end-1`` of record ``seqid``.

* Plain FASTA, bgzip FASTA (pyfaidx reads it in place) and plain gzip FASTA (decompressed once into a
  cache directory, keyed by the file's sha256, because pyfaidx cannot seek in plain gzip).
* An existing ``.fai`` index beside the FASTA is used; a missing one is built on demand in the cache
  directory, never in the data folder (read-only or not); under a temporary name, kept only when the file
  passes every check. Windows (CRLF) line endings work.
* Windows are read in large pieces (:func:`iter_window_batches`), the N filter computed for a whole piece
  at once; :func:`iter_windows` gives them one at a time.
* Splits without leakage: whole chromosomes held out by name when the genome has many sequences;
  otherwise (E. coli, phage, a 1 Mb piece of a chromosome) each sequence is cut into contiguous region
  blocks that are assigned deterministically (seeded) to train/val/test, and ``gap_bp`` bases at every
  boundary between blocks of different splits are dropped so that no window straddles two splits.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.files import PerProcess, atomic_write, default_cache_dir, sha256sum, tmp_name

SPLITS = ("train", "val", "test")
_GZIP_MAGIC = b"\x1f\x8b"


def _is_bgzf(head: bytes) -> bool:
    # BGZF: gzip member with FEXTRA set and a 'BC' extra subfield (SAM spec, section 4.1)
    return len(head) >= 18 and head[:2] == _GZIP_MAGIC and head[3] & 4 and head[12:14] == b"BC"


def _check_text_head(path: Path, head: bytes) -> None:
    """Raise a one-line UserError unless ``head`` (first bytes of the decompressed file) looks like FASTA."""
    stripped = head.lstrip(b"\r\n\t ")
    if not stripped:
        raise UserError(f"{path}: empty FASTA file (no records)")
    if b"\x00" in head:
        raise UserError(f"{path}: not a FASTA file (binary content)")
    if not stripped.startswith(b">"):
        first = stripped.split(b"\n", 1)[0][:40].decode("ascii", "replace").strip()
        raise UserError(f"{path}: not a FASTA file (first line {first!r} does not start with '>')")


def _normalised_copy(path: Path, sha: str, cache_dir: Path, line_width: int = 80) -> Path:
    """Write ``path`` as plain LF FASTA with fixed-width lines into the cache (atomic); return the copy.

    Used for what pyfaidx cannot index in place: plain gzip (no random access), Windows (CRLF) line
    endings and records whose lines have varying widths. Keyed by the source's sha256, made once.
    """
    target = cache_dir / f"{sha[:16]}-{path.name.removesuffix('.gz')}"
    if target.exists():
        return target
    opener = gzip.open if path.read_bytes()[:2] == _GZIP_MAGIC else open
    try:
        with atomic_write(target) as tmp, opener(path, "rb") as src, open(tmp, "wb") as dst:
            pending = b""
            for line in src:
                line = line.rstrip(b"\r\n")
                if line.startswith(b">"):
                    for i in range(0, len(pending), line_width):
                        dst.write(pending[i : i + line_width] + b"\n")
                    pending = b""
                    dst.write(line + b"\n")
                else:
                    pending += line.strip()
                    cut = len(pending) - len(pending) % line_width
                    for i in range(0, cut, line_width):
                        dst.write(pending[i : i + line_width] + b"\n")
                    pending = pending[cut:]
            for i in range(0, len(pending), line_width):
                dst.write(pending[i : i + line_width] + b"\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    except OSError as exc:  # the cache folder: not writable, disk full
        raise UserError(f"{path}: cannot write its plain copy {target} ({exc.strerror or exc}); "
                        "set --cache-dir or $GENOMICS_LM_CACHE to a writable folder") from None
    return target


@dataclass(frozen=True)
class Window:
    """One window of a genome: ``seq`` is ``seqid[start:end]`` (0-based, half-open) as it is in the FASTA."""

    seqid: str
    start: int
    end: int
    seq: str

    @property
    def n_frac(self) -> float:
        """Fraction of bases that are not A/C/G/T (either case)."""
        codes = np.frombuffer(self.seq.encode("ascii", "replace"), dtype=np.uint8) | 0x20  # lower-case
        # count / length (not 1 - mean: 1 - 0.9 is 0.09999999999999998), the fraction the N filter compares
        return np.count_nonzero(~np.isin(codes, np.frombuffer(b"acgt", np.uint8))) / len(codes) if len(codes) else 1.0


class Genome:
    """A validated FASTA genome with lazy, process-local pyfaidx access.

    Args:
        path: ``.fa``/``.fasta``/``.fna``, optionally ``.gz`` (plain gzip or bgzip).
        cache_dir: where to put the decompressed copy of a plain-gzip file and a missing ``.fai`` index
            (default :func:`genomics_lm.files.default_cache_dir`).

    Raises:
        UserError: missing, empty, non-FASTA, truncated gzip, duplicate record names, a record with no
            sequence. Each message names the file (and the record where there is one). A refused file
            leaves nothing behind: a missing index is built under a temporary name and kept only once the
            file has passed every check.

    A missing index is never written beside the FASTA (data folders stay as they are, writable or not):
    it goes to ``cache_dir``.
    """

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if not self.path.exists():
            raise UserError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise UserError(f"{self.path}: is a directory, not a FASTA file")
        if self.path.stat().st_size == 0:
            raise UserError(f"{self.path}: empty file")
        self.sha256 = sha256sum(self.path)
        with open(self.path, "rb") as fh:
            raw_head = fh.read(1 << 16)
        self._fasta_path, self._index_path = self._resolve_readable(raw_head)
        self._handle = PerProcess(self._open)
        self._raw = PerProcess(self._open_raw)
        self.lengths = self._validate_and_index()
        self._layout = self._read_layout()

    # -- opening ---------------------------------------------------------------------------------
    def _resolve_readable(self, raw_head: bytes) -> tuple[Path, Path]:
        """Path pyfaidx can read (the file itself, or a decompressed cache copy) and its index path."""
        path = self.path
        if raw_head[:2] == _GZIP_MAGIC:
            try:
                with gzip.open(path, "rb") as fh:
                    head = fh.read(1 << 16)
            except (EOFError, OSError, zlib.error) as exc:
                raise UserError(f"{path}: corrupt or truncated gzip file ({exc})") from None
            _check_text_head(path, head)
            if not _is_bgzf(raw_head) or b"\r" in head:
                path = _normalised_copy(path, self.sha256, self.cache_dir)
            else:
                self._check_gzip_complete(path)
        else:
            _check_text_head(path, raw_head)
            if b"\r" in raw_head:
                path = _normalised_copy(path, self.sha256, self.cache_dir)
        return path, self._index_for(path)

    def _index_for(self, path: Path) -> Path:
        """``path.fai`` where that index exists (with its ``.gzi`` for bgzip, e.g. made by samtools); else a name
        in the cache. A missing index is never written beside the FASTA: data folders stay untouched."""
        fai = Path(str(path) + ".fai")
        gzi = self._gzi_for(path, fai)
        if fai.exists() and (gzi is None or gzi.exists()):
            return fai
        return self.cache_dir / f"{self.sha256[:16]}-{path.name}.fai"

    @staticmethod
    def _gzi_for(fasta_path: Path, index_path: Path) -> Path | None:
        """The ``.gzi`` block index of a bgzip FASTA, beside its ``.fai``; None for plain files."""
        return Path(str(index_path)[: -len(".fai")] + ".gzi") if str(fasta_path).endswith(".gz") else None

    def _check_gzip_complete(self, path: Path) -> None:
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 22):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            raise UserError(f"{path}: corrupt or truncated gzip file ({exc})") from None

    def _open(self, index: Path | None = None, gzi: Path | None = None):
        """A pyfaidx handle on the readable file, with its index (built at ``index``/``gzi`` when missing)."""
        import pyfaidx

        index = self._index_path if index is None else index
        if gzi is None:
            gzi = self._gzi_for(self._fasta_path, self._index_path)
        return pyfaidx.Fasta(
            str(self._fasta_path),
            indexname=str(index),
            gzi_indexname=None if gzi is None else str(gzi),
            as_raw=True,
            sequence_always_upper=False,
            read_ahead=None,
            rebuild=False,
            duplicate_action="stop",
        )

    def _open_and_check(self) -> tuple[dict[str, int], list[tuple[Path, Path]]]:
        """Open the file once and read its record lengths; a missing index is built under temporary names.

        Returns the lengths and the ``(temporary, final)`` index names still to be renamed (none when the
        index existed). On any exception the temporary index files are removed.
        """
        fai, gzi = self._index_path, self._gzi_for(self._fasta_path, self._index_path)
        pending = []
        if not fai.exists() or (gzi is not None and not gzi.exists()):
            fai.parent.mkdir(parents=True, exist_ok=True)  # the cache folder (the FASTA's own folder exists)
            pending = [(tmp_name(fai), fai)] + ([(tmp_name(gzi), gzi)] if gzi is not None else [])
        try:
            fasta = self._open(*[tmp for tmp, _ in pending]) if pending else self._open()
            try:
                return {name: len(rec) for name, rec in fasta.records.items()}, pending
            finally:
                fasta.close()
        except BaseException:
            for tmp, _ in pending:
                tmp.unlink(missing_ok=True)
            raise

    def _validate_and_index(self) -> dict[str, int]:
        pending: list[tuple[Path, Path]] = []
        try:
            try:
                try:
                    lengths, pending = self._open_and_check()
                except Exception as exc:  # lines of varying width: index a normalised copy instead
                    if "not consistent" not in str(exc) or self._fasta_path != self.path:
                        raise
                    self._fasta_path = _normalised_copy(self.path, self.sha256, self.cache_dir)
                    self._index_path = Path(str(self._fasta_path) + ".fai")
                    lengths, pending = self._open_and_check()
            except ValueError as exc:  # pyfaidx: duplicate keys, inconsistent line lengths, ...
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "Duplicate key" in msg:
                    name = msg.split('"')[1] if '"' in msg else "?"
                    raise UserError(f"{self.path}: duplicate record name {name!r}") from None
                raise UserError(f"{self.path}: malformed FASTA ({msg})") from None
            except UserError:
                raise
            except OSError as exc:  # reading the file or writing its index
                raise UserError(f"{self.path}: cannot read or index ({exc.strerror or exc})") from None
            except Exception as exc:  # pyfaidx.FastaIndexingError and friends
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise UserError(f"{self.path}: malformed FASTA ({msg})") from None
            if not lengths:
                raise UserError(f"{self.path}: no FASTA records")
            for name, n in lengths.items():
                if n == 0:
                    raise UserError(f"{self.path}: record {name!r} has no sequence")
        except BaseException:
            for tmp, _ in pending:  # a refused file leaves no index behind
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in reversed(pending):  # the .gzi before the .fai that announces it
            os.replace(tmp, final)
        return lengths

    def _read_layout(self) -> dict[str, tuple[int, int, int]] | None:
        """Per record ``(offset, bases per line, bytes per line)`` from the ``.fai`` of a plain (not bgzip) file.

        Lets :meth:`fetch_bytes` read a record's bytes directly; None for bgzip, which goes through pyfaidx.
        """
        if str(self._fasta_path).endswith(".gz"):
            return None
        layout = {}
        for line in self._index_path.read_text().splitlines():
            name, _length, offset, bases, width = line.split("\t")[:5]
            layout[name] = (int(offset), int(bases), int(width))
        return layout if layout.keys() == self.lengths.keys() else None

    def _open_raw(self):
        return open(self._fasta_path, "rb")

    @property
    def fasta(self):
        """The pyfaidx handle, opened lazily once per process (safe with DataLoader workers)."""
        return self._handle.get()

    def close(self) -> None:
        """Close this process's file handles (reopened on the next access)."""
        self._handle.close()
        self._raw.close()

    # -- access ----------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.lengths)

    @property
    def total_bp(self) -> int:
        return sum(self.lengths.values())

    def fetch(self, seqid: str, start: int, end: int) -> str:
        """Bases ``[start, end)`` of ``seqid`` (0-based, half-open), case as in the file."""
        if seqid not in self.lengths:
            raise UserError(f"{self.path}: no record named {seqid!r}")
        n = self.lengths[seqid]
        if not 0 <= start <= end <= n:
            raise UserError(f"{self.path}: interval {seqid}:{start}-{end} is outside the record (length {n})")
        return str(self.fasta[seqid][start:end])

    def fetch_bytes(self, seqid: str, start: int, end: int) -> bytes:
        """Bases ``[start, end)`` of ``seqid`` as ASCII bytes, case as in the file (the fast path for bulk reads).

        Plain files are read directly at the offsets of the ``.fai`` index (one read, line ends deleted);
        bgzip files through pyfaidx. Any byte that is not ASCII stays as it is (it is not a base either way).
        """
        layout = self._layout.get(seqid) if self._layout is not None else None
        if layout is None or seqid not in self.lengths:
            return self.fetch(seqid, start, end).encode("ascii", "replace")
        n = self.lengths[seqid]
        if not 0 <= start <= end <= n:
            raise UserError(f"{self.path}: interval {seqid}:{start}-{end} is outside the record (length {n})")
        if start == end:
            return b""
        offset, bases, width = layout
        first = offset + (start // bases) * width + start % bases
        last = offset + ((end - 1) // bases) * width + (end - 1) % bases
        fh = self._raw.get()
        fh.seek(first)
        return fh.read(last + 1 - first).translate(None, b"\r\n")

    def source(self) -> dict:
        """Provenance: file name and sha256 of the FASTA as given."""
        return {"file": self.path.name, "sha256": self.sha256, "total_bp": self.total_bp, "records": len(self.lengths)}


# -- splits ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitPlan:
    """Which intervals of the genome belong to which split.

    ``intervals[split]`` is a list of ``(seqid, start, end)`` (0-based, half-open) that do not overlap
    each other or the intervals of another split, and that are at least ``gap_bp`` apart from those of
    another split on the same sequence.
    """

    mode: str
    intervals: dict[str, list[tuple[str, int, int]]]
    params: dict

    def bp(self, split: str) -> int:
        return sum(e - s for _, s, e in self.intervals[split])

    def to_dict(self) -> dict:
        return {"mode": self.mode, "params": self.params, "intervals": {k: [list(i) for i in v] for k, v in self.intervals.items()}}


def plan_splits(
    lengths: dict[str, int],
    *,
    mode: str = "auto",
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    block_bp: int = 100_000,
    gap_bp: int = 25_000,
    val_chroms: list[str] | None = None,
    test_chroms: list[str] | None = None,
    min_chroms: int = 10,
    seed: int = 0,
) -> SplitPlan:
    """Assign genome intervals to train/val/test without leakage.

    Modes:
        ``chromosomes``: whole sequences held out: ``val_chroms``/``test_chroms`` by name if given, else
            drawn (seeded) until each split holds about ``val_frac``/``test_frac`` of the bases.
        ``regions``: each sequence cut into ``block_bp`` blocks, blocks assigned to splits by a seeded
            permutation; ``gap_bp`` dropped at the start of every block that follows a block of another
            split, so windows (shorter than ``gap_bp`` or not) never straddle two splits.
        ``auto``: ``chromosomes`` when chromosome names are given or there are at least ``min_chroms``
            sequences, else ``regions``.

    Args:
        lengths: record name -> length in bp, in file order.
    Returns:
        a :class:`SplitPlan`.
    """
    if not 0 <= val_frac < 1 or not 0 <= test_frac < 1 or val_frac + test_frac >= 1:
        raise UserError(f"val_frac={val_frac} and test_frac={test_frac} must be in [0, 1) and sum to less than 1")
    if mode == "auto":
        mode = "chromosomes" if (val_chroms or test_chroms or len(lengths) >= min_chroms) else "regions"
    params = dict(val_frac=val_frac, test_frac=test_frac, seed=seed)
    rng = np.random.default_rng(seed)
    names = list(lengths)
    if mode == "chromosomes":
        if val_chroms or test_chroms:
            val_set, test_set = set(val_chroms or []), set(test_chroms or [])
            for name in val_set | test_set:
                if name not in lengths:
                    raise UserError(f"held-out chromosome {name!r} is not in the genome (records: {', '.join(names[:10])}...)")
            if val_set & test_set:
                raise UserError(f"chromosomes {sorted(val_set & test_set)} are both val and test")
        else:
            order = [names[i] for i in rng.permutation(len(names))]
            total = sum(lengths.values())
            val_set, test_set, acc_v, acc_t = set(), set(), 0, 0
            for name in order:
                if acc_v < val_frac * total:
                    val_set.add(name)
                    acc_v += lengths[name]
                elif acc_t < test_frac * total:
                    test_set.add(name)
                    acc_t += lengths[name]
        intervals = {s: [] for s in SPLITS}
        for name in names:
            split = "val" if name in val_set else "test" if name in test_set else "train"
            intervals[split].append((name, 0, lengths[name]))
        params.update(val_chroms=sorted(val_set), test_chroms=sorted(test_set))
        return SplitPlan("chromosomes", intervals, params)
    if mode != "regions":
        raise UserError(f"unknown split mode {mode!r} (choose auto, chromosomes or regions)")
    if block_bp <= 0 or gap_bp < 0 or gap_bp >= block_bp:
        raise UserError(f"need block_bp > gap_bp >= 0, got block_bp={block_bp}, gap_bp={gap_bp}")
    params.update(block_bp=block_bp, gap_bp=gap_bp)
    blocks = [(name, s, min(s + block_bp, n)) for name, n in lengths.items() for s in range(0, n, block_bp)]
    # blocks in a seeded random order fill val, then test, each up to its share of the bases (a block
    # joins while it takes the split closer to its target); at least one block each when there are >= 3
    total = sum(lengths.values())
    label = np.array(["train"] * len(blocks), dtype=object)
    order = iter(rng.permutation(len(blocks)))
    for split, frac in (("val", val_frac), ("test", test_frac)):
        acc, target = 0, frac * total
        for i in order:
            size = blocks[i][2] - blocks[i][1]
            if acc + size / 2 > target and not (acc == 0 and frac > 0 and len(blocks) >= 3):
                break
            label[i] = split
            acc += size
    intervals = {s: [] for s in SPLITS}
    for i, (name, s, e) in enumerate(blocks):
        prev_other = i > 0 and blocks[i - 1][0] == name and label[i - 1] != label[i]
        if prev_other:
            s = min(e, s + gap_bp)
        if e <= s:
            continue
        cur = intervals[label[i]]
        if cur and cur[-1][0] == name and cur[-1][2] == s:  # merge runs of the same split
            cur[-1] = (name, cur[-1][1], e)
        else:
            cur.append((name, s, e))
    return SplitPlan("regions", intervals, params)


# -- windows --------------------------------------------------------------------------------------
# byte -> 1 for anything but A/C/G/T (either case), else 0: one bytes.translate pass marks the bases to count
_NON_ACGT = bytes(0 if b in b"ACGTacgt" else 1 for b in range(256))
_ACGT = b"ACGTacgt"
PIECE_BP = 1 << 22  # bases read (and held) at a time by iter_window_batches


@dataclass(frozen=True)
class WindowBatch:
    """Consecutive windows of one interval, read in one piece.

    ``seq`` holds bases ``[start, start + len(seq))`` of ``seqid`` as they are in the FASTA, as bytes
    (:meth:`Genome.fetch_bytes`). Kept window ``i`` is ``seq[offsets[i] : offsets[i] + window_bp]``, i.e. the
    genome interval ``[start + offsets[i], start + offsets[i] + window_bp)``; ``n_skipped`` windows of the
    piece were dropped by the N filter.
    """

    seqid: str
    start: int
    seq: bytes
    offsets: np.ndarray  # (n,) int64, ascending multiples of the step
    window_bp: int
    n_skipped: int

    @property
    def end(self) -> int:
        return self.start + len(self.seq)

    @property
    def starts(self) -> np.ndarray:
        """Genome start coordinate of each kept window."""
        return self.start + self.offsets

    def windows(self) -> Iterator[Window]:
        for off in self.offsets.tolist():
            yield Window(self.seqid, self.start + off, self.start + off + self.window_bp,
                         self.seq[off : off + self.window_bp].decode("ascii", "replace"))


def n_windows(length_bp: int, window_bp: int, step_bp: int) -> int:
    """How many windows of ``window_bp`` fit in ``length_bp`` bases at starts ``0, step_bp, ...``."""
    return 0 if length_bp < window_bp else (length_bp - window_bp) // step_bp + 1


def iter_window_batches(
    genome: Genome,
    intervals: list[tuple[str, int, int]],
    window_bp: int,
    step_bp: int | None = None,
    max_n_frac: float = 0.1,
    stats: dict | None = None,
    piece_bp: int = PIECE_BP,
) -> Iterator[WindowBatch]:
    """Fixed-size windows tiled inside each interval, skipping those with too many non-ACGT bases, in batches.

    Window starts are ``start, start + step_bp, ...`` while the window ends inside the interval (a last
    partial window is dropped). A window is skipped when the fraction of its bases that are not A/C/G/T
    (either case) is larger than ``max_n_frac`` (exactly ``max_n_frac`` is kept). Each interval is read in
    pieces of about ``piece_bp`` bases (whole windows), and the N filter is computed for all windows of a piece
    at once from a cumulative count. ``stats`` (if given) counts ``kept``, ``skipped_n`` and ``bp``.
    """
    if window_bp <= 0:
        raise UserError(f"window_bp must be positive, got {window_bp}")
    step_bp = window_bp if step_bp is None else step_bp
    if step_bp <= 0:
        raise UserError(f"step_bp must be positive, got {step_bp}")
    stats = stats if stats is not None else {}
    for key in ("kept", "skipped_n", "bp"):
        stats.setdefault(key, 0)
    per_piece = n_windows(max(piece_bp, window_bp), window_bp, step_bp)
    for seqid, start, end in intervals:
        total = n_windows(end - start, window_bp, step_bp)
        for w0 in range(0, total, per_piece):
            n = min(per_piece, total - w0)
            a = start + w0 * step_bp
            seq = genome.fetch_bytes(seqid, a, a + (n - 1) * step_bp + window_bp)
            offsets = np.arange(n, dtype=np.int64) * step_bp
            if seq.translate(None, _ACGT):  # some non-ACGT byte: count them per window
                cum = np.zeros(len(seq) + 1, dtype=np.int64)
                np.cumsum(np.frombuffer(seq.translate(_NON_ACGT), dtype=np.uint8), out=cum[1:])
                n_bad = cum[offsets + window_bp] - cum[offsets]
                # the fraction against max_n_frac, not the count against max_n_frac * window_bp: that product
                # is rounded (0.29 * 100 = 28.999999999999996 would drop a window of exactly 29% N's)
                offsets = offsets[~(n_bad / window_bp > max_n_frac)]
            kept = len(offsets)
            stats["kept"] += kept
            stats["skipped_n"] += n - kept
            stats["bp"] += kept * window_bp
            yield WindowBatch(seqid, a, seq, offsets, window_bp, n - kept)


def iter_windows(
    genome: Genome,
    intervals: list[tuple[str, int, int]],
    window_bp: int,
    step_bp: int | None = None,
    max_n_frac: float = 0.1,
    stats: dict | None = None,
) -> Iterator[Window]:
    """The windows of :func:`iter_window_batches` one at a time, as :class:`Window` records."""
    for batch in iter_window_batches(genome, intervals, window_bp, step_bp, max_n_frac, stats):
        yield from batch.windows()
