#!/usr/bin/env bash
# Installs the Debian packages resist needs (only the missing ones) and builds
# it in Release into build/. Idempotent: a second run is fast.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(cmake g++ make pkg-config ccache
          libtorch-dev libgloo-dev libsimgrid-dev nlohmann-json3-dev
          libboost-program-options-dev libgtest-dev zlib1g-dev
          libturbojpeg0-dev libpng-dev  # image folders: JPEG (libjpeg-turbo) and PNG decoding
          dataset-fashion-mnist python3-matplotlib
          python3-torch  # ~100 MB over libtorch: the PyTorch reference of scripts/bench_pytorch.py
          python3-torchvision  # ImageFolder + DataLoader, the reference of scripts/bench_loader_torchvision.py
          libopenblas0-pthread)  # an optimised BLAS: LibTorch's CPU matmuls go to libblas.so.3, else the reference one
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# Installing OpenBLAS switches the libblas.so.3 alternative to it (auto mode);
# an administrator may have pinned another one: say so, it costs ~30x on matmuls.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  */blas/libblas.so.3) echo "setup: warning: libblas.so.3 is the reference BLAS ($blas); LibTorch's CPU matmuls will" \
                            "be slow (update-alternatives --config libblas.so.3-x86_64-linux-gnu)" >&2 ;;
esac
build="${RESIST_BUILD_DIR:-$root/build}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" >&2
