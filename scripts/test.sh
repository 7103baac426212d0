#!/usr/bin/env bash
# The test command (README, and what .ci/run calls): set-up, start a real one-node Slurm on
# localhost, lint, run the whole suite, stop Slurm. With CI=true the Slurm tests must run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
slurm_started=0
if bash scripts/slurm-local.sh start; then
  slurm_started=1
else
  echo "[test] could not start a local Slurm: Slurm tests will skip (or fail under CI=true)"
fi
cleanup() { if [ "$slurm_started" = 1 ]; then bash scripts/slurm-local.sh stop || true; fi; }
trap cleanup EXIT
echo "[test] ruff"
ruff check .
echo "[test] pytest"
python -m pytest -q "$@"
