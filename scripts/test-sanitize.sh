#!/usr/bin/env bash
# Builds the suites that need no LibTorch (model specs, schedule, simulator,
# resist-sim / resist-study end to end, fuzz) with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-sanitize/ and runs them. Any report
# fails the run (-fno-sanitize-recover, halt_on_error).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_SANITIZE_BUILD_DIR:-$root/build-sanitize}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESIST_SANITIZE=ON -DRESIST_WITH_TORCH=OFF \
  "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" >&2
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
cd "$build"
exec ctest --output-on-failure -j"$(nproc)" "$@"
