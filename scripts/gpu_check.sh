#!/usr/bin/env bash
# The prepared GPU check (issues 24, 23): one command, on one H200, output in one folder.
#
#   bash scripts/gpu_check.sh [OUT]             # OUT defaults to gpu-check/<date-time>
#   NANOGPT=~/src/nanoGPT bash scripts/gpu_check.sh OUT   # time nanoGPT's own model beside ours
#   DRY_RUN=1 bash scripts/gpu_check.sh OUT     # every stage on this CPU with tiny shapes: checks
#                                               # the script, measures nothing
#
# Stages, each with its own time limit (together at most 11 min 40 s), each writing
# OUT/<stage>.txt; OUT/summary.txt has one line per stage (exit status, seconds) and the result
# lines:
#   env         GPU, driver, torch, CUDA, bf16 support
#   throughput  benchmarks/train_throughput.py --device cuda: GPT-2 124M and ~350M in bf16 with
#               torch.compile, ours beside nanoGPT's model (NANOGPT=path to a clone; without it
#               the in-file nanoGPT-style baseline), tokens/s, ratio, MFU against 989.4 TFLOP/s
#               (H100/H200 SXM dense bf16) and against the best bf16 matmul measured
#   smoke       the `smoke` sweep on CUDA in bf16, once eager and once with torch.compile
#               (debug executor, in-process), and their val/loss side by side
#   batched     benchmarks/batched_training.py --device cuda: K = 1, 2, 4, 8 same-shape runs
#               trained as one stacked model against one after another (bf16, wall-clock time),
#               at the main job's shapes and one wider; its last line is the result
#               (`batched_training: k4_small_speedup=... k4_large_speedup=... max_rel_dloss=...`)
#   pytest      the `gpu`-marked tests (tests/*.py that carry the marker)
#
# Needs: python with torch (CUDA build), numpy, tqdm, pytest. wandb and submitit are not
# needed: the smoke sweep disables wandb and the debug executor does not import submitit.
# Exit status: 0 when every stage passed, 1 otherwise (the folder is complete either way).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
DRY=${DRY_RUN:-0}
STATUS=0
T0=$(date +%s)
: > "$OUT/summary.txt"

stage() {  # stage NAME LIMIT_S COMMAND...: run with a time limit, log to OUT/NAME.txt
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (limit ${limit} s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
    rc=$?
    [ $rc -eq 124 ] && echo "(killed at its ${limit} s limit)" >> "$OUT/$name.txt"
    echo "$name: exit $rc, $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
    grep -E "^result|^batched_training:|passed|failed|skipped|error" "$OUT/$name.txt" | tail -n 3 \
        | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || STATUS=1
}

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    echo "DRY_RUN=1: every stage on the CPU with tiny shapes; no number here is a measurement" \
        | tee -a "$OUT/summary.txt"
else
    DEVICE=cuda
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check: no CUDA device visible to $PY; run on a GPU machine (or DRY_RUN=1)" >&2
        exit 2
    fi
fi

# -- env ---------------------------------------------------------------------------------------
stage env 60 "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"sm {p.major}.{p.minor}",
          "count", torch.cuda.device_count(), "bf16", torch.cuda.is_bf16_supported())
from scaling import runtime
print("cpu bf16", runtime.bf16_support("cpu"))
EOF
command -v nvidia-smi > /dev/null && nvidia-smi >> "$OUT/env.txt" 2>&1

# -- throughput: ours beside nanoGPT's model, MFU -----------------------------------------------
NANO_ARGS=()
[ -n "${NANOGPT:-}" ] && NANO_ARGS=(--nanogpt "$NANOGPT")
if [ "$DRY" = 1 ]; then
    stage throughput 1200 "$PY" benchmarks/train_throughput.py --dry-run "${NANO_ARGS[@]}"
else
    stage throughput 240 "$PY" benchmarks/train_throughput.py --device cuda --rounds 3 \
        "${NANO_ARGS[@]}"
fi

# -- smoke sweep in bf16, eager and compiled ----------------------------------------------------
mkdir -p "$OUT/defs"
for mode in eager compile; do
    compile=False
    [ $mode = compile ] && compile=True
    cat > "$OUT/defs/smoke_${mode}.py" <<EOF
"""The smoke sweep on $DEVICE in bf16, torch.compile=$compile (written by scripts/gpu_check.sh)."""

import dataclasses

from sweeps.defs.smoke import sweep as smoke


def sweep():
    """smoke, moved to $DEVICE, bf16 autocast, compile=$compile."""
    spec = smoke()
    base = spec.base.replace(device="$DEVICE", precision="bf16", compile=$compile)
    return dataclasses.replace(spec, name="smoke_bf16_${mode}", base=base)
EOF
done
smoke_both() {
    "$PY" -m scaling.cli sweep launch "$OUT/defs/smoke_eager.py" --executor debug \
        --runs-dir "$OUT/runs" --no-progress || return 1
    "$PY" -m scaling.cli sweep launch "$OUT/defs/smoke_compile.py" --executor debug \
        --runs-dir "$OUT/runs" --no-progress || return 1
    "$PY" - "$OUT/runs" <<'EOF'
import json, sys
from pathlib import Path

def losses(sweep):
    out = {}
    for s in sorted(Path(sys.argv[1], sweep).glob("*/summary.json")):
        d = json.loads(s.read_text())
        out[d["point_key"]] = (d["status"], d["val/loss"], d["tokens_per_sec"])
    return out

eager, comp = losses("smoke_bf16_eager"), losses("smoke_bf16_compile")
assert eager and set(eager) == set(comp), (sorted(eager), sorted(comp))
worst = 0.0
for key in sorted(eager):
    (s1, l1, t1), (s2, l2, t2) = eager[key], comp[key]
    worst = max(worst, abs(l1 - l2))
    print(f"{key:28s} eager {s1} {l1:.4f} ({t1:,.0f} tok/s)  compiled {s2} {l2:.4f} ({t2:,.0f} tok/s)")
ok = worst <= 0.05 and all(v[0] == "complete" for v in [*eager.values(), *comp.values()])
print(f"result: smoke bf16, {len(eager)} runs each, max |val/loss eager - compiled| = {worst:.4f} "
      f"(tolerance 0.05, bf16 rounding): {'met' if ok else 'MISSED'}")
sys.exit(0 if ok else 1)
EOF
}
export -f smoke_both
export OUT PY
stage smoke $([ "$DRY" = 1 ] && echo 1200 || echo 120) bash -c smoke_both

# -- batched training of same-shape runs (issue 23): K = 1, 2, 4, 8 ----------------------------
# The main job's shapes (d_model 16, 32, 64) and one wider (d_model 128), one round, per-step
# time from 10- and 40-step runs differenced; a stage killed at its limit keeps the tables of
# the shapes it finished (printed shape by shape).
if [ "$DRY" = 1 ]; then
    stage batched 600 "$PY" benchmarks/batched_training.py --device cpu --rounds 1 \
        --steps 2,4 --shapes 1,16,2 --ks 1,2
else
    stage batched 180 "$PY" benchmarks/batched_training.py --device cuda --rounds 1 \
        --steps 10,40 --shapes 1,16,2 2,32,2 2,64,4 4,128,4 --ks 1,2,4,8
fi

# -- the gpu-marked tests -----------------------------------------------------------------------
mapfile -t GPU_TESTS < <(grep -l "pytest.mark.gpu" tests/test_*.py)
stage pytest 100 "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs "${GPU_TESTS[@]}"

echo "total: $(( $(date +%s) - T0 )) s; output in $OUT" | tee -a "$OUT/summary.txt"
exit $STATUS
