#!/usr/bin/env bash
# Set up (.venv) and run the demo pipeline on real data with configs/demo.yaml, on this machine's CPUs.
# Stages built so far: tokenize (FASTA -> HDF5 3-mer token stores), masked-LM pretraining of a tiny encoder with
# each attention type (bigbird, longformer, dense; about 1.5 min each on 2 cores), and a summary table of their
# final validation loss/accuracy next to the unigram baseline, printed at the end. See README.md "Status".
# Options are passed on to snakemake (e.g. -n for a dry run). Data: $GENOMICS_LM_DATA if set, else the config's
# data_dir (../shared/data); either way the same files are the same workflow inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
RESULTS=results/demo
echo "demo: running the workflow stages built so far: tokenize, pretrain, summary (evaluations land with later issues)"
echo "demo: data from ${GENOMICS_LM_DATA:-../shared/data (data_dir of configs/demo.yaml)}"
echo "demo: outputs in $RESULTS/: tokens/ecoli/{train,val,test}.h5;" \
     "pretrain/ecoli/{bigbird,longformer,dense}/ (pretrained.pt, csv/metrics.csv, checkpoints/);" \
     "pretrain/ecoli/summary.tsv"
echo "demo: logs in $RESULTS/logs/{tokenize,pretrain,summary}/ (one per job; Snakemake's own in .snakemake/log/)"
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
if [ "$shown" = 0 ]; then
  echo "demo: no summary table yet in $RESULTS/pretrain/*/summary.tsv (dry run, or a job failed: see $RESULTS/logs/)"
fi
