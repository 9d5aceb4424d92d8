#!/usr/bin/env bash
# Prints, one "name<TAB>output" line per case, the outputs the refactor of
# issue 11 must not change: `resist-sim comm` and `resist-sim run` JSON for
# every protocol (small configurations), and the model_hash of a fixed 2-rank
# resist-train run of every protocol (when the runtime is built).
#   tests/golden/outputs.sh BUILD_DIR [sim|train|all]  > file
# tests/golden/golden.tsv holds the outputs recorded before the refactor;
# tests/golden/check.sh compares.
set -euo pipefail
build=$1
what=${2:-all}
sim=$build/sim/resist-sim
small_resnet="--model preact-resnet34 --block basic --dataset cifar10"
mlp="--model mlp --input 784 --hidden 512,256 --classes 10"
case_line() { printf '%s\t%s\n' "$1" "$(tr -d '\n' <<<"$2")"; }

if [[ $what == sim || $what == all ]]; then
  case_line comm-resnet "$("$sim" comm $small_resnet --machines 2,4,8 --protocols data-parallel,local-sgd,resist --format json)"
  case_line comm-mlp "$("$sim" comm $mlp --machines 2,4 --protocols ist,local-sgd --format json)"
  case_line comm-mlp-ps "$("$sim" comm $mlp --machines 3 --protocols ist --ist-sync parameter-server --format json)"
  for p in data-parallel local-sgd resist; do
    case_line "run-$p" "$("$sim" run $small_resnet --protocol $p --machines 4 --local-iters 10 --epochs 2 --batch-size 128 --format json)"
    case_line "run-$p-full" "$("$sim" run $small_resnet --protocol $p --machines 4 --local-iters 10 --epochs 1 --batch-size 256 --full --format json)"
  done
  case_line run-resist-eval "$("$sim" run $small_resnet --protocol resist --machines 8 --min-depth 2 --local-iters 5 --rounds 12 --eval-every 3 --warmup-epochs 0 --format json)"
  case_line run-data-parallel-overlap "$("$sim" run $small_resnet --protocol data-parallel --machines 4 --epochs 1 --overlap --format json)"
  case_line run-ist "$("$sim" run $mlp --protocol ist --machines 4 --local-iters 10 --train-size 64000 --epochs 2 --format json)"
  tmp_s=$(mktemp -d)
  sched() {  # name, args...
    local name=$1; shift
    "$sim" schedule "$@" --out "$tmp_s/$name.json"
    case_line "schedule-$name" "$(python3 "$(dirname "$0")/schedule_digest.py" "$tmp_s/$name.json")"
  }
  sched data-parallel $small_resnet --protocol data-parallel --machines 3 --rounds 4
  sched local-sgd $small_resnet --protocol local-sgd --machines 3 --rounds 4 --local-iters 7
  sched resist $small_resnet --protocol resist --machines 4 --min-depth 2 --rounds 6 --eval-every 2
  sched resist-warmup $small_resnet --protocol resist --machines 8 --epochs 3 --warmup-epochs 1 --local-iters 20 --train-size 20000
  sched ist $mlp --protocol ist --machines 4 --rounds 5 --eval-every 2
  sched ist-ps $mlp --protocol ist --ist-sync parameter-server --machines 3 --rounds 4 --eval-every 3
  rm -rf "$tmp_s"
  case_line run-ist-ps "$("$sim" run $mlp --protocol ist --ist-sync parameter-server --machines 3 --local-iters 10 --train-size 64000 --epochs 1 --eval-every 4 --format json)"
fi

if [[ $what == train || $what == all ]] && [[ -x $build/runtime/resist-train ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Bit-exact model hashes need the same kernels: ATen, oneDNN and OpenBLAS
  # pick theirs by the host's ISA, and an AVX-512 host rounds differently
  # from the AVX2 one the hashes were recorded on (every line differed on
  # one; all equal with these three pinned). A host without AVX2 cannot
  # reproduce them.
  export ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
  train() {  # name, args...
    local name=$1; shift
    "$build/runtime/resist-launch" -n 2 -- "$build/runtime/resist-train" --dataset fashion-mnist --threads 1 \
      --quiet --timeout 120 --train-subset 256 --test-subset 64 --out "$tmp/$name" "$@" >&2
    case_line "train-$name" "$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["model_hash"], r["test_accuracy"])' "$tmp/$name/report.json")"
  }
  resnet="--model preact-resnet34 --base-width 4"
  train data-parallel $resnet --protocol data-parallel --rounds 3 --eval-every 2 --batch-size 8
  train local-sgd $resnet --protocol local-sgd --local-iters 2 --rounds 3 --eval-every 2 --batch-size 8
  train resist $resnet --protocol resist --min-depth 1 --local-iters 2 --rounds 4 --eval-every 2 --batch-size 8
  train resist-warmup $resnet --protocol resist --local-iters 2 --epochs 2 --warmup-epochs 1 --batch-size 64
  train ist --model mlp --hidden 128,64 --protocol ist --local-iters 2 --rounds 4 --eval-every 2 --batch-size 8
  train ist-ps --model mlp --hidden 128,64 --protocol ist --ist-sync parameter-server --local-iters 2 --rounds 3 --batch-size 8
fi
