#!/usr/bin/env bash
# The GPU figures of issue 11 in one run (<= 8 minutes on an H200-class card), one table:
#   exact coupled kernel batched vs loop at B = 64/128/256 (issue-2 goal >= 5x),
#   independent per-sample vs loop at B = 256 (goal >= 100x), matrix-free vs exact,
#   one CIFAR-10 epoch of an NB201 network vs a DataLoader loop (goal <= 3 s; perf/train_speed.py),
#   the study's init protocol throughput (archs/s at B = 256, both BN modes; goal 1,000 in <= 10 min).
# Usage: perf/gpu_check.sh [DATA_DIR]   (DATA_DIR holds cifar-10-batches-py; synthetic images without it)
#        GPU_CHECK_TINY=1 perf/gpu_check.sh   (CPU smoke test of the script itself: tiny sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA_DIR=${1:-}
if [[ "${GPU_CHECK_TINY:-0}" == "1" ]]; then
  timeout 480 "$PY" perf/gpu_check.py --device cpu --tiny
  EPOCH_ARGS=(--device cpu --images 256 --batch-size 64)
else
  timeout 420 "$PY" perf/gpu_check.py --device cuda
  EPOCH_ARGS=(--device cuda)
fi
[[ -n "$DATA_DIR" ]] && EPOCH_ARGS+=(--data-dir "$DATA_DIR")
# The epoch row: train_speed.py prints its own lines; they are appended to the table as rows.
timeout 240 "$PY" perf/train_speed.py "${EPOCH_ARGS[@]}" 2>&1 | sed 's/^/| epoch (perf\/train_speed.py) | /'
