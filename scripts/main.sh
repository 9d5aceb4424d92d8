#!/usr/bin/env bash
# The main job: set up, build, run the default studies (experiments/studies/*.json:
# the paper's communication table, its CIFAR run simulated end to end, the
# what-if grid, the scaling study, and predicted-vs-measured when the runtime is
# built), then print the communication table, the speedup table and the report's path.
# Extra arguments go to resist-study (e.g. --skip validate, --skip scale).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build="${RESIST_BUILD_DIR:-$root/build}"
out="${RESIST_RESULTS_DIR:-$root/results}"
exec "$build/experiments/resist-study" run --all --out "$out" "$@"
