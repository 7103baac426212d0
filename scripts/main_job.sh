#!/usr/bin/env bash
# The main job: a real IsoFLOP scaling study on this machine's CPU, end to end.
#   1. set-up (.venv with CPU torch; idempotent)
#   2. plan and run the `cpu_isoflop` sweep on the local executor (one single-thread process per
#      core; progress shows runs done / total and ETA). Finished runs are reused on a rerun.
#   3. `scaling report`: approaches 1, 2, 3 and Kaplan with bootstrap CIs, figures, backtest,
#      reports/cpu_isoflop/index.html; prints the answer.
# Environment: RUNS_DIR (default runs), REPORT_DIR (default reports/cpu_isoflop), BOOTSTRAP (200).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
runs_dir=${RUNS_DIR:-runs}
report_dir=${REPORT_DIR:-reports/cpu_isoflop}

echo; echo "== plan =="
scaling sweep plan cpu_isoflop
echo; echo "== launch (local executor) =="
scaling sweep launch cpu_isoflop --executor local --runs-dir "$runs_dir"
echo; echo "== report =="
scaling report --runs-dir "$runs_dir/cpu_isoflop" --out "$report_dir" --bootstrap "${BOOTSTRAP:-200}" --n-convention non_embedding
echo; echo "main job done in $(( $(date +%s) - start )) s; open $report_dir/index.html"
