#!/usr/bin/env bash
# The main job: a real IsoFLOP scaling study on this machine's CPU, end to end.
#   1. set-up (.venv with CPU torch; idempotent)
#   2. plan and run the `cpu_isoflop` sweep on the local executor (one single-thread process per
#      core; progress shows runs done / total and ETA). Finished runs are reused on a rerun.
#   3. `scaling report`: approaches 1, 2, 3 and Kaplan with bootstrap CIs, figures, backtest,
#      reports/cpu_isoflop/index.html; prints the answer.
#   4. `scaling sweep forecast`: the forecast rung. Trains the architecture approach 3 names at
#      RUNG_FACTOR (default 3) x the largest fitted budget, in runs/cpu_isoflop-rung/, and
#      prints predicted against actual loss; reports/cpu_isoflop/forecast.json and a section of
#      reports/cpu_isoflop/index.html and summary.md. The forecast is
#      written before the rung trains. RUNG_NEIGHBOURS=1 also trains 0.5x and 2x its N.
#      The forecaster the rung is judged by is pre-registered in sweeps/defs/cpu_isoflop.py
#      (third edition: the rung at 3 x 3.2e12 = 9.6e12 FLOPs; a test keeps RUNG_FACTOR's default
#      equal to that file's RUNG_FACTOR).
#      `--curve-law` (issue 21): the report adds the loss-curve law's figure and the law as one
#      more method of its leave-one-budget-out backtest, and the rung's forecast.json records
#      the curve law's forecast beside approach 3's, made before the rung trains. The rung
#      CHECK stays approach 3's (pre-registered); the curve law's forecast is shown, not used.
#      Cost: ~19 s of CPU (docs/LOG.md, issue 21).
# Environment: RUNS_DIR (default runs), REPORT_DIR (default reports/cpu_isoflop), BOOTSTRAP (200),
# RUNG_FACTOR (3), RUNG_NEIGHBOURS (unset: the optimum only).
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
scaling report --runs-dir "$runs_dir/cpu_isoflop" --out "$report_dir" --bootstrap "${BOOTSTRAP:-200}" --n-convention non_embedding --curve-law
echo; echo "== forecast rung: predicted vs actual =="
scaling sweep forecast cpu_isoflop --fit "$report_dir/fit_parametric.json" --runs-dir "$runs_dir" \
  --out "$report_dir" --factor "${RUNG_FACTOR:-3}" ${RUNG_NEIGHBOURS:+--neighbours} --curve-law
echo; echo "main job done in $(( $(date +%s) - start )) s; open $report_dir/index.html"
