"""trtaoti-server processes for `trtaoti run`: one per compiled profile.

Each server gets the flags the operator would give its Deployment
(`trtaoti.resources.serving.server_args`), with the package path and port mapped to
this machine. Logs (JSON lines) go to a file per profile; readiness is the server's
own `/v2/health/ready`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from trtaoti.api.models import Artifact, TrtAotiModelSpec
from trtaoti.resources.serving import READY_PATH, server_args

SERVER_NAME = "trtaoti-server"
# In a source checkout: <root>/operator/trtaoti/local/serve.py -> <root>/images/server/build/.
SOURCE_CHECKOUT_BINARY = Path(__file__).resolve().parents[3] / "images" / "server" / "build" / SERVER_NAME


class ServerError(RuntimeError):
    """A server could not be found, started, or did not become ready."""


def find_server_binary(explicit: str | None) -> Path:
    """--server-binary, then $TRTAOTI_SERVER, then PATH, then a source checkout's build."""
    candidates = [
        ("--server-binary", explicit),
        ("$TRTAOTI_SERVER", os.environ.get("TRTAOTI_SERVER")),
        ("PATH", shutil.which(SERVER_NAME)),
        ("source checkout", str(SOURCE_CHECKOUT_BINARY) if SOURCE_CHECKOUT_BINARY.exists() else None),
    ]
    for origin, value in candidates:
        if not value:
            continue
        path = Path(value).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        if origin in ("--server-binary", "$TRTAOTI_SERVER"):
            raise ServerError(f"{origin} {value} is not an executable file")
    raise ServerError(
        f"{SERVER_NAME} not found: pass --server-binary, set $TRTAOTI_SERVER, put it on PATH, "
        f"or build it in a checkout with `make server` ({SOURCE_CHECKOUT_BINARY})"
    )


def free_port(start: int, host: str, taken: set[int]) -> int:
    """The first port >= start that binds on host and is not already handed out."""
    for port in range(start, min(start + 1000, 65536)):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the server binds: a port held only by TIME_WAIT connections is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return port
    raise ServerError(f"no free port in {start}..{start + 999} on {host}")


@dataclass
class RunningServer:
    profile: str
    model_name: str
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def server_command(
    binary: Path,
    model_name: str,
    spec: TrtAotiModelSpec,
    profile: str,
    artifact: Artifact,
    package: Path,
    host: str,
    port: int,
) -> list[str]:
    """The operator's server flags for this profile, with the path and port of this machine."""
    args = server_args(model_name, spec, spec.profile(profile), artifact)
    # Several profiles run side by side here: gRPC takes any free port (its log says which).
    replacements = {"--model-path": str(package), "--port": str(port), "--grpc-port": "0"}
    mapped = [replacements.get(args[i - 1], arg) if i else arg for i, arg in enumerate(args)]
    return [str(binary), *mapped, "--host", host]


def start_server(
    command: list[str], profile: str, model_name: str, host: str, port: int, log_path: Path
) -> RunningServer:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # Own process group: the terminal's Ctrl-C reaches `trtaoti run` only, which then
        # drains the servers with SIGTERM the way Kubernetes would.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return RunningServer(profile, model_name, host, port, process, log_path)


def wait_ready(server: RunningServer, timeout: float) -> None:
    """Polls /v2/health/ready until 200; fails early when the process exits."""
    deadline = time.monotonic() + timeout
    url = server.base_url + READY_PATH
    while True:
        if server.process.poll() is not None:
            raise ServerError(
                f"{SERVER_NAME} for profile {server.profile} exited with {server.process.returncode}; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ServerError(
                f"{SERVER_NAME} for profile {server.profile} not ready at {url} after {timeout:.0f}s; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        time.sleep(0.1)  # poll interval, bounded by the deadline above


def stop_servers(servers: list[RunningServer], timeout: float = 30) -> list[int | None]:
    """SIGTERM all (they drain in parallel), wait, SIGKILL what is still there."""
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    deadline = time.monotonic() + timeout
    for server in servers:
        try:
            codes.append(server.process.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            codes.append(None)
    return codes
