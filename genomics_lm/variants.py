"""Variant effects: a fine-tuned classifier's probabilities on the reference and alternate windows around each
variant of a VCF.

Stage functions only (no argument parsing, no printing); ``genomics-lm score --vcf`` (:mod:`genomics_lm.cli.score`)
calls :func:`score_variants`. Coordinates are 0-based, half-open; VCF ``POS`` (1-based) is ``pos0 = POS - 1``.

**Reading VCFs** (:func:`iter_vcf`): a small reader of our own, plain text or gzip/bgzip (by the magic bytes), LF or
CRLF. pysam installs here, but its ``VariantFile`` refuses plain-gzip VCFs ("seek not implemented in files
compressed by method 1"; the real GATK VCF of the data folder is such a file), and htslib prints its own
multi-line messages to stderr; cyvcf2 is the same htslib underneath. Scoring needs five columns, so the reader is
short and its errors are one line naming the file and line:

* ``##`` meta lines are skipped; the ``#CHROM`` header line must come before the first record and name the
  columns ``#CHROM POS ID REF ALT`` (tab-separated): a file without it is refused (not a VCF, or a header lost).
* Records: at least the five columns CHROM, POS (a positive integer), ID, REF (letters ACGTN, either case), ALT.
* ALT is split at commas: **a multi-allelic record gives one variant per ALT allele** (``allele`` = 1, 2, ...).
  Alleles of ACGTN letters are scored; symbolic ones (``<DEL>``, ``<NON_REF>``, ``*``, breakends with ``[``/``]``,
  ``.`` = no alternate) are skipped with a count (reason ``symbolic``).

**Windows** (:func:`variant_windows`): both windows are ``window`` bp long and start at the same genome position
``s = pos0 - window // 2``, so the first base of REF sits at offset ``window // 2`` of both (the variant is centred).
The reference window is the genome ``[s, s + window)``. The alternate window is the genome's left flank
``[s, pos0)``, then ALT, then the genome from the end of REF on (``pos0 + len(REF)``) for as many bases as fill
the window: **an insertion pushes the right flank out of the window, a deletion pulls more of it in**; for an SNV
the two windows differ in one base. A variant whose REF or ALT is longer than ``window - window // 2`` (it would not
fit its window) is skipped (``too_long``), as is one whose windows would run past an end of its FASTA record
(``edge``).

**Genome placement**: VCF chromosome names go through ``--chrom-map`` and the ``chr`` prefix rules of
:mod:`genomics_lm.peaks` (the same as ``make-task``), and records named in samtools region syntax
(``22:20000001-21000000``) are placed at their offset, so a whole-chromosome VCF can be scored against a piece of
the chromosome. Variants on a chromosome of the genome but outside its records are skipped (``outside``); on a
chromosome the genome lacks, skipped (``other_chrom``); when *no* chromosome of the VCF is in the genome, the run
is an error listing both name sets. REF is compared with the genome (case-insensitive): a mismatch is skipped
(``ref_mismatch``) and reported, or fatal with ``strict``.

**Scores** per label: ``p_ref``, ``p_alt``, ``diff = p_alt - p_ref`` and ``log_odds = logit(p_alt) - logit(p_ref)``
(natural log, probabilities clipped to ``[1e-7, 1 - 1e-7]`` first so that a saturated float32 sigmoid gives a
finite number); with ``both_strands`` each probability is the mean over the window and its reverse complement.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from genomics_lm.errors import UserError

_REF_RE = re.compile(r"^[ACGTNacgtn]+$")
_SYMBOLIC_RE = re.compile(r"^(<[^<>]*>|\*|\.|[^\[\]]*[\[\]].*)$")  # <ID>, *, ., breakends
HEADER_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT")
SKIP_REASONS = ("other_chrom", "outside", "ref_mismatch", "symbolic", "too_long", "edge")
LOGIT_EPS = 1e-7
CHUNK_VARIANTS = 2048  # variants scored at a time (memory: 2-4 windows each)


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF record: ``chrom`` as in the file, ``pos`` the 1-based VCF POS, ``ref``/``alt`` as in
    the file (alt is one allele), ``allele`` its 1-based index among the record's ALT alleles, ``line`` the file's
    1-based line number."""

    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    allele: int
    line: int

    @property
    def pos0(self) -> int:
        """0-based position of REF's first base on the chromosome."""
        return self.pos - 1

    @property
    def symbolic(self) -> bool:
        return not _REF_RE.match(self.alt)


def iter_vcf(path: str | os.PathLike) -> Iterator[Variant]:
    """The variants of a VCF, one per ALT allele, in file order (see the module docstring).

    Raises:
        UserError naming the file and line: no ``#CHROM`` header line before the first record (or none at all),
        a header that does not name ``#CHROM POS ID REF ALT``, fewer than five columns, a POS that is not a
        positive integer, a REF that is not ACGTN letters; no such file, corrupt gzip, bytes that are not text.
    """
    from genomics_lm.tasks import read_text

    path = Path(path)
    variants: list[Variant] = []

    def parse(fh) -> None:
        seen_header = False
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("##"):
                continue
            if line.startswith("#"):
                cols = line.split("\t")
                if tuple(c.strip() for c in cols[:5]) != HEADER_COLUMNS:
                    raise UserError(f"{path}: line {lineno}: the header line must name the VCF columns "
                                    f"{' '.join(HEADER_COLUMNS)} (tab-separated), got {line[:60]!r}")
                seen_header = True
                continue
            if not seen_header:
                raise UserError(f"{path}: line {lineno}: a record before the '#CHROM' header line (not a VCF, or "
                                "its header is missing)")
            f = line.split("\t")
            if len(f) < 5:
                raise UserError(f"{path}: line {lineno} has {len(f)} tab-separated column(s); a VCF record needs "
                                "at least CHROM, POS, ID, REF, ALT")
            chrom, pos, vid, ref, alt = (x.strip() for x in f[:5])
            if not pos.isdigit() or int(pos) < 1:
                raise UserError(f"{path}: line {lineno}: POS {pos!r} is not a positive integer (VCF is 1-based)")
            if not _REF_RE.match(ref):
                raise UserError(f"{path}: line {lineno}: REF {ref[:20]!r} is not a sequence of A, C, G, T, N")
            for i, a in enumerate(alt.split(","), 1):
                a = a.strip()
                if not (_REF_RE.match(a) or _SYMBOLIC_RE.match(a)):
                    raise UserError(f"{path}: line {lineno}: ALT allele {a[:20]!r} is neither a sequence of A, C, G, "
                                    "T, N nor a symbolic allele (<...>, *, ., breakend)")
                variants.append(Variant(chrom, int(pos), vid, ref, a, i, lineno))
        if not seen_header:
            raise UserError(f"{path}: no '#CHROM' header line (not a VCF file)")

    # the whole file is parsed before the first variant is used: errors come before any output
    read_text(path, parse)
    yield from variants


def variant_windows(genome_bytes: bytes, s: int, pos0: int, ref: str, alt: str, window: int) -> tuple[str, str]:
    """The reference and alternate windows of a variant (see the module docstring), upper-case strings of
    ``window`` bases each.

    Args:
        genome_bytes: the record's bases ``[s, s + len(genome_bytes))`` (must reach ``s + window`` and
            ``pos0 + len(ref) + window - window // 2 - len(alt)``).
        s: record position of the windows' first base (``pos0 - window // 2``).
        pos0, ref, alt: the variant in record coordinates (0-based), REF and one ALT allele.
    """
    seq = genome_bytes.decode("ascii", "replace").upper()
    half = pos0 - s
    ref_win = seq[:window]
    right = window - half - len(alt)
    a = half + len(ref)
    alt_win = seq[:half] + alt.upper() + seq[a: a + right]
    if len(ref_win) != window or len(alt_win) != window:
        raise ValueError(f"genome bytes too short for the windows ({len(seq)} bp from {s})")
    return ref_win, alt_win


def window_span(pos0: int, ref_len: int, alt_len: int, window: int) -> tuple[int, int] | None:
    """The genome interval ``[s, e)`` both windows of a variant are cut from, or None when REF or ALT is longer
    than ``window - window // 2`` (it would not fit its window)."""
    half = window // 2
    if ref_len > window - half or alt_len > window - half:
        return None
    s = pos0 - half
    return s, max(s + window, pos0 + ref_len + (window - half - alt_len))


def log_odds(p_alt: np.ndarray, p_ref: np.ndarray, eps: float = LOGIT_EPS) -> np.ndarray:
    """``logit(p_alt) - logit(p_ref)`` (natural log), probabilities clipped to ``[eps, 1 - eps]``; same shapes."""
    a = np.clip(p_alt, eps, 1 - eps)
    r = np.clip(p_ref, eps, 1 - eps)
    return (np.log(a) - np.log1p(-a)) - (np.log(r) - np.log1p(-r))


def _locate(spans, chrom: str, pos0: int, ref_len: int):
    """The record span holding ``[pos0, pos0 + ref_len)`` of a genome chromosome, or None."""
    for sp in spans.get(chrom, ()):
        if sp.offset <= pos0 and pos0 + ref_len <= sp.offset + sp.length:
            return sp
    return None


def effects_header(label_names: Sequence[str]) -> list[str]:
    """Columns of the effects table: the variant, then per label ``p_ref``, ``p_alt``, ``diff``, ``log_odds``."""
    from genomics_lm.score import _col

    cols = ["chrom", "pos", "id", "ref", "alt"]
    for n in label_names:
        cols += [f"p_ref:{_col(n)}", f"p_alt:{_col(n)}", f"diff:{_col(n)}", f"log_odds:{_col(n)}"]
    return cols


def score_variants(checkpoint, vcf, genome, out, *, window: int | None = None, both_strands: bool = False,
                   strict: bool = False, chrom_map: str | os.PathLike | None = None, prefix: str | None = None,
                   skipped_out: str | os.PathLike | None = None, batch_size: int = 64, device: str | None = "auto",
                   overwrite: bool = False, progress: bool = False, cache_dir=None) -> dict:
    """The VCF stage of ``genomics-lm score``: one row per scored variant allele, in VCF order.

    Columns: ``chrom pos id ref alt`` as in the VCF (one ALT allele per row), then per label ``p_ref:NAME``,
    ``p_alt:NAME``, ``diff:NAME`` (p_alt - p_ref), ``log_odds:NAME`` (``%.6g``). ``skipped_out`` (optional) lists
    every skipped allele with its reason and, for a REF mismatch, the genome's bases. Outputs are written under
    temporary names and renamed when complete.

    Returns:
        ``{"records", "alleles", "scored", "skipped": {reason: n}, "mismatches": [first few as text],
        "chroms_unmatched": [...], "window", "window_from", "label_names", "device", "seconds", "out"}``.
    Raises:
        UserError: checkpoint, genome or VCF problems; no VCF chromosome in the genome (both name sets listed);
            a REF mismatch with ``strict``; outputs that exist without ``overwrite`` or whose folder is missing.
    """
    from genomics_lm.files import atomic_write, check_output_path
    from genomics_lm.genome import Genome
    from genomics_lm.peaks import check_names_match, read_chrom_map, record_spans, rename_chrom
    from genomics_lm.score import (_check_out_folder, fmt_prob, load_model, model_facts, resolve_device,
                                   resolve_window, score_rows)
    from genomics_lm.tokenizer import reverse_complement

    outs = [check_output_path(out, overwrite)] + ([check_output_path(skipped_out, overwrite)] if skipped_out else [])
    for o in outs:
        _check_out_folder(o)
    dev = resolve_device(device)
    model = load_model(checkpoint, device=dev)
    tokenizer, add_cls, names, record = model_facts(model)
    window, _, where = resolve_window(record, tokenizer, window, None)
    cmap = read_chrom_map(chrom_map) if chrom_map is not None else None
    g = Genome(genome, cache_dir=cache_dir)
    spans = record_spans(g.lengths, g.path)
    variants = list(iter_vcf(vcf))
    vcf_chroms = sorted({v.chrom for v in variants})
    if variants:
        check_names_match(Path(vcf), vcf_chroms, spans, cmap, prefix, g.path, what="VCF")
    renamed = {c: rename_chrom(c, cmap, prefix) for c in vcf_chroms}

    skipped = dict.fromkeys(SKIP_REASONS, 0)
    skipped_lines: list[str] = []
    mismatches: list[str] = []
    jobs: list[tuple[Variant, str, str]] = []  # (variant, ref window, alt window) of the alleles to score

    def skip(v: Variant, reason: str, note: str = "") -> None:
        skipped[reason] += 1
        if skipped_out:
            skipped_lines.append("\t".join([v.chrom, str(v.pos), v.id, v.ref, v.alt, str(v.line), reason, note]))

    for v in variants:
        chrom = renamed[v.chrom]
        if chrom not in spans:
            skip(v, "other_chrom")
            continue
        sp = _locate(spans, chrom, v.pos0, len(v.ref))
        if sp is None:
            skip(v, "outside")
            continue
        p0 = v.pos0 - sp.offset  # record coordinates
        have = g.fetch_bytes(sp.record, p0, p0 + len(v.ref)).decode("ascii", "replace")
        if have.upper() != v.ref.upper():
            text = (f"line {v.line}: {v.chrom}:{v.pos} REF {v.ref} but the genome has {have} "
                    f"({sp.record}:{p0 + 1})")
            if strict:
                raise UserError(f"{vcf}: {text} (--strict)")
            if len(mismatches) < 10:
                mismatches.append(text)
            skip(v, "ref_mismatch", f"genome={have}")
            continue
        if v.symbolic:
            skip(v, "symbolic")
            continue
        span = window_span(p0, len(v.ref), len(v.alt), window)
        if span is None:
            skip(v, "too_long")
            continue
        if span[0] < 0 or span[1] > sp.length:
            skip(v, "edge")
            continue
        ref_w, alt_w = variant_windows(g.fetch_bytes(sp.record, span[0], span[1]), span[0], p0, v.ref, v.alt, window)
        jobs.append((v, ref_w, alt_w))

    t0 = time.perf_counter()
    header = effects_header(names)
    lines = ["\t".join(header)]
    bar_total = len(jobs)
    from genomics_lm.score import _bar

    bar = _bar(bar_total, progress, "variants")
    try:
        for a in range(0, len(jobs), CHUNK_VARIANTS):
            chunk = jobs[a: a + CHUNK_VARIANTS]
            wins = [w for _, r, al in chunk for w in (r, al)]  # ref, alt, ref, alt, ...
            rows = [tokenizer.encode(w) for w in wins]
            rc = [tokenizer.encode(reverse_complement(w)) for w in wins] if both_strands else None
            p = score_rows(model, rows, add_cls=add_cls, batch_size=batch_size, device=dev, rc_rows=rc)
            p_ref, p_alt = p[0::2], p[1::2]  # (n, C) each
            lo = log_odds(p_alt, p_ref)
            for i, (v, _, _) in enumerate(chunk):
                cells = [v.chrom, str(v.pos), v.id, v.ref, v.alt]
                for j in range(len(names)):
                    cells += [fmt_prob(p_ref[i, j]), fmt_prob(p_alt[i, j]), fmt_prob(p_alt[i, j] - p_ref[i, j]),
                              fmt_prob(lo[i, j])]
                lines.append("\t".join(cells))
            bar.update(len(chunk))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    import contextlib

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_write(outs[0]))
        tmp.write_text("\n".join(lines) + "\n")
        if skipped_out:
            tmp2 = stack.enter_context(atomic_write(outs[1]))
            tmp2.write_text("\n".join(["chrom\tpos\tid\tref\talt\tline\treason\tnote"] + skipped_lines) + "\n")
    return {"records": len({v.line for v in variants}), "alleles": len(variants), "scored": len(jobs),
            "skipped": skipped, "mismatches": mismatches,
            "chroms_unmatched": sorted(c for c, r in renamed.items() if r not in spans),
            "window": window, "window_from": where, "label_names": names, "device": str(dev), "seconds": seconds,
            "out": str(outs[0]), "both_strands": bool(both_strands)}
