#!/usr/bin/env bash
# Compiles the server's CUDA-only source for syntax and types (g++ -fsyntax-only) against
# the pinned torch's headers and the CUDA headers of pip wheels: nvidia-cuda-runtime (a
# dependency of the CUDA build of torch) and nvidia-cuda-crt (the lint extra). The
# machines CI runs on have no CUDA toolkit, so cuda_device.cc is otherwise compiled only
# on a GPU machine, where a typo costs a device call. Usage: check-cuda.sh [PYTHON]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:-python3}"

read -r torch_root cxx11_abi cuda_include < <("$python" -c '
import os, sysconfig, torch
major = (torch.version.cuda or "").split(".")[0]
include = os.path.join(sysconfig.get_paths()["purelib"], "nvidia", f"cu{major}", "include")
print(os.path.dirname(torch.__file__), int(torch.compiled_with_cxx11_abi()), include if major else "-")')
if [ ! -f "$cuda_include/cuda_runtime_api.h" ] || [ ! -f "$cuda_include/crt/host_config.h" ]; then
  echo "no CUDA headers at $cuda_include (a CUDA build of torch and nvidia-cuda-crt are needed: pip install -e '.[lint]')" >&2
  exit 1
fi
source="$here/src/cuda_device.cc"
g++ -std=c++20 -fsyntax-only -Wall -Werror -D_GLIBCXX_USE_CXX11_ABI="$cxx11_abi" \
  -I "$here/src" -I "$torch_root/include" -I "$torch_root/include/torch/csrc/api/include" -I "$cuda_include" \
  "$source"
echo "ok: $(basename "$source") compiles against torch $("$python" -c 'import torch; print(torch.__version__)') and $cuda_include"
