#!/usr/bin/env bash
# Behaviour unchanged (issue 11): the outputs of tests/golden/outputs.sh on
# this build equal those recorded before the refactor (tests/golden/golden.tsv),
# bit for bit.   tests/golden/check.sh BUILD_DIR sim|train
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
what=$2
now=$(mktemp)
trap 'rm -f "$now"' EXIT
"$here/outputs.sh" "$build" "$what" >"$now"
if [[ ! -s $now ]]; then echo "golden: nothing to compare for '$what' (not built?)"; exit 0; fi
status=0
while IFS=$'\t' read -r name value; do
  want=$(awk -F'\t' -v n="$name" '$1 == n {print $2}' "$here/golden.tsv")
  if [[ -z $want ]]; then echo "golden: no recorded output for $name"; status=1; continue; fi
  if [[ $value != "$want" ]]; then
    echo "golden: $name differs"
    echo "  recorded: ${want:0:400}"
    echo "  now:      ${value:0:400}"
    status=1
  fi
done <"$now"
[[ $status == 0 ]] && echo "golden: $(wc -l <"$now") outputs of '$what' identical"
exit $status
