#!/usr/bin/env bash
# Builds the suites that need no LibTorch with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-sanitize/ and runs them.
#
#   scripts/test-sanitize.sh [--labels L1,L2,...] [ctest arguments...]
#
# The ctest labels: core (model specs, schedule), sim (simulator library,
# golden resist-sim outputs), cli (resist-sim end to end, robustness), study
# (resist-study), fuzz (the four file formats). Without --labels every one is
# built and run; with it only the programs those tests need.
#
# Any sanitizer report fails the run. UBSan does not recover and ASan halts
# on the first error: the program exits non-zero, which fails every test that
# checks its exit status. AddressSanitizer and LeakSanitizer reports also go
# to files under build-sanitize/sanitizer-reports/, and one there after the
# tests fails the run even when it came from a process whose exit status no
# test looks at. (UBSan's reports stay on stderr: with g++, libubsan ignores
# log_path next to libasan.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_SANITIZE_BUILD_DIR:-$root/build-sanitize}"
jobs="${RESIST_JOBS:-$(nproc)}"

labels=""
if [[ ${1:-} == --labels ]]; then
  labels=${2:-}
  [[ -n $labels ]] || { echo "test-sanitize: --labels needs a list such as core,sim (of core, sim, cli, study, fuzz)" >&2; exit 2; }
  shift 2
fi
targets=()
for label in ${labels//,/ }; do
  case $label in
    core) targets+=(test_spec test_schedule) ;;
    sim) targets+=(test_sim resist-sim) ;;
    cli) targets+=(test_cli_sim test_robustness) ;;
    study) targets+=(test_study) ;;
    fuzz) targets+=(test_fuzz) ;;
    *) echo "test-sanitize: unknown label '$label' (accepted: core, sim, cli, study, fuzz)" >&2; exit 2 ;;
  esac
done

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# -O1 -g1: what ASan advises (usable speed, line numbers in reports) at a
# fraction of the compile time of -O2 -g.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DRESIST_SANITIZE=ON -DRESIST_WITH_TORCH=OFF "${launcher[@]}" >/dev/null
if ((${#targets[@]})); then
  cmake --build "$build" -j"$jobs" --target "${targets[@]}" >&2
else
  cmake --build "$build" -j"$jobs" >&2
fi

reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
select=()
[[ -n $labels ]] && select=(-L "^(${labels//,/|})\$")
status=0
(cd "$build" && ctest --output-on-failure -j"$jobs" "${select[@]}" "$@") || status=$?
if compgen -G "$reports/*" >/dev/null; then
  for f in "$reports"/*; do echo "=== sanitizer report $f"; cat "$f"; done >&2
  echo "test-sanitize: $(ls "$reports" | wc -l) sanitizer report(s) above" >&2
  status=1
fi
exit $status
