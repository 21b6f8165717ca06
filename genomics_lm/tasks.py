"""Task stores: labelled sequences (FASTA pairs, CSV/TSV tables, per-feature folders) -> train/val/test HDF5 stores.

:func:`make_task` is what ``genomics-lm make-task`` (:mod:`genomics_lm.cli.make_task`), the workflow and the tests
call. It prints nothing. Five kinds of input (the two genome-based ones are built by :mod:`genomics_lm.genome_tasks`,
which documents them; the rest of this docstring is about the first three):

* ``pos``/``neg`` FASTA pair (optionally ``test_pos``/``test_neg``): one binary label (1 = the ``pos`` file).
* ``table`` CSV/TSV (optionally ``dev``/``test``): a ``sequence`` column; every other column is a label column
  (0, 1 or empty = not observed). One label column: a binary task; several: a masked multi-label task.
* ``tables``: ``[(NAME, FOLDER), ...]`` of GUE-style per-feature folders (``train``/``dev``/``test`` ``.csv``/``.tsv``,
  optionally ``.gz``, any subset present, each with ``sequence`` and one label column), merged by sequence into
  one masked multi-label set with one label per NAME (NaN where a sequence is absent from that feature's files).
  The files' own split names are ignored: the per-feature GUE splits overlap across features (a window can be
  dev for one mark and test for another), so the merged set is split anew by sequence.
* ``genome`` + ``peaks`` ``[(NAME, FILE), ...]``: DeepSEA-style bins of the genome labelled by peak files
  (multi-label, one label per NAME); ``genome`` + ``tss``: windows around TSSs (label 1) and away from them
  (label 0). Same store format; coordinates and splits from the genome (held-out chromosomes or region blocks).

Splits (seeded by ``seed``; ``n_f = floor(f * n + 0.5)`` rows drawn for a fraction ``f`` of ``n``):

* FASTA pair without test files: 10% test, 10% val, the rest train. With test files: those are the test split
  and the rest is split 8:1 train:val (val = 1/9).
* ``table``: ``dev``/``test`` files are used as given; each of val/test not given is drawn as 10% of TRAIN.
* ``tables``: 10% test, 10% val, the rest train, by distinct sequence.
* A binary task is split stratified by label (positives and negatives each drawn with the rule above, one
  generator, positives first); a multi-label task by a plain permutation of its distinct sequences. Within each
  split, rows keep the order of first appearance in the inputs.

Cleaning, in this order, every count reported per split in the summary:

1. Sequences are upper-cased (case-insensitive); IUPAC codes RYKMSWBDHVN are accepted and become [UNK] k-mers;
   any other character is a :class:`~genomics_lm.errors.UserError` naming the file, the row or record, and the
   1-based position. A sequence shorter than ``k`` (no token) is an error too.
2. Duplicates (the same sequence more than once among the inputs of one split, per input group: the FASTA pair,
   the table, or one NAME of ``tables``) collapse into one row (``duplicates``). Where the copies disagree on a
   label, that label becomes NaN (``conflicts``: labels set to NaN). Merging different NAMEs of ``tables`` is
   by design, not counted.
3. Leakage: a sequence present in a given test file is removed from train and val; one present in a given
   val file is removed from train (``removed_leak``, counted on the split it was removed from). Drawn splits
   are disjoint by construction (they partition distinct sequences).
4. Rows without any observed label (a binary conflict, an all-empty multi-label row) are dropped
   (``unlabelled``). Removals from the rows still to be split happen before the draw and count on train;
   ``duplicates`` and ``conflicts`` include those of removed rows.

Store layout (one file per split, written with :class:`~genomics_lm.store.TokenStoreWriter`)::

    /tokens   (N, L) uint16 (uint32 for k=8); L = the longest sequence's token count over all three splits,
              shorter rows right-padded with PAD_ID = 0 (PAD never occurs inside a row: non-ACGT k-mers are UNK)
    /labels   (N, C) float32: 1.0 / 0.0, NaN = not observed (a binary store never holds NaN)
    /sequence (N,)  UTF-8: the upper-cased input sequence (for k-mer baselines and predictions tables)
    /seqid    (N,)  "<file>:<1-based data row>" for tables (data row 1 = the line after the header),
              "<file>:<record id>" for FASTA; ``tables``: "<NAME>/<file>:<row>"; the first occurrence
    /start    (N,)  0;  /end (N,) the sequence length in bp;  /strand (N,) "+"
    attributes: the token-store attributes (format, k, stride, vocab_size, window_tokens = L, split,
        label_names JSON, ...), source = JSON {"kind": "task", "files": [{"file", "name", "role", "sha256"}]},
        config = JSON of the settings: task_kind ("binary"|"multilabel"), seed, k, stride, inputs, split
        rule, label_names, window_tokens, and "summary": {split: {rows, positives, observed, duplicates,
        conflicts, removed_leak, unlabelled, min_bp, max_bp}} of all three splits (per-label lists in
        label_names order).

All three files are written under temporary names and renamed only when all of them are complete; every check
on settings, outputs and input runs before anything is written, so bad input leaves nothing behind.

FASTA is read by the small reader here (:func:`read_fasta`: plain or gzip, CRLF, wrapped lines), not Biopython,
so that errors can name the line and position.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.files import check_output_path, sha256sum
from genomics_lm.store import TokenStoreWriter
from genomics_lm.tokenizer import PAD_ID, KmerTokenizer

SPLITS = ("train", "val", "test")
IUPAC = "ACGTRYKMSWBDHVN"  # accepted letters (either case); all but ACGT become [UNK] k-mers
_ALLOWED = (IUPAC + IUPAC.lower()).encode("ascii")
SEQUENCE_COLUMN = "sequence"
TABLE_FRACTION = 0.1  # val / test drawn from TRAIN when not given
POOL_FRACTIONS = {"test": 0.1, "val": 0.1}  # FASTA pair and tables without given splits
VAL_OF_REST = 1 / 9  # FASTA pair with test files: the rest is 8:1 train:val
_GZIP_MAGIC = b"\x1f\x8b"
_SPLIT_FILES = ("train", "dev", "test")
_TABLE_EXTS = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


# ------------------------------------------------------------------------------------------------ reading
def _open_text(path: Path):
    """Text handle of a plain or gzip file (by its magic bytes), universal newlines off for csv (CRLF ok)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(2)
    raw = gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


def _read_all(path: Path, reader):
    """Run ``reader(handle)`` with one-line errors for a corrupt gzip file or bytes that are not UTF-8 text."""
    import zlib

    try:
        with _open_text(path) as fh:
            return reader(fh)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (bytes that are not UTF-8)") from None


def read_text(path: str | os.PathLike, reader):
    """``reader(handle)`` on a plain or gzip text file (lines keep their CR of CRLF), with one-line errors for a
    missing or corrupt file and bytes that are not UTF-8 (the readers of :mod:`genomics_lm.peaks` use it)."""
    return _read_all(Path(path), reader)


def check_sequence(seq: str, where: str) -> str:
    """``seq`` upper-cased, or a one-line error naming ``where`` and the 1-based position of a non-IUPAC char."""
    try:
        raw = seq.encode("ascii")
    except UnicodeEncodeError as exc:
        raise UserError(f"{where}: character {seq[exc.start]!r} at position {exc.start + 1} is not a base "
                        f"(allowed: {IUPAC}, either case)") from None
    if raw.translate(None, _ALLOWED):
        pos = next(i for i, b in enumerate(raw) if b not in _ALLOWED)
        raise UserError(f"{where}: character {seq[pos]!r} at position {pos + 1} is not a base "
                        f"(allowed: {IUPAC}, either case)")
    return seq.upper()


@dataclass
class FastaRecord:
    id: str  # first word of the header ('#N' for an empty header: the N-th record)
    seq: str  # as in the file (not upper-cased)
    line: int  # 1-based line of the header


def read_fasta(path: str | os.PathLike) -> list[FastaRecord]:
    """All records of a small FASTA file (plain or gzip; CRLF and wrapped lines accepted).

    Raises:
        UserError: no such file, text before the first header, a record with no sequence, no record at all.
            Characters are not checked here (see :func:`check_sequence`).
    """
    path = Path(path)

    def parse(fh) -> list[FastaRecord]:
        records: list[FastaRecord] = []
        parts: list[str] = []
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line.startswith(">"):
                if records and not parts:
                    _no_sequence(path, records[-1])
                if records:
                    records[-1].seq = "".join(parts)
                words = line[1:].split(None, 1)
                records.append(FastaRecord(words[0] if words else f"#{len(records) + 1}", "", lineno))
                parts = []
            elif line:
                if not records:
                    raise UserError(f"{path}: not FASTA: line {lineno} comes before the first '>' header")
                parts.append(line)
        if records and not parts:
            _no_sequence(path, records[-1])
        if records:
            records[-1].seq = "".join(parts)
        return records

    records = _read_all(path, parse)
    if not records:
        raise UserError(f"{path}: empty FASTA (no '>' record)")
    return records


def _no_sequence(path: Path, rec: FastaRecord) -> None:
    raise UserError(f"{path}: record {rec.id!r} (line {rec.line}) has no sequence")


@dataclass
class Table:
    path: Path
    label_columns: list[str]
    seqs: list[str]  # upper-cased, checked
    labels: np.ndarray  # (n, C) float32, NaN = empty cell
    rows: list[int]  # 1-based data row (1 = the line after the header)


def _delimiter(path: Path, header: str) -> str:
    """Tab for ``.tsv``/``.tab`` names; comma for ``.csv`` unless its header has tabs and no comma; else sniffed."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv") and ("," in header or "\t" not in header):
        return ","
    return "\t" if header.count("\t") > header.count(",") else ","


def _parse_label(value: str, path: Path, row: int, line: int, column: str) -> float:
    v = value.strip()
    if v == "":
        return math.nan
    if v in ("0", "1"):
        return float(v)
    raise UserError(f"{path}: data row {row} (line {line}): column {column!r} has {value!r}; labels must be 0, 1 "
                    f"or empty (every column other than '{SEQUENCE_COLUMN}' is a label column)")


def read_table(path: str | os.PathLike, one_label: bool = False) -> Table:
    """A CSV/TSV table with a header: ``sequence`` plus label columns (0/1/empty); plain or gzip, CRLF ok.

    The delimiter is a tab for ``.tsv``/``.tab`` names, a comma for ``.csv``, else the more frequent of the two
    in the header line. ``one_label``: require exactly one label column (per-feature files of ``tables``).

    Raises:
        UserError naming the file and the data row: no header, no ``sequence`` column, no or (one_label) several
        label columns, duplicate column names, a row with the wrong number of fields, a label other than
        0/1/empty, a sequence with a non-IUPAC character or empty, no data row.
    """
    path = Path(path)

    def parse(fh):
        first = fh.readline()
        if not first.strip():
            raise UserError(f"{path}: empty table (no header line)")
        delim = _delimiter(path, first)
        header = [c.strip() for c in next(csv.reader([first], delimiter=delim))]
        lower = [c.lower() for c in header]
        if SEQUENCE_COLUMN not in lower:
            raise UserError(f"{path}: no '{SEQUENCE_COLUMN}' column in the header (columns: {', '.join(header)}; "
                            f"delimiter {'tab' if delim == chr(9) else 'comma'})")
        if any(c == "" for c in header):
            raise UserError(f"{path}: the header has an empty column name (column {header.index('') + 1})")
        dup = sorted({c for c in header if header.count(c) > 1})
        if dup:
            raise UserError(f"{path}: duplicate column name(s) in the header: {', '.join(dup)}")
        si = lower.index(SEQUENCE_COLUMN)
        label_idx = [i for i in range(len(header)) if i != si]
        if not label_idx:
            raise UserError(f"{path}: no label column (the header has only '{header[si]}'; add a 0/1 column)")
        if one_label and len(label_idx) > 1:
            raise UserError(f"{path}: expected one label column next to '{SEQUENCE_COLUMN}', got "
                            f"{len(label_idx)} ({', '.join(header[i] for i in label_idx)})")
        seqs, labels, rows = [], [], []
        reader = csv.reader(fh, delimiter=delim)
        row_no = 0
        for fields in _csv_rows(reader, path):
            line = reader.line_num + 1  # +1: the header line was read before the csv reader started
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            row_no += 1
            if len(fields) != len(header):
                raise UserError(f"{path}: data row {row_no} (line {line}) has {len(fields)} fields, the header "
                                f"has {len(header)}")
            seq = fields[si].strip()
            where = f"{path}: data row {row_no} (line {line})"
            if not seq:
                raise UserError(f"{where}: empty sequence")
            seqs.append(check_sequence(seq, where))
            labels.append([_parse_label(fields[i], path, row_no, line, header[i]) for i in label_idx])
            rows.append(row_no)
        if not seqs:
            raise UserError(f"{path}: empty table (a header and no data row)")
        return Table(path, [header[i] for i in label_idx], seqs, np.asarray(labels, np.float32), rows)

    return _read_all(path, parse)


def _csv_rows(reader, path: Path):
    """The csv reader's rows, with a one-line error for malformed CSV (e.g. an unclosed quote)."""
    if csv.field_size_limit() < 1 << 30:
        csv.field_size_limit(1 << 30)  # long sequences: the default limit is 131,072 characters a field
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{path}: line {reader.line_num + 1}: malformed CSV/TSV ({exc})") from None


# ------------------------------------------------------------------------------------------------ merging
@dataclass
class _Entry:
    """One distinct sequence of one split assignment, with its merged labels and provenance."""

    order: int  # first appearance among all inputs
    seqid: str
    labels: np.ndarray  # (C,) float32
    conflicted: np.ndarray  # (C,) bool
    copies: dict = field(default_factory=dict)  # input group -> number of input rows


class _Pool:
    """Distinct sequences of one assignment ("pool" = to be split, "val" or "test" = given files)."""

    def __init__(self, n_labels: int):
        self.C = n_labels
        self.entries: dict[str, _Entry] = {}

    def add(self, seq: str, labels: np.ndarray, cols: Sequence[int], seqid: str, group: int, order: int) -> None:
        e = self.entries.get(seq)
        if e is None:
            e = self.entries[seq] = _Entry(order, seqid, np.full(self.C, np.nan, np.float32),
                                           np.zeros(self.C, bool))
        e.copies[group] = e.copies.get(group, 0) + 1
        for c, v in zip(cols, labels):
            if np.isnan(v) or e.conflicted[c]:
                continue
            if np.isnan(e.labels[c]):
                e.labels[c] = v
            elif e.labels[c] != v:
                e.labels[c] = np.nan
                e.conflicted[c] = True


@dataclass
class _Input:
    """One input file: where its rows go ("pool"/"val"/"test"), its group and label columns, its rows."""

    path: Path
    role: str  # e.g. "pos", "train", "H3:dev"
    assign: str
    group: int
    cols: list[int]
    seqs: list[str]
    labels: np.ndarray  # (n, len(cols))
    seqids: list[str]
    wheres: list[str]  # how errors name each row: "<path>: data row N" / "<path>: record 'id' (line N)"


def _n_of(n: int, frac: float) -> int:
    return int(math.floor(frac * n + 0.5))


def _draw(n: int, fractions: dict[str, float], rng: np.random.Generator, strata: np.ndarray | None) -> np.ndarray:
    """Split assignment (array of split names) of ``n`` items: ``floor(f * n + 0.5)`` per fraction, per stratum."""
    out = np.full(n, "train", dtype=object)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == v) for v in (1.0, 0.0)]
    for idx in groups:
        perm = idx[rng.permutation(len(idx))]
        at = 0
        for split in ("test", "val"):
            if split in fractions:
                m = _n_of(len(idx), fractions[split])
                out[perm[at : at + m]] = split
                at += m
    return out


# ------------------------------------------------------------------------------------------------ the stage
def make_task(
    out_dir: str | os.PathLike,
    *,
    pos: str | os.PathLike | None = None,
    neg: str | os.PathLike | None = None,
    test_pos: str | os.PathLike | None = None,
    test_neg: str | os.PathLike | None = None,
    table: str | os.PathLike | None = None,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    tables: Sequence[tuple[str, str | os.PathLike]] | None = None,
    genome: str | os.PathLike | None = None,
    peaks: Sequence[tuple[str, str | os.PathLike]] | None = None,
    tss: str | os.PathLike | None = None,
    tss_format: str | None = None,
    bin_bp: int | None = None,
    context_bp: int | None = None,
    select_bp: int | None = None,
    neg_per_pos: float | None = None,
    max_n_frac: float | None = None,
    min_distance: int | None = None,
    chrom_map: str | os.PathLike | None = None,
    chr_prefix: str | None = None,
    regulondb_mismatch: str | None = None,
    block_bp: int | None = None,
    gap_bp: int | None = None,
    val_frac: float | None = None,
    test_frac: float | None = None,
    mask_outside_bp: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    k: int | None = None,
    stride: int | None = None,
    like: str | os.PathLike | None = None,
    seed: int = 0,
    label_name: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Build ``out_dir/{train,val,test}.h5`` task stores from one kind of input (see the module docstring).

    Args:
        out_dir: output folder (created if missing).
        pos, neg, test_pos, test_neg: FASTA pair input (positives = label 1), optional given test pair.
        table, dev, test: table input, optional given val (``dev``) and test tables.
        tables: ``[(NAME, FOLDER), ...]`` per-feature folders merged by sequence.
        genome with peaks (``[(NAME, FILE), ...]``) or tss: the genome-based builders of
            :mod:`genomics_lm.genome_tasks` (:func:`~genomics_lm.genome_tasks.make_peak_task`,
            :func:`~genomics_lm.genome_tasks.make_tss_task`), which take tss_format, bin_bp, context_bp,
            select_bp, neg_per_pos, max_n_frac, min_distance, chrom_map, chr_prefix, regulondb_mismatch, block_bp, gap_bp,
            val_frac, test_frac, mask_outside_bp and cache_dir (None = their defaults; an error with the other inputs).
        k, stride: the tokenizer (default k=6, stride=k); or ``like``: take them from a pretrained checkpoint.
        seed: seed of the drawn splits. label_name: name of the single label of a binary task (FASTA pair
            default "label"; table default the column's name). overwrite: replace existing stores.
    Returns:
        ``{"task_kind", "label_names", "tokenizer", "window_tokens", "paths": {split: path},
        "summary": {split: {...}}}`` (the summary as stored in each file's ``config``).
    Raises:
        UserError: conflicting or missing options, existing outputs without ``overwrite``, any bad input
            (before anything is written).
    """
    out_dir = Path(out_dir)
    # ---- settings
    kinds = [name for name, given in (("--pos/--neg", pos is not None or neg is not None),
                                      ("--table", table is not None), ("--tables", bool(tables)),
                                      ("--genome", genome is not None or bool(peaks) or tss is not None)) if given]
    if len(kinds) != 1:
        raise UserError("give one input: --pos POS.fa --neg NEG.fa, --table TRAIN.csv, --tables NAME=FOLDER ..., "
                        "or --genome G.fa with --peaks NAME=FILE ... or --tss FILE"
                        + (f" (got {' and '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    genome_options = {"--tss-format": tss_format, "--bin-bp": bin_bp, "--context-bp": context_bp, "--select-bp": select_bp,
                      "--neg-per-pos": neg_per_pos, "--max-n-frac": max_n_frac, "--min-distance": min_distance,
                      "--chrom-map": chrom_map, "--add-chr-prefix/--strip-chr-prefix": chr_prefix,
                      "--regulondb-mismatch": regulondb_mismatch, "--block-bp": block_bp, "--gap-bp": gap_bp,
                      "--val-frac": val_frac, "--test-frac": test_frac, "--mask-outside-bp": mask_outside_bp,
                      "--cache-dir": cache_dir}
    if kind == "--genome":
        if genome is None:
            raise UserError("--peaks and --tss need --genome G.fa (the sequences come from the genome)")
        if bool(peaks) == (tss is not None):
            raise UserError("with --genome give either --peaks NAME=FILE ... (chromatin bins) or --tss FILE "
                            "(promoter windows)" + (" (got both)" if peaks else ""))
        wrong = ([o for o, v in (("--tss-format", tss_format), ("--min-distance", min_distance),
                                 ("--regulondb-mismatch", regulondb_mismatch)) if v is not None] if peaks
                 else [o for o, v in (("--bin-bp", bin_bp),) if v is not None])
        if wrong:
            raise UserError(f"{', '.join(wrong)} go(es) with --{'tss' if peaks else 'peaks'}, not with "
                            f"--{'peaks' if peaks else 'tss'}")
        if peaks and label_name is not None:
            raise UserError("--label-name is for single-label tasks; with --peaks the label names are the NAMEs")
    else:
        given = [o for o, v in genome_options.items() if v is not None]
        if given:
            raise UserError(f"{', '.join(given)} go(es) with --genome (--peaks or --tss)")
    if kind == "--pos/--neg":
        if pos is None or neg is None:
            raise UserError("--pos and --neg go together (positive and negative FASTA)")
        if (test_pos is None) != (test_neg is None):
            raise UserError("--test-pos and --test-neg go together (a test set needs both classes)")
    elif test_pos is not None or test_neg is not None:
        raise UserError("--test-pos/--test-neg go with --pos/--neg")
    if kind != "--table" and (dev is not None or test is not None):
        raise UserError("--dev/--test go with --table")
    if kind == "--tables" and label_name is not None:
        raise UserError("--label-name is for single-label tasks; with --tables the label names are the NAMEs")
    if label_name is not None and not label_name.strip():
        raise UserError("--label-name must not be empty")
    if like is not None:
        if k is not None or stride is not None:
            raise UserError("--like takes k and stride from the checkpoint: give either --like or --k/--stride")
        from genomics_lm.checkpoint import read_checkpoint, read_record

        config, _ = read_record(read_checkpoint(like), like)
        tokenizer = config.tokenizer
    else:
        tokenizer = KmerTokenizer(6 if k is None else k, stride)
    seed = int(seed)

    # ---- outputs: refuse before reading any input
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir}: is a file, not a folder")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out-dir {out_dir}: cannot create it, {parent} is a file, not a folder")
            break
    paths = {s: out_dir / f"{s}.h5" for s in SPLITS}
    for p in paths.values():
        check_output_path(p, overwrite)
    if kind == "--genome":
        from genomics_lm import genome_tasks

        common = dict(genome=genome, tokenizer=tokenizer, context_bp=context_bp, select_bp=select_bp,
                      neg_per_pos=neg_per_pos,
                      max_n_frac=max_n_frac, chrom_map=chrom_map, chr_prefix=chr_prefix, block_bp=block_bp,
                      gap_bp=gap_bp, val_frac=val_frac, test_frac=test_frac, mask_outside_bp=mask_outside_bp,
                      seed=seed, cache_dir=cache_dir, overwrite=overwrite,
                      tokenizer_from=str(like) if like is not None else None)
        if peaks:
            return genome_tasks.make_peak_task(paths, peaks=peaks, bin_bp=bin_bp, **common)
        return genome_tasks.make_tss_task(paths, tss=tss, tss_format=tss_format or "bed", min_distance=min_distance,
                                          regulondb_mismatch=regulondb_mismatch, label_name=label_name, **common)

    # ---- inputs
    inputs: list[_Input] = []
    if kind == "--pos/--neg":
        label_names = [label_name or "label"]
        pairs = [("pos", pos, 1.0, "pool"), ("neg", neg, 0.0, "pool")]
        if test_pos is not None:
            pairs += [("test-pos", test_pos, 1.0, "test"), ("test-neg", test_neg, 0.0, "test")]
        for role, p, value, assign in pairs:
            p = Path(p)
            recs = read_fasta(p)
            seqs = []
            for r in recs:
                seqs.append(check_sequence(r.seq, f"{p}: record {r.id!r} (line {r.line})"))
            inputs.append(_Input(p, role, assign, 0, [0], seqs, np.full((len(seqs), 1), value, np.float32),
                                 [f"{p.name}:{r.id}" for r in recs],
                                 [f"{p}: record {r.id!r} (line {r.line})" for r in recs]))
        task_kind = "binary"
    elif kind == "--table":
        files = [("train", table, "pool")] + [(r, f, r.replace("dev", "val")) for r, f in (("dev", dev), ("test", test))
                                               if f is not None]
        tabs = [(role, assign, read_table(f)) for role, f, assign in files]
        cols = tabs[0][2].label_columns
        for role, _, t in tabs[1:]:
            if sorted(t.label_columns) != sorted(cols):
                raise UserError(f"{t.path}: label columns {t.label_columns} differ from those of the train table "
                                f"{tabs[0][2].path} ({cols})")
            t.labels = t.labels[:, [t.label_columns.index(c) for c in cols]]  # the train table's column order
        if len(cols) > 1 and label_name is not None:
            raise UserError(f"--label-name is for single-label tasks; {tabs[0][2].path} has {len(cols)} label "
                            f"columns ({', '.join(cols)}), which name the labels")
        label_names = [label_name] if label_name else list(cols)
        for role, assign, t in tabs:
            inputs.append(_Input(t.path, role, assign, 0, list(range(len(cols))), t.seqs, t.labels,
                                 [f"{t.path.name}:{r}" for r in t.rows], [f"{t.path}: data row {r}" for r in t.rows]))
        task_kind = "binary" if len(cols) == 1 else "multilabel"
    else:
        names = [str(n) for n, _ in tables]
        for n in names:
            if not n or "=" in n or "/" in n:
                raise UserError(f"--tables: bad feature name {n!r} (use NAME=FOLDER)")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UserError(f"--tables: feature name(s) given twice: {', '.join(dup)}")
        label_names = names
        for g, (name, folder) in enumerate(tables):
            folder = Path(folder)
            if not folder.is_dir():
                raise UserError(f"--tables {name}={folder}: no such folder")
            found = []
            for stem in _SPLIT_FILES:
                hits = [folder / f"{stem}{ext}" for ext in _TABLE_EXTS if (folder / f"{stem}{ext}").is_file()]
                if len(hits) > 1:
                    raise UserError(f"--tables {name}={folder}: both {hits[0].name} and {hits[1].name}; keep one")
                found += [(stem, h) for h in hits]
            if not found:
                raise UserError(f"--tables {name}={folder}: none of train, dev, test "
                                f"({'/'.join(e.lstrip('.') for e in _TABLE_EXTS)}) in this folder")
            for stem, f in found:
                t = read_table(f, one_label=True)
                inputs.append(_Input(t.path, f"{name}:{stem}", "pool", g, [g], t.seqs, t.labels,
                                     [f"{name}/{t.path.name}:{r}" for r in t.rows],
                                     [f"{t.path}: data row {r}" for r in t.rows]))
        task_kind = "binary" if len(names) == 1 else "multilabel"
    C = len(label_names)
    for inp in inputs:  # a sequence shorter than k has no token
        for seq, where in zip(inp.seqs, inp.wheres):
            if len(seq) < tokenizer.k:
                raise UserError(f"{where}: the sequence has {len(seq)} bp, fewer than k={tokenizer.k} (no token)")

    # ---- merge and deduplicate per assignment
    pools = {a: _Pool(C) for a in ("pool", "val", "test")}
    order = 0
    for inp in inputs:
        pool = pools[inp.assign]
        for seq, lab, sid in zip(inp.seqs, inp.labels, inp.seqids):
            pool.add(seq, lab, inp.cols, sid, inp.group, order)
            order += 1

    # ---- leakage (a given test file beats everything, a given val file beats train), then rows without any
    # observed label; the duplicates and conflicts of the rows removed here still count on their split
    removed = {s: 0 for s in SPLITS}
    unlab = {s: 0 for s in SPLITS}
    gone = {s: {"duplicates": 0, "conflicts": 0} for s in SPLITS}
    split_of = {"pool": "train", "val": "val", "test": "test"}  # removals before the draw count on train

    def drop(a: str, seq: str, counter: dict) -> None:
        e = pools[a].entries.pop(seq)
        counter[split_of[a]] += 1
        gone[split_of[a]]["duplicates"] += sum(c - 1 for c in e.copies.values())
        gone[split_of[a]]["conflicts"] += int(e.conflicted.sum())

    for seq in [q for q in pools["val"].entries if q in pools["test"].entries]:
        drop("val", seq, removed)
    for seq in [q for q in pools["pool"].entries if q in pools["test"].entries or q in pools["val"].entries]:
        drop("pool", seq, removed)
    for a in pools:
        for seq in [q for q, e in pools[a].entries.items() if np.isnan(e.labels).all()]:
            drop(a, seq, unlab)

    # ---- split the pool
    if kind == "--pos/--neg":
        fractions = {"val": VAL_OF_REST} if test_pos is not None else dict(POOL_FRACTIONS)
        rule = ("given test files; the rest 8:1 train:val" if test_pos is not None
                else "80/10/10 train/val/test")
    elif kind == "--table":
        fractions = {s: TABLE_FRACTION for s, given in (("val", dev), ("test", test)) if given is None}
        rule = ", ".join([f"{s}: {'given' if s not in fractions else '10% of TRAIN'}" for s in ("val", "test")])
    else:
        fractions = dict(POOL_FRACTIONS)
        rule = "80/10/10 train/val/test by distinct sequence (the files' own split names ignored)"
    stratified = task_kind == "binary"
    rule += "; stratified by label" if stratified else "; by a permutation of distinct sequences"
    pool_seqs = list(pools["pool"].entries)
    pool_entries = [pools["pool"].entries[s] for s in pool_seqs]
    strata = np.array([e.labels[0] for e in pool_entries], np.float32) if stratified else None
    where = _draw(len(pool_seqs), fractions, np.random.default_rng(seed), strata)
    rows: dict[str, list[tuple[str, _Entry]]] = {s: [] for s in SPLITS}
    for s in ("val", "test"):
        rows[s] += list(pools[s].entries.items())
    for seq, e, split in zip(pool_seqs, pool_entries, where):
        rows[split].append((seq, e))
    for s in SPLITS:
        rows[s].sort(key=lambda se: se[1].order)
        if not rows[s]:
            n_pool = len(pool_seqs)
            dropped = (f"{unlab['train']} without a consistent label and {removed['train']} also in a given "
                       "file were dropped")
            raise UserError(f"split {s!r} would be empty: {n_pool} distinct labelled sequence(s) left to split "
                            f"({rule}; {dropped}); give more rows"
                            + (" or --dev/--test files" if kind == "--table" else ""))

    # ---- tokens
    n_tok = {s: np.array([tokenizer.num_tokens(len(seq)) for seq, _ in rows[s]], np.int64) for s in SPLITS}
    L = int(max(int(n.max()) for n in n_tok.values()))

    summary = {}
    for s in SPLITS:
        lab = np.stack([e.labels for _, e in rows[s]])
        lengths = [len(seq) for seq, _ in rows[s]]
        summary[s] = {
            "rows": len(rows[s]),
            "positives": [int(x) for x in (lab == 1.0).sum(axis=0)],
            "observed": [int(x) for x in (~np.isnan(lab)).sum(axis=0)],
            "duplicates": int(sum(c - 1 for _, e in rows[s] for c in e.copies.values())) + gone[s]["duplicates"],
            "conflicts": int(sum(int(e.conflicted.sum()) for _, e in rows[s])) + gone[s]["conflicts"],
            "removed_leak": removed[s],
            "unlabelled": unlab[s],
            "min_bp": int(min(lengths)),
            "max_bp": int(max(lengths)),
        }
    files = []
    for inp in inputs:
        files.append({"file": str(inp.path), "name": inp.path.name, "role": inp.role, "sha256": sha256sum(inp.path)})
    source = {"kind": "task", "files": files}
    config = {
        "task_kind": task_kind,
        "input": kind.lstrip("-").split("/")[0] if kind != "--tables" else "tables",
        "inputs": [{"role": f["role"], "file": f["file"]} for f in files],
        "label_names": label_names,
        "seed": seed,
        "k": tokenizer.k,
        "stride": tokenizer.stride,
        "tokenizer_from": str(like) if like is not None else None,
        "window_tokens": L,
        "split_rule": rule,
        "summary": summary,
    }

    # ---- write all three, renamed together at the end
    with contextlib.ExitStack() as stack:
        for s in SPLITS:
            w = stack.enter_context(_TaskStoreWriter(
                paths[s], tokenizer=tokenizer, window_tokens=L, source=source, split=s, config=config,
                label_names=label_names, overwrite=overwrite))
            n = len(rows[s])
            for a in range(0, n, 4096):
                part = rows[s][a : a + 4096]
                toks = np.full((len(part), L), PAD_ID, dtype=tokenizer.dtype)
                for i, (seq, _) in enumerate(part):
                    ids = tokenizer.encode(seq)
                    toks[i, : len(ids)] = ids
                w.append(toks, seqid=[e.seqid for _, e in part], start=np.zeros(len(part), np.int64),
                         end=[len(seq) for seq, _ in part], strand=["+"] * len(part),
                         labels=np.stack([e.labels for _, e in part]))
            w.write_sequences([seq for seq, _ in rows[s]])
    return {"task_kind": task_kind, "label_names": label_names, "tokenizer": tokenizer.to_dict(),
            "window_tokens": L, "paths": {s: str(p) for s, p in paths.items()}, "summary": summary}


class _TaskStoreWriter(TokenStoreWriter):
    """A token-store writer that also stores the input sequences as ``/sequence`` (UTF-8 strings)."""

    def write_sequences(self, seqs: Iterable[str]) -> None:
        import h5py

        self._h5.create_dataset("sequence", data=list(seqs), dtype=h5py.string_dtype("utf-8"))

    def append_sequences(self, seqs: Sequence[str]) -> None:
        """Append to ``/sequence`` (created resizable on first use): for writers that stream their rows."""
        import h5py

        f = self._h5
        if "sequence" not in f:
            f.create_dataset("sequence", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
                             chunks=(1024,))
        d = f["sequence"]
        n = d.shape[0]
        d.resize(n + len(seqs), axis=0)
        d[n:] = list(seqs)


TaskStoreWriter = _TaskStoreWriter  # public name, for the genome-based builders (genomics_lm.genome_tasks)


def format_summary(label_names: Sequence[str], s: dict, split: str = "train") -> str:
    """One line of a split's summary: rows, positives per label, duplicates and other drops."""
    if len(label_names) == 1:
        labels = f"{s['positives'][0]:,} positive"
    else:
        labels = ", ".join(f"{n} {p:,}/{o:,}" for n, p, o in zip(label_names, s["positives"], s["observed"]))
        labels = f"positive/observed: {labels}"
    extra = [f"{s['duplicates']:,} duplicates dropped"]
    if s["conflicts"]:
        extra.append(f"{s['conflicts']:,} conflicting labels set to NaN")
    if s["removed_leak"]:
        extra.append(f"{s['removed_leak']:,} removed as also in {'val/test' if split == 'train' else 'test'}")
    if s["unlabelled"]:
        extra.append(f"{s['unlabelled']:,} without any observed label dropped")
    return f"{s['rows']:,} rows; {labels}; {'; '.join(extra)}"
