"""Triton Inference Server itself, serving the same AOTInductor package as trtaoti-server.

    python bench/triton_baseline.py --package model.pt2 [--http-port 8000] [--grpc-port 8001]
        [--metrics-port 8002] [--max-queue-delay-us 0] [--instances 1] [--intra-op-threads 1]

The peer a production user knows: the `tritonserver` binary (its C++ HTTP and gRPC
front ends, dynamic batcher and Prometheus metrics) that the pinned `nvidia-pytriton`
wheel carries (pyproject.toml's [tool.trtaoti], installed by `make venv` without its
dependencies: it pins numpy<2 for PyTriton's Python API, which is not used here), run
with the wheel's Python backend. The model is
bench/triton_aoti_model.py, a `TritonPythonModel` around `aoti_load_package`, which is
what a Triton user runs for a package that must batch (Triton's PyTorch backend serves
AOTInductor packages at batch 1 only and is not in the wheel). It is also the faster
of the two ways the wheel offers: PyTriton's own `Triton().bind(...)` runs the callable
in the user's process, one more hop away (its stub-side model forwards each batch over
ZeroMQ, which is why that stub needs `zmq`).

The model repository is generated from the package's own `trtaoti.*` metadata, so
Triton serves the same model name, inputs, outputs and batch range as trtaoti-server
(`max_batch_size` = the package's batch max), with the same dynamic batcher settings
(`max_queue_delay_microseconds`, `preferred_batch_size` [opt, max], queue bound),
speaking KServe V2 REST (JSON and the binary tensor extension) and gRPC: one load
generator or client drives both unchanged.

Started the way PyTriton starts it (pytriton/triton.py, pytriton/server/triton_server.py):
the stub built for this interpreter's Python version is copied into the backend
directory, the wheel's `nvidia_pytriton.libs` go on LD_LIBRARY_PATH, and this
interpreter's bin/ goes first on PATH. The stub embeds Python, which finds its prefix
by looking up `python3` on PATH: that is how it lands in this virtual environment
(torch, numpy) rather than in the system's Python; without it the model fails to load
with "ModuleNotFoundError: No module named 'torch'" (PyTriton's first try here failed
the same way on `zmq`). This interpreter's libpython directory goes on LD_LIBRARY_PATH too, so the stub
runs the same CPython build as the environment it imports from.

bench/server_bench.py and tests/e2e/test_triton_conformance.py use `run_triton()`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MODEL_FILE = Path(__file__).with_name("triton_aoti_model.py")
KSERVE_TO_TRITON = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64", "FP16": "TYPE_FP16", "BF16": "TYPE_BF16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
}  # fmt: skip


class TritonUnavailable(RuntimeError):
    """The nvidia-pytriton wheel (or the stub for this Python) is not installed here."""


@dataclass(frozen=True)
class TritonDist:
    """Where the wheel's Triton parts are."""

    root: Path  # site-packages/pytriton/tritonserver
    libs: Path  # site-packages/nvidia_pytriton.libs
    stub: Path  # python_backend_stubs/<major.minor>/triton_python_backend_stub
    pytriton_version: str

    @property
    def server(self) -> Path:
        return self.root / "bin" / "tritonserver"


def _pin() -> str:
    """The wheel's pin in pyproject.toml ([tool.trtaoti], installed by `make venv`)."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = project["tool"]["trtaoti"]["install-without-dependencies"]
    return next(r for r in pins if r.startswith("nvidia-pytriton"))


def locate() -> TritonDist:
    """Finds the wheel's tritonserver without importing pytriton (its Python API is not
    used, and importing it pulls in its own dependencies)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonUnavailable(f"nvidia-pytriton is not installed (`make venv`, or pip install --no-deps {_pin()})")
    package = Path(next(iter(spec.submodule_search_locations)))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = TritonDist(
        root=package / "tritonserver",
        libs=package.parent / "nvidia_pytriton.libs",
        stub=package / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
        pytriton_version=importlib.metadata.version("nvidia-pytriton"),
    )
    for path in (dist.server, dist.libs, dist.stub):
        if not path.exists():
            raise TritonUnavailable(f"nvidia-pytriton {dist.pytriton_version} has no {path} (Python {version})")
    return dist


def package_metadata(package: Path) -> dict[str, str]:
    """The package's `trtaoti.*` metadata, read from the zip (the `*_metadata.json` that
    AOTInductor writes beside each compiled library), without loading the package."""
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if name.endswith("_metadata.json") and "/data/aotinductor/" in name:
                metadata = json.loads(archive.read(name))
                if "trtaoti.format" in metadata:
                    return metadata
    raise ValueError(f"{package}: no trtaoti metadata (docs/package-format.md)")


def _tensor_config(tensor: dict) -> str:
    name, dtype, shape = tensor["name"], KSERVE_TO_TRITON[tensor["datatype"]], tensor["shape"][1:]
    if shape:
        return f'{{ name: "{name}" data_type: {dtype} dims: {json.dumps(shape)} }}'
    # A tensor that is only the batch dimension: Triton's idiom is dims [1] reshaped to [].
    return f'{{ name: "{name}" data_type: {dtype} dims: [1] reshape: {{ shape: [] }} }}'


def model_config(
    metadata: dict[str, str], package: Path, *, max_queue_delay_us: int, instances: int, intra_op_threads: int,
    device: str, max_queue_size: int = 1024,
) -> str:  # fmt: skip
    """config.pbtxt mirroring what trtaoti-server reports at /v2/models/<name>/config."""
    batch_opt, batch_max = int(metadata["trtaoti.batch_opt"]), int(metadata["trtaoti.batch_max"])
    preferred = [batch_opt] if batch_opt == batch_max else [batch_opt, batch_max]
    kind = "KIND_CPU"  # the Python backend places the model itself; see `device`
    parameters = {"package": str(package.resolve()), "intra_op_threads": str(intra_op_threads), "device": device}
    inputs = ",\n  ".join(_tensor_config(t) for t in json.loads(metadata["trtaoti.inputs"]))
    outputs = ",\n  ".join(_tensor_config(t) for t in json.loads(metadata["trtaoti.outputs"]))
    return "\n".join([
        f'name: "{metadata["trtaoti.model_name"]}"',
        'backend: "python"',
        f"max_batch_size: {batch_max}",
        f"input [\n  {inputs}\n]",
        f"output [\n  {outputs}\n]",
        "dynamic_batching {",
        f"  preferred_batch_size: {json.dumps(preferred)}",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        f"  default_queue_policy {{ max_queue_size: {max_queue_size} }}",
        "}",
        f"instance_group [ {{ count: {instances} kind: {kind} }} ]",
        *(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items()),
        "",
    ])  # fmt: skip


def prepare(workdir: Path, package: Path, dist: TritonDist, **config: int | str) -> tuple[Path, Path]:
    """Lays out a backend directory (the wheel's Python backend + this Python's stub) and
    a model repository under `workdir`; returns (backends, models)."""
    backends = workdir / "backends"
    python_backend = backends / "python"
    python_backend.mkdir(parents=True)
    for item in (dist.root / "backends" / "python").iterdir():
        (python_backend / item.name).symlink_to(item)
    # Copied, as PyTriton does: the stub's RUNPATH ($ORIGIN/../../../../nvidia_pytriton.libs)
    # is not relied on; LD_LIBRARY_PATH names the libraries.
    shutil.copy2(dist.stub, python_backend / "triton_python_backend_stub")
    metadata = package_metadata(package)
    model_dir = workdir / "models" / metadata["trtaoti.model_name"]
    (model_dir / "1").mkdir(parents=True)
    shutil.copy2(MODEL_FILE, model_dir / "1" / "model.py")
    (model_dir / "config.pbtxt").write_text(model_config(metadata, package, **config))
    return backends, workdir / "models"


def server_env(dist: TritonDist) -> dict[str, str]:
    env = dict(os.environ)
    libdirs = [str(dist.libs)]
    libpython = sysconfig.get_config_var("LIBDIR")
    if libpython and any(Path(libpython).glob("libpython3*.so*")):
        libdirs.insert(0, libpython)
    env["LD_LIBRARY_PATH"] = ":".join([*libdirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    # sys.prefix/bin, not dirname(sys.executable): a venv's python may be a symlink elsewhere.
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TritonProcess:
    """A running tritonserver; its log (stdout and stderr) accumulates in `log`."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    model_name: str
    dist: TritonDist
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def version(self) -> str:
        import requests

        return requests.get(f"{self.base}/v2", timeout=10).json()["version"]

    def metrics(self) -> str:
        import requests

        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text


def _pump(stream: IO[str], log: list[str], echo: bool) -> None:
    for line in stream:
        log.append(line)
        if echo:
            sys.stderr.write(line)


@contextmanager
def run_triton(
    package: Path, *, max_queue_delay_us: int = 0, instances: int = 1, intra_op_threads: int = 1,
    device: str = "cpu", http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0,
    startup_timeout: float = 300, echo: bool = False,
) -> Iterator[TritonProcess]:  # fmt: skip
    """Starts tritonserver on `package` (port 0: a free one) and stops it with SIGTERM
    afterwards. Raises TritonUnavailable where the wheel is missing and RuntimeError,
    with Triton's log, where the server or the model does not come up."""
    import requests

    dist = locate()
    package = Path(package)
    model_name = package_metadata(package)["trtaoti.model_name"]
    with tempfile.TemporaryDirectory(prefix="trtaoti-triton-") as tmp:
        backends, models = prepare(
            Path(tmp), package, dist, max_queue_delay_us=max_queue_delay_us, instances=instances,
            intra_op_threads=intra_op_threads, device=device,
        )  # fmt: skip
        http_port, grpc_port, metrics_port = (p or _free_port() for p in (http_port, grpc_port, metrics_port))
        command = [
            str(dist.server), f"--model-repository={models}", f"--backend-directory={backends}",
            f"--cache-directory={dist.root / 'caches'}",
            "--http-address=127.0.0.1", f"--http-port={http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={metrics_port}",
            "--allow-sagemaker=false", "--allow-vertex-ai=false", "--log-verbose=0",
            # Stopping is not measured; Triton's default waits up to 30 s for idle connections.
            "--exit-timeout-secs=5",
            # One shared-memory region name per server: two servers at once must not collide.
            f"--backend-config=python,shm-region-prefix-name=trtaoti_triton_{os.getpid()}_{http_port}_",
            "--pinned-memory-pool-byte-size=0" if device == "cpu" else "--pinned-memory-pool-byte-size=268435456",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=server_env(dist), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # its backend stubs stop with it, not with our terminal's ^C
        )  # fmt: skip
        server = TritonProcess(process, http_port, grpc_port, metrics_port, model_name, dist)
        pump = threading.Thread(target=_pump, args=(process.stdout, server.log, echo), daemon=True)
        pump.start()
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited (rc={process.returncode}):\n{''.join(server.log)[-6000:]}")
                if time.monotonic() > deadline:
                    log = "".join(server.log)[-6000:]
                    raise RuntimeError(f"tritonserver not ready after {startup_timeout}s:\n{log}")
                try:
                    if requests.get(f"{server.base}/v2/models/{model_name}/ready", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.2)
            yield server
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            pump.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True, help="a trtaoti AOTInductor package (.pt2)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-queue-delay-us", type=int, default=0, help="the dynamic batcher's queue delay")
    parser.add_argument("--instances", type=int, default=1, help="model instances (trtaoti-server's --runners)")
    parser.add_argument("--intra-op-threads", type=int, default=1, help="torch.set_num_threads in each instance")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N, where the model runs (the package's device)")
    parser.add_argument("--print-config", action="store_true", help="print the generated config.pbtxt and exit")
    args = parser.parse_args()
    config = {"max_queue_delay_us": args.max_queue_delay_us, "instances": args.instances,
              "intra_op_threads": args.intra_op_threads, "device": args.device}  # fmt: skip
    if args.print_config:
        print(model_config(package_metadata(args.package), args.package, **config), end="")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with run_triton(args.package, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                    echo=True, **config) as server:  # fmt: skip
        print(f"Triton {server.version} (nvidia-pytriton {server.dist.pytriton_version}) serving "
              f"'{server.model_name}': http {server.base}, grpc 127.0.0.1:{server.grpc_port}, "
              f"metrics http://127.0.0.1:{server.metrics_port}/metrics", file=sys.stderr, flush=True)  # fmt: skip
        stop.wait()


if __name__ == "__main__":
    main()
