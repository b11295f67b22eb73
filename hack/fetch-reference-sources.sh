#!/usr/bin/env bash
# Unpack the Python source of the pinned torch-tensorrt release into the cache, for
# tests/unit/test_compiler_tensorrt.py, which checks our calls against its real
# signatures. torch-tensorrt cannot be installed here (its TensorRT dependency comes
# from NVIDIA's own index), but its wheel's .py files can be read. Build time only:
# tests never download. A no-op when present.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*"torch-tensorrt==\([0-9.]*\)".*/\1/p' pyproject.toml)
[ -n "$version" ] || { echo "no torch-tensorrt==X pin in pyproject.toml" >&2; exit 1; }
dest="${TRTAOTI_CACHE:-$HOME/.cache/trtaoti}/ref/torch_tensorrt-$version"
[ -f "$dest/torch_tensorrt/_compile.py" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching torch-tensorrt $version sources (reference for its call signatures)"
# The project venv's interpreter (make passes it): Debian's python3 has no pip.
python="${TRTAOTI_PYTHON:-python3}"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 -d "$tmp" "torch-tensorrt==$version"
# A wheel is a zip: Python's own zipfile unpacks it, no unzip binary needed.
"$python" - "$tmp" <<'PY'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
(wheel,) = tmp.glob("torch_tensorrt-*.whl")
with zipfile.ZipFile(wheel) as archive:
    members = [n for n in archive.namelist() if n.startswith("torch_tensorrt/") and n.endswith(".py")]
    archive.extractall(tmp / "src", members)
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest" && mv "$tmp/src" "$dest"
