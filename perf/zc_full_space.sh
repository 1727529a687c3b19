#!/usr/bin/env bash
# Issue 5's GPU acceptance run in one script: every NB201 cell under --protocol zc on CIFAR-10,
# and a seeded NB101 sample beside it, both time-boxed so the script ends within BUDGET seconds.
# Results go to resumable run folders: rerun the same script to continue, or summarize what is
# stored with `ntknas correlate ... --summary-only`.
#
# usage: perf/zc_full_space.sh DATA OUT BUDGET_SECONDS
#   DATA holds cifar-10-batches-py/ (or images/cifar10_jpeg.npz and make_cifar10.py to make it),
#   nb201_accuracies.csv, and an NB101 table nb101_sample3000.npz.
# env: DEVICE (cuda), NB201_WORKERS (11), NB101_WORKERS (3; 0 = no NB101 run), SMOKE_ARCHS (42,82,127)
#
# Measured on an H200 (issue 5): 11 + 3 workers gave 2.1 NB201 cells/s and 0.33 NB101 cells/s;
# 13 NB201 workers alone 2.75 cells/s (processes time-slice one GPU). All 15,625 cells need
# about 95 GPU-minutes at that rate.
set -u
DATA=$1
OUT=$2
BUDGET=$3
DEVICE=${DEVICE:-cuda}
NB201_WORKERS=${NB201_WORKERS:-11}
NB101_WORKERS=${NB101_WORKERS:-3}
SMOKE_ARCHS=${SMOKE_ARCHS:-42,82,127}
START=$(date +%s)
METRICS=knas,tenas,fnorm,trace,lga,synflow,jacob_cov,snip,grad_norm,naswot,params,flops
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"

python -c "import torch, ntknas; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
if [ ! -d "$DATA/cifar-10-batches-py" ]; then
    python "$DATA/make_cifar10.py" "$DATA" || exit 1
fi
echo "data ready after $(( $(date +%s) - START )) s"

correlate() {  # the zc protocol with every metric, BatchNorm in train mode
    python -m ntknas.cli correlate --protocol zc --dataset cifar10 --data-dir "$DATA" --bn train \
        --metrics "$METRICS" --device "$DEVICE" --no-progress "$@"
}

# A few cells the CPU run also measured, in one process: a CUDA-only failure stops here, cheaply.
correlate --benchmark "$DATA/nb201_accuracies.csv" --archs "$SMOKE_ARCHS" --out "$OUT/smoke" \
    > "$OUT/smoke.log" 2>&1 || { cat "$OUT/smoke.log"; exit 1; }
tail -n 20 "$OUT/smoke.log"
LEFT=$(( BUDGET - ($(date +%s) - START) ))
# The runs stop starting cells 60 s before the end; the hard stop leaves the store consistent
# (one transaction per cell) if writing the summaries does not fit.
RUN_BUDGET=$(( LEFT - 60 ))
if [ "$RUN_BUDGET" -lt 30 ]; then echo "no time left for the main runs: raise BUDGET"; exit 1; fi
echo "main runs: ${RUN_BUDGET} s of measuring, hard stop after $(( LEFT - 10 )) s"
# Each run in its own process group, so a hard stop also ends its worker processes.
setsid timeout -s KILL $(( LEFT - 10 )) python -m ntknas.cli correlate --protocol zc --dataset cifar10 \
    --data-dir "$DATA" --bn train --metrics "$METRICS" --device "$DEVICE" \
    --benchmark "$DATA/nb201_accuracies.csv" --archs all --workers "$NB201_WORKERS" \
    --time-budget "$RUN_BUDGET" --out "$OUT/nb201_zc" > "$OUT/nb201_zc.log" 2>&1 &
NB201_GROUP=$!
GROUPS_TO_STOP=$NB201_GROUP
if [ "$NB101_WORKERS" -gt 0 ]; then
    setsid timeout -s KILL $(( LEFT - 10 )) python -m ntknas.cli correlate --protocol zc --dataset cifar10 \
        --data-dir "$DATA" --bn train --metrics "$METRICS" --device "$DEVICE" --space nb101 \
        --benchmark "$DATA/nb101_sample3000.npz" --archs all --workers "$NB101_WORKERS" \
        --time-budget "$RUN_BUDGET" --out "$OUT/nb101_zc" > "$OUT/nb101_zc.log" 2>&1 &
    GROUPS_TO_STOP="$GROUPS_TO_STOP $!"
fi
wait
for group in $GROUPS_TO_STOP; do kill -9 -- "-$group" 2>/dev/null; done
for run in nb201_zc nb101_zc; do
    [ -f "$OUT/$run/results.sqlite" ] || continue
    echo "== $run"; tail -n 6 "$OUT/$run.log"
    python -c "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); print(db.execute('select count(*), avg(seconds) from items').fetchone())" "$OUT/$run/results.sqlite"
done
echo "total $(( $(date +%s) - START )) s"
