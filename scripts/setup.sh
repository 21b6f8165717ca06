#!/usr/bin/env bash
# Create .venv (if missing) and install genomics_lm with its test extras.
# torch is installed first at the pinned CPU build, so nothing pulls a multi-GB CUDA wheel;
# the project's own requirement is a range that this pin satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_PIN"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -c "import torch, genomics_lm; print(f'genomics_lm {genomics_lm.__version__} with torch {torch.__version__} ready in .venv')"
