#!/usr/bin/env bash
# Gathers what bench/gpu_run.sh needs on a GPU machine that has no network (bench/README.md):
#
#   .whl/                  wheels of the Python packages that machine's image lacks, for
#                          its Python (cp312 by default), pinned: the compiler (pydantic,
#                          obstore), bench/python_baseline.py (fastapi, uvicorn), the load
#                          generator (httptools), tests/gpu (tritonclient[http])
#   .carry/server-deps/    trtaoti-server's C++ build dependencies, Debian 12 packages
#                          unpacked with dpkg -x (cpp-httplib with its OpenSSL, zlib and
#                          brotli headers, prometheus-cpp, nlohmann-json, libzip); the .deb
#                          files stay in .carry/debs
#   .carry/triton/         Triton Inference Server (the tritonserver of the pinned
#                          nvidia-pytriton wheel) for `gpu_run.sh triton`, trimmed to this
#                          Python's stub and the libraries it loads, xz-compressed (~25 MB);
#                          the wheel itself stays in .carry/wheels
#
# Run it in the repository on a Debian 12 (bookworm) x86-64 machine where PyPI and the
# Debian mirror are reachable: bench/prepare-offline.sh [--python-version 3.12]. It is
# idempotent: what is already there is not fetched again. All are git-ignored; .whl and
# .carry/server-deps travel with the device call's `carry` (64 MiB in all with the
# working tree; these two are about 27 MiB), and .carry/triton too for `gpu_run.sh triton`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python_version=3.12
[ "${1:-}" = --python-version ] && python_version=$2

# Pinned: the versions the project's venv resolved (pyproject.toml's ranges) when this
# list was last checked on the GPU machine's image (torch 2.11, Python 3.12, 2026-12).
# Not in the list because that image has them: numpy, requests, pyyaml, uvloop, anyio,
# h11, click, certifi, urllib3, ml-dtypes, aiohttp, annotated-doc, pytest(-xdist).
wheels=(
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0  # pydantic 2.14 needs >= 4.16; the image's may be older
  obstore==0.12.1
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 httptools==0.9.0 opentelemetry-api==1.45.2
  tritonclient==2.73.0 geventhttpclient==2.6.1 gevent==26.9.0 greenlet==3.3.2 zope.event==6.2 zope.interface==8.7
  python-rapidjson==1.25 brotli==1.2.1
)
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${wheels[@]}"
# One version of each: two of a name stop the install there (pip install --no-deps).
dupes=$(for w in .whl/*.whl; do basename "$w"; done | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dupes" ] || { echo "several versions of: $dupes (remove the stale ones from .whl)" >&2; exit 1; }

# Debian packages: headers, pkg-config and CMake files for the build, and the shared
# libraries the image may lack (bench/gpu_run.sh puts a carried library on the loader
# path only where the image has none of that name).
debs=(
  libcpp-httplib-dev libcpp-httplib0.11
  libssl-dev libssl3 zlib1g-dev libbrotli-dev libbrotli1
  prometheus-cpp-dev libprometheus-cpp-core1.0
  nlohmann-json3-dev
  libzip-dev libzip4 libbz2-1.0
)
mkdir -p .carry/debs .carry/server-deps
if ! (cd .carry/debs && apt-get download "${debs[@]}" >/dev/null 2>&1); then
  echo "apt-get download failed; updating the package lists first" >&2
  apt-get update -qq
  (cd .carry/debs && apt-get download "${debs[@]}")
fi
for deb in .carry/debs/*.deb; do dpkg -x "$deb" .carry/server-deps; done
# What the build does not use: static libraries (the server links shared ones), docs.
find .carry/server-deps -name '*.a' -delete
rm -rf .carry/server-deps/usr/share/doc .carry/server-deps/usr/share/man

# Triton Inference Server for `bench/gpu_run.sh triton`: the tritonserver of the pinned
# nvidia-pytriton wheel (pyproject.toml), trimmed to what runs there and xz-compressed,
# since the wheel (55 MB) would not fit the call beside the two folders above. Kept: the
# server, its Python backend, local cache and the stub for this Python, the wheel's
# dist-info (bench/triton_baseline.py reads the version) and pytriton's small Python
# files (it locates the server through that package), and of nvidia_pytriton.libs only
# the closure of what those binaries load (ELF NEEDED, followed through the bundled
# libraries). Dropped: the stubs for other Pythons and the 31 MB libpython3.13 that the
# 3.13 stub alone needs. What may stay unresolved is the system's (glibc, libstdc++,
# zlib) and libpython of the target Python, which the GPU machine's interpreter brings
# (gpu_run.sh checks with ldd there).
pin=$(grep -o 'nvidia-pytriton==[0-9.]*' pyproject.toml)
bundle=.carry/triton/pytriton-${pin#*==}-py$python_version.tar.xz
if [ ! -f "$bundle" ]; then
  mkdir -p .carry/wheels .carry/triton
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
    --platform manylinux_2_35_x86_64 -d .carry/wheels "$pin"
  tree=$(mktemp -d)
  trap 'rm -rf "$tree"' EXIT
  python3 -m zipfile -e .carry/wheels/nvidia_pytriton-"${pin#*==}"-*.whl "$tree"
  server=$tree/pytriton/tritonserver libs=$tree/nvidia_pytriton.libs
  # zipfile keeps no file modes: the two programs must be executable.
  chmod +x "$server/bin/tritonserver" "$server"/python_backend_stubs/*/triton_python_backend_stub
  for stubs in "$server"/python_backend_stubs/*; do
    [ "${stubs##*/}" = "$python_version" ] || rm -rf "$stubs"
  done
  system=" libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 ld-linux-x86-64.so.2 libstdc++.so.6 \
libgcc_s.so.1 libz.so.1 libpython$python_version.so.1.0 "
  queue=("$server/bin/tritonserver" "$server"/backends/*/*.so "$server"/caches/*/*.so
    "$server/python_backend_stubs/$python_version/triton_python_backend_stub")
  keep=" "
  while [ ${#queue[@]} -gt 0 ]; do
    elf=${queue[0]} queue=("${queue[@]:1}")
    for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      if [ -f "$libs/$lib" ]; then
        [[ $keep == *" $lib "* ]] || { keep+="$lib "; queue+=("$libs/$lib"); }
      elif [[ $system != *" $lib "* ]]; then
        echo "${elf##*/} needs $lib, neither in the wheel nor a system library" >&2
        exit 1
      fi
    done
  done
  for lib in "$libs"/*; do [[ $keep == *" ${lib##*/} "* ]] || { echo "dropped ${lib##*/}"; rm "$lib"; }; done
  find "$tree" -name __pycache__ -prune -exec rm -rf {} +
  tar -C "$tree" -cf - . | xz -9 -T0 >"$bundle.part"
  mv "$bundle.part" "$bundle"
fi

wheels=(.whl/*.whl) debs=(.carry/debs/*.deb)
echo "wheels: ${#wheels[@]} ($(du -sh .whl | cut -f1)); Debian packages: ${#debs[@]}," \
  "unpacked in .carry/server-deps ($(du -sh .carry/server-deps | cut -f1)); Triton: $bundle ($(du -sh "$bundle" | cut -f1));" \
  "carry [\".whl\", \".carry/server-deps\", \".carry/triton\"]"
