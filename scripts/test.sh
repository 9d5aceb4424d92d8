#!/usr/bin/env bash
# Set up, build, and run the whole test suite with ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build="${RESIST_BUILD_DIR:-$root/build}"
cd "$build"
exec ctest --output-on-failure -j"$(nproc)" "$@"
