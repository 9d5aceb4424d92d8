#!/usr/bin/env bash
# The GPU measurements of issue 7 in one command, on a machine with one CUDA
# GPU, after scripts/gpu-build.sh. Every run writes one JSON file (format
# "resist-bench") into OUT; analysis/gpu_report.py turns them into the
# markdown tables of docs/performance.md (OUT/report.md).
#
#   scripts/gpu-session.sh OUT [PART...]     PART: resist eager compile memory all (default all)
#
# resist    resist-bench, full preact-resnet101 --block basic, batch 128:
#           fp32, bf16, each plain and channels-last; plus --sgd torch
# eager     scripts/bench_pytorch.py --mode eager, the same four settings
# compile   scripts/bench_pytorch.py --mode compile, the same four settings
# memory    resist-bench --resist-workers 4 (one ResIST worker's sub-ResNet),
#           fp32 and bf16, to compare peak GPU memory with the full model
#
# Environment: RESIST_BENCH (default build-gpu/runtime/bench/resist-bench),
# PYTHON (default python3), WARMUP (10), ITERS (50), BATCH (128),
# RUN_TIMEOUT (seconds per run, default 420); DEVICE (cuda) and BENCH_ARGS
# (extra flags for both programs) exist to try the script on a CPU at tiny
# sizes: DEVICE=cpu BATCH=4 ITERS=1 BENCH_ARGS="--base-width 8 --matmul-size 64". A failed or timed-out run is
# listed in OUT/failures.txt and the others go on; the exit status is 1 then.
# One device call may run 10 minutes: split the parts over two calls, e.g.
#   scripts/gpu-session.sh out/gpu resist eager memory
#   scripts/gpu-session.sh out/gpu compile
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if (($# < 1)) || [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
  sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  (($# < 1)) && exit 2 || exit 0
fi
out=$1; shift
parts=("$@"); ((${#parts[@]})) || parts=(all)
for p in "${parts[@]}"; do
  case "$p" in resist|eager|compile|memory|all) ;; *)
    echo "gpu-session: unknown part '$p' (accepted: resist, eager, compile, memory, all)" >&2; exit 2 ;;
  esac
done
want() { local p; for p in "${parts[@]}"; do [ "$p" = all ] || [ "$p" = "$1" ] && return 0; done; return 1; }
bench="${RESIST_BENCH:-$root/build-gpu/runtime/bench/resist-bench}"
python="${PYTHON:-python3}"
# shellcheck disable=SC2206
common=(--device "${DEVICE:-cuda}" --batch "${BATCH:-128}" --warmup "${WARMUP:-10}" --iters "${ITERS:-50}"
        ${BENCH_ARGS:-})
mkdir -p "$out"
failed=0

# What ran where: GPU, driver, software.
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  "$python" -c 'import torch, platform
nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "nccl", nccl, "python", platform.python_version())' 2>&1 || true
  uname -srm; date -u +%Y-%m-%dT%H:%M:%SZ
} > "$out/environment.txt"

# run NAME COMMAND...: runs one measurement writing $out/NAME.json.
run() {
  local name=$1; shift
  echo "gpu-session: $name: $*" >&2
  if timeout "${RUN_TIMEOUT:-420}" "$@" --out "$out/$name.json" > "$out/$name.log" 2>&1; then
    tail -n 1 "$out/$name.log" >&2
  else
    echo "$name (exit $?): $*" >> "$out/failures.txt"
    tail -n 5 "$out/$name.log" >&2
    failed=1
  fi
}

for precision in fp32 bf16; do
  for layout in nchw nhwc; do
    cl=(); [ "$layout" = nhwc ] && cl=(--channels-last)
    tag="$precision-$layout"
    want resist && run "resist-$tag" "$bench" "${common[@]}" --precision "$precision" "${cl[@]}"
    want eager && run "pytorch-eager-$tag" "$python" "$root/scripts/bench_pytorch.py" "${common[@]}" \
        --mode eager --precision "$precision" "${cl[@]}"
    want compile && run "pytorch-compile-$tag" "$python" "$root/scripts/bench_pytorch.py" "${common[@]}" \
        --mode compile --precision "$precision" "${cl[@]}"
  done
  want resist && run "resist-sgdtorch-$precision-nchw" "$bench" "${common[@]}" --precision "$precision" --sgd torch
  want memory && run "resist-s4-$precision-nchw" "$bench" "${common[@]}" --precision "$precision" --resist-workers 4
done

if python3 "$root/analysis/gpu_report.py" "$out" > "$out/report.md.tmp"; then
  mv "$out/report.md.tmp" "$out/report.md"
  cat "$out/report.md"
else
  echo "gpu-session: analysis/gpu_report.py failed" >&2
  failed=1
fi
exit $failed
