#!/usr/bin/env bash
# Builds the operator, compiler and server images from images/*/Dockerfile without a
# daemon or a registry: buildah (chroot isolation) into local container storage. This is
# the CPU variant the real-node tests run (docs/dev-cluster.md):
#
#   base     a Debian rootfs bootstrapped here with mmdebstrap (no base image can be
#            pulled), passed as the Dockerfiles' BASE_IMAGE/PYTHON_IMAGE build args;
#   wheels   a wheelhouse downloaded from PyPI once, mounted into the builds, which run
#            pip with PIP_NO_INDEX (nothing is downloaded while an image builds);
#   tensorrt switched off (WITH_TENSORRT=false): NVIDIA's index is unreachable here;
#   pause    the node's sandbox image, from hack/node/pause.c.
#
# Every image is tagged localhost/trtaoti/<name>:<key>, the key hashing all of its inputs
# (Dockerfile, copied sources, base, wheelhouse, build args), so a warm run builds nothing.
#
#   hack/build-images.sh            build what is missing, print names and sizes
#   hack/build-images.sh --print    print NAME=image lines for the current inputs, build nothing
#   hack/build-images.sh --check    exit 1 with one line when an image is missing
#
# Env: TRTAOTI_PYTHON (a Python with pip, for the wheelhouse; default python3),
#      TRTAOTI_IMAGE_CACHE (default ~/.cache/trtaoti/images: the wheelhouse and the log).
set -euo pipefail

hack_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$hack_dir/.." && pwd)"
# shellcheck source=versions.env
source "$hack_dir/versions.env"
python="${TRTAOTI_PYTHON:-python3}"
cache="${TRTAOTI_IMAGE_CACHE:-$HOME/.cache/trtaoti/images}"
registry=localhost/trtaoti
# The base's packages: Python for the operator image (whose Dockerfile expects `python`),
# and what every image's Dockerfile expects of a base (groupadd/useradd come with
# Debian's required set).
base_packages=python3,python3-venv,python-is-python3,ca-certificates

digest() { sha256sum | cut -c1-16; }

# The content of files (path and bytes, sorted), skipping what .dockerignore keeps out
# of the build context.
hash_tree() {
  (cd "$repo" && find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' \
    ! -path 'images/server/build/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | digest
}

requirements() {  # what the Python images install: the package, its compile extra, its build backend
  "$python" - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(project["project"]["dependencies"] + project["project"]["optional-dependencies"]["compile"]
                + project["build-system"]["requires"]))
EOF
}

python_tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
base_key="$( { echo "$DEBIAN_RELEASE $DEBIAN_MIRROR $base_packages"; } | digest)"
base_image="$registry/debian:$DEBIAN_RELEASE-$base_key"
wheels_key="$( { requirements; echo "$python_tag"; } | digest)"
wheels="$cache/wheels-$wheels_key"
pause_image="$registry/pause:$(digest <"$hack_dir/node/pause.c")"  # content only: the same key in any checkout

# Build args shared by the three Dockerfiles; part of each key.
common_args=(--build-arg "PIP_NO_INDEX=1" --build-arg "PIP_FIND_LINKS=/wheels")
operator_args=(--build-arg "PYTHON_IMAGE=$base_image")
torch_args=(--build-arg "BASE_IMAGE=$base_image" --build-arg "WITH_TENSORRT=false")
server_args=("${torch_args[@]}" --build-arg "RUNTIME_IMAGE=$base_image" --build-arg "TORCHTRT_RUNTIME=")
image_key() {  # name, build args..., -- source paths...
  local name="$1"; shift
  local args=() 
  while [[ "$1" != -- ]]; do args+=("$1"); shift; done; shift
  { echo "$name ${args[*]} ${common_args[*]} $base_image $wheels_key"; cat "$repo/images/$name/Dockerfile"; hash_tree "$@"; } | digest
}
operator_image="$registry/operator:$(image_key operator "${operator_args[@]}" -- pyproject.toml README.md LICENSE VERSION operator)"
compiler_image="$registry/compiler:$(image_key compiler "${torch_args[@]}" -- pyproject.toml README.md LICENSE VERSION operator examples)"
server_image="$registry/server:$(image_key server "${server_args[@]}" -- VERSION images/server)"

exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }
all_images=("$operator_image" "$compiler_image" "$server_image" "$pause_image")

case "${1:-}" in
  --print)
    printf 'OPERATOR_IMAGE=%s\nCOMPILER_IMAGE=%s\nSERVER_IMAGE=%s\nPAUSE_IMAGE=%s\n' "${all_images[@]}"
    exit 0 ;;
  --check)
    for image in "${all_images[@]}"; do
      exists "$image" || { echo "image $image is missing: run 'make images'" >&2; exit 1; }
    done
    exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print|--check]" >&2; exit 2 ;;
esac

for tool in buildah mmdebstrap gcc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run hack/install-system-deps.sh" >&2; exit 1; }
done
[[ "$(id -u)" = 0 ]] || { echo "building images needs root (buildah's chroot isolation, mmdebstrap)" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # concurrent runs wait, then find the images the first one built
log="$cache/build.log"
renice -n 10 $$ >/dev/null  # builds yield the CPU to whatever else runs (tests, a dev cluster)
start=$SECONDS
run() {  # a build step, quiet; on failure the log's tail says why
  local what="$1"; shift
  echo "  $what"
  if ! "$@" >>"$log" 2>&1 9>&-; then  # the lock stays with this script, not with what a build leaves behind
    echo "building $what failed (log: $log; last lines below)" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}
: >"$log"

build_base() {
  local container mount
  container="$(buildah from scratch)"
  mount="$(buildah mount "$container")"
  mmdebstrap --quiet --variant=minbase --include="$base_packages" "$DEBIAN_RELEASE" "$mount" "$DEBIAN_MIRROR" \
    && buildah umount "$container" >/dev/null \
    && buildah commit --quiet --rm "$container" "$base_image" >/dev/null
}

build_pause() {
  local dir container
  dir="$(mktemp -d)"
  gcc -static -Os -Wall -Wextra -Werror -o "$dir/pause" "$hack_dir/node/pause.c"
  container="$(buildah from scratch)"
  buildah copy "$container" "$dir/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$container"
  buildah commit --quiet --rm "$container" "$pause_image" >/dev/null
  rm -rf "$dir"
}

fetch_wheels() {
  local tmp="$wheels.tmp"
  rm -rf "$tmp"
  requirements >"$cache/requirements-$wheels_key.txt"
  "$python" -m pip download --quiet --only-binary=:all: --dest "$tmp" -r "$cache/requirements-$wheels_key.txt"
  mv "$tmp" "$wheels"
}

build_image() {  # name, image, build args...
  local name="$1" image="$2"; shift 2
  # docker format: OCI images have no SHELL, and the Dockerfiles RUN bash.
  buildah bud --format docker --isolation chroot --layers --quiet --volume "$wheels:/wheels:ro" \
    "${common_args[@]}" "$@" -f "images/$name/Dockerfile" -t "$image" "$repo"
}

echo "building images (log: $log)"
cd "$repo"
exists "$base_image" || run "base $base_image (mmdebstrap $DEBIAN_RELEASE)" build_base
exists "$pause_image" || run "sandbox $pause_image" build_pause
if ! exists "$operator_image" || ! exists "$compiler_image" || ! exists "$server_image"; then
  [[ -d "$wheels" ]] || run "wheelhouse $wheels (PyPI)" fetch_wheels
fi
exists "$operator_image" || run "operator $operator_image" build_image operator "$operator_image" "${operator_args[@]}"
exists "$compiler_image" || run "compiler $compiler_image" build_image compiler "$compiler_image" "${torch_args[@]}"
exists "$server_image" || run "server $server_image" build_image server "$server_image" "${server_args[@]}"

# Earlier keys' images, what only they used, and old wheelhouses only take disk (the
# server's build stage leaves gigabytes). Layers of the images kept stay: they are the
# build cache (the torch layers above all).
for image in $(buildah images --format '{{.Name}}:{{.Tag}}' | grep "^$registry/" || true); do
  [[ " ${all_images[*]} $base_image " == *" $image "* ]] || buildah rmi "$image" >/dev/null 2>&1 || true
done
buildah rmi --prune >/dev/null 2>&1 || true
find "$cache" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$wheels_key" -exec rm -rf {} +

echo "images ready ($((SECONDS - start)) s):"
buildah images --format '  {{.Name}}:{{.Tag}}  {{.Size}}' | grep -F -e "${all_images[0]}" -e "${all_images[1]}" \
  -e "${all_images[2]}" -e "${all_images[3]}" -e "$base_image" || true
