#!/usr/bin/env bash
# The backends execute rounds without knowing the protocol (issue 11): no
# `Protocol::` and no protocol-name comparison in runtime/ or sim/, outside the
# command-line programs (*_main.cpp, main.cpp, cmd_*.cpp, runtime/bench/),
# which parse --protocol and name baselines in their tables.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
files=$(find runtime sim -name '*.cpp' -o -name '*.hpp' | grep -v -E '(_main|/main|/cmd_[a-z_]+)\.cpp$|^runtime/bench/' | sort)
hits=$(grep -n -E 'Protocol::|"(data-parallel|local-sgd|resist|ist|layer-parallel)"|protocol *[!=]= ' $files)
if [[ -n $hits ]]; then
  echo "backends decide by protocol:"
  echo "$hits"
  exit 1
fi
echo "backends protocol-free: $(wc -w <<<"$files") files checked"
