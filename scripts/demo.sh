#!/usr/bin/env bash
# Set up (.venv) and run the demo pipeline on real data with configs/demo.yaml, on this machine's CPUs (about
# 15 minutes on 2 cores): inputs checked against data/MANIFEST.tsv, tokenize (E. coli, single bases), masked-LM
# pretraining of a tiny encoder with each attention type (bigbird, longformer, dense) and its summary table, three
# fine-tuning tasks (E. coli sigma-70, GUE prom_300_tata, K562 chromatin features on hg19 chr22) fine-tuned with
# each attention type, evaluated next to the k-mer baseline and compared, a FASTA and a VCF scored with one of the
# models, and results/demo/report.html. The summary and compare tables are printed at the end.
# Options are passed on to snakemake (e.g. -n for a dry run). Data: $GENOMICS_LM_DATA if set, else the config's
# data_dir (../shared/data); either way the same files are the same workflow inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
RESULTS=results/demo
echo "demo: running the whole workflow: inputs, tokenize, pretrain, summary, tasks, finetune, evaluate, compare, score, report"
echo "demo: data from ${GENOMICS_LM_DATA:-../shared/data (data_dir of configs/demo.yaml)}"
echo "demo: outputs in $RESULTS/: tokens/ecoli/{train,val,test}.h5;" \
     "pretrain/ecoli/{bigbird,longformer,dense}/ (pretrained.pt, csv/metrics.csv, checkpoints/);" \
     "pretrain/ecoli/summary.tsv; tasks/TASK/; finetune/TASK/ATTENTION_s0/; eval/TASK/ (compare.tsv);" \
     "score/{sequences,effects}.tsv; report.html"
echo "demo: logs in $RESULTS/logs/STAGE/, times and memory in $RESULTS/benchmarks/STAGE/ (Snakemake's own log in .snakemake/log/)"
.venv/bin/snakemake --profile workflow/profiles/default --configfile configs/demo.yaml "$@"

shown=0
for summary in "$RESULTS"/pretrain/*/summary.tsv; do
  [ -f "$summary" ] || continue
  echo
  echo "demo: $summary"
  if command -v column >/dev/null; then
    grep -v '^#' "$summary" | column -t -s $'\t'
  else
    grep -v '^#' "$summary"
  fi
  grep '^#' "$summary" | sed 's/^# /note: /'
  shown=1
done
for table in "$RESULTS"/eval/*/compare.tsv; do
  [ -f "$table" ] || continue
  echo
  echo "demo: $table"
  if command -v column >/dev/null; then column -t -s $'\t' "$table"; else cat "$table"; fi
done
[ -f "$RESULTS/report.html" ] && echo && echo "demo: report: $RESULTS/report.html"
if [ "$shown" = 0 ]; then
  echo "demo: no summary table yet in $RESULTS/pretrain/*/summary.tsv (dry run, or a job failed: see $RESULTS/logs/)"
fi
