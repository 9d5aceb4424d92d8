#!/usr/bin/env bash
# Simulator speed benchmark (docs/performance.md, "Simulator"). Prints host
# seconds and peak memory (KB, of the command and its simulation children) of:
#   the three 160-epoch CIFAR-100 runs of the paper's model on 8 workers,
#   the 3 × 5 × 4 sweep, and
#   with --big:   the 1024-worker ResIST run on flat-10g (α–β replay, and the
#                 same with --engine simgrid for comparison);
#   with --scale: ResIST and local SGD, 160 epochs, on a flat 10 Gbit/s
#                 platform of 8,192 single-GPU nodes, for 64 ... 8,192 workers
#                 (one line per run: "scale PROTOCOL WORKERS: S s, KB KB").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_BUILD_DIR:-$root/build}"
sim="$build/sim/resist-sim"
flat="$root/experiments/platforms/flat-10g.json"
model="--model preact-resnet101 --block basic --dataset cifar100 --epochs 160 --batch-size 128"
timed() { local label=$1; shift; /usr/bin/time -f "$label: %e s, %M KB" "$@" >/dev/null; }
mode=${1:-}
if [[ "$mode" != "--scale" ]]; then
  timed "run data-parallel m=8" "$sim" run $model --protocol data-parallel --workers 8
  timed "run local-sgd m=8 l=50" "$sim" run $model --protocol local-sgd --workers 8 --local-iters 50
  timed "run resist m=8 l=50" "$sim" run $model --protocol resist --workers 8 --local-iters 50
  out=$(mktemp -d)
  timed "sweep 3x5x4" "$sim" sweep $model --protocols data-parallel,local-sgd,resist --workers 2,4,8,16,32 \
    --local-iters 10,25,50,100 --out "$out"
  rm -rf "$out"
fi
if [[ "$mode" == "--big" ]]; then
  timed "run resist m=1024 l=50 flat-10g (alpha-beta replay)" "$sim" run $model --protocol resist --workers 1024 \
    --local-iters 50 --platform "$flat"
  timed "run resist m=1024 l=50 flat-10g (--engine simgrid)" "$sim" run $model --protocol resist --workers 1024 \
    --local-iters 50 --platform "$flat" --engine simgrid
fi
if [[ "$mode" == "--scale" ]]; then
  for n in 64 128 256 512 1024 2048 4096 8192; do
    for protocol in resist local-sgd; do
      timed "scale $protocol $n" "$sim" run $model --protocol $protocol --workers $n --local-iters 50 \
        --platform "$flat" --set nodes=8192
    done
  done
fi
