#!/usr/bin/env bash
# Build trtaoti-server (+ its GoogleTest suite and the bench floor) against the libtorch
# of the torch wheel installed for PYTHON. Incremental: a rebuild with nothing changed
# is a no-op. Usage: images/server/build.sh [PYTHON] [extra cmake args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:-python3}"
shift || true
build="${TRTAOTI_SERVER_BUILD_DIR:-$here/build}"

read -r torch_root cxx11_abi < <("$python" -c \
  'import os, torch; print(os.path.dirname(torch.__file__), int(torch.compiled_with_cxx11_abi()))')

generator=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
# Configure only when needed: cmake itself re-runs when CMakeLists.txt changes.
if [ ! -f "$build/CMakeCache.txt" ] || ! grep -q "^TORCH_ROOT:PATH=$torch_root\$" "$build/CMakeCache.txt"; then
  cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DTORCH_ROOT="$torch_root" -DTORCH_CXX11_ABI="$cxx11_abi" "$@"
fi
jobs="${TRTAOTI_BUILD_JOBS:-$(nproc)}"
cmake --build "$build" --parallel "$jobs"
