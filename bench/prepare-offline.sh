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
#
# Run it in the repository on a Debian 12 (bookworm) x86-64 machine where PyPI and the
# Debian mirror are reachable: bench/prepare-offline.sh [--python-version 3.12]. It is
# idempotent: what is already there is not fetched again. Both folders are git-ignored;
# .whl and .carry/server-deps travel with the device call's `carry` (64 MiB in all with
# the working tree; these two are about 27 MiB).
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

wheels=(.whl/*.whl) debs=(.carry/debs/*.deb)
echo "wheels: ${#wheels[@]} ($(du -sh .whl | cut -f1)); Debian packages: ${#debs[@]}," \
  "unpacked in .carry/server-deps ($(du -sh .carry/server-deps | cut -f1)); carry [\".whl\", \".carry/server-deps\"]"
