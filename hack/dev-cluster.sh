#!/usr/bin/env bash
# Local control plane + KWOK fake GPU nodes + MinIO for development and tests.
#   hack/dev-cluster.sh up      start in the background; writes .dev/kubeconfig and .dev/s3.env
#   hack/dev-cluster.sh down    stop everything `up` started
#   hack/dev-cluster.sh status
# Binaries come from hack/build-binaries.sh (make bins). See docs/dev-cluster.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${TRTAOTI_PYTHON:-${HOME}/.cache/trtaoti/venv/bin/python}"
[[ -x "$python" ]] || python=python3
cd "$repo/tests"
exec "$python" -m support.devcluster "$@"
