"""Helpers for driving the real trtaoti-server: build it, compile a small test package,
launch the binary on a free port and stop it the way Kubernetes does.

Until the project's compiler lands, `build_package` compiles the package itself with
`torch._inductor.aoti_compile_and_package`, stamping the metadata keys of
docs/package-format.md. A CPU compile takes ~30 s, so packages are cached under
~/.cache/trtaoti/test-packages, keyed by torch version, batch range and a hash of this
fixture model's source (editing it recompiles).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "images" / "server"
BUILD_DIR = SERVER_DIR / "build"
SERVER_BIN = BUILD_DIR / "trtaoti-server"
FLOOR_BIN = BUILD_DIR / "trtaoti-bench-floor"
GTEST_BIN = BUILD_DIR / "trtaoti-server-tests"
PACKAGE_CACHE = Path(os.environ.get("TRTAOTI_TEST_PACKAGES", Path.home() / ".cache/trtaoti/test-packages"))

MODEL_NAME = "tiny-mlp"
IN_FEATURES = 16
MASK_FEATURES = 8
OUT_FEATURES = 8


def build_server(python: str | None = None) -> Path:
    """Runs images/server/build.sh (a no-op when nothing changed) and returns the binary."""
    import sys

    subprocess.run(
        ["nice", "-n", "10", str(SERVER_DIR / "build.sh"), python or sys.executable],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return SERVER_BIN


def tiny_model() -> torch.nn.Module:
    """The fixture model: two inputs (FP32 features, INT64 mask), two outputs of
    different ranks and dtypes, so the protocol's conversions are all exercised."""
    import torch

    class TinyMlp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(IN_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, OUT_FEATURES)
            )

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.net(x) + mask.to(x.dtype)
            return logits, logits.argmax(dim=1)

    torch.manual_seed(0)
    return TinyMlp().eval()


def example_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, IN_FEATURES, generator=generator)
    mask = torch.randint(-2, 3, (batch, MASK_FEATURES), generator=generator, dtype=torch.int64)
    return x, mask


def binary_infer_request(
    x: np.ndarray, mask: np.ndarray, output: str, parameters: dict | None = None
) -> tuple[bytes, dict[str, str]]:
    """A request for the fixture model in the binary tensor extension: both inputs and
    the one `output` as raw bytes after the JSON header. Returns (body, headers)."""
    header: dict = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape),
             "parameters": {"binary_data_size": mask.nbytes}},
        ],
        "outputs": [{"name": output, "parameters": {"binary_data": True}}],
    }  # fmt: skip
    if parameters:
        header["parameters"] = parameters
    head = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
    return head + x.tobytes() + mask.tobytes(), headers


_eager_lock = threading.Lock()


@cache
def _eager_model() -> torch.nn.Module:
    return tiny_model()


def eager_outputs(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the same module run eagerly. Built once, under a lock, because
    its weights come from the global RNG (threads seeding it at once would race)."""
    import torch

    with _eager_lock:
        model = _eager_model()
    with torch.no_grad():
        logits, argmax = model(torch.as_tensor(x), torch.as_tensor(mask))
    return logits.numpy(), argmax.numpy()


def _package_metadata(batch_min: int, batch_opt: int, batch_max: int, device: str = "cpu") -> dict[str, str]:
    import torch

    range_hash = hashlib.sha256(f"{batch_min}/{batch_opt}/{batch_max}".encode()).hexdigest()[:16]
    return {
        "trtaoti.format": "1",
        "trtaoti.model_name": MODEL_NAME,
        "trtaoti.inputs": json.dumps(
            [
                {"name": "x", "datatype": "FP32", "shape": [-1, IN_FEATURES]},
                {"name": "mask", "datatype": "INT64", "shape": [-1, MASK_FEATURES]},
            ],
            separators=(",", ":"),
        ),
        "trtaoti.outputs": json.dumps(
            [
                {"name": "logits", "datatype": "FP32", "shape": [-1, OUT_FEATURES]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
            separators=(",", ":"),
        ),
        "trtaoti.batch_min": str(batch_min),
        "trtaoti.batch_opt": str(batch_opt),
        "trtaoti.batch_max": str(batch_max),
        "trtaoti.backend": "inductor",
        "trtaoti.precision": "fp32",
        "trtaoti.device": device,
        "trtaoti.artifact_key": f"test-{range_hash}",
        "trtaoti.versions": json.dumps({"torch": torch.__version__.split("+")[0]}, separators=(",", ":")),
    }


def build_package(
    batch_min: int = 2, batch_opt: int = 4, batch_max: int = 8, device: str = "cpu", extra_metadata: dict | None = None
) -> Path:
    """Compiles (or reuses) the fixture model as an AOTInductor package for `device`
    ("cpu" or "cuda") whose export range is [batch_min, batch_max] (export needs a
    range of at least 2)."""
    import torch

    fixture_source = "".join(inspect.getsource(f) for f in (tiny_model, _package_metadata, build_package))
    source_hash = hashlib.sha256(fixture_source.encode()).hexdigest()[:16]
    if extra_metadata:
        source_hash += "-" + hashlib.sha256(json.dumps(extra_metadata, sort_keys=True).encode()).hexdigest()[:8]
    key = f"{MODEL_NAME}-{device}-torch{torch.__version__}-b{batch_min}-{batch_opt}-{batch_max}-{source_hash}"
    path = PACKAGE_CACHE / f"{key}.pt2"
    if path.exists():
        return path
    PACKAGE_CACHE.mkdir(parents=True, exist_ok=True)
    model = tiny_model().to(device)
    batch = torch.export.Dim("batch", min=max(2, batch_min), max=max(batch_max, batch_min + 1))
    inputs = tuple(t.to(device) for t in example_inputs(max(2, batch_opt)))
    with torch.no_grad():
        program = torch.export.export(model, inputs, dynamic_shapes=({0: batch}, {0: batch}))
    tmp = path.with_suffix(f".tmp{os.getpid()}.pt2")
    torch._inductor.aoti_compile_and_package(
        program,
        package_path=str(tmp),
        inductor_configs={
            "aot_inductor.metadata": {
                **_package_metadata(batch_min, batch_opt, batch_max, device),
                **(extra_metadata or {}),
            }
        },
    )
    tmp.rename(path)  # atomic: concurrent builders never see half a package
    return path


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format, matched by name and a
    subset of its labels; KeyError when absent."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    raise KeyError(f"{name}{labels}")


@dataclass
class ServerProcess:
    """A running trtaoti-server. `logs` collects its JSON log lines."""

    process: subprocess.Popen
    port: int
    grpc_port: int = -1  # -1: gRPC not served
    logs: list[dict] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def metrics(self) -> str:
        import requests

        return requests.get(f"{self.base}/metrics", timeout=10).text

    def log_entry(self, message: str) -> dict | None:
        return next((entry for entry in self.logs if entry.get("msg") == message), None)


def _pump(stream: IO[str], server: ServerProcess, serving: threading.Event) -> None:
    for line in stream:
        server.raw.append(line)
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        server.logs.append(entry)
        if entry.get("msg") == "serving":
            server.port = int(entry["port"])
            server.grpc_port = int(entry.get("grpc_port", -1))
            serving.set()


@contextmanager
def run_server(package: Path, *args: str, startup_timeout: float = 120) -> Iterator[ServerProcess]:
    """Starts the binary on a free port (port 0; the port comes back in the "serving"
    log line) and stops it with SIGTERM afterwards."""
    process = subprocess.Popen(
        [str(SERVER_BIN), "--model", str(package), "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ServerProcess(process=process, port=0)
    serving = threading.Event()
    pump = threading.Thread(target=_pump, args=(process.stderr, server, serving), daemon=True)
    pump.start()
    deadline = time.monotonic() + startup_timeout
    while not serving.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pump.join(5)
            raise RuntimeError(f"trtaoti-server did not start (rc={process.returncode}):\n{''.join(server.raw)}")
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        pump.join(5)
