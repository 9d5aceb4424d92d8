#!/usr/bin/env bash
# The main job: set up, build, run the default study.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build="${RESIST_BUILD_DIR:-$root/build}"
exec "$build/sim/resist-sim" comm --model preact-resnet101 --block basic --dataset cifar100 \
  --machines 2,4,8 --protocols local-sgd,resist "$@"
