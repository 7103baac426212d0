#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtual environment in .venv holding the CPU build of
# torch (pinned in constraints-cpu.txt) and this package, editable, with its dev extras.
# Re-running it is cheap (pip finds everything satisfied).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
echo "[setup] installing scaling[dev] (torch pinned by constraints-cpu.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c constraints-cpu.txt -e ".[dev]"
.venv/bin/python -c "import torch, scaling; print('[setup] ok: torch', torch.__version__, '| scaling', scaling.__version__)"
