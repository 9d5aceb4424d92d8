#!/usr/bin/env bash
# Builds resist's LibTorch programs (resist-bench; resist-train and
# resist-launch when runtime/ has them) on a GPU machine whose only LibTorch
# is a PyTorch pip installation (CUDA + NCCL inside it), with CMake, ninja (or
# make), a C++20 compiler and nvcc, but no package archive and no internet.
# The simulator and the tests are left out. What else the build needs comes
# as .deb files fetched beforehand by scripts/gpu-fetch-debs.sh (run where apt
# works); they are unpacked with `dpkg -x` into a private prefix under the
# build directory, never into /.
#
#   scripts/gpu-build.sh [--dry-run] [-- extra cmake arguments]
#
# Environment:
#   PYTHON               the Python whose torch to build against (default python3)
#   RESIST_BUILD_DIR     build directory (default build-gpu)
#   RESIST_GPU_DEBS      where the .deb files are (default .gpu-debs)
#   RESIST_TORCH_PREFIX  a LibTorch CMake prefix instead of asking $PYTHON (a
#                        pytorch.org LibTorch zip: its unpacked libtorch/ folder;
#                        Debian's CPU LibTorch: /usr/lib/x86_64-linux-gnu/cmake)
#   RESIST_TORCH_ABI     with RESIST_TORCH_PREFIX: 0 or 1 (default 1), the
#                        LibTorch's _GLIBCXX_USE_CXX11_ABI
#   CUDACXX              nvcc to use (default: PATH, then /usr/local/cuda/bin/nvcc)
#
# The C++ ABI: every C++ library linked into one program must agree on
# _GLIBCXX_USE_CXX11_ABI. PyTorch pip wheels use the new (1) ABI since 2.7, as
# Debian's Boost does, so they link together. An older wheel with the old (0)
# ABI cannot be linked with Debian's libboost_program_options (std::string in
# its interface): the script stops and says so; use a newer PyTorch or the
# "cxx11 ABI" LibTorch zip from pytorch.org.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dry_run=0
extra=()
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-build: unknown argument '$1' (accepted: --dry-run, --help, -- cmake args)" >&2; exit 2 ;;
  esac
  shift
done
log() { echo "gpu-build: $*" >&2; }
build=$(realpath -m "${RESIST_BUILD_DIR:-$root/build-gpu}")
debs=$(realpath -m "${RESIST_GPU_DEBS:-$root/.gpu-debs}")
python="${PYTHON:-python3}"

# --- LibTorch: where, which ABI, CUDA or not --------------------------------
torch_cuda=""
if [ -n "${RESIST_TORCH_PREFIX:-}" ]; then
  torch_prefix="$RESIST_TORCH_PREFIX"
  abi="${RESIST_TORCH_ABI:-1}"
  torch_version="(from $torch_prefix)"
  torch_site=""
else
  if ! info=$("$python" -c 'import os, torch
print(torch.utils.cmake_prefix_path)
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.__version__)
print(torch.version.cuda or "")
print(os.path.dirname(os.path.dirname(torch.__file__)))'); then
    log "'$python' cannot import torch; set PYTHON to the Python of the PyTorch installation, or RESIST_TORCH_PREFIX"
    exit 1
  fi
  { read -r torch_prefix; read -r abi; read -r torch_version; read -r torch_cuda; read -r torch_site; } <<<"$info"
fi
log "LibTorch $torch_version, CMake prefix $torch_prefix, _GLIBCXX_USE_CXX11_ABI=$abi${torch_cuda:+, CUDA $torch_cuda}"
if [ "$abi" != 1 ]; then
  log "this LibTorch uses the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0), Debian's Boost the new one: they cannot be"
  log "linked into one program. Use PyTorch >= 2.7 from pip (new ABI) or pytorch.org's cxx11-ABI LibTorch zip."
  exit 1
fi

# --- Debian packages, unpacked into a private prefix ------------------------
deps="$build/deps"
shopt -s nullglob
deb_files=("$debs"/*.deb)
if ((${#deb_files[@]} == 0)); then
  log "no .deb files in $debs: run scripts/gpu-fetch-debs.sh where apt works and bring $debs along"
  exit 1
fi
stamp="$deps/.unpacked"
want=$(cd "$debs" && sha256sum ./*.deb)
if [ "$dry_run" = 1 ]; then
  log "would unpack ${#deb_files[@]} .deb files from $debs into $deps"
elif [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$deps"
  mkdir -p "$deps"
  for f in "${deb_files[@]}"; do
    if command -v dpkg >/dev/null; then
      dpkg -x "$f" "$deps"
    else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
      tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$f" && tar -xf data.tar.* -C "$deps")
      rm -rf "$tmp"
    fi
  done
  echo "$want" > "$stamp"
  log "unpacked ${#deb_files[@]} .deb files into $deps"
fi
multiarch=x86_64-linux-gnu
[ "$(uname -m)" = aarch64 ] && multiarch=aarch64-linux-gnu
prefix_path="$torch_prefix;$deps/usr;$deps/usr/lib/$multiarch/cmake;$deps/usr/share/cmake"

# --- CUDA and NCCL ------------------------------------------------------------
cmake_args=()
nvcc="${CUDACXX:-$(command -v nvcc || true)}"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -n "$torch_cuda" ]; then
  if [ -z "$nvcc" ]; then
    log "this PyTorch is built for CUDA $torch_cuda but no nvcc was found (set CUDACXX)"
    exit 1
  fi
  cuda_root=$(cd "$(dirname "$nvcc")/.." && pwd)
  cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$cuda_root")
  nvcc_version=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  log "nvcc $nvcc ($nvcc_version)"
  if [ "${nvcc_version%%.*}" != "${torch_cuda%%.*}" ]; then
    log "warning: nvcc is CUDA $nvcc_version but this PyTorch is built for CUDA $torch_cuda; linking may pick"
    log "two CUDA runtimes. Point CUDACXX at a CUDA ${torch_cuda%%.*} toolkit if the build or a run fails."
  fi
fi
# NCCL: the pip wheel's nvidia-nccl package, else the CUDA toolkit's.
nccl_h=""
for dir in ${torch_site:+"$torch_site"/nvidia} ${cuda_root:+"$cuda_root"/include} /usr/local/cuda/include /usr/include; do
  [ -d "$dir" ] || continue
  nccl_h=$(find "$dir" -maxdepth 4 -name nccl.h -print -quit 2>/dev/null || true)
  [ -n "$nccl_h" ] && break
done
if [ -n "$nccl_h" ]; then
  nccl_inc=$(dirname "$nccl_h")
  nccl_lib=$(find "$(dirname "$nccl_inc")" /usr/local/cuda/lib64 -maxdepth 2 -name 'libnccl.so*' -print -quit 2>/dev/null || true)
  if [ -n "$nccl_lib" ]; then
    cmake_args+=(-DNCCL_INCLUDE_DIR="$nccl_inc" -DNCCL_LIBRARY="$nccl_lib")
    log "NCCL $nccl_lib"
  fi
elif [ -n "$torch_cuda" ]; then
  log "warning: no nccl.h found; the NCCL communicator will not be built"
fi
# cuDNN headers from the wheel, for Torch's CMake config (it only warns without).
if [ -n "$torch_site" ] && [ -d "$torch_site/nvidia" ]; then
  cudnn_h=$(find "$torch_site/nvidia" -maxdepth 4 -name cudnn.h -print -quit 2>/dev/null || true)
  if [ -n "$cudnn_h" ]; then
    cudnn_root=$(dirname "$(dirname "$cudnn_h")")
    cmake_args+=(-DCUDNN_ROOT="$cudnn_root" -DCUDNN_INCLUDE_PATH="$cudnn_root/include" -DCUDNN_LIBRARY_PATH="$cudnn_root/lib")
  fi
fi

# --- Configure and build --------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] && generator=()  # keep the generator of an existing build dir
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
configure=(cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
           -DRESIST_WITH_SIM=OFF -DRESIST_WITH_TESTS=OFF -DRESIST_WITH_TORCH=ON
           -DCMAKE_PREFIX_PATH="$prefix_path"
           -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$abi"
           -DBoost_USE_STATIC_LIBS=ON -DBoost_NO_SYSTEM_PATHS=ON -DRESIST_STATIC_IMAGE_LIBS=ON
           "${cmake_args[@]}" "${extra[@]}")
jobs=$(nproc 2>/dev/null || echo 4)
if [ "$dry_run" = 1 ]; then
  printf 'gpu-build: would run:' >&2; printf ' %q' "${configure[@]}" >&2; echo >&2
  log "would build every target that exists (resist-bench, resist-train, resist-launch, ...) with -j$jobs"
  exit 0
fi
"${configure[@]}" >&2
cmake --build "$build" -j"$jobs" >&2
# What was built: every executable under the build dir's runtime/.
find "$build/runtime" -maxdepth 3 -type f -perm -u+x -name 'resist-*' -printf '%p\n' | sort
