#!/usr/bin/env bash
# shellcheck disable=SC2329  # the steps run through `step` (bash -c with an exported function's name)
# The GPU benchmark and tests on a machine without network, in device calls of at most
# 10 minutes that each stand alone (a machine is usually bare at the next call):
#
#   bench/gpu_run.sh bench   carried wheels -> /tmp/site; both bench models compiled by
#                            `trtaoti compile` in the background while trtaoti-server builds
#                            for CUDA; then bench/gpu_bench.py on the encoder, then ResNet-50:
#                            the lone request (floor layers and server in alternating rounds),
#                            per batch (floor, server, CUDA graph replay, eager PyTorch),
#                            throughput.
#   bench/gpu_run.sh tests   wheels, server build, tests/gpu (its two files side by side),
#                            then bench/torch_baselines.py: eager PyTorch and
#                            torch.compile(mode="max-autotune") per batch for the encoder.
#   bench/gpu_run.sh autotune  torch.compile(mode="max-autotune") for ResNet-50 alone (its
#                            autotuning alone takes minutes per batch size).
#   bench/gpu_run.sh triton  the carried Triton bundle (.carry/triton) unpacked and checked
#                            with ldd; both models compiled in the background while the server
#                            builds; then bench/gpu_bench.py --triton, the encoder first:
#                            trtaoti-server against Triton Inference Server and the floor in
#                            alternating rounds (issue #16's GPU column).
#
# What must be carried, and how to gather it where PyPI and Debian are reachable:
# bench/README.md (bench/prepare-offline.sh fills .whl and .carry/server-deps). Then:
#   run(command="bash bench/gpu_run.sh bench", carry=[".whl", ".carry/server-deps"], timeout_s=600)
#   run(command="bash bench/gpu_run.sh tests", carry=[".whl", ".carry/server-deps"], timeout_s=600)
#   run(command="bash bench/gpu_run.sh triton", carry=[".whl", ".carry/server-deps", ".carry/triton"], timeout_s=600)
# (the workplace's device tool sends the checkout the session started in: from another
# worktree, copy the tree and those two folders into an ignored folder of that checkout,
# carry it, and cd into it first; bench/README.md)
# Packages go to .gpu-work/store (git-ignored); logs and results to .gpu-work/out-PHASE,
# packed into $OUT when the caller sets it (below). Afterwards, on any machine,
#   python bench/gpu_bench.py --render OUT1/gpu-*.json OUT2/torch-*.json
# writes bench/results/gpu.md from both calls.
#
# Every step runs under a timeout cut from the phase's budget (TRTAOTI_GPU_RUN_BUDGET,
# default 560 s of the call's 600), so the phase always ends with its summary; it exits
# 0 only when every step passed.
#
# TRTAOTI_GPU_RUN_MODELS="encoder" measures a subset of the models (default both).
# TRTAOTI_GPU_RUN_SMOKE=1 runs the same steps on a CPU machine with the project venv
# (--device cpu --smoke, the CPU test variant), to check this script without a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
repo=$PWD
phase="${1:?usage: bench/gpu_run.sh bench|tests|autotune|triton}"
budget="${TRTAOTI_GPU_RUN_BUDGET:-560}"
started=$SECONDS
export PYTHONUNBUFFERED=1
work="$repo/.gpu-work"
# Everything lands in $work/out-PHASE; where the caller gave $OUT (the device tool brings
# back at most 8 files from it), the end of the phase packs that folder into
# $OUT/PHASE-logs.tgz and copies the results JSON and the summary beside it.
final_out="${OUT:-}"
OUT="$work/out-$phase"
rm -rf "$OUT"
mkdir -p "$work/logs" "$OUT"
pack() {
  [ -n "$final_out" ] && [ "$final_out" != "$OUT" ] || return 0
  mkdir -p "$final_out"
  cp "$work/logs/"*.log "$OUT/" 2>/dev/null
  tar czf "$final_out/$phase-logs.tgz" -C "$OUT" .
  cp "$OUT"/*.json "$OUT/summary.txt" "$final_out/" 2>/dev/null
  true
}
trap pack EXIT

if [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" = 1 ]; then
  python="${PYTHON:-$HOME/.cache/trtaoti/venv/bin/python}"
  device=cpu
  bench_args=(--device cpu --smoke --packages "$work/smoke-store")
  models=(small-encoder mlp) out_stem=gpu-smoke torch_modes=eager
  export TRTAOTI_SERVE_TEST_DEVICE=cpu
  nice=(nice -n 10)
  preload=()
else
  python=python3
  device=cuda
  bench_args=(--device cuda --packages "$work/store")
  read -ra models <<<"${TRTAOTI_GPU_RUN_MODELS:-encoder resnet50}"
  out_stem=gpu torch_modes=eager,max-autotune
  nice=()
  # Python's aoti_load_package segfaults there without it (DESIGN.md); tests/gpu loads packages in-process.
  preload=(env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6)
fi

summary=()
record() { summary+=("$(printf '%-24s %s' "$1" "$2")"); echo "== $1: $2"; }
remaining() { echo $((budget - (SECONDS - started))); }

# step NAME MAX_SECONDS COMMAND...: runs with a timeout (the smaller of MAX_SECONDS and
# what is left of the budget), output to $OUT/NAME.log and the console.
step() {
  local name=$1 limit=$2
  shift 2
  local left
  left=$(remaining)
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then record "$name" "SKIPPED (budget spent)"; return 1; fi
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  # Through bash -c: the steps below are shell functions (exported), which timeout cannot run itself.
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=$?
  if [ $rc -eq 0 ]; then record "$name" "ok ($((SECONDS - t0)) s)"; else record "$name" "FAILED rc=$rc ($((SECONDS - t0)) s; $OUT/$name.log)"; fi
  return $rc
}

# background NAME MAX_SECONDS COMMAND...: the same, not waited for; `finish NAME` waits
# and records it.
background() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (background, limit ${limit}s): $*"
  (timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$OUT/$name.log" 2>&1; echo $? >"$work/$name.rc") &
}
finish() {
  local name=$1
  wait
  local rc
  rc=$(cat "$work/$name.rc" 2>/dev/null || echo missing)
  if [ "$rc" = 0 ]; then record "$name" "ok"; else record "$name" "FAILED rc=$rc ($OUT/$name.log)"; tail -n 15 "$OUT/$name.log"; fi
}

install_wheels() {
  [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" = 1 ] && { echo "smoke: the venv has them"; return 0; }
  ls .whl/*.whl >/dev/null || { echo "no .whl/*.whl: run bench/prepare-offline.sh where PyPI is reachable and carry .whl"; return 1; }
  local stamp
  stamp=$(printf '%s\n' .whl/*.whl | md5sum | cut -d' ' -f1)
  if [ -f /tmp/site/.wheels-"$stamp" ]; then echo "wheels already in /tmp/site"; return 0; fi
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && touch /tmp/site/.wheels-"$stamp"
}
export PYTHONPATH="/tmp/site:$repo/operator:$repo${PYTHONPATH:+:$PYTHONPATH}"

# Triton Inference Server for the triton phase: bench/prepare-offline.sh's bundle of the
# pinned nvidia-pytriton wheel, unpacked as a site-packages folder (bench/triton_baseline.py
# finds the `pytriton` package on PYTHONPATH). Its Python backend stub embeds this machine's
# Python: libpython must load, from the loader's path or sysconfig's LIBDIR (which
# triton_baseline puts on the server's LD_LIBRARY_PATH).
triton_site=/tmp/triton-site
unpack_triton() {
  [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" = 1 ] && { echo "smoke: the venv has nvidia-pytriton"; return 0; }
  local bundle libdir server usage missing=""
  bundle=$(find .carry/triton -name "pytriton-*.tar.xz" 2>/dev/null | head -n 1)
  [ -n "$bundle" ] || { echo "no .carry/triton/pytriton-*.tar.xz: run bench/prepare-offline.sh where PyPI is reachable and carry .carry/triton"; return 1; }
  rm -rf "$triton_site" && mkdir -p "$triton_site" && tar -xJf "$bundle" -C "$triton_site" || return 1
  libdir=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
  server="$triton_site/pytriton/tritonserver"
  for elf in "$server/bin/tritonserver" "$server"/backends/*/*.so "$server"/python_backend_stubs/*/triton_python_backend_stub; do
    missing+=$(LD_LIBRARY_PATH="$libdir:$triton_site/nvidia_pytriton.libs" ldd "$elf" | grep "not found" | sed "s|^|${elf##*/}: |")
  done
  [ -z "$missing" ] || { echo "Triton cannot load (libpython from $libdir):"; echo "$missing"; return 1; }
  # --help exits 1 after printing its usage: the usage line is the check that it runs.
  usage=$(LD_LIBRARY_PATH="$triton_site/nvidia_pytriton.libs" "$server/bin/tritonserver" --help 2>&1)
  [[ $usage == "Usage: tritonserver"* ]] || { echo "tritonserver does not run: ${usage:0:2000}"; return 1; }
  echo "$bundle unpacked in $triton_site ($(du -sh "$triton_site" | cut -f1)); $(ls "$server/python_backend_stubs")"
}
if [ "$phase" = triton ] && [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" != 1 ]; then export PYTHONPATH="$PYTHONPATH:$triton_site"; fi
export triton_site

# The server's C++ dependencies, carried from a Debian machine (no apt there) and
# unpacked by prepare-offline.sh. Their .pc files say prefix=/usr, so the headers and
# libraries are found through CPATH and LIBRARY_PATH. Only the libraries the image lacks
# go on the loader path (server-libs), never the carried libc-level ones.
deps="$repo/.carry/server-deps/usr"
arch_lib="$deps/lib/x86_64-linux-gnu"
if [ -d "$deps" ] && [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" != 1 ]; then
  mkdir -p "$work/server-libs"
  export PKG_CONFIG_PATH="$arch_lib/pkgconfig:$deps/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CMAKE_PREFIX_PATH="$deps${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$deps/include:$deps/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$work/server-libs:$arch_lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$work/server-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export deps arch_lib work
build_server() {
  if [ -d "$arch_lib" ] && [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" != 1 ]; then
    # Runtime libraries: the carried one only where the image has none of that name.
    for lib in "$arch_lib"/lib*.so.*; do
      [ -e "$lib" ] || continue
      local name
      name=$(basename "$lib")
      case "$name" in libssl.so*|libcrypto.so*|libz.so*|libc.so*|libstdc++*|libgcc*) continue ;; esac
      ldconfig -p | grep -q " $name " || ln -sf "$lib" "$work/server-libs/$name"
    done
  fi
  # No GoogleTest on the GPU machine; the suite runs on the CPU machines.
  TRTAOTI_BUILD_JOBS="${TRTAOTI_BUILD_JOBS:-$(nproc)}" images/server/build.sh "$python" -DTRTAOTI_BUILD_TESTS=OFF || return 1
  local missing
  missing=$(ldd images/server/build/trtaoti-server | grep "not found")
  [ -z "$missing" ] || { echo "trtaoti-server cannot load: $missing"; return 1; }
  images/server/build/trtaoti-server --help | head -n 1
}

environment() {
  date -u
  "$python" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  nproc
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
  command -v nvcc >/dev/null && nvcc --version | tail -n 1 || true
  (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
}

export -f environment install_wheels build_server unpack_triton
export python

# compile_and_build SECONDS: both packages compile in the background beside the server
# build (16 cores), leaving SECONDS of the budget for what follows; a package already in
# the store is a cache hit.
compile_and_build() {
  local model
  for model in "${models[@]}"; do
    background "compile-$model" $(($(remaining) - $1)) "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" \
      --compile-only --models "$model"
  done
  step server-build 300 build_server
  for model in "${models[@]}"; do finish "compile-$model"; done
  for model in "${models[@]}"; do
    grep -o 'compiled in [0-9]* s\|cache hit in [0-9]* s' "$OUT/compile-$model.log" | head -1
  done
}

case "$phase" in
  bench)
    step environment 30 environment
    step wheels 90 install_wheels
    # The measurements need about 130 s per model after that.
    compile_and_build 200
    # The encoder first: its lone request is the tighter target (+100 us).
    for model in "${models[@]}"; do
      step "bench-$model" "$(remaining)" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" --models "$model" \
        --torch-modes eager --results "$OUT" --out "$OUT/$out_stem-$model.md"
    done
    echo
    for model in "${models[@]}"; do sed -n '/^SUMMARY/,$p' "$OUT/bench-$model.log"; done | tee "$OUT/summary.txt"
    ;;
  tests)
    step environment 30 environment
    step wheels 90 install_wheels
    step server-build 300 build_server
    # The two files side by side (alone they take ~105 s and ~230 s; together 209 s on
    # the H200, 2026-12-02), where pytest-xdist is installed (the GPU image has it).
    xdist=()
    "$python" -c "import xdist" 2>/dev/null && xdist=(-n 2 --dist loadfile)
    step pytest-gpu $(($(remaining) - 150)) "${preload[@]}" "${nice[@]}" "$python" -m pytest -p no:cacheprovider \
      --noconftest "${xdist[@]}" tests/gpu -v -rs --junitxml="$OUT/pytest-gpu.xml"
    # Then, alone on the machine, eager and torch.compile(mode="max-autotune") for the
    # encoder (its compile ~40 s). Nothing compiles beside it: leftover compile workers
    # slowed eager's launch-bound small batches by up to 2x in a run that overlapped.
    step torch-baselines "$(remaining)" "${nice[@]}" "$python" bench/torch_baselines.py --models "${models[0]}" \
      --modes "$torch_modes" --device "$device" --out "$OUT" --deadline-s $(($(remaining) - 40))
    echo
    echo "== tests/gpu"
    grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/pytest-gpu.log" | tail -n 30 | tee "$OUT/summary.txt"
    ;;
  autotune)
    # torch.compile(mode="max-autotune") for ResNet-50 alone: autotuning every
    # convolution took 299 s for its first batch size on the H200 (2026-12-02), so it
    # gets a call of its own (eager is measured by the bench phase).
    step environment 30 environment
    step wheels 90 install_wheels
    step torch-baselines "$(remaining)" "${nice[@]}" "$python" bench/torch_baselines.py --models "${models[1]}" \
      --modes "${torch_modes#eager,}" --device "$device" --out "$OUT" --deadline-s $(($(remaining) - 60))
    ;;
  triton)
    step environment 30 environment
    step wheels 90 install_wheels
    # Nothing else is worth the call's time where Triton cannot load.
    step triton-unpack 60 unpack_triton || models=()
    # Each comparison needs about 2 minutes (Triton's start, where each stub's first
    # aoti_load_package takes 35-46 s, and 3 rounds); the encoder goes first and leaves
    # ResNet-50 enough.
    compile_and_build 240
    for model in "${models[@]}"; do
      limit=$(remaining)
      [ "$model" = "${models[0]}" ] && [ "$limit" -gt 340 ] && limit=$((limit - 140))
      # The stubs load packages in Python (aoti_load_package): the preload avoids its segfault there (DESIGN.md).
      step "triton-$model" "$limit" "${preload[@]}" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" \
        --models "$model" --triton --results "$OUT" --out "$OUT/$out_stem-triton-$model.md"
    done
    echo
    for model in "${models[@]}"; do sed -n '/^SUMMARY/,$p' "$OUT/triton-$model.log"; done | tee "$OUT/summary.txt"
    ;;
  *)
    echo "usage: bench/gpu_run.sh bench|tests|autotune|triton" >&2
    exit 2
    ;;
esac

{
  echo
  echo "== $phase summary ($((SECONDS - started)) s)"
  printf '%s\n' "${summary[@]}"
} | tee -a "$OUT/summary.txt"
failed=0
for line in "${summary[@]}"; do case "$line" in *FAILED*|*SKIPPED*) failed=1 ;; esac; done
exit $failed
