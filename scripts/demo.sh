#!/usr/bin/env bash
# Set up (.venv) and run the demo pipeline on real data with configs/demo.yaml, on this machine's CPUs.
# Stages built so far: tokenize (FASTA -> HDF5 token stores). See README.md "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GENOMICS_LM_DATA=${GENOMICS_LM_DATA:-$(cd .. && pwd)/shared/data}
export PATH="$PWD/.venv/bin:$PATH"
echo "demo: running the workflow stages that exist so far: tokenize (more stages land with later issues)"
exec .venv/bin/snakemake --profile workflow/profiles/default --configfile configs/demo.yaml "$@"
