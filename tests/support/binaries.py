"""Where the pinned control-plane binaries live (built by hack/build-binaries.sh)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK_DIR = REPO_ROOT / "hack"
BUILD_SCRIPT = HACK_DIR / "build-binaries.sh"


class BinariesMissing(RuntimeError):
    """The one-line error a test run reports when `make bins` has not been run."""


@cache
def versions() -> dict[str, str]:
    """The pins in hack/versions.env (KEY=VALUE lines), the single source of versions."""
    pins = {}
    for raw in (HACK_DIR / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


@cache
def bin_dir() -> Path:
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


ALL = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm", "minio")


def require_binaries(names: tuple[str, ...] = ALL) -> Path:
    """The binary directory, or BinariesMissing (one line naming what to run)."""
    directory = bin_dir()
    missing = [n for n in names if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissing(f"control-plane binaries missing in {directory} ({' '.join(missing)}): run 'make bins'")
    return directory
