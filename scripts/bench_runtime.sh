#!/usr/bin/env bash
# Runtime benchmark: per-round time, peak memory and images/s per worker of
# ResIST vs local SGD with S workers on this machine (CPU, Gloo).
# usage: [WIDTH=8] [ROUNDS=4] scripts/bench_runtime.sh [S] [extra resist-train flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${RESIST_BUILD_DIR:-$root/build}"
S=${1:-4}; shift || true
out=$(mktemp -d)
common=(--model preact-resnet101 --block basic --base-width "${WIDTH:-8}" --dataset fashion-mnist --train-subset 6000
        --test-subset 500 --local-iters 10 --rounds "${ROUNDS:-4}" --batch-size 32 --threads 1 --quiet "$@")
for p in resist local-sgd; do
  "$build/runtime/resist-launch" -n "$S" -- "$build/runtime/resist-train" --protocol "$p" "${common[@]}" \
    --out "$out/$p" >&2
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print(f"{'protocol':<10} {'round_s':>8} {'compute_s':>10} {'comm_s':>8} {'img/s/worker':>13} {'peak RSS MiB/worker':>20} {'wire MB/round':>14}")
for p in ("resist", "local-sgd"):
    rep = json.load(open(os.path.join(out, p, "report.json")))
    rows = [json.loads(l) for l in open(os.path.join(out, p, "metrics.jsonl"))]
    # round 0 includes warm-up; the last round includes the final evaluation;
    # compute_s / comm_s: mean per worker per round from the measured timeline
    body = rows[1:-1] if len(rows) > 2 else rows
    rs = sum(r["round_s"] for r in body) / len(body)
    imgs = rep["batch_size"] * rep["local_iters"] / rs
    bytes_ = sum(r["bytes_sent"] for r in body) / len(body)
    tl = json.load(open(os.path.join(out, p, "timeline.json")))["traceEvents"]
    rounds = {r["round"] for r in body}
    ev = [e for e in tl if e.get("ph") == "X" and e["args"]["round"] in rounds]
    S = rep["workers"]
    comp = sum(e["dur"] for e in ev if e["name"] == "compute") / 1e6 / S / len(body)
    comm = sum(e["dur"] for e in ev if e["cat"] == "comm") / 1e6 / S / len(body)
    imgs = rep["batch_size"] * rep["local_iters"] / comp
    print(f"{p:<10} {rs:>8.2f} {comp:>10.2f} {comm:>8.2f} {imgs:>13.1f} {max(rep['peak_memory_bytes'])/2**20:>20.0f} {bytes_/1e6:>14.2f}")
PY
rm -rf "$out"
