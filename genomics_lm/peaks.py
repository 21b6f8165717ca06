"""Peak and TSS files, and how their chromosome names and coordinates land on the records of a genome FASTA.

Pure readers and mappers for :mod:`genomics_lm.genome_tasks`; nothing here reads the genome's bases.
Coordinates are 0-based, half-open everywhere (BED convention); 1-based inputs are converted where read.

Peak files (:func:`read_peaks`): BED3+ (BED, narrowPeak, broadPeak: ``chrom start end ...``) or a UCSC table
dump with a leading ``bin`` column (``bin chrom start end ...``), plain or gzip, LF or CRLF. Lines that are
empty or start with ``#``, ``track`` or ``browser`` are skipped. Fields are tab-separated (whitespace when a
line has no tab). The layout is decided once per file from its first data line: a leading ``bin`` column
when columns 1, 3 and 4 are integers and either column 2 is not an integer (it cannot be a BED start) or
column 1 is the UCSC bin of ``[column 3, column 4)`` (:func:`ucsc_bin`, the standard binning scheme of the
UCSC browser's tables; this is what tells ``585 1 118556 118713`` from a BED line with a numeric chromosome).

TSS files: :func:`read_tss_bed` (BED6: ``chrom start end name score strand``; the TSS is ``start`` on ``+``
and ``end - 1`` on ``-``, i.e. the first transcribed base of a feature) and :func:`read_regulondb`
(RegulonDB's ``PromoterSet.txt``: the 1-based +1 position becomes ``position - 1``).

Genome records (:func:`record_spans`): a record named in samtools region syntax, ``CHROM:START-END``
(1-based, inclusive; commas allowed), is that region of chromosome ``CHROM``: record base 0 is chromosome
position ``START - 1`` (0-based). ``22:20000001-21000000`` is ``22`` from 20,000,000 (0-based) on. Every other
record is a whole chromosome of its own name at offset 0.

Chromosome names (:func:`rename_chrom`): a file's name is first looked up in the ``--chrom-map`` (two
columns, name in the file -> chromosome name in the genome, like ``bcftools annotate --rename-chrs``); a name
not in the map gets the prefix rule (``add``: ``22`` -> ``chr22``; ``strip``: ``chr22`` -> ``22``; None: as
is). A file none of whose chromosomes is in the genome is an error that lists both sets of names and the
option that would match them: a naming mismatch never yields silently zero positives.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from genomics_lm.errors import UserError
from genomics_lm.tasks import read_text

_REGION = re.compile(r"^(?P<chrom>.+):(?P<start>[0-9][0-9,]*)-(?P<end>[0-9][0-9,]*)$")
_SKIP_PREFIXES = ("#", "track", "browser")
PREFIX_RULES = (None, "add", "strip")


# ------------------------------------------------------------------------------------------------ genome records
@dataclass(frozen=True)
class RecordSpan:
    """Where a FASTA record lies on its chromosome.

    Record base ``i`` is chromosome position ``offset + i`` (0-based). ``chrom_end`` is the chromosome's
    length where known (a whole-chromosome record, or a region record shorter than its name says, i.e. cut at
    the chromosome's end by samtools), else None.
    """

    record: str
    chrom: str
    offset: int
    length: int
    is_region: bool
    chrom_end: int | None


def parse_region(name: str) -> tuple[str, int, int] | None:
    """``CHROM:START-END`` (samtools, 1-based inclusive) -> ``(CHROM, START - 1, END)`` (0-based half-open), or None."""
    m = _REGION.match(name)
    if not m:
        return None
    start, end = int(m["start"].replace(",", "")), int(m["end"].replace(",", ""))
    if start < 1 or end < start:
        return None
    return m["chrom"], start - 1, end


def record_spans(lengths: dict[str, int], genome_path: str | os.PathLike = "genome") -> dict[str, list[RecordSpan]]:
    """Chromosome name -> the records on it (in file order), from record names and lengths.

    Raises:
        UserError: a region-named record longer than its region (the name and the sequence disagree).
    """
    spans: dict[str, list[RecordSpan]] = {}
    for name, n in lengths.items():
        region = parse_region(name)
        if region is None:
            span = RecordSpan(name, name, 0, n, False, n)
        else:
            chrom, a, b = region
            if n > b - a:
                raise UserError(f"{genome_path}: record {name!r} is named as a region of {b - a:,} bp (samtools "
                                f"syntax, 1-based inclusive) but holds {n:,} bp; rename the record")
            span = RecordSpan(name, chrom, a, n, True, a + n if n < b - a else None)
        spans.setdefault(span.chrom, []).append(span)
    return spans


# ------------------------------------------------------------------------------------------------ names
def read_chrom_map(path: str | os.PathLike) -> dict[str, str]:
    """A two-column mapping file (name in the peak/TSS file, name in the genome), whitespace-separated.

    ``#`` lines and blank lines are skipped. Raises UserError naming the line for a line without exactly two
    columns or a name mapped twice to different targets.
    """
    path = Path(path)

    def parse(fh) -> dict[str, str]:
        out: dict[str, str] = {}
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise UserError(f"{path}: line {lineno}: expected two columns (name in the peak/TSS file, name in "
                                f"the genome), got {len(parts)}")
            old, new = parts
            if out.get(old, new) != new:
                raise UserError(f"{path}: line {lineno}: {old!r} is mapped twice ({out[old]!r} and {new!r})")
            out[old] = new
        if not out:
            raise UserError(f"{path}: empty chromosome map (no 'OLD NEW' line)")
        return out

    return read_text(path, parse)


def rename_chrom(name: str, chrom_map: dict[str, str] | None = None, prefix: str | None = None) -> str:
    """The genome chromosome name of a file's chromosome ``name``: the map first, else the prefix rule."""
    if chrom_map and name in chrom_map:
        return chrom_map[name]
    if prefix == "add" and not name.startswith("chr"):
        return "chr" + name
    if prefix == "strip" and name.startswith("chr"):
        return name[3:]
    return name


def _listing(names: Sequence[str], n: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names):,} in all)" if len(names) > n else "")


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def check_names_match(path: Path, file_chroms: Sequence[str], spans: dict[str, list[RecordSpan]],
                      chrom_map: dict[str, str] | None, prefix: str | None, genome_path, what: str = "peak") -> None:
    """Raise a UserError when none of ``file_chroms`` (after renaming) is a chromosome of the genome.

    The message lists both sets of names and suggests the option that would match (a prefix rule, when it
    would match some names) or ``--chrom-map``.
    """
    renamed = {rename_chrom(c, chrom_map, prefix) for c in file_chroms}
    if renamed & spans.keys():
        return
    file_names = sorted(set(file_chroms), key=_natural)
    genome_names = sorted(spans, key=_natural)
    records = [s.record for v in spans.values() for s in v if s.is_region]
    hints = []
    for rule, flag in (("strip", "--strip-chr-prefix"), ("add", "--add-chr-prefix")):
        if rule != prefix and {rename_chrom(c, chrom_map, rule) for c in file_chroms} & spans.keys():
            hints.append(flag)
    hint = (f"use {hints[0]} (it matches the names) or" if hints else "map them with") + \
        " --chrom-map FILE (two columns: name in the file, name in the genome)"
    applied = (f" after the {'--add-chr-prefix' if prefix == 'add' else '--strip-chr-prefix'} rule" if prefix
               else "") + (" and the --chrom-map" if chrom_map else "")
    where = f" (records named as regions: {_listing(records, 4)})" if records else ""
    raise UserError(f"{path}: none of the {what} file's chromosomes is in the genome{applied}: file has "
                    f"{_listing(file_names)}; genome {genome_path} has {_listing(genome_names)}{where}; {hint}")


# ------------------------------------------------------------------------------------------------ peak files
def ucsc_bin(start: int, end: int) -> int:
    """The UCSC browser's bin of ``[start, end)`` (standard scheme up to 512 Mb, extended scheme beyond)."""
    end = max(end, start + 1)
    if end <= 1 << 29:
        offsets, first, nxt, extra = (512 + 64 + 8 + 1, 64 + 8 + 1, 8 + 1, 1, 0), 17, 3, 0
    else:
        offsets, first, nxt, extra = (4096 + 512 + 64 + 8 + 1, 512 + 64 + 8 + 1, 64 + 8 + 1, 8 + 1, 1, 0), 17, 3, 4681
    s, e = start >> first, (end - 1) >> first
    for off in offsets:
        if s == e:
            return extra + off + s
        s, e = s >> nxt, e >> nxt
    raise ValueError(f"interval {start}-{end} out of range for UCSC bins")


def _int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isdigit() else None


def _fields(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def _is_bin_layout(fields: list[str]) -> bool:
    """Whether a data line starts with a UCSC ``bin`` column (see the module docstring)."""
    if len(fields) < 4:
        return False
    b, s, e = _int(fields[0]), _int(fields[2]), _int(fields[3])
    if b is None or s is None or e is None:
        return False
    if _int(fields[1]) is None:
        return bool(fields[1].strip())
    return e > s and ucsc_bin(s, e) == b


@dataclass
class Intervals:
    """Intervals of a BED-like file, 0-based half-open, in file order.

    ``chrom`` (n,) the file's names; ``start``/``end`` (n,) int64; ``line`` (n,) int64 1-based line numbers;
    ``strand`` (n,) ``"+"``/``"-"`` (TSS files) or None; ``layout`` ``"bed"`` or ``"ucsc-bin"``.
    """

    path: Path
    chrom: list[str]
    start: np.ndarray
    end: np.ndarray
    line: np.ndarray
    layout: str
    strand: list[str] | None = None
    names: list[str] | None = None


def _data_lines(fh):
    """``(line number, fields)`` of the data lines (header, comment, track and browser lines skipped)."""
    for lineno, raw in enumerate(fh, 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith(_SKIP_PREFIXES):
            continue
        yield lineno, _fields(line)


def read_peaks(path: str | os.PathLike) -> Intervals:
    """Peaks of a BED3+/narrowPeak/broadPeak file or a UCSC table dump with a ``bin`` column.

    Returns:
        :class:`Intervals` (0-based half-open, as in the file).
    Raises:
        UserError naming the file and line: fewer than 3 columns (4 with a bin column), a start or end that is
        not a non-negative integer, ``end <= start``, no data line.
    """
    path = Path(path)

    def parse(fh) -> Intervals:
        chrom, start, end, lines = [], [], [], []
        layout = None
        for lineno, f in _data_lines(fh):
            if layout is None:
                layout = "ucsc-bin" if _is_bin_layout(f) else "bed"
            skip = 1 if layout == "ucsc-bin" else 0
            if len(f) < 3 + skip:
                need = "bin, chrom, start, end (UCSC table dump)" if skip else "chrom, start, end (BED3+)"
                raise UserError(f"{path}: line {lineno} has {len(f)} column(s); a peak file needs at least {need}")
            c, s, e = f[skip].strip(), _int(f[skip + 1]), _int(f[skip + 2])
            if s is None or e is None:
                bad = f[skip + 1] if s is None else f[skip + 2]
                raise UserError(f"{path}: line {lineno}: {'start' if s is None else 'end'} {bad.strip()!r} is not a "
                                f"non-negative integer ({'UCSC dump: bin chrom start end' if skip else 'BED: chrom start end'})")
            if e <= s:
                raise UserError(f"{path}: line {lineno}: peak {c}:{s}-{e} has end <= start (BED is 0-based, "
                                "half-open: end > start)")
            chrom.append(c)
            start.append(s)
            end.append(e)
            lines.append(lineno)
        if not chrom:
            raise UserError(f"{path}: no peak (no data line)")
        return Intervals(path, chrom, np.asarray(start, np.int64), np.asarray(end, np.int64),
                         np.asarray(lines, np.int64), layout or "bed")

    return read_text(path, parse)


# ------------------------------------------------------------------------------------------------ mapping
@dataclass
class Mapped:
    """Intervals of a file placed on the genome's records (record coordinates, 0-based half-open).

    ``per_record[record]``: (m, 2) int64 ``[start, end)`` clipped to the record, sorted by start;
    ``index[record]``: (m,) int64 index of each interval in the file's :class:`Intervals`.
    ``stats``: ``total`` intervals, ``on_genome`` (placed on at least one record), ``outside`` (on a genome
    chromosome but outside its region records), ``other_chrom`` (on a chromosome the genome lacks),
    ``chroms_matched``/``chroms_unmatched`` (file names, sorted).
    """

    per_record: dict[str, np.ndarray]
    index: dict[str, np.ndarray]
    stats: dict = field(default_factory=dict)


def map_intervals(iv: Intervals, spans: dict[str, list[RecordSpan]], *, chrom_map: dict[str, str] | None = None,
                  prefix: str | None = None, genome_path="genome", what: str = "peak") -> Mapped:
    """Place ``iv`` (chromosome coordinates) on the genome's records.

    An interval on a region record is shifted by the record's offset and clipped to it (one that does not
    overlap the region is counted as ``outside``). A TSS is the 1-bp interval ``[p, p + 1)``.

    Raises:
        UserError: no chromosome of the file in the genome (both name sets listed, see
            :func:`check_names_match`); an interval ending beyond its chromosome's known end (the file and line).
    """
    check_names_match(iv.path, iv.chrom, spans, chrom_map, prefix, genome_path, what)
    renamed_of = {c: rename_chrom(c, chrom_map, prefix) for c in set(iv.chrom)}
    target = np.array([renamed_of[c] for c in iv.chrom], dtype=object)
    placed = np.zeros(len(iv.chrom), bool)
    known = np.isin(target, list(spans))
    per_record: dict[str, np.ndarray] = {}
    index: dict[str, np.ndarray] = {}
    for chrom, chrom_spans in spans.items():
        idx = np.flatnonzero(target == chrom)
        if not len(idx):
            continue
        s, e = iv.start[idx], iv.end[idx]
        ends = [sp.chrom_end for sp in chrom_spans if sp.chrom_end is not None]
        if ends:
            bad = np.flatnonzero(e > max(ends))
            if len(bad):
                i = idx[bad[0]]
                sp = next(x for x in chrom_spans if x.chrom_end == max(ends))
                where = (f"{what} at {iv.chrom[i]}:{iv.start[i]} (0-based) is outside" if what == "TSS" else
                         f"{what} {iv.chrom[i]}:{iv.start[i]}-{iv.end[i]} ends beyond the end of")
                raise UserError(f"{iv.path}: line {iv.line[i]}: {where} chromosome {chrom!r} ({max(ends):,} bp; "
                                f"record {sp.record!r} of {genome_path})")
        for sp in chrom_spans:
            rs, re_ = s - sp.offset, e - sp.offset
            inside = (rs < sp.length) & (re_ > 0)
            sel = np.flatnonzero(inside)
            order = np.argsort(rs[sel], kind="stable")
            sel = sel[order]
            per_record[sp.record] = np.stack([np.clip(rs[sel], 0, sp.length), np.clip(re_[sel], 0, sp.length)],
                                             axis=1).astype(np.int64).reshape(-1, 2)
            index[sp.record] = idx[sel]
            placed[idx[sel]] = True
    matched = sorted({c for c, r in renamed_of.items() if r in spans}, key=_natural)
    unmatched = sorted({c for c, r in renamed_of.items() if r not in spans}, key=_natural)
    stats = {"total": len(iv.chrom), "on_genome": int(placed.sum()), "outside": int((known & ~placed).sum()),
             "other_chrom": int((~known).sum()), "chroms_matched": matched, "chroms_unmatched": unmatched}
    return Mapped(per_record, index, stats)


# ------------------------------------------------------------------------------------------------ TSS files
@dataclass
class TssTable:
    """TSS positions as read: ``chrom`` (n,) file names (None for a file without a chromosome column),
    ``pos`` (n,) int64 0-based, ``strand`` (n,) ``"+"``/``"-"``, ``line`` (n,) 1-based line numbers,
    ``names`` (n,), and for RegulonDB ``seq81`` (n,) the file's -60..+20 sequence ("" when absent),
    ``sigma`` (n,); ``skipped`` rows without a position."""

    path: Path
    chrom: list[str] | None
    pos: np.ndarray
    strand: list[str]
    line: np.ndarray
    names: list[str]
    seq81: list[str] | None = None
    sigma: list[str] | None = None
    skipped: int = 0
    format: str = "bed"

    def as_intervals(self, chrom: str | None = None) -> Intervals:
        """The positions as 1-bp intervals ``[pos, pos + 1)`` (``chrom`` for a file without chromosomes)."""
        chroms = self.chrom if self.chrom is not None else [chrom] * len(self.pos)
        return Intervals(self.path, list(chroms), self.pos.copy(), self.pos + 1, self.line.copy(), self.format,
                         list(self.strand), list(self.names))


def read_tss_bed(path: str | os.PathLike) -> TssTable:
    """TSSs of a BED6 file: ``chrom start end name score strand``; the TSS is ``start`` on ``+`` and ``end - 1``
    on ``-`` (the first transcribed base of the interval, 0-based). A leading UCSC ``bin`` column is accepted.

    Raises:
        UserError naming the file and line: fewer than 6 columns, a bad start/end, ``end <= start``, a strand
        other than ``+``/``-``, no data line.
    """
    path = Path(path)

    def parse(fh) -> TssTable:
        chrom, pos, strand, lines, names = [], [], [], [], []
        layout = None
        for lineno, f in _data_lines(fh):
            if layout is None:
                layout = "ucsc-bin" if _is_bin_layout(f) else "bed"
            f = f[1:] if layout == "ucsc-bin" else f
            if len(f) < 6:
                raise UserError(f"{path}: line {lineno} has {len(f)} column(s); a TSS file is BED6 (chrom, start, "
                                "end, name, score, strand) and needs the strand column")
            s, e = _int(f[1]), _int(f[2])
            if s is None or e is None:
                raise UserError(f"{path}: line {lineno}: start/end {f[1].strip()!r}/{f[2].strip()!r} are not "
                                "non-negative integers")
            if e <= s:
                raise UserError(f"{path}: line {lineno}: {f[0]}:{s}-{e} has end <= start")
            st = f[5].strip()
            if st not in ("+", "-"):
                raise UserError(f"{path}: line {lineno}: unknown strand {st!r} (a TSS needs '+' or '-')")
            chrom.append(f[0].strip())
            pos.append(s if st == "+" else e - 1)
            strand.append(st)
            lines.append(lineno)
            names.append(f[3].strip())
        if not chrom:
            raise UserError(f"{path}: no TSS (no data line)")
        return TssTable(path, chrom, np.asarray(pos, np.int64), strand, np.asarray(lines, np.int64), names,
                        format="bed")

    return read_text(path, parse)


REGULONDB_STRANDS = {"forward": "+", "reverse": "-"}


def read_regulondb(path: str | os.PathLike) -> TssTable:
    """RegulonDB ``PromoterSet.txt``: ``#`` header, then tab-separated id, name, strand (forward/reverse),
    +1 position (1-based), sigma, 81-nt sequence (-60..+20, +1 upper case), evidence, confidence.

    The 0-based TSS is ``position - 1``. Rows whose position is empty or 0 are skipped (``skipped``).
    The file has no chromosome column (``chrom`` is None): its positions are on the one chromosome
    (NC_000913.3 = U00096.3).

    Raises:
        UserError naming the file and line: fewer than 4 columns, a position that is not an integer, a strand
        other than forward/reverse (either case), no promoter with a position.
    """
    path = Path(path)

    def parse(fh) -> TssTable:
        pos, strand, lines, names, seqs, sigma = [], [], [], [], [], []
        skipped = 0
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            f = line.split("\t")
            if len(f) < 4:
                raise UserError(f"{path}: line {lineno} has {len(f)} tab-separated column(s); RegulonDB "
                                "PromoterSet rows have id, name, strand, +1 position, sigma, sequence, ...")
            p = f[3].strip()
            if p in ("", "0"):
                skipped += 1
                continue
            if not p.isdigit():
                raise UserError(f"{path}: line {lineno}: +1 position {p!r} is not a positive integer")
            st = REGULONDB_STRANDS.get(f[2].strip().lower())
            if st is None:
                raise UserError(f"{path}: line {lineno}: unknown strand {f[2].strip()!r} (RegulonDB uses forward "
                                "or reverse)")
            pos.append(int(p) - 1)  # 1-based +1 -> 0-based
            strand.append(st)
            lines.append(lineno)
            names.append(f[1].strip() or f[0].strip())
            seqs.append(f[5].strip() if len(f) > 5 else "")
            sigma.append(f[4].strip() if len(f) > 4 else "")
        if not pos:
            raise UserError(f"{path}: no promoter with a +1 position (is this a RegulonDB PromoterSet file?)")
        return TssTable(path, None, np.asarray(pos, np.int64), strand, np.asarray(lines, np.int64), names, seqs,
                        sigma, skipped, format="regulondb")

    return read_text(path, parse)
