#!/usr/bin/env bash
# Builds the test control plane from Go modules pinned in hack/versions.env:
#   kube-apiserver kube-controller-manager kube-scheduler kubectl  (k8s.io/kubernetes, hack/go/kubernetes)
#   kubelet kube-proxy  (the same module: the real node, hack/node/)
#   etcd (hack/go/etcd)  kwok  helm  minio
#   containerd containerd-shim-runc-v2 ctr  (github.com/containerd/containerd/v2)
# into a cache outside the repo keyed by those pins, so a second run builds nothing.
#
#   hack/build-binaries.sh              build what is missing (no-op when the cache is complete)
#   hack/build-binaries.sh --print-dir  print the binary directory, build nothing
#   hack/build-binaries.sh --check      exit 1 with one line when binaries are missing
#
# Env: TRTAOTI_BIN_CACHE (default ~/.cache/trtaoti/bin), BUILD_LOG (default <dir>.log).
set -euo pipefail

hack_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$hack_dir/versions.env"

# Binaries this script guarantees; the tests and launcher rely on exactly these names.
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok helm minio
          containerd containerd-shim-runc-v2 ctr)

# The key covers every input that changes the binaries: the pins, this script (its build
# flags), the wrapper modules' dependency graphs and sources.
key_inputs=("$hack_dir/versions.env" "$hack_dir/build-binaries.sh"
            "$hack_dir"/go/*/go.mod "$hack_dir"/go/*/go.sum "$hack_dir"/go/*/*.go)
key="k8s-${KUBERNETES_VERSION}-$(cat "${key_inputs[@]}" 2>/dev/null | sha256sum | cut -c1-12)"
cache_root="${TRTAOTI_BIN_CACHE:-$HOME/.cache/trtaoti/bin}"
bin_dir="$cache_root/$key"

missing() {
  local b out=()
  for b in "${BINARIES[@]}"; do [[ -x "$bin_dir/$b" ]] || out+=("$b"); done
  echo "${out[*]}"
}

case "${1:-}" in
  --print-dir) echo "$bin_dir"; exit 0 ;;
  --check)
    m="$(missing)"
    if [[ -n "$m" ]]; then
      echo "control-plane binaries missing in $bin_dir ($m): run 'make bins'" >&2; exit 1
    fi
    exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print-dir|--check]" >&2; exit 2 ;;
esac

[[ -z "$(missing)" ]] && exit 0

command -v go >/dev/null || { echo "go not found on PATH: install Go >= 1.26 to run 'make bins'" >&2; exit 1; }

# The wrapper module must require the same Kubernetes release versions.env pins.
k8s_minor_patch="${KUBERNETES_VERSION#v1.}"
if ! grep -Eq "^\s*(require )?k8s.io/kubernetes ${KUBERNETES_VERSION}( |\$)" "$hack_dir/go/kubernetes/go.mod" ||
   grep -E '=> k8s.io/[a-z-]+ v' "$hack_dir/go/kubernetes/go.mod" | grep -vq "v0.${k8s_minor_patch}\$"; then
  echo "hack/go/kubernetes/go.mod does not match KUBERNETES_VERSION=${KUBERNETES_VERSION} in hack/versions.env: update its require and replace lines" >&2
  exit 1
fi

mkdir -p "$bin_dir"
# Concurrent `make bins` (parallel sessions, CI steps) wait for one another, then find
# the binaries the first one built.
exec 9>"$bin_dir.lock"
flock 9
[[ -z "$(missing)" ]] && exit 0

log="${BUILD_LOG:-$bin_dir.log}"
echo "building control-plane binaries into $bin_dir (log: $log)"
: > "$log"
start=$SECONDS

export CGO_ENABLED=0
build_flags=(-trimpath)
run() {  # run a build step quietly; on failure print the one line that says what to do
  local what="$1"; shift
  if ! nice -n 10 "$@" >>"$log" 2>&1; then
    echo "building $what failed (see $log; last lines below). Fix or re-run 'make bins'." >&2
    tail -n 15 "$log" >&2
    exit 1
  fi
}
need() { [[ ! -x "$bin_dir/$1" ]]; }

if need etcd; then
  echo "  etcd ${ETCD_VERSION}"
  run etcd bash -c "cd '$hack_dir/go/etcd' && go build ${build_flags[*]} -ldflags='-s -w' -o '$bin_dir/etcd.tmp' . && mv '$bin_dir/etcd.tmp' '$bin_dir/etcd'"
fi

if need kwok; then
  echo "  kwok ${KWOK_VERSION}"
  run kwok env GOBIN="$bin_dir" go install "${build_flags[@]}" \
    -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
fi

if need helm; then
  echo "  helm ${HELM_VERSION}"
  # Offline (`helm template`, `helm lint`) helm assumes the Kubernetes version stamped at
  # build time; upstream's Makefile stamps its client-go's, a bare `go install` leaves
  # 1.20, which fails charts that require a current cluster. Stamp the pinned one.
  helm_k8s_minor="${k8s_minor_patch%%.*}"
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${helm_k8s_minor}"
  done
  run helm env GOBIN="$bin_dir" go install "${build_flags[@]}" -ldflags="$helm_ldflags" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi

if need minio; then
  echo "  minio ${MINIO_VERSION}"
  run minio env GOBIN="$bin_dir" go install "${build_flags[@]}" -ldflags="-s -w" \
    "github.com/minio/minio@${MINIO_VERSION}"
fi

if need containerd || need containerd-shim-runc-v2 || need ctr; then
  echo "  containerd ${CONTAINERD_VERSION}"
  # no_btrfs: the btrfs snapshotter needs C headers; the node uses overlayfs.
  containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
  run containerd env GOBIN="$bin_dir" go install "${build_flags[@]}" -tags no_btrfs -ldflags="$containerd_ldflags" \
    "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}"
fi

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
todo=()
for b in "${k8s_bins[@]}"; do need "$b" && todo+=("k8s.io/kubernetes/cmd/$b"); done
if ((${#todo[@]})); then
  echo "  kubernetes ${KUBERNETES_VERSION}: ${todo[*]##*/}"
  minor="${k8s_minor_patch%%.*}"
  ldflags="-s -w"
  # Both version packages: component-base feeds /version, client-go feeds the User-Agent
  # and kubectl's client version. The Go proxy does not expose the tag's git commit, so
  # gitCommit is set empty rather than left as the "$Format:%H$" placeholder.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor} -X $pkg.gitCommit="
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${KUBERNETES_BUILD_DATE}"
  done
  tmp="$bin_dir/.k8s.tmp"; mkdir -p "$tmp"
  run kubernetes bash -c "cd '$hack_dir/go/kubernetes' && go build ${build_flags[*]} -ldflags='$ldflags' -o '$tmp/' ${todo[*]}"
  for b in "${k8s_bins[@]}"; do [[ -x "$tmp/$b" ]] && mv "$tmp/$b" "$bin_dir/$b"; done
  rmdir "$tmp"
fi

m="$(missing)"
[[ -z "$m" ]] || { echo "build finished but binaries are missing ($m): see $log" >&2; exit 1; }
echo "control-plane binaries ready in $bin_dir ($((SECONDS - start)) s)"
