"""The serving half of `trtaoti run`: packages on local disk, one server per profile,
instructions for the user, then either one example inference or a wait for Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console

from trtaoti.api.models import TrtAotiModel
from trtaoti.artifact import Manifest
from trtaoti.local import client
from trtaoti.local.compile import CompiledProfile
from trtaoti.local.serve import (
    RunningServer,
    free_port,
    server_command,
    start_server,
    stop_servers,
    wait_ready,
)
from trtaoti.storage import StorageUri, open_store, split_object_uri

# How often the wait loop checks that every server is still alive.
LIVENESS_INTERVAL_S = 1.0


def local_package(manifest: Manifest, run_dir: Path) -> Path:
    """The package on this machine: the store's own file for file://, else a verified download."""
    parsed = StorageUri.parse(manifest.uri)
    if parsed.scheme == "file":
        return Path(parsed.prefix)
    target = run_dir / "packages" / manifest.key / manifest.model
    directory, name = split_object_uri(manifest.uri)
    open_store(directory).download_file(name, target, expected_sha256=manifest.sha256)
    return target


class ServingSession:
    def __init__(
        self,
        model: TrtAotiModel,
        compiled: list[CompiledProfile],
        binary: Path,
        args: argparse.Namespace,
        console: Console,
    ) -> None:
        self.model = model
        self.compiled = compiled
        self.binary = binary
        self.args = args
        self.console = console
        self.run_dir = Path(args.run_dir).expanduser()
        self.servers: list[tuple[RunningServer, CompiledProfile]] = []

    def start(self) -> None:
        taken: set[int] = set()
        for entry in self.compiled:
            manifest = entry.manifest
            artifact = manifest.artifact()
            package = local_package(manifest, self.run_dir)
            port = free_port(self.args.port, self.args.host, taken)
            taken.add(port)
            command = server_command(
                self.binary, self.model.name, self.model.spec, entry.profile, artifact, package, self.args.host, port
            )
            log_path = self.run_dir / "logs" / f"{self.model.name}-{entry.profile}.log"
            server = start_server(command, entry.profile, self.model.name, self.args.host, port, log_path)
            self.servers.append((server, entry))
        with self.console.status("waiting for the servers to turn ready"):
            for server, _ in self.servers:
                wait_ready(server, self.args.ready_timeout)
        for server, entry in self.servers:
            self._describe(server, entry)

    def _describe(self, server: RunningServer, entry: CompiledProfile) -> None:
        manifest = entry.manifest
        self.console.print(
            f"\n[bold green]serving[/] {self.model.name}/{entry.profile} at {server.base_url} "
            f"(pid {server.process.pid}, batch {manifest.batch.min}..{manifest.batch.max}, KServe V2; "
            f"log {server.log_path})"
        )
        self.console.print(
            "  " + client.curl_command(server.base_url, self.model.name, manifest.inputs), soft_wrap=True
        )
        snippet = client.python_snippet(
            f"{server.host}:{server.port}", self.model.name, manifest.inputs, manifest.outputs
        )
        self.console.print("  Python (tritonclient):")
        self.console.print("\n".join("    " + line for line in snippet.splitlines()), soft_wrap=True, markup=False)

    def infer_once_and_stop(self) -> int:
        code = 0
        try:
            for server, entry in self.servers:
                batch = entry.manifest.batch.opt
                response = client.infer_once(server.base_url, self.model.name, entry.manifest, batch)
                self.console.print(
                    f"\n[bold]inference[/] {self.model.name}/{entry.profile}, batch {batch} of random inputs:"
                )
                for line in client.summarize(response):
                    self.console.print("  " + line, markup=False)
        except (RuntimeError, OSError) as exc:
            self.console.print(f"[bold red]{exc}[/]")
            code = 1
        return self._stop(code)

    def serve_until_signalled(self) -> int:
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.console.print("\nready; Ctrl-C stops the servers")
        while not stop.wait(LIVENESS_INTERVAL_S):
            dead = [s for s, _ in self.servers if s.process.poll() is not None]
            if dead:
                for server in dead:
                    self.console.print(
                        f"[bold red]trtaoti-server for {server.profile} exited with {server.process.returncode}[/]; "
                        f"log {server.log_path}:\n{server.log_tail()}",
                    )
                return self._stop(1)
        return self._stop(0)

    def _stop(self, code: int) -> int:
        self.console.print("stopping the servers (SIGTERM, draining)")
        codes = self.stop()
        clean = (0, -signal.SIGTERM)
        failed = [(s.profile, c) for (s, _), c in zip(self.servers, codes, strict=True) if c not in clean]
        if failed:
            self.console.print(f"[bold red]servers that did not stop cleanly: {failed}[/]")
            return code or 1
        self.console.print("stopped")
        return code

    def stop(self) -> list[int | None]:
        return stop_servers([s for s, _ in self.servers])
