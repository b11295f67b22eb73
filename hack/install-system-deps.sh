#!/usr/bin/env bash
# Debian packages needed to build and test trtaoti; a no-op when all are installed.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git curl
  libcpp-httplib-dev nlohmann-json3-dev libgtest-dev
  prometheus-cpp-dev  # trtaoti-server /metrics
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc  # trtaoti-server gRPC
  libzip-dev libssl-dev  # trtaoti-server: package CRC-32 and sha256 checks
  buildah mmdebstrap  # make images: Dockerfiles built without a daemon, on a local Debian base
  runc containernetworking-plugins iptables kmod  # the real node (tests/node): runtime, pod network, Services
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
