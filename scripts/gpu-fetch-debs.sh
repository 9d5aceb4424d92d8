#!/usr/bin/env bash
# Run HERE (a Debian bookworm machine where apt works): downloads the Debian
# packages that scripts/gpu-build.sh needs on an offline GPU machine, as .deb
# files, into .gpu-debs/ (git-ignored). Copy the checkout (with .gpu-debs/) to
# the GPU machine, where gpu-build.sh unpacks them into a private prefix.
#
#   scripts/gpu-fetch-debs.sh [DIR]        DIR defaults to .gpu-debs
#   RESIST_GPU_EXTRA_DEBS="libfoo-dev libfoo1" scripts/gpu-fetch-debs.sh   (more packages)
#
# What is fetched and why (the GPU machine has LibTorch, CUDA and NCCL from
# its PyTorch installation, CMake, ninja and a compiler, nothing else):
#   nlohmann-json3-dev                 JSON (header-only)
#   libboost-program-options1.74-dev   command-line parsing: CMake config, static library
#                                      (gpu-build.sh links it statically)
#   libboost-program-options1.74.0     its shared library, for -DBoost_USE_STATIC_LIBS=OFF
#   libboost1.74-dev                   Boost headers and BoostConfig.cmake
#   zlib1g-dev                         zlib headers (reading .gz datasets)
# Debian's libgloo-dev is not fetched: a PyTorch installation carries its own
# Gloo inside libtorch; add it with RESIST_GPU_EXTRA_DEBS if a build needs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="${1:-$root/.gpu-debs}"
packages=(nlohmann-json3-dev libboost-program-options1.74-dev libboost-program-options1.74.0
          libboost1.74-dev zlib1g-dev libturbojpeg0-dev libpng-dev)
# shellcheck disable=SC2206
packages+=(${RESIST_GPU_EXTRA_DEBS:-})
mkdir -p "$dest"
cd "$dest"
if ! apt-get download "${packages[@]}" >&2; then
  echo "gpu-fetch-debs: apt-get download failed; run 'apt-get update' (as root) and retry" >&2
  exit 1
fi
# A manifest: which package versions went along, and their checksums.
{
  echo "# resist gpu debs: fetched $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  sha256sum ./*.deb
} > MANIFEST
echo "gpu-fetch-debs: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in $dest" >&2
