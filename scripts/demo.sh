#!/usr/bin/env bash
# Set up (.venv) and run the demo pipeline on real data with configs/demo.yaml, on this machine's CPUs.
# Stages built so far: tokenize (FASTA -> HDF5 3-mer token stores) and masked-LM pretraining of a tiny
# encoder with each attention type (bigbird, longformer, dense; about 1.5 min each on 2 cores). See README.md "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GENOMICS_LM_DATA=${GENOMICS_LM_DATA:-$(cd .. && pwd)/shared/data}
export PATH="$PWD/.venv/bin:$PATH"
echo "demo: running the workflow stages built so far: tokenize, pretrain (evaluations land with later issues)"
echo "demo: outputs in results/demo/ (tokens/, pretrain/ecoli/{bigbird,longformer,dense}/: pretrained.pt, csv/, checkpoints/, logs/)"
exec .venv/bin/snakemake --profile workflow/profiles/default --configfile configs/demo.yaml "$@"
