"""Playing the kubelet for one container: run a pod's OWN command, args and env on this
machine, the way a node would, with the pod's volumes as local directories.

KWOK pods run nothing (docs/dev-cluster.md). For the end-to-end test the compile and
serving containers must really run, so `LocalKubelet` takes a pod as the apiserver
has it and executes a container of it:

- `command`/`args`/`env` are the pod's, `envFrom` Secrets and ConfigMaps are read
  through the API (as the kubelet would), `valueFrom.fieldRef` resolves
  metadata.namespace/name;
- every volume becomes a directory (emptyDir: empty; configMap: its keys as files), and
  a mount path in an argument or an environment value is rewritten to that directory;
- an `ImageFilesystem` says what the image would provide: executables on its PATH
  (found in the venv or the server build) and Python code (PYTHONPATH);
- a container port can be remapped (`port_map`) because all "pods" share this host's
  network.

Processes get PR_SET_PDEATHSIG, so a crashed test leaves none behind.
"""

from __future__ import annotations

import base64
import ctypes
import itertools
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVER_BUILD = REPO / "images" / "server" / "build"


_LISTEN_URL = re.compile(r"^(--[\w-]+=)?http://0\.0\.0\.0:(\d+)(/.*)?$")


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class ImageFilesystem:
    """What an image provides: its PATH (as host directories) and importable Python code."""

    path: tuple[Path, ...]
    python_path: tuple[Path, ...] = ()
    entrypoint: tuple[str, ...] = ()  # used when the container gives no command


# images/compiler: the venv's `trtaoti` + torch, and examples/ at /opt/trtaoti/examples.
COMPILER_IMAGE = ImageFilesystem(path=(VENV_BIN,), python_path=(REPO / "examples",))
# images/operator: `trtaoti` without torch (the fetch init container runs it too).
OPERATOR_IMAGE = ImageFilesystem(path=(VENV_BIN,), entrypoint=("trtaoti",))
# images/server: trtaoti-server on PATH.
SERVER_IMAGE = ImageFilesystem(path=(SERVER_BUILD,))


@dataclass
class LocalPod:
    """One pod's volumes as directories under `root`."""

    core: client.CoreV1Api
    pod: client.V1Pod
    root: Path
    volumes: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        namespace = self.pod.metadata.namespace
        for volume in self.pod.spec.volumes or []:
            directory = self.root / "volumes" / volume.name
            directory.mkdir(parents=True, exist_ok=True)
            if volume.config_map is not None:
                data = self.core.read_namespaced_config_map(volume.config_map.name, namespace).data or {}
                for key, value in data.items():
                    (directory / key).write_text(value)
            elif volume.projected is not None:
                # The ServiceAccount token volume: in-cluster config reads it from a fixed
                # path; here the same identity comes as a TokenRequest kubeconfig instead.
                pass
            elif volume.empty_dir is None:
                raise NotImplementedError(
                    f"volume {volume.name}: only emptyDir, configMap and projected are played here"
                )
            self.volumes[volume.name] = directory

    def container(self, name: str, *, init: bool = False) -> client.V1Container:
        containers = (self.pod.spec.init_containers if init else self.pod.spec.containers) or []
        return next(c for c in containers if c.name == name)

    def mounts(self, container: client.V1Container) -> list[tuple[str, Path]]:
        """(mount path, host directory), longest first so nested mounts win."""
        pairs = [(m.mount_path.rstrip("/"), self.volumes[m.name]) for m in container.volume_mounts or []]
        return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)

    def rewrite(self, value: str, container: client.V1Container) -> str:
        for mount, directory in self.mounts(container):
            if value == mount or value.startswith(mount + "/"):
                return str(directory) + value[len(mount) :]
        return value

    def environment(self, container: client.V1Container, image: ImageFilesystem) -> dict[str, str]:
        namespace = self.pod.metadata.namespace
        env = {
            "PATH": os.pathsep.join([*(str(p) for p in image.path), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
        }
        if image.python_path:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in image.python_path)
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.secret_ref is not None:
                secret = self.core.read_namespaced_secret(source.secret_ref.name, namespace)
                env.update({prefix + k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
            elif source.config_map_ref is not None:
                config_map = self.core.read_namespaced_config_map(source.config_map_ref.name, namespace)
                env.update({prefix + k: v for k, v in (config_map.data or {}).items()})
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = self.rewrite(var.value, container)
            elif var.value_from is not None and var.value_from.field_ref is not None:
                path = var.value_from.field_ref.field_path
                fields = {"metadata.namespace": namespace, "metadata.name": self.pod.metadata.name}
                if path not in fields:
                    raise NotImplementedError(f"env {var.name}: fieldRef {path} is not played here")
                env[var.name] = fields[path]
            else:
                raise NotImplementedError(f"env {var.name}: only value and fieldRef are played here")
        return env

    def argv(self, container: client.V1Container, image: ImageFilesystem, port_map: dict[int, int]) -> list[str]:
        """command + args, the executable looked up on the image's PATH, paths and ports mapped."""
        words = [*(container.command or image.entrypoint), *(container.args or [])]
        if not words:
            raise NotImplementedError(f"container {container.name}: no command and the image has no entrypoint")
        executable = next((d / words[0] for d in image.path if (d / words[0]).exists()), None)
        if executable is None:
            raise FileNotFoundError(f"{words[0]} is not on the image PATH {image.path}")
        mapped = [str(executable)]
        for previous, word in itertools.pairwise(words):
            value = word
            if previous.startswith("--") and previous.endswith("port") and word.isdigit() and int(word) in port_map:
                value = str(port_map[int(word)])
            elif listen := _LISTEN_URL.match(word):
                # Every "pod" shares this host's network: listen on loopback, on the mapped port.
                port = int(listen.group(2))
                value = f"{listen.group(1)}http://127.0.0.1:{port_map.get(port, port)}{listen.group(3)}"
            mapped.append(self.rewrite(value, container))
        return mapped

    def start(
        self,
        name: str,
        image: ImageFilesystem,
        *,
        init: bool = False,
        port_map: dict[int, int] | None = None,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ) -> tuple[subprocess.Popen, Path]:
        """`extra_args`/`extra_env`: what the node would provide that the spec does not
        say (in-cluster credentials, the termination-log file)."""
        container = self.container(name, init=init)
        argv = [*self.argv(container, image, port_map or {}), *extra_args]
        env = {**self.environment(container, image), **(extra_env or {})}
        cwd = Path(self.rewrite(container.working_dir, container)) if container.working_dir else self.root
        log_path = self.root / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - PR_SET_PDEATHSIG is the child's to set; the callback only calls prctl
            )
        return process, log_path

    def run(
        self,
        name: str,
        image: ImageFilesystem,
        *,
        init: bool = False,
        timeout: float,
        extra_env: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Runs the container to completion: (exit code, its output)."""
        process, log_path = self.start(name, image, init=init, extra_env=extra_env)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            raise
        return code, log_path.read_text(errors="replace")


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, as the kubelet does, then SIGKILL after the grace period."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def read_pod(core: client.CoreV1Api, namespace: str, selector: str) -> client.V1Pod | None:
    """The running, not deleted pod matching `selector` (KWOK marks it Running)."""
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return next((p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp), None)
