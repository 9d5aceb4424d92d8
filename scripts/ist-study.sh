#!/usr/bin/env bash
# The shape of the IST paper's comparison (Yuan et al., VLDB 2022) in the
# simulator: the 2-layer (4096 hidden) and 3-layer (8192,4096 hidden) speech
# MLPs (4096 inputs, 35 classes), 2/4/8 single-GPU nodes (workers) on flat 10 Gbit/s cloud
# networking, IST vs local SGD vs data-parallel: time per epoch and bytes per
# round. Usage: scripts/ist-study.sh [OUT_DIR] (default results/ist-study).
# Environment: RESIST_BUILD_DIR (default build), LOCAL_ITERS (default 10),
# TRAIN_SIZE (samples per epoch, default 64000), IST_SYNC (default decentralised).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_BUILD_DIR:-$root/build}"
out="${1:-$root/results/ist-study}"
ell="${LOCAL_ITERS:-10}"
train_size="${TRAIN_SIZE:-64000}"
sync="${IST_SYNC:-decentralised}"
sim="$build/sim/resist-sim"
[ -x "$sim" ] || { echo "ist-study: $sim not built (run scripts/setup.sh)" >&2; exit 2; }
mkdir -p "$out"
for hidden in 4096 8192,4096; do
  name="mlp-${hidden//,/-}"
  echo "ist-study: $name" >&2
  "$sim" sweep --platform "$root/experiments/platforms/flat-10g.json" \
      --model mlp --input 4096 --hidden "$hidden" --classes 35 \
      --protocols data-parallel,local-sgd,ist --workers 2,4,8 --local-iters "$ell" \
      --ist-sync "$sync" --batch-size 128 --epochs 1 --train-size "$train_size" \
      --out "$out/$name" >/dev/null
done
# One table: time per epoch (1 epoch simulated) and bytes per round.
/usr/bin/python3 - "$out" "$ell" <<'PY' | tee "$out/table.md"
import csv, sys, os
out, ell = sys.argv[1], sys.argv[2]
print(f"| model | protocol | workers | time/epoch (s) | vs DP | vs local SGD | bytes/round (MB, Table-1) | wire/round (MB) |")
print("|---|---|---|---|---|---|---|---|")
for name, label in (("mlp-4096", "2-layer 4096"), ("mlp-8192-4096", "3-layer 8192,4096")):
    rows = list(csv.DictReader(open(os.path.join(out, name, "sweep.csv"))))
    t = {(r["protocol"], int(r["workers"])): float(r["wall_clock_s"]) for r in rows}
    for r in sorted(rows, key=lambda r: (int(r["workers"]), r["protocol"])):
        m, p = int(r["workers"]), r["protocol"]
        wall = float(r["wall_clock_s"])
        dp = t.get(("data-parallel", m)); ls = t.get(("local-sgd", m))
        wire = int(r["wire_bytes_total"]) / max(1, int(r["rounds"]))
        print(f"| {label} | {p} | {m} | {wall:.3f} | {dp / wall:.2f}× | {ls / wall:.2f}× | "
              f"{int(r['bytes_per_round']) / 1e6:.1f} | {wire / 1e6:.1f} |")
PY
echo "ist-study: results in $out (table.md, */sweep.csv)" >&2
