"""The handle tests get from the `cluster` fixture, and how it is obtained: reuse a running
dev cluster (.dev/kubeconfig) or start a private control plane for this test session."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from .binaries import REPO_ROOT


@dataclass
class Cluster:
    kubeconfig: str
    server: str
    s3_env: dict[str, str]
    bin_dir: Path
    state_dir: Path | None = None  # where logs live when this session started the cluster

    def api_client(self) -> client.ApiClient:
        """A new admin (system:masters) client."""
        return config.new_client_from_config(config_file=self.kubeconfig)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Runs the pinned kubectl as admin; returns stdout, raises with stderr on failure."""
        return self._run("kubectl", args, input, check)

    def helm(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Runs the pinned helm against this cluster, with caches kept out of $HOME."""
        return self._run("helm", args, input, check)

    def _run(self, tool: str, args: tuple[str, ...], input: str | None, check: bool) -> str:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        if tool == "helm":
            helm_home = Path(self.kubeconfig).parent / "helm"
            env.update(
                HELM_CACHE_HOME=str(helm_home / "cache"),
                HELM_CONFIG_HOME=str(helm_home / "config"),
                HELM_DATA_HOME=str(helm_home / "data"),
            )
        proc = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            check=False,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc.stdout


def answers(kubeconfig: Path) -> str | None:
    """The server URL when `kubeconfig` reaches an apiserver within 2 s, else None."""
    if not kubeconfig.is_file():
        return None
    try:
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            client.VersionApi(api).get_code(_request_timeout=2)
            return api.configuration.host
    except Exception:  # noqa: BLE001 - unreachable/unreadable both mean "start our own"
        return None
