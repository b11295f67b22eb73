#!/usr/bin/env bash
# The GPU machine's two calls, each under 10 minutes on 16 cores and each standing
# alone (a machine goes back 30 s after a call, so the second usually starts bare):
#
#   bench/gpu_run.sh prepare   carried wheels -> /tmp/site, trtaoti-server built for CUDA,
#                              pytest tests/gpu with ResNet-50 compiled beside it, then
#                              bench/gpu_bench.py --models resnet50
#   bench/gpu_run.sh bench     wheels, server build, bench/gpu_bench.py --models encoder
#                              (its `trtaoti compile` included; a cache hit on a warm machine)
#
# Each call leaves $OUT/gpu-<model>.json (and gpu.md for its model); afterwards, on any machine,
#   python bench/gpu_bench.py --render DIR1/gpu-resnet50.json DIR2/gpu-encoder.json
# writes bench/results/gpu.md from both.
#
# The device call carries `.whl` (cp312 wheels the image lacks) and `.carry/server-deps`
# (cpp-httplib, prometheus-cpp, nlohmann-json, libzip headers and libraries for the server build):
#   run(command="bash bench/gpu_run.sh prepare", carry=[".whl", ".carry/server-deps"], timeout_s=600)
#   run(command="bash bench/gpu_run.sh bench",   carry=[".whl", ".carry/server-deps"], timeout_s=600)
# Packages go to .gpu-work/store (git-ignored); logs and results to $OUT (default .gpu-work/out).
#
# TRTAOTI_GPU_RUN_SMOKE=1 runs the same steps on a CPU machine with the project venv
# (--device cpu --smoke, the CPU test variant), to check this script without a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
phase="${1:?usage: bench/gpu_run.sh prepare|bench}"
budget="${TRTAOTI_GPU_RUN_BUDGET:-560}"  # seconds for the whole phase (the device call allows 600)
started=$SECONDS
export PYTHONUNBUFFERED=1
work="$repo/.gpu-work"
OUT="${OUT:-$work/out}"
mkdir -p "$work/logs" "$OUT"

if [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" = 1 ]; then
  python="${PYTHON:-$HOME/.cache/trtaoti/venv/bin/python}"
  bench_args=(--device cpu --smoke --packages "$work/smoke-store")
  first_model=mlp second_model=small-encoder out_stem=gpu-smoke
  export TRTAOTI_SERVE_TEST_DEVICE=cpu
  nice=(nice -n 10)
  preload=()
else
  python=python3
  bench_args=(--device cuda --packages "$work/store")
  first_model=resnet50 second_model=encoder out_stem=gpu
  nice=()
  # Python's aoti_load_package segfaults there without it (DESIGN.md); tests/gpu loads packages in-process.
  preload=(env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6)
fi

summary=()
record() { summary+=("$(printf '%-22s %s' "$1" "$2")"); echo "== $1: $2"; }
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

install_wheels() {
  [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" = 1 ] && { echo "smoke: the venv has them"; return 0; }
  local stamp
  stamp=$(ls .whl/*.whl | md5sum | cut -d' ' -f1)
  if [ -f /tmp/site/.wheels-"$stamp" ]; then echo "wheels already in /tmp/site"; return 0; fi
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && touch /tmp/site/.wheels-"$stamp"
}
export PYTHONPATH="/tmp/site:$repo/operator:$repo${PYTHONPATH:+:$PYTHONPATH}"

# The server's C++ dependencies, carried from a Debian machine (no apt there). Only
# the libraries the image lacks go on the loader path, not the carried libssl/libz.
deps="$repo/.carry/server-deps/usr"
if [ -d "$deps" ] && [ "${TRTAOTI_GPU_RUN_SMOKE:-0}" != 1 ]; then
  arch_lib="$deps/lib/x86_64-linux-gnu"
  mkdir -p "$work/server-libs"
  ln -sf "$arch_lib"/libcpp-httplib.so* "$arch_lib"/libprometheus-cpp-core.so* "$arch_lib"/libbrotli*.so* \
    "$arch_lib"/libzip.so* "$work/server-libs/"
  export PKG_CONFIG_PATH="$arch_lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CMAKE_PREFIX_PATH="$deps${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$deps/include:$deps/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$work/server-libs:$arch_lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$work/server-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
build_server() {
  # No GoogleTest on the GPU machine; the suite runs on the CPU machines.
  TRTAOTI_BUILD_JOBS="${TRTAOTI_BUILD_JOBS:-$(nproc)}" images/server/build.sh "$python" -DTRTAOTI_BUILD_TESTS=OFF &&
    "$python" - <<'EOF'
import sys
sys.path.insert(0, "tests/e2e")
import server_support as s, subprocess
print(subprocess.run([str(s.SERVER_BIN), "--help"], capture_output=True, text=True, check=True).stdout.splitlines()[0])
EOF
}

environment() {
  date -u
  "$python" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  nproc
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
}

export -f environment install_wheels build_server
export python

case "$phase" in
  prepare)
    # tests/gpu, and ResNet-50 compiled (beside the tests: 16 cores) then measured.
    step environment 60 environment
    step wheels 120 install_wheels
    model=$first_model
    (timeout --kill-after=10 "$(($(remaining) - 170))" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" \
       --compile-only --models "$model" >"$OUT/compile-$model.log" 2>&1; echo $? >"$work/compile-$model.rc") &
    step server-build 300 build_server
    # What is left after the tests must still hold the ResNet-50 measurements (~150 s).
    pytest_limit=$(($(remaining) - 160))
    [ "$pytest_limit" -gt 360 ] && pytest_limit=360
    step pytest-gpu "$pytest_limit" "${preload[@]}" "${nice[@]}" "$python" -m pytest -p no:cacheprovider --noconftest \
      tests/gpu -v -rs --junitxml="$OUT/pytest-gpu.xml"
    wait
    if [ "$(cat "$work/compile-$model.rc" 2>/dev/null)" = 0 ]; then
      record "compile-$model" "ok: $(grep -o 'compiled in [0-9]* s\|cache hit in [0-9]* s' "$OUT/compile-$model.log" | head -1)"
    else
      record "compile-$model" "FAILED ($OUT/compile-$model.log; the bench step below retries it)"
      tail -n 20 "$OUT/compile-$model.log"
    fi
    step "bench-$model" "$(remaining)" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" --models "$model" \
      --results "$OUT" --out "$OUT/$out_stem.md"
    cp -r "$work/logs" "$OUT/compiler-logs" 2>/dev/null
    echo
    echo "== tests/gpu"
    grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/pytest-gpu.log" | tail -n 40
    sed -n '/^SUMMARY/,$p' "$OUT/bench-$model.log"
    ;;
  bench)
    # The encoder: compiled (a no-op where the store already holds it) and measured.
    step environment 60 environment
    step wheels 120 install_wheels
    step server-build 300 build_server
    model=$second_model
    step "bench-$model" "$(remaining)" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" --models "$model" \
      --results "$OUT" --out "$OUT/$out_stem.md"
    cp -r "$work/logs" "$OUT/compiler-logs" 2>/dev/null
    echo
    sed -n '/^SUMMARY/,$p' "$OUT/bench-$model.log"
    ;;
  all)
    # Everything in one call, for a session with one call's worth of device time: both
    # bench models compile in the background (16 cores) beside the server build and
    # tests/gpu; then the encoder (the throughput target) is measured before ResNet-50.
    step environment 60 environment
    step wheels 120 install_wheels
    for model in $second_model $first_model; do
      (timeout --kill-after=10 "$(($(remaining) - 150))" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" \
         --compile-only --models "$model" >"$OUT/compile-$model.log" 2>&1; echo $? >"$work/compile-$model.rc") &
    done
    step server-build 300 build_server
    pytest_limit=$(($(remaining) - 260))
    [ "$pytest_limit" -gt 240 ] && pytest_limit=240
    step pytest-gpu "$pytest_limit" "${preload[@]}" "${nice[@]}" "$python" -m pytest -p no:cacheprovider --noconftest \
      tests/gpu -v -rs --junitxml="$OUT/pytest-gpu.xml"
    wait
    for model in $second_model $first_model; do
      record "compile-$model" "rc=$(cat "$work/compile-$model.rc" 2>/dev/null): $(grep -o 'compiled in [0-9]* s\|cache hit in [0-9]* s' "$OUT/compile-$model.log" | head -1)"
    done
    for model in $second_model $first_model; do
      step "bench-$model" "$(remaining)" "${nice[@]}" "$python" bench/gpu_bench.py "${bench_args[@]}" --models "$model" \
        --seconds "${TRTAOTI_GPU_RUN_SECONDS:-2}" --results "$OUT" --out "$OUT/$out_stem-$model.md"
    done
    cp -r "$work/logs" "$OUT/compiler-logs" 2>/dev/null
    echo
    echo "== tests/gpu"
    grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/pytest-gpu.log" | tail -n 30
    for model in $second_model $first_model; do sed -n '/^SUMMARY/,$p' "$OUT/bench-$model.log"; done
    ;;
  *)
    echo "usage: bench/gpu_run.sh prepare|bench|all" >&2
    exit 2
    ;;
esac

echo
echo "== $phase summary ($((SECONDS - started)) s)"
printf '%s\n' "${summary[@]}"
failed=0
for line in "${summary[@]}"; do case "$line" in *FAILED*|*SKIPPED*) failed=1 ;; esac; done
exit $failed
