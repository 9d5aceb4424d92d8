#!/usr/bin/env bash
# Simulator speed benchmark (docs/performance.md, "Simulator"). Prints host
# seconds and peak memory (KB, of the command and its simulation children) of:
#   the three 160-epoch CIFAR-100 runs of the paper's model on 8 workers,
#   the 3 × 5 × 4 sweep, and (with --big) a 1024-worker ResIST run on flat-10g.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_BUILD_DIR:-$root/build}"
sim="$build/sim/resist-sim"
model="--model preact-resnet101 --block basic --dataset cifar100 --epochs 160 --batch-size 128"
timed() { local label=$1; shift; /usr/bin/time -f "$label: %e s, %M KB" "$@" >/dev/null; }
timed "run data-parallel m=8" "$sim" run $model --protocol data-parallel --workers 8
timed "run local-sgd m=8 l=50" "$sim" run $model --protocol local-sgd --workers 8 --local-iters 50
timed "run resist m=8 l=50" "$sim" run $model --protocol resist --workers 8 --local-iters 50
out=$(mktemp -d)
timed "sweep 3x5x4" "$sim" sweep $model --protocols data-parallel,local-sgd,resist --workers 2,4,8,16,32 \
  --local-iters 10,25,50,100 --out "$out"
rm -rf "$out"
if [[ "${1:-}" == "--big" ]]; then
  timed "run resist m=1024 l=50 flat-10g" "$sim" run $model --protocol resist --workers 1024 --local-iters 50 \
    --platform "$root/experiments/platforms/flat-10g.json"
fi
