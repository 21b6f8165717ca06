#!/usr/bin/env bash
# Set up (.venv) and run the whole test suite on CPU. Real data: $GENOMICS_LM_DATA or ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GENOMICS_LM_DATA=${GENOMICS_LM_DATA:-$(cd .. && pwd)/shared/data}
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -n 2 --durations=15 "$@"
