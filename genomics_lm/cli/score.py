"""``genomics-lm score``: parse, run one of the three scoring stages, print a summary.

Sequences (:func:`genomics_lm.score.score_fasta`), genome tracks (:func:`genomics_lm.tracks.score_track`) and
variant effects (:func:`genomics_lm.variants.score_variants`); the mode follows from the inputs given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genomics_lm.cli import RawHelpFormatter, add_chr_prefix_options

DESCRIPTION = """\
Score DNA with a fine-tuned checkpoint (RUN/finetuned.pt of 'genomics-lm finetune'). Three modes:

  sequences   --fasta SEQS.fa[.gz] --out SCORES.tsv
              one row per record, in input order: id, length, one probability per label
  track       --genome G.fa [--regions REGIONS.bed] --out-prefix PREFIX
              windows tiled over the regions (default: every record): PREFIX.LABEL.bedGraph per label,
              and PREFIX.LABEL.bw when pyBigWig is installed (pip install 'genomics_lm[tracks]')
  variants    --vcf VARIANTS.vcf[.gz] --genome G.fa --out EFFECTS.tsv
              per ALT allele and label: p_ref, p_alt, diff (alt - ref), log_odds (logit alt - logit ref)

The tokenizer (k, stride), [CLS] use and label names come from the checkpoint. Sequences are
sorted by length into batches (shorter ones padded and masked); the output is in input order.
Records longer than --window are tiled (windows every --step bp, the last one ending at the
record's end) and their window probabilities aggregated (--aggregate). The default window is the
training length recorded in the checkpoint, else 1,024 tokens (printed); the default step is
half the window. IUPAC codes (RYKMSWBDHVN) become [UNK]; any other character is an error that
names the record and position.

Track windows: a window's probability is written over its central min(step, window) bases;
windows with more than --max-n-frac non-ACGT bases are skipped. Records named in samtools
region syntax (22:20000001-21000000) are placed at the chromosome positions they name.

Variant windows: --window bp starting window//2 bases before REF (REF's first base centred);
the alternate window keeps the left flank, puts ALT in, and fills the rest from the genome after
REF (insertions push bases out on the right, deletions pull more in). REF is checked against
the genome: mismatches are skipped and counted (fatal with --strict). Multi-allelic records give
one row per ALT allele. Variants off the genome's records (a whole-chromosome VCF against a piece
of it) and symbolic alleles are skipped and counted; --skipped FILE lists each with its reason.

Chromosome names of the VCF/regions file match the genome's through --chrom-map or the chr-prefix
options (as in 'genomics-lm make-task'); --out-chrom-map / --out-add-chr-prefix name the track's
chromosomes (e.g. write chr22 for a genome record 22:20000001-21000000)."""


def build_parser() -> argparse.ArgumentParser:
    from genomics_lm.score import AGGREGATES, DEFAULT_AGGREGATE
    from genomics_lm.tracks import DEFAULT_MAX_N_FRAC

    p = argparse.ArgumentParser(prog="genomics-lm score", description=DESCRIPTION, formatter_class=RawHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PT",
                   help="the fine-tuned model: RUN/finetuned.pt (or a fine-tuning .ckpt)")
    inp = p.add_argument_group("inputs (the mode)")
    inp.add_argument("--fasta", type=Path, metavar="SEQS.fa", help="sequences to score, FASTA (plain or gzip)")
    inp.add_argument("--genome", type=Path, metavar="G.fa",
                     help="genome FASTA (plain, gzip or bgzip): the track's sequence, or the VCF's reference")
    inp.add_argument("--vcf", type=Path, metavar="VARIANTS.vcf", help="variants, VCF (plain, gzip or bgzip); needs --genome")
    inp.add_argument("--regions", type=Path, metavar="BED",
                     help="track only: regions to tile (BED3+, chromosome coordinates; default: every record)")
    out = p.add_argument_group("outputs")
    out.add_argument("--out", type=Path, metavar="TSV", help="the table (sequences and variants modes)")
    out.add_argument("--out-prefix", metavar="PREFIX", help="track mode: PREFIX.LABEL.bedGraph (and .bw)")
    out.add_argument("--skipped", type=Path, metavar="TSV", help="variants mode: also list every skipped allele and why")
    bw = out.add_mutually_exclusive_group()
    bw.add_argument("--bigwig", dest="bigwig", action="store_const", const=True, default=None,
                    help="track: require bigWig output (default: written when pyBigWig is installed)")
    bw.add_argument("--no-bigwig", dest="bigwig", action="store_const", const=False, help="track: bedGraph only")
    out.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    sc = p.add_argument_group("scoring")
    sc.add_argument("--window", type=int, default=None, metavar="BP",
                    help="model input in bp (default: the checkpoint's training length, else 1,024 tokens)")
    sc.add_argument("--step", type=int, default=None, metavar="BP", help="bp between windows (default: window // 2)")
    sc.add_argument("--aggregate", choices=AGGREGATES, default=DEFAULT_AGGREGATE,
                    help=f"sequences: how the windows of a long record combine (default: {DEFAULT_AGGREGATE})")
    sc.add_argument("--both-strands", action="store_true",
                    help="average each window's probabilities with its reverse complement's")
    sc.add_argument("--max-n-frac", type=float, default=DEFAULT_MAX_N_FRAC, metavar="F",
                    help="track: skip windows with a larger fraction of non-ACGT bases")
    sc.add_argument("--strict", action="store_true", help="variants: a REF that differs from the genome is an error")
    sc.add_argument("--batch-size", type=int, default=64, metavar="N", help="windows per forward pass")
    sc.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    sc.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    names = p.add_argument_group("chromosome names")
    names.add_argument("--chrom-map", type=Path, metavar="FILE",
                       help="VCF/regions names -> genome names (two columns: name in the file, name in the genome)")
    add_chr_prefix_options(names, "VCF/regions")
    names.add_argument("--out-chrom-map", type=Path, metavar="FILE",
                       help="track: genome names -> written names (two columns: genome name, name to write)")
    opre = names.add_mutually_exclusive_group()
    opre.add_argument("--out-add-chr-prefix", dest="out_chr_prefix", action="store_const", const="add",
                      help="track: write 'chr22' for the genome's '22' (after --out-chrom-map)")
    opre.add_argument("--out-strip-chr-prefix", dest="out_chr_prefix", action="store_const", const="strip",
                      help="track: write '22' for the genome's 'chr22' (after --out-chrom-map)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="FASTA indexes/copies where the genome's folder is read-only (default: $GENOMICS_LM_CACHE)")
    return p


def _mode(args) -> str:
    """sequences | track | variants, or a UserError for a combination that is none of them."""
    from genomics_lm.errors import UserError

    if args.fasta and (args.genome or args.vcf):
        raise UserError("--fasta scores sequences on their own: give either --fasta or --genome (with --vcf)")
    if args.fasta:
        mode = "sequences"
    elif args.vcf:
        if not args.genome:
            raise UserError("--vcf needs --genome (the reference the variants are on)")
        mode = "variants"
    elif args.genome:
        mode = "track"
    else:
        raise UserError("give --fasta (sequences), --genome (a track) or --vcf with --genome (variant effects)")
    needs_out = mode != "track"
    if needs_out and not args.out:
        raise UserError(f"{mode} mode writes a table: give --out FILE.tsv")
    if needs_out and args.out_prefix:
        raise UserError(f"--out-prefix is for tracks (--genome without --vcf); {mode} mode writes --out")
    if mode == "track" and not args.out_prefix:
        raise UserError("track mode (--genome without --vcf) writes files: give --out-prefix PREFIX")
    if mode == "track" and args.out:
        raise UserError("track mode writes PREFIX.LABEL.bedGraph: give --out-prefix, not --out")
    if args.regions and mode != "track":
        raise UserError("--regions is for tracks (--genome without --vcf)")
    if args.skipped and mode != "variants":
        raise UserError("--skipped is for variants (--vcf)")
    if args.strict and mode != "variants":
        raise UserError("--strict is for variants (--vcf)")
    if mode == "sequences" and (args.chrom_map or args.chr_prefix):
        raise UserError("chromosome-name options are for --vcf and --regions, not --fasta")
    if mode != "track" and (args.out_chrom_map or args.out_chr_prefix or args.bigwig is not None):
        raise UserError("--out-chrom-map, --out-*-chr-prefix and --[no-]bigwig are for tracks")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.window is not None and args.window < 1:
        raise UserError(f"--window must be a positive number of bases, got {args.window}")
    if args.step is not None and args.step < 1:
        raise UserError(f"--step must be a positive number of bases, got {args.step}")
    return mode


def _labels(names) -> str:
    return ", ".join(names[:6]) + (f", ... ({len(names)} labels)" if len(names) > 6 else "")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    mode = _mode(args)
    common = dict(batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
                  progress=not args.no_progress)
    if mode == "sequences":
        from genomics_lm.score import score_fasta

        s = score_fasta(args.checkpoint, args.fasta, args.out, window=args.window, step=args.step,
                        aggregate=args.aggregate, both_strands=args.both_strands, **common)
        print(f"scored {s['records']:,} records ({s['windows']:,} windows; {s['tiled']:,} records longer than the "
              f"window, aggregated by {s['aggregate']}) on {s['device']} in {s['seconds']:.1f} s")
        print(f"window {s['window']:,} bp ({s['window_from']}), step {s['step']:,} bp; labels: {_labels(s['label_names'])}"
              + ("; both strands" if s["both_strands"] else ""))
        print(f"wrote {s['out']}")
    elif mode == "track":
        from genomics_lm.tracks import score_track

        s = score_track(args.checkpoint, args.genome, args.out_prefix, regions=args.regions,
                        chrom_map=args.chrom_map, prefix=args.chr_prefix, out_chrom_map=args.out_chrom_map,
                        out_prefix_rule=args.out_chr_prefix, window=args.window, step=args.step,
                        max_n_frac=args.max_n_frac, both_strands=args.both_strands, bigwig=args.bigwig,
                        cache_dir=args.cache_dir, **common)
        print(f"scored {s['windows']:,} windows of {s['window']:,} bp every {s['step']:,} bp ({s['window_from']}) "
              f"on {s['device']} in {s['seconds']:.1f} s (writing {s['seconds_write']:.2f} s); skipped "
              f"{s['skipped_n']:,} windows with more than {args.max_n_frac:g} non-ACGT bases")
        if args.regions:
            print(f"regions: {s['regions']:,} in {args.regions.name}, {s['regions_on_genome']:,} on the genome "
                  f"({s['regions_tiled']:,} after merging), {s['regions_outside']:,} outside its records, "
                  f"{s['regions_other_chrom']:,} on other chromosomes; {s['regions_too_short']:,} shorter than "
                  "the window")
        for c, (a, b) in s["chroms"].items():
            print(f"track {c}:{a:,}-{b:,} (bins of {s['bin_bp']:,} bp; chromosome size {s['sizes'][c]:,})")
        if not s["bigwig"]:
            print("bedGraph only (bigWig: pip install 'genomics_lm[tracks]')" if args.bigwig is None else
                  "bedGraph only (--no-bigwig)")
        print("wrote " + ", ".join(s["files"]))
    else:
        from genomics_lm.variants import score_variants

        s = score_variants(args.checkpoint, args.vcf, args.genome, args.out, window=args.window,
                           both_strands=args.both_strands, strict=args.strict, chrom_map=args.chrom_map,
                           prefix=args.chr_prefix, skipped_out=args.skipped, cache_dir=args.cache_dir, **common)
        sk = s["skipped"]
        print(f"scored {s['scored']:,} of {s['alleles']:,} alleles ({s['records']:,} VCF records) on {s['device']} "
              f"in {s['seconds']:.1f} s; window {s['window']:,} bp ({s['window_from']})"
              + ("; both strands" if s["both_strands"] else ""))
        print("skipped: " + ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in sk.items())
              + (f" (chromosomes not in the genome: {', '.join(s['chroms_unmatched'][:8])})"
                 if s["chroms_unmatched"] else ""))
        for text in s["mismatches"]:
            print(f"REF mismatch, skipped: {text}", file=sys.stderr)
        if sk["ref_mismatch"] > len(s["mismatches"]):
            print(f"... {sk['ref_mismatch'] - len(s['mismatches']):,} more REF mismatches"
                  + (f" (see {args.skipped})" if args.skipped else " (--skipped FILE lists them all)"), file=sys.stderr)
        print("wrote " + s["out"] + (f", {args.skipped}" if args.skipped else ""))
    return 0
