"""trtaoti-server on a GPU with real models: ResNet-50 (fp16 image, 301 KB a request)
and a BERT-base-shaped encoder (int64 token ids), one package per model, compiled by
the real `trtaoti compile` (AOTInductor, CUDA, fp16), measured against its floor and
against what users run today:

(c) floor: trtaoti-bench-floor, the package's `Device::Run` in a tight loop (host ->
    device -> host copies included), and the server's layers above and below it in
    the same process (bench_floor.cc: loader, device, model, batcher, queued, graph);
(a) trtaoti-server: a lone request (concurrency 1) in rounds that alternate with the
    floor's, per-batch latency at concurrency 1 beside the floor's at that batch,
    throughput and saturation, and where its time goes (its /metrics);
(d) eager PyTorch and torch.compile(mode="max-autotune") per batch, timed the same way
    as the floor (bench/torch_baselines.py, a subprocess);
(b) optionally (--python-baseline), bench/python_baseline.py (aoti_load_package +
    FastAPI/uvicorn).

    python3 bench/gpu_bench.py --packages .gpu-work/store            # on the GPU machine
    python bench/gpu_bench.py --device cpu --smoke --packages /tmp/s  # the same code path on a CPU

Floors and server runs alternate in rounds and the tables give medians over rounds:
timings on a shared GPU drift between runs (DESIGN.md), so one run of each cannot
carry a difference of a few percent. The load generator, its ceiling measurement and
the server launcher are bench/server_bench.py's and tests/e2e/server_support.py's.
Compiles are cached in the --packages store (a second run only loads manifests).
Writes bench/results/gpu.md (smoke: bench/results/gpu-smoke.md), one results JSON per
model, and prints a short summary last; --render rebuilds the Markdown from JSON files
of earlier calls (torch-<model>.json from bench/torch_baselines.py included).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
# Here, not through server_bench's own insert: the import sorter puts server_support first.
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e")]
import server_support as support  # noqa: E402
from bench import server_bench  # noqa: E402

triton_baseline = server_bench.triton_baseline  # one module object: its TritonUnavailable is server_bench's

SYSTEM_LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
KSERVE = {"float16": "FP16", "bfloat16": "BF16", "float32": "FP32", "int64": "INT64"}
NUMPY = {"FP16": np.float16, "FP32": np.float32, "INT64": np.int64}
# bench_floor.cc's layers of a lone request, innermost first.
LAYERS = ("loader", "device", "model", "batcher", "queued")


@dataclass
class BenchModel:
    name: str
    factory: str
    python_path: str
    inputs: list[dict]  # {name, dtype, shape} as in the TrtAotiModel spec
    profile: dict  # {min, opt, max}
    precision: str
    int_high: int = 1000  # integer inputs are drawn from [0, int_high)
    outputs: list[str] | None = None  # the outputs a binary request asks for (None: all)
    tolerance: dict | None = None  # spec.compile rtol/atol for the compiler's validation
    note: str = ""


@dataclass
class Scale:
    """How much of everything one run measures (full on the GPU, small for --smoke)."""

    batches: list[int]  # per-batch columns: floor, server at c=1, eager, torch.compile
    rounds: int  # alternating floor / server rounds for the lone request
    batch_rounds: int  # the same per batch
    layer_seconds: float  # one floor run
    seconds: float  # one server point
    throughput_concurrency: int
    saturation: list[tuple[int, int]]  # (concurrency, rows per request)
    runners: int = 2
    gap_us: int = 300  # the floor with an idle gap before each run, like a server between requests
    # --triton: batch-1 requests at these concurrencies, then these (concurrency, rows per
    # request) saturation points, for trtaoti-server and Triton in alternating rounds.
    triton_concurrency: list[int] = field(default_factory=lambda: [1, 16, 64])
    triton_saturation: list[tuple[int, int]] = field(default_factory=lambda: [(256, 1), (32, 16)])


FULL = Scale(
    batches=[1, 8, 64, 256],
    rounds=3,
    batch_rounds=2,
    layer_seconds=0.5,
    seconds=1.0,
    throughput_concurrency=64,
    saturation=[(256, 1), (64, 8), (32, 16)],
)
SMOKE = Scale(
    batches=[1, 4, 16],
    rounds=2,
    batch_rounds=1,
    layer_seconds=0.3,
    seconds=0.5,
    throughput_concurrency=8,
    saturation=[(16, 1), (8, 4)],
    runners=1,
    triton_saturation=[(32, 1), (8, 4)],
)


def gpu_models() -> list[BenchModel]:
    profile = {"min": 1, "opt": 64, "max": 256}
    return [
        BenchModel(
            "resnet50",
            "bench.models:resnet50",
            str(REPO),
            [{"name": "x", "dtype": "float16", "shape": [-1, 3, 224, 224]}],
            profile,
            "fp16",
            # Random-weight ResNet-50 logits reach ~100: fp16's absolute error there is
            # ~0.1, above the fp16 default atol of 0.01 (accuracy is not what this measures).
            tolerance={"rtol": 0.05, "atol": 0.5},
            note="torchvision ResNet-50, random weights; x FP16 [n,3,224,224] (301 KB a row) -> FP16 [n,1000]",
        ),
        BenchModel(
            "encoder",
            "bench.models:encoder",
            str(REPO),
            [{"name": "input_ids", "dtype": "int64", "shape": [-1, 128]}],
            profile,
            "fp16",
            int_high=30522,
            outputs=["pooled"],
            tolerance={"rtol": 0.05, "atol": 0.05},
            note="12 layers, width 768, 12 heads, seq 128 (BERT-base shape), random weights; input_ids INT64 "
            "[n,128] -> hidden FP16 [n,128,768], pooled FP16 [n,768]; binary requests ask for `pooled`",
        ),
    ]


def smoke_models() -> list[BenchModel]:
    profile = {"min": 1, "opt": 4, "max": 16}
    return [
        BenchModel(
            "mlp",
            "mlp.model:build",
            str(REPO / "examples"),
            [{"name": "features", "dtype": "float32", "shape": [-1, 64]}],
            profile,
            "fp32",
            note="examples/mlp (stands in for ResNet-50 in --smoke)",
        ),
        BenchModel(
            "small-encoder",
            "bench.models:small_encoder",
            str(REPO),
            [{"name": "input_ids", "dtype": "int64", "shape": [-1, 128]}],
            profile,
            "fp32",
            int_high=30522,
            outputs=["pooled"],
            note="2 layers, width 128 (stands in for the encoder in --smoke)",
        ),
    ]


# --- compile -------------------------------------------------------------------------------------------


def spec_document(model: BenchModel, device: str) -> dict:
    spec = {
        "model": {"python": {"factory": model.factory, "pythonPath": [model.python_path]}},
        "inputs": model.inputs,
        "batchProfiles": [{"name": "bench", **model.profile}],
        "backend": "inductor",
        "precision": model.precision,
        "device": device,
        "storage": {"uri": "file:///unused"},
    }
    spec["compile"] = dict(model.tolerance or {})
    if device == "cuda":
        import torch

        spec["compile"]["gpu"] = {"product": torch.cuda.get_device_name(0).replace(" ", "-")}
    return {
        "apiVersion": "trtaoti.dev/v1alpha1",
        "kind": "TrtAotiModel",
        "metadata": {"name": model.name},
        "spec": spec,
    }


def compile_package(model: BenchModel, device: str, store: Path, log_dir: Path) -> tuple[Path, dict, str]:
    """`trtaoti compile` into a file:// store; a package already there is a cache hit."""
    store.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    spec_path = store.parent / f"{model.name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_document(model, device), sort_keys=False))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    )
    command = [
        sys.executable,
        "-m",
        "trtaoti.cli",
        "compile",
        "--spec",
        str(spec_path),
        "--profile",
        "bench",
        "--output",
        f"file://{store}",
        "--compiler-image",
        "gpu-bench",
    ]
    started = time.monotonic()
    with open(log_dir / f"compile-{model.name}.log", "w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1500, check=False)
    seconds = time.monotonic() - started
    text = (log_dir / f"compile-{model.name}.log").read_text()
    if result.returncode != 0:
        raise RuntimeError(f"trtaoti compile {model.name} exited {result.returncode}:\n{text[-3000:]}")
    how = f"{'cache hit' if 'cache hit' in text else 'compiled'} in {seconds:.0f} s"
    for manifest_path in sorted(store.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        if (
            manifest["modelName"] == model.name
            and manifest["device"] == device
            and manifest["batch"]["max"] == model.profile["max"]
        ):
            return manifest_path.parent / manifest["model"], manifest, how
    raise RuntimeError(f"no manifest for {model.name} in {store} after a successful compile")


# --- requests ------------------------------------------------------------------------------------------


def _arrays(model: BenchModel, batch: int) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(batch)
    arrays = []
    for spec in model.inputs:
        datatype = KSERVE[spec["dtype"]]
        shape = [batch, *spec["shape"][1:]]
        if datatype == "INT64":
            data = rng.integers(0, model.int_high, size=shape, dtype=np.int64)
        else:
            data = rng.standard_normal(shape).astype(NUMPY[datatype])
        arrays.append((spec["name"], datatype, data))
    return arrays


def binary_body(model: BenchModel, batch: int) -> tuple[bytes, int]:
    """Triton's binary tensor extension: JSON header, then raw tensors; binary outputs."""
    arrays = _arrays(model, batch)
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": list(a.shape), "parameters": {"binary_data_size": a.nbytes}}
            for n, d, a in arrays
        ],
    }
    if model.outputs:
        header["outputs"] = [{"name": o, "parameters": {"binary_data": True}} for o in model.outputs]
    else:
        header["parameters"] = {"binary_data_output": True}
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + b"".join(a.tobytes() for _, _, a in arrays), len(head)


def json_body(model: BenchModel, batch: int) -> bytes:
    """KServe V2 JSON, all outputs: the one format the Python alternative speaks."""
    inputs = [
        {"name": n, "datatype": d, "shape": list(a.shape), "data": a.flatten().tolist()}
        for n, d, a in _arrays(model, batch)
    ]
    return json.dumps({"inputs": inputs}, separators=(",", ":")).encode()


def http_request(port: int, path: str, body: bytes, header_length: int | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    if header_length is None:
        head += "Content-Type: application/json\r\n"
    else:
        head += f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {header_length}\r\n"
    return (head + "\r\n").encode() + body


def check_once(port: int, path: str, body: bytes, header_length: int | None) -> None:
    """One request through `requests` before a sweep: a broken route fails loudly, not as 0 req/s."""
    import requests

    headers = {"Inference-Header-Content-Length": str(header_length)} if header_length is not None else {}
    response = requests.post(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text[:500]}")


# --- measurements --------------------------------------------------------------------------------------


class Served(Protocol):
    """A server whose Prometheus metrics are read around each point: trtaoti-server
    (support.ServerProcess) or Triton (triton_baseline.TritonProcess)."""

    def metrics(self) -> str: ...


# Triton's counters are per request (a request adds its batch's compute time); the
# per-batch compute comes from trtaoti_compute_duration_us (a histogram: sum and count),
# which Triton itself does not serve.
METRICS = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "trtaoti_compute_duration_us_sum",
    "trtaoti_compute_duration_us_count",
)


def _counters(server: Served, model_name: str) -> dict[str, float]:
    """METRICS that `server` serves (trtaoti-server all, Triton the nv_inference_* ones)."""
    text = server.metrics()
    labels = {"model": model_name, "version": "1"}
    found = {}
    for name in METRICS:
        with contextlib.suppress(KeyError):
            found[name] = support.metric(text, name, **labels)
    return found


@dataclass
class Point:
    label: str
    concurrency: int
    rows_per_request: int
    request_bytes: int
    load: dict
    server: dict = field(default_factory=dict)  # deltas of METRICS over the point (trtaoti-server only)

    @property
    def rows_per_second(self) -> float:
        return self.load["per_second"] * self.rows_per_request

    def inside(self) -> dict[str, float]:
        """The server's own view per request / per execution (its /metrics)."""
        s = self.server
        if not s or not s.get("nv_inference_exec_count"):
            return {}
        executions = s["nv_inference_exec_count"]
        requests = max(s["nv_inference_request_success"], 1)
        inside = {
            "rows_per_execution": s["nv_inference_count"] / executions,
            "requests_per_execution": s["nv_inference_request_success"] / executions,
            "queue_us": s["nv_inference_queue_duration_us"] / requests,
            "request_us": s["nv_inference_request_duration_us"] / requests,
        }
        if "trtaoti_compute_duration_us_count" in s:
            inside["compute_us"] = s["trtaoti_compute_duration_us_sum"] / max(s["trtaoti_compute_duration_us_count"], 1)
        return inside

    def breakdown(self) -> str:
        i = self.inside()
        if not i:
            return ""
        compute = (
            f"compute {i['compute_us']:.0f} us/execution "
            f"(= {i['rows_per_execution'] / max(i['compute_us'], 1e-9) * 1e6:.0f} rows/s per busy runner), "
            if "compute_us" in i
            else ""
        )
        return (
            f"{i['rows_per_execution']:.1f} rows/execution, {compute}"
            f"queue {i['queue_us']:.0f} us/request, request {i['request_us']:.0f} us/request in the server"
        )


def measure(
    port: int,
    payload: bytes,
    label: str,
    concurrency: int,
    rows: int,
    request_bytes: int,
    seconds: float,
    server: Served | None = None,
    model_name: str = "",
) -> Point:
    before = _counters(server, model_name) if server else None
    load = server_bench.run_load(port, payload, concurrency, seconds)
    point = Point(label, concurrency, rows, request_bytes, load)
    if server:
        after = _counters(server, model_name)
        point.server = {k: after[k] - before[k] for k in after if k in before}
    print(
        f"  {label:<44} {load['per_second']:9.0f} req/s {point.rows_per_second:9.0f} rows/s  p50 {load['p50_us']:9.0f} us"
        f"  p99 {load['p99_us']:9.0f} us  errors {load['errors']}",
        flush=True,
    )
    if point.breakdown():
        print(f"    {point.breakdown()}", flush=True)
    return point


class Floor:
    """trtaoti-bench-floor --commands: the package stays loaded between runs, so floor
    runs can alternate with the server's without paying a load each time."""

    def __init__(self, package: Path, device: str, runners: int, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [
                str(support.FLOOR_BIN),
                "--model",
                str(package),
                "--device",
                device,
                "--runners",
                str(runners),
                "--intra-op-threads",
                "1",
                "--commands",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "a"),  # noqa: SIM115 - the server's stderr for its whole life, closed in stop()
            text=True,
            bufsize=1,
        )
        self._read()  # {"ready": true} once the package is loaded

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"trtaoti-bench-floor exited {self.process.returncode}: {self.log.read_text()[-3000:]}")
        return json.loads(line)

    def run(self, path: str, batch: int, seconds: float, gap_us: int = 0) -> dict:
        self.process.stdin.write(f"{path} {batch} {seconds} {gap_us}\n")
        result = self._read()
        if "error" in result:
            raise RuntimeError(f"floor {path} batch {batch}: {result['error']}")
        extra = (
            f"  launch {result['launch_p50_us']:7.0f} us  device {result['device_p50_us']:7.0f} us"
            if "launch_p50_us" in result
            else ""
        )
        print(
            f"  floor {path:<8} batch {batch:4d}{f' gap {gap_us} us' if gap_us else '':<12} p50 {result['p50_us']:9.1f} us  "
            f"p99 {result['p99_us']:9.1f} us{extra}",
            flush=True,
        )
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_args(scale: Scale, device: str) -> list[str]:
    # cpp-httplib serves one connection per thread: more threads than connections.
    return [
        "--device",
        device,
        "--runners",
        str(scale.runners),
        "--max-queue-delay-us",
        "0",
        "--max-queue-size",
        "4096",
        "--http-threads",
        "320",
    ]


GRAPH_MAX_BATCH = 16  # the CUDA-graph server variant: --cuda-graph-max-batch


def measure_model(model: BenchModel, package: Path, scale: Scale, device: str, logs: Path) -> dict:
    """The lone request in alternating floor/server rounds, then per batch, then throughput.
    On a GPU a second server with CUDA graphs (--cuda-graph-max-batch) joins the rounds."""
    path = f"/v2/models/{model.name}/infer"
    lone: dict = {
        "layers": {layer: [] for layer in (*LAYERS, "device+gap")},
        "server": [],
        "health": [],
        "server_graphs": [],
    }
    batches: dict = {b: {"floor": [], "loader": [], "server": [], "server_graphs": []} for b in scale.batches}
    points: list[Point] = []
    extra: dict = {}
    floor = Floor(package, device, scale.runners, logs / f"floor-{model.name}.log")
    graphs = (
        support.run_server(
            package, *server_args(scale, device), "--cuda-graph-max-batch", str(GRAPH_MAX_BATCH), startup_timeout=300
        )
        if device.startswith("cuda")
        else contextlib.nullcontext()
    )
    try:
        with support.run_server(package, *server_args(scale, device), startup_timeout=300) as server, graphs as gserver:
            port = server.port
            ceiling = server_bench.run_load(
                port, server_bench._request_bytes("GET", port, "/v2/health/live"), 16, min(1.0, scale.seconds)
            )
            extra["ceiling"] = ceiling["per_second"]
            print(
                f"  load generator ceiling (GET /v2/health/live, c=16): {ceiling['per_second']:.0f} req/s", flush=True
            )
            health = server_bench._request_bytes("GET", port, "/v2/health/live")
            body, head = binary_body(model, 1)
            check_once(port, path, body, head)
            one = http_request(port, path, body, head)
            if gserver:
                extra["graphs_log"] = [e for e in gserver.logs if "CUDA graphs" in str(e.get("msg", ""))]
                print(f"  server with --cuda-graph-max-batch {GRAPH_MAX_BATCH}: {extra['graphs_log']}", flush=True)
                check_once(gserver.port, path, body, head)
                gone = http_request(gserver.port, path, body, head)
            for r in range(scale.rounds):
                print(f"== {model.name}: lone request, round {r + 1}/{scale.rounds}", flush=True)
                for layer in LAYERS:
                    lone["layers"][layer].append(floor.run(layer, 1, scale.layer_seconds))
                lone["layers"]["device+gap"].append(floor.run("device", 1, scale.layer_seconds, scale.gap_us))
                point = measure(port, one, "c=1 batch-1 binary", 1, 1, len(body), scale.seconds, server, model.name)
                lone["server"].append(dataclasses.asdict(point))
                lone["health"].append(server_bench.run_load(port, health, 1, min(0.5, scale.seconds)))
                print(f"  GET /v2/health/live c=1: p50 {lone['health'][-1]['p50_us']:.0f} us", flush=True)
                if gserver:
                    point = measure(
                        gserver.port,
                        gone,
                        "c=1 batch-1 binary, CUDA graphs",
                        1,
                        1,
                        len(body),
                        scale.seconds,
                        gserver,
                        model.name,
                    )
                    lone["server_graphs"].append(dataclasses.asdict(point))
            for b in scale.batches:
                print(f"== {model.name}: batch {b}", flush=True)
                body_b, head_b = binary_body(model, b)
                check_once(port, path, body_b, head_b)
                payload = http_request(port, path, body_b, head_b)
                batches[b]["loader"].append(floor.run("loader", b, scale.layer_seconds))
                for _ in range(scale.batch_rounds):
                    batches[b]["floor"].append(floor.run("device", b, scale.layer_seconds))
                    point = measure(
                        port, payload, f"c=1 batch-{b} binary", 1, b, len(body_b), scale.seconds, server, model.name
                    )
                    batches[b]["server"].append(dataclasses.asdict(point))
                    if gserver and b <= GRAPH_MAX_BATCH:
                        point = measure(
                            gserver.port,
                            http_request(gserver.port, path, body_b, head_b),
                            f"c=1 batch-{b} binary, CUDA graphs",
                            1,
                            b,
                            len(body_b),
                            scale.seconds,
                            gserver,
                            model.name,
                        )
                        batches[b]["server_graphs"].append(dataclasses.asdict(point))
            floor.close()
            print(f"== {model.name}: throughput", flush=True)
            c = scale.throughput_concurrency
            points.append(
                measure(port, one, f"c={c} batch-1 binary", c, 1, len(body), scale.seconds, server, model.name)
            )
            for concurrency, rows in scale.saturation:
                body_s, head_s = binary_body(model, rows)
                check_once(port, path, body_s, head_s)
                points.append(
                    measure(
                        port,
                        http_request(port, path, body_s, head_s),
                        f"saturation c={concurrency} batch-{rows} binary",
                        concurrency,
                        rows,
                        len(body_s),
                        scale.seconds,
                        server,
                        model.name,
                    )
                )
            if gserver:
                points.append(
                    measure(
                        gserver.port,
                        gone,
                        f"c={c} batch-1 binary, CUDA graphs",
                        c,
                        1,
                        len(body),
                        scale.seconds,
                        gserver,
                        model.name,
                    )
                )
            extra["server_log_tail"] = server.raw[-3:]
    finally:
        floor.close()
    return {"lone": lone, "batches": batches, "points": [dataclasses.asdict(p) for p in points], "extra": extra}


def triton_comparison(model: BenchModel, package: Path, scale: Scale, device: str, logs: Path) -> dict:
    """trtaoti-server and Triton Inference Server (bench/triton_baseline.py: the same
    package in Triton's Python backend, the same batch range, queue delay, instances and
    intra-op threads) in alternating rounds, the order rotated each round, with the floor
    at batch 1 and at the batch max in each round. Batch-1 requests at each of
    scale.triton_concurrency, then the scale.triton_saturation points; requests per
    execution from each server's own metrics."""
    path = f"/v2/models/{model.name}/infer"
    top = model.profile["max"]
    points = [(c, 1) for c in scale.triton_concurrency] + [tuple(p) for p in scale.triton_saturation]
    bodies = {rows: binary_body(model, rows) for rows in {rows for _, rows in points}}
    floor = Floor(package, device, scale.runners, logs / f"floor-triton-{model.name}.log")
    result: dict = {
        "batch_max": top,
        "floor": {"batch_1": [], f"batch_{top}": []},
        "servers": {},
        "points": [f"{c}x{r}" for c, r in points],
    }
    try:
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(support.run_server(package, *server_args(scale, device), startup_timeout=300))
            print(f"== {model.name}: Triton starting (its Python backend loads torch and the package)", flush=True)
            started = time.monotonic()
            triton = stack.enter_context(
                triton_baseline.run_triton(
                    package,
                    max_queue_delay_us=0,
                    instances=scale.runners,
                    intra_op_threads=1,
                    device=device,
                    startup_timeout=300,
                )
            )
            result["triton_start_s"] = time.monotonic() - started
            result["versions"] = {"triton": triton.version, "pytriton": triton.dist.pytriton_version}
            print(f"  Triton {triton.version} (nvidia-pytriton {triton.dist.pytriton_version}) ready in "
                  f"{result['triton_start_s']:.0f} s", flush=True)  # fmt: skip
            ceiling = server_bench.run_load(
                ours.port, server_bench._request_bytes("GET", ours.port, "/v2/health/live"), 16, min(1.0, scale.seconds)
            )
            result["ceiling"] = ceiling["per_second"]
            contenders = [("trtaoti-server", ours, ours.port), ("Triton", triton, triton.http_port)]
            payloads = {}
            for label, _, port in contenders:
                result["servers"][label] = {f"{c}x{r}": [] for c, r in points}
                for rows, (body, head) in bodies.items():
                    check_once(port, path, body, head)
                    payloads[label, rows] = http_request(port, path, body, head)
            for r in range(scale.rounds):
                print(f"== {model.name}: trtaoti-server vs Triton, round {r + 1}/{scale.rounds}", flush=True)
                result["floor"]["batch_1"].append(floor.run("device", 1, scale.layer_seconds))
                result["floor"][f"batch_{top}"].append(floor.run("device", top, scale.layer_seconds))
                for label, server, port in contenders[r % 2 :] + contenders[: r % 2]:
                    for c, rows in points:
                        point = measure(
                            port, payloads[label, rows], f"{label} c={c} batch-{rows}", c, rows,
                            len(bodies[rows][0]), scale.seconds, server, model.name,
                        )  # fmt: skip
                        result["servers"][label][f"{c}x{rows}"].append(dataclasses.asdict(point))
            result["triton_log_tail"] = triton.log[-20:]
    finally:
        floor.close()
    return result


def graph_experiment(package: Path, scale: Scale, device: str, logs: Path, timeout: float = 150) -> dict:
    """loader.run captured into a CUDA graph per batch (bench_floor.cc `graph`), in a
    process of its own: a capture that fails can leave a stream unusable."""
    if not device.startswith("cuda"):
        return {"error": "CUDA graphs need a CUDA device"}
    commands = "".join(f"graph {b} {scale.layer_seconds} 0\n" for b in scale.batches)
    try:
        out = subprocess.run(
            [str(support.FLOOR_BIN), "--model", str(package), "--device", device, "--commands"],
            input=commands,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        return {
            "error": f"timed out after {timeout:.0f} s",
            "stdout": (e.stdout or "")[-2000:] if isinstance(e.stdout, str) else "",
        }
    (logs / f"graph-{package.stem}.log").write_text(out.stderr)
    runs = {}
    for line in out.stdout.splitlines():
        result = json.loads(line)
        if "batch" in result:
            runs[result["batch"]] = result
            print(
                f"  graph batch {result['batch']:4d}: "
                + (
                    f"error {result['error'][:200]}"
                    if "error" in result
                    else f"p50 {result['p50_us']:9.1f} us  launch {result['launch_p50_us']:7.1f} us  device {result['device_p50_us']:8.1f} us"
                    f"  max |diff| {result['max_abs_diff']:.3g}  plain run after capture: "
                    f"{result.get('plain_run_after_capture', '?')[:120]}"
                ),
                flush=True,
            )
    return {
        "runs": runs,
        "returncode": out.returncode,
        **({"error": out.stderr[-1500:]} if out.returncode != 0 else {}),
    }


def torch_baselines(
    model: BenchModel, scale: Scale, device: str, modes: str, out: Path, deadline_s: float
) -> dict | None:
    """bench/torch_baselines.py in a subprocess (its own CUDA context and allocator)."""
    command = [
        sys.executable,
        str(REPO / "bench" / "torch_baselines.py"),
        "--models",
        model.name,
        "--modes",
        modes,
        "--batches",
        ",".join(map(str, scale.batches)),
        "--device",
        device.split(":")[0],
        "--seconds",
        str(scale.layer_seconds),
        "--deadline-s",
        str(deadline_s),
        "--out",
        str(out),
    ]
    result = subprocess.run(command, timeout=deadline_s + 240, check=False)
    path = out / f"torch-{model.name}.json"
    if result.returncode != 0 or not path.exists():
        print(f"  torch baselines for {model.name} exited {result.returncode}", flush=True)
        return None
    return json.loads(path.read_text())


def python_points(model: BenchModel, package: Path, scale: Scale, device: str) -> list[Point]:
    port = server_bench._free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if device.startswith("cuda") and Path(SYSTEM_LIBSTDCXX).exists():
        env["LD_PRELOAD"] = SYSTEM_LIBSTDCXX  # aoti_load_package segfaults without it there (DESIGN.md)
    baseline = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "python_baseline.py"), "--package", str(package), "--port", str(port)],
        env=env,
    )
    path = f"/v2/models/{model.name}/infer"
    points = []
    try:
        server_bench._wait_ready(port, "/v2/health/ready", timeout=300)
        body = json_body(model, 1)
        check_once(port, path, body, None)
        payload = http_request(port, path, body)
        points.extend(
            measure(port, payload, f"(b) python c={c} batch-1 JSON", c, 1, len(body), scale.seconds)
            for c in (1, scale.throughput_concurrency)
        )
    finally:
        baseline.terminate()
        baseline.wait(timeout=60)
    return points


# --- report --------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    """Of the values that are numbers (a point that completed no request has NaN)."""
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def lone_summary(r: dict) -> dict:
    lone = r["lone"]
    layers = {name: median([run["p50_us"] for run in runs]) for name, runs in lone["layers"].items() if runs}
    server = [p["load"]["p50_us"] for p in lone["server"]]
    floor = [run["p50_us"] for run in lone["layers"]["device"]]
    inside = [Point(**p).inside() for p in lone["server"]]
    return {
        "layers": layers,
        "launch_us": median([run.get("launch_p50_us") for run in lone["layers"]["loader"]]),
        "device_us": median([run.get("device_p50_us") for run in lone["layers"]["loader"]]),
        "server": median(server),
        # The server's own figures are means over each point, so the client's mean goes with them.
        "client_mean": median([p["load"].get("mean_us") for p in lone["server"]]),
        "server_rounds": server,
        "floor_rounds": floor,
        # The acceptance figure: each round's server p50 minus the same round's floor p50.
        "gap": median([s - f for s, f in zip(server, floor, strict=True)]),
        "request_us": median([i.get("request_us") for i in inside]),
        "queue_us": median([i.get("queue_us") for i in inside]),
        "compute_us": median([i.get("compute_us") for i in inside]),
        "health": median([h["p50_us"] for h in lone["health"]]),
        "graphs": median([p["load"]["p50_us"] for p in lone.get("server_graphs", [])]),
        "graphs_rounds": [p["load"]["p50_us"] for p in lone.get("server_graphs", [])],
        "graphs_compute_us": median([Point(**p).inside().get("compute_us") for p in lone.get("server_graphs", [])]),
    }


def batch_summary(r: dict) -> dict[int, dict]:
    out = {}
    torch_modes = (r.get("torch") or {}).get("modes", {})
    graph = (r.get("graph") or {}).get("runs", {})
    for key, runs in r["batches"].items():
        b = int(key)
        g = graph.get(str(b)) or graph.get(b) or {}
        row = {
            "floor": median([x["p50_us"] for x in runs["floor"]]),
            "floor_per_second": median([x["per_second"] for x in runs["floor"]]),
            "loader": median([x["p50_us"] for x in runs["loader"]]),
            "server": median([p["load"]["p50_us"] for p in runs["server"]]),
            "server_graphs": median([p["load"]["p50_us"] for p in runs.get("server_graphs", [])]),
            "graph": g.get("p50_us"),
            "graph_diff": g.get("max_abs_diff"),
        }
        for mode, result in torch_modes.items():
            row[mode] = (result["batches"].get(str(b)) or result["batches"].get(b) or {}).get("p50_us")
        out[b] = row
    return out


def saturation(r: dict) -> tuple[Point, float, float]:
    """The best saturation point, the floor's rows/s at the largest batch, their ratio."""
    points = [Point(**p) for p in r["points"]]
    best = max((p for p in points if p.label.startswith("saturation")), key=lambda p: p.rows_per_second)
    top = max(int(b) for b in r["batches"])
    floor_rows = top * batch_summary(r)[top]["floor_per_second"]
    return best, floor_rows, best.rows_per_second / floor_rows


def fmt(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:,.{digits}f}"


def render(results: list[dict]) -> str:
    """gpu.md from one or more runs' results (each model may come from another call of
    the GPU machine, so each section names its own card, date and command). Results of
    a --triton run alone render as the Triton comparison (gpu-triton.md)."""
    env = results[0]["env"]
    on_gpu = env["device"].startswith("cuda")
    scale = Scale(**env["scale"])
    full = any("lone" in r for r in results)
    if env["smoke"]:
        title = "GPU benchmark" if full else "against Triton"
        title = f"# trtaoti-server {title}, smoke run on CPU (small models; checks the script, not the numbers)"
    else:
        title = f"# trtaoti-server {'on a GPU' if full else 'against Triton Inference Server on a GPU'}: ResNet-50 and a BERT-base encoder"
    lines = [
        title,
        "",
        "- packages: `trtaoti compile` (the CLI the compile Job runs), backend inductor (AOTInductor), "
        f"device {env['device'].split(':')[0]}, one package per model, batch profile min/opt/max as listed",
    ]
    if full:
        lines += [
            f"- (a) trtaoti-server `{' '.join(server_args(scale, env['device']))}`; (c) `trtaoti-bench-floor` "
            f"(bench_floor.cc): `device` = the floor, `Device::Run` in a loop on one thread{', host->device->host copies included' if on_gpu else ''}, "
            "and the layers around it; (d) bench/torch_baselines.py: the same model in eager PyTorch and under "
            '`torch.compile(mode="max-autotune")`, each run timed like the floor (pageable input to the device, '
            "forward, every output to page-locked host memory, one synchronisation)",
            f"- a lone request: {scale.rounds} rounds, each the floor's layers ({scale.layer_seconds:g} s each) then the "
            f'server at concurrency 1 ({scale.seconds:g} s); medians over rounds; "server - floor" is the median of each '
            "round's difference",
        ]
    lines += [
        "- load generator: bench/server_bench.py's (asyncio + uvloop + httptools in one process, one keep-alive connection "
        "per unit of concurrency, 0.5 s warm-up per point, the same request bytes repeated); binary = Triton's binary "
        "tensor extension",
        "",
        *_render_models(results),
    ]
    return "\n".join(lines) + "\n"


def _render_models(results: list[dict]) -> list[str]:
    lines: list[str] = []
    for r in results:
        scale = Scale(**r["env"]["scale"])
        m = BenchModel(**r["model"])
        manifest = r["manifest"]
        b = manifest["batch"]
        peak = manifest.get("peakGpuMemoryBytes")
        e = r["env"]
        full = "lone" in r  # else a --triton run on its own: its section says when, where and how
        lines += [f"## {m.name}", "", f"- {m.note}"]
        if full:
            lines.append(
                f"- measured {e['date']} on **{e['gpu']}**, torch {e['torch']}, {e['cpus']} CPUs ({e['cpu']}), "
                f"1-minute load average {e['load_before']:.2f} before; command `{e['command']}`"
            )
        lines.append(
            f"- package: precision {manifest['precision']}, batch {b['min']}/{b['opt']}/{b['max']}, "
            f"{manifest['bytes'] / 1e6:.1f} MB, this run's `trtaoti compile`: {r['compiled']}, validation max abs error "
            f"{manifest['validation']['maxAbsError']:.3g}; peak GPU memory {f'{peak / 2**30:.2f} GiB' if peak else 'n/a (CPU)'}"
        )
        if not full:
            lines += ["", *triton_lines(r)]
            continue
        lone = lone_summary(r)
        layers = lone["layers"]
        lines += [
            f"- load generator ceiling (GET /v2/health/live, c=16): {r['extra']['ceiling']:.0f} req/s",
            "",
            "### A lone request (batch 1, concurrency 1)",
            "",
            "| layer (bench_floor.cc, one process, no HTTP) | p50 us | adds | per round |",
            "| --- | ---: | ---: | --- |",
        ]
        previous = None
        for name, what in (
            ("loader", "model alone: `loader.run` on resident inputs, one sync"),
            ("device", "**the floor**: + page-locked staging, one DMA per input and output"),
            ("model", "+ `AotiModel::Execute` on a misaligned body-like buffer"),
            ("batcher", "+ `Batcher::RunOrEnqueue` (runs on the caller) and its callback"),
        ):
            value = layers.get(name)
            rounds = ", ".join(fmt(x["p50_us"]) for x in r["lone"]["layers"][name])
            lines.append(
                f"| {name}: {what} | {fmt(value)} | {fmt(value - previous) if previous is not None else ''} | {rounds} |"
            )
            previous = value
        lines += [
            f"| queued: `Batcher::Enqueue` (a worker thread runs it; two hand-offs) | {fmt(layers.get('queued'))} | "
            f"{fmt(layers.get('queued', 0) - layers.get('batcher', 0))} vs batcher | "
            f"{', '.join(fmt(x['p50_us']) for x in r['lone']['layers']['queued'])} |",
            f"| device after a {scale.gap_us} us idle gap (as between a client's requests) | {fmt(layers.get('device+gap'))} | "
            f"{fmt(layers.get('device+gap', 0) - layers.get('device', 0))} vs device | "
            f"{', '.join(fmt(x['p50_us']) for x in r['lone']['layers']['device+gap'])} |",
            "",
            f"`loader` at batch 1: `loader.run` returns after {fmt(lone['launch_us'])} us of host work (kernel launches), "
            f"the device's own time between events around it is {fmt(lone['device_us'])} us.",
            "",
            "| trtaoti-server, binary, keep-alive | us |",
            "| --- | ---: |",
            f"| client-measured p50 at concurrency 1 (median of rounds: {', '.join(fmt(x) for x in lone['server_rounds'])}) | "
            f"**{fmt(lone['server'])}** |",
            f"| the floor's p50 in the same rounds ({', '.join(fmt(x) for x in lone['floor_rounds'])}) | {fmt(layers.get('device'))} |",
            f"| **server - floor** (median of per-round differences) | **{fmt(lone['gap'])}** |",
            f"| inside the server (its /metrics): compute stage per execution | {fmt(lone['compute_us'])} |",
            f"| inside the server: queue per request (caller-run: taking a runner) | {fmt(lone['queue_us'])} |",
            f"| inside the server: request (handler start to response ready: body read, parse, queue, compute, encode) | "
            f"{fmt(lone['request_us'])} |",
            f"| inside the server, neither queue nor compute: body read, parse, encode (request - queue - compute) | "
            f"{fmt(lone['request_us'] - lone['queue_us'] - lone['compute_us'])} |",
            *(
                [
                    f"| outside the handler: HTTP I/O, loopback, the Python client (client mean - request mean) | "
                    f"{fmt(lone['client_mean'] - lone['request_us'])} |"
                ]
                if lone.get("client_mean") == lone.get("client_mean")
                else []
            ),
            f"| for scale: `GET /v2/health/live` at concurrency 1, client p50 | {fmt(lone['health'])} |",
            f"| the same server with `--cuda-graph-max-batch {GRAPH_MAX_BATCH}` (rounds: "
            f"{', '.join(fmt(x) for x in lone['graphs_rounds'])}); compute stage {fmt(lone['graphs_compute_us'])} | "
            f"{fmt(lone['graphs'])} |",
            "",
            "### Per batch (concurrency 1)",
            "",
        ]
        rows = batch_summary(r)
        torch_modes = list(((r.get("torch") or {}).get("modes") or {}).keys())
        head = (
            "| batch | floor p50 us | server p50 us | server - floor | server, CUDA graphs | loader (resident) | "
            "CUDA graph replay (resident) |"
        )
        rule = "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for mode in torch_modes:
            head += f" {mode} us | {mode} / floor |"
            rule += " ---: | ---: |"
        lines += [head, rule]
        for batch, row in rows.items():
            line = (
                f"| {batch} | {fmt(row['floor'])} | {fmt(row['server'])} | {fmt(row['server'] - row['floor'])} | "
                f"{fmt(row['server_graphs'])} | {fmt(row['loader'])} | {fmt(row['graph'])} |"
            )
            for mode in torch_modes:
                value = row.get(mode)
                line += f" {fmt(value)} | {fmt(value / row['floor'], 2) + 'x' if value else 'n/a'} |"
            lines.append(line)
        graph = r.get("graph") or {}
        lines += [""]
        if graph.get("error") and not graph.get("runs"):
            lines.append(f"CUDA graph experiment: {graph['error'][:300]}")
        elif graph.get("runs"):
            diffs = [x.get("max_abs_diff") for x in graph["runs"].values() if "max_abs_diff" in x]
            after = sorted({str(x.get("plain_run_after_capture", "?"))[:160] for x in graph["runs"].values()})
            lines.append(
                "CUDA graph column: bench_floor.cc `graph`, `loader.run` captured once per batch into a CUDA "
                "graph and replayed (an experiment, not what the server does); largest |replay - plain run| "
                f"over the batches: {fmt(max(diffs), 4) if diffs else 'n/a'}; the captured loader run outside "
                f"its graph afterwards: {'; '.join(after)}."
            )
        t = r.get("torch")
        if t:
            notes = [f"{mode}: {res['error']}" for mode, res in t["modes"].items() if res.get("error")]
            first = {
                mode: [(b, v.get("first_call_s")) for b, v in res["batches"].items()]
                for mode, res in t["modes"].items()
            }
            dates = "; ".join(f"{mode} {res.get('date', t['date'])}" for mode, res in t["modes"].items())
            lines.append(
                f"Eager / torch.compile: measured ({dates}) on {t['gpu']}, torch {t['torch']}; "
                f'"/ floor" above 1 means the package is faster. First call per batch (compile, graph '
                f"recording) in s: {json.dumps({k: {b: round(s or 0, 1) for b, s in v} for k, v in first.items()})}"
                + (f". Not measured: {'; '.join(notes)}" if notes else "")
            )
        lines += [
            "",
            "### Throughput",
            "",
            "| point | request bytes | req/s | rows/s | p50 us | p99 us | errors | inside the server |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for p in [Point(**x) for x in r["points"]] + [Point(**x) for x in r.get("python", [])]:
            lines.append(
                f"| {p.label} | {p.request_bytes} | {p.load['per_second']:.0f} | {p.rows_per_second:.0f} | "
                f"{p.load['p50_us']:.0f} | {p.load['p99_us']:.0f} | {p.load['errors']} | {p.breakdown()} |"
            )
        best, floor_rows, ratio = saturation(r)
        top = max(rows)
        lines += [
            "",
            f"- saturation ({best.label}): {best.rows_per_second:.0f} rows/s = **{ratio:.2f}x** the floor at batch {top} "
            f"({floor_rows:.0f} rows/s; target >= 0.9x)",
            "",
        ]
        if "triton" in r:
            lines += triton_lines(r)
    return lines


def triton_summary(r: dict) -> dict:
    """Medians over rounds per server and point, requests per execution over all rounds,
    the floor, and the issue's three verdicts."""
    t = r["triton"]
    top = t["batch_max"]
    servers: dict = {}
    for label, by_point in t["servers"].items():
        servers[label] = {}
        for key, runs in by_point.items():
            points = [Point(**p) for p in runs]
            served = sum(p.server.get("nv_inference_request_success", 0) for p in points)
            executions = sum(p.server.get("nv_inference_exec_count", 0) for p in points)
            servers[label][key] = {
                "rows_per_second": median([p.rows_per_second for p in points]),
                "per_second_rounds": [p.rows_per_second for p in points],
                "p50_us": median([p.load["p50_us"] for p in points]),
                "p99_us": median([p.load["p99_us"] for p in points]),
                "requests_per_execution": served / executions if executions else float("nan"),
                "request_us": median([p.inside().get("request_us") for p in points]),
                "errors": sum(p.load["errors"] for p in points),
            }
    ours, triton = servers["trtaoti-server"], servers["Triton"]
    batch_one = [key for key in t["points"] if key.endswith("x1") and not _saturation_point(t, key)]
    best = {label: max(v.items(), key=lambda kv: kv[1]["rows_per_second"]) for label, v in servers.items()}
    floor_top = t["floor"][f"batch_{top}"]
    return {
        "servers": servers,
        "floor_p50_us": median([x["p50_us"] for x in t["floor"]["batch_1"]]),
        "floor_top_rows_per_second": top * median([x["per_second"] for x in floor_top]),
        "best": best,
        "saturation_ratio": best["trtaoti-server"][1]["rows_per_second"] / best["Triton"][1]["rows_per_second"],
        "p50_c1_ratio": ours["1x1"]["p50_us"] / triton["1x1"]["p50_us"],
        "lower_p99": [key for key in t["points"] if ours[key]["p99_us"] < triton[key]["p99_us"]],
        "batch_one": batch_one,
    }


def _over(a: float, b: float) -> str:
    """a / b to two places, n/a where either is missing."""
    return fmt(a / b, 2) if b and a == a and b == b else "n/a"


def _saturation_point(t: dict, key: str) -> bool:
    concurrency, rows = (int(x) for x in key.split("x"))
    return [concurrency, rows] in [list(p) for p in t["env"]["scale"]["triton_saturation"]]


def _point_name(t: dict, key: str) -> str:
    concurrency, rows = (int(x) for x in key.split("x"))
    name = f"c={concurrency}" + (f", {rows} rows a request" if rows > 1 else "")
    return f"{name} (saturation)" if _saturation_point(t, key) else name


def triton_summary_line(r: dict) -> str:
    s = triton_summary(r)
    ours, triton = s["servers"]["trtaoti-server"], s["servers"]["Triton"]
    points = "; ".join(
        f"{key}: {fmt(ours[key]['rows_per_second'])} vs {fmt(triton[key]['rows_per_second'])} rows/s, p99 "
        f"{fmt(ours[key]['p99_us'])} vs {fmt(triton[key]['p99_us'])} us, req/exec "
        f"{fmt(ours[key]['requests_per_execution'], 2)} vs {fmt(triton[key]['requests_per_execution'], 2)}"
        for key in r["triton"]["points"]
    )
    return (
        f"{r['model']['name']} vs Triton {r['triton'].get('versions', {}).get('triton', '?')}: saturation "
        f"{s['saturation_ratio']:.2f}x (>= 1), p50 c=1 {fmt(ours['1x1']['p50_us'])} vs {fmt(triton['1x1']['p50_us'])} us "
        f"(floor {fmt(s['floor_p50_us'])}), p99 lower at {','.join(s['lower_p99']) or 'none'}; {points}"
    )


def triton_lines(r: dict) -> list[str]:
    """The Triton comparison's section: versions, setup, one row per point, verdicts."""
    t, m = r["triton"], BenchModel(**r["model"])
    e, s = t["env"], triton_summary(r)
    scale = Scale(**e["scale"])
    ours, triton = s["servers"]["trtaoti-server"], s["servers"]["Triton"]
    batch = r["manifest"]["batch"]
    versions = t.get("versions", {})
    on_gpu = e["device"].startswith("cuda")
    lines = [
        "### Against Triton Inference Server",
        "",
        f"- measured {e['date']} on **{e['gpu']}**, torch {e['torch']}, {e['cpus']} CPUs ({e['cpu']}), 1-minute load "
        f"average {e['load_before']:.2f} before; command `{e['command']}`",
        f"- (t) **Triton {versions.get('triton', '?')}**, the `tritonserver` in **nvidia-pytriton "
        f"{versions.get('pytriton', '?')}**, started by `bench/triton_baseline.py`: Triton's C++ HTTP front end and "
        "dynamic batcher, the same package in its Python backend (`bench/triton_aoti_model.py`: `aoti_load_package`, "
        f"inputs to {e['device']}, only the requested outputs back to the host); max_batch_size {batch['max']}, "
        f"preferred batch sizes [{batch['opt']}, {batch['max']}], max_queue_delay_microseconds 0, {scale.runners} "
        f"instance(s), 1 intra-op thread; ready {t.get('triton_start_s', float('nan')):.0f} s after start",
        f"- (a) trtaoti-server `{' '.join(server_args(scale, e['device']))}` ({scale.runners} runner(s), queue delay 0: "
        "the same batcher settings)",
        f"- {scale.rounds} alternating rounds (order rotated each round), {scale.seconds:g} s per point after 0.5 s "
        "warm-up, each cell the median over rounds; binary requests (Triton's binary tensor extension)"
        + (f" asking for `{', '.join(m.outputs)}`" if m.outputs else "")
        + "; req/exec: requests per model execution from each server's own nv_inference_request_success / "
        "nv_inference_exec_count over all rounds",
        f"- (c) floor, `trtaoti-bench-floor` `device` (one thread{', host->device->host copies included' if on_gpu else ''}), "
        f"in the same rounds: batch 1 p50 **{fmt(s['floor_p50_us'])} us**; batch {batch['max']} "
        f"{fmt(s['floor_top_rows_per_second'])} rows/s",
        f"- load generator ceiling (GET /v2/health/live, c=16): {fmt(t.get('ceiling'))} req/s",
        "",
        "| point | (a) rows/s | p50 us | p99 us | req/exec | (t) Triton rows/s | p50 us | p99 us | req/exec | "
        "(a)/(t) rows/s (per round) | (a)/(t) p50 | (a)/(t) p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in t["points"]:
        a, b = ours[key], triton[key]
        rounds = ", ".join(_over(x, y) for x, y in zip(a["per_second_rounds"], b["per_second_rounds"], strict=True))
        lines.append(
            f"| {_point_name(t, key)} | {fmt(a['rows_per_second'])} | {fmt(a['p50_us'])} | {fmt(a['p99_us'])} | "
            f"{fmt(a['requests_per_execution'], 2)} | {fmt(b['rows_per_second'])} | {fmt(b['p50_us'])} | "
            f"{fmt(b['p99_us'])} | {fmt(b['requests_per_execution'], 2)} | "
            f"**{_over(a['rows_per_second'], b['rows_per_second'])}x** ({rounds}) | "
            f"{_over(a['p50_us'], b['p50_us'])} | {_over(a['p99_us'], b['p99_us'])} |"
        )
    (a_key, a_best), (t_key, t_best) = s["best"]["trtaoti-server"], s["best"]["Triton"]
    met = {True: "met", False: "**missed**"}
    errors = sum(v["errors"] for server in s["servers"].values() for v in server.values())
    lines += [
        "",
        f"- throughput at saturation (each server's best point): (a) {fmt(a_best['rows_per_second'])} rows/s "
        f"({_point_name(t, a_key)}) against (t) {fmt(t_best['rows_per_second'])} ({_point_name(t, t_key)}): "
        f"**{fmt(s['saturation_ratio'], 2)}x** (target >= 1.0x: {met[s['saturation_ratio'] >= 1.0]}); "
        f"the floor at batch {batch['max']}: (a) {a_best['rows_per_second'] / s['floor_top_rows_per_second']:.2f}x, "
        f"(t) {t_best['rows_per_second'] / s['floor_top_rows_per_second']:.2f}x",
        f"- p50 at concurrency 1: (a) {fmt(ours['1x1']['p50_us'])} us against (t) {fmt(triton['1x1']['p50_us'])} us, "
        f"**{fmt(s['p50_c1_ratio'], 2)}x** (target: lower, {met[s['p50_c1_ratio'] < 1.0]}); (a) - floor "
        f"{fmt(ours['1x1']['p50_us'] - s['floor_p50_us'])} us, (t) - floor {fmt(triton['1x1']['p50_us'] - s['floor_p50_us'])} us",
        f"- p99 lower than Triton's at {', '.join(_point_name(t, k) for k in s['lower_p99']) or 'no point'} of "
        f"{len(t['points'])} points (target: every concurrency, "
        f"{met[all(k in s['lower_p99'] for k in s['batch_one'])]} for batch-1 concurrencies "
        f"{', '.join(_point_name(t, k) for k in s['batch_one'])})",
        f"- non-200 responses: {errors}",
        "",
    ]
    return lines


def summary(results: list[dict]) -> str:
    rows = ["SUMMARY"]
    for r in results:
        if "triton" in r:
            rows.append(triton_summary_line(r))
        if "lone" not in r:
            continue
        lone = lone_summary(r)
        _, _, ratio = saturation(r)
        target = 100 if "encoder" in r["model"]["name"] else 150
        rows.append(
            f"{r['model']['name']}: lone request floor p50 {fmt(lone['layers'].get('device'))} us, server p50 "
            f"{fmt(lone['server'])} us, server - floor {fmt(lone['gap'])} us (target <= {target}); "
            f"with CUDA graphs {fmt(lone['graphs'])} us; "
            f"loader {fmt(lone['layers'].get('loader'))} us (launch {fmt(lone['launch_us'])}, device "
            f"{fmt(lone['device_us'])}); saturation / floor {ratio:.2f} (target >= 0.9)"
        )
        for batch, row in batch_summary(r).items():
            others = "  ".join(
                f"{mode} {fmt(row[mode])}" for mode in ((r.get("torch") or {}).get("modes") or {}) if row.get(mode)
            )
            rows.append(
                f"  batch {batch:4d}: floor {fmt(row['floor'])}  server {fmt(row['server'])}  graphs "
                f"{fmt(row['server_graphs'])}  loader "
                f"{fmt(row['loader'])}  graph {fmt(row['graph'])}  {others}"
            )
    return "\n".join(rows)


def run_environment(args: argparse.Namespace, device: str, scale: Scale, load_before: float) -> dict:
    import torch

    script = Path(sys.argv[0])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU (CPU smoke run)",
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "cpu": f"{platform.machine()} {server_bench._cpu_model()}",
        "load_before": load_before,
        "command": "python3 "
        + shlex.join([str(script.relative_to(REPO)) if script.is_absolute() else sys.argv[0], *sys.argv[1:]]),
        "device": device,
        "smoke": args.smoke,
        "scale": dataclasses.asdict(scale),
    }


def load_results(paths: list[Path]) -> list[dict]:
    """Results JSON files, with torch-<model>.json files (bench/torch_baselines.py) joined to their model."""
    results, torch_runs = [], {}
    for path in paths:
        d = json.loads(path.read_text())
        if "modes" in d:
            torch_runs.setdefault(d["model"], []).append(d)
        else:
            results.append(d)
    # A --triton run's result joins its model's full result where both are given (its
    # section keeps its own date and card); alone it stays a result of its own.
    full = {r["model"]["name"]: r for r in results if "lone" in r}
    for r in [r for r in results if "lone" not in r and r["model"]["name"] in full]:
        full[r["model"]["name"]]["triton"] = r["triton"]
        results.remove(r)
    for r in results:
        for run in torch_runs.get(r["model"]["name"], []):
            # Several runs of one model (say eager from the bench call, max-autotune from
            # another): each mode keeps the first run that measured it, with its date.
            mine = r.setdefault("torch", {**run, "modes": {}})
            for mode, result in run["modes"].items():
                if mode not in mine["modes"] and result.get("batches"):
                    mine["modes"][mode] = {**result, "date": run["date"]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (uses cuda:0) or cpu")
    parser.add_argument("--smoke", action="store_true", help="small models and loads: checks the script end to end")
    parser.add_argument(
        "--packages",
        type=Path,
        default=REPO / ".gpu-work" / "store",
        help="file:// store for the compiled packages (reused when already compiled)",
    )
    parser.add_argument("--compile-only", action="store_true", help="compile (or find) the packages and stop")
    parser.add_argument("--models", default="", help="comma-separated subset of the model names")
    parser.add_argument(
        "--torch-modes",
        default="eager",
        help="bench/torch_baselines.py modes to run after each model ('' for none); e.g. eager,max-autotune",
    )
    parser.add_argument("--torch-deadline-s", type=float, default=240, help="per model, for bench/torch_baselines.py")
    parser.add_argument("--no-graph", action="store_true", help="skip the CUDA graph experiment")
    parser.add_argument("--python-baseline", action="store_true", help="also measure (b), bench/python_baseline.py")
    parser.add_argument(
        "--triton",
        action="store_true",
        help="only trtaoti-server against Triton Inference Server (bench/triton_baseline.py) and the floor, "
        "alternating rounds; needs nvidia-pytriton's tritonserver (bench/README.md)",
    )
    parser.add_argument("--out", type=Path, help="default bench/results/gpu.md (gpu-smoke.md with --smoke)")
    parser.add_argument(
        "--results", type=Path, default=None, help="directory for each model's results JSON (default: next to --out)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="only write --out from results JSON files of earlier runs (no torch, no GPU)",
    )
    args = parser.parse_args()
    if args.render:
        results = load_results(args.render)
        out = args.out or REPO / "bench" / "results" / ("gpu-smoke.md" if results[0]["env"]["smoke"] else "gpu.md")
        out.write_text(render(results))
        print(f"wrote {out}")
        print(summary(results))
        return
    load_before = os.getloadavg()[0]
    device = "cuda:0" if args.device.startswith("cuda") else "cpu"
    scale = dataclasses.replace(SMOKE if args.smoke else FULL)
    models = smoke_models() if args.smoke else gpu_models()
    if args.models:
        models = [m for m in models if m.name in args.models.split(",")]
    out = args.out or REPO / "bench" / "results" / ("gpu-smoke.md" if args.smoke else "gpu.md")
    store = args.packages.resolve()
    logs = store.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA device visible to torch: run with --device cpu --smoke on a CPU machine")

    compiled = []
    for model in models:
        print(f"compile {model.name} ({model.factory}, {model.precision}, batch {model.profile})", flush=True)
        package, manifest, seconds = compile_package(model, device.split(":")[0], store, logs)
        print(
            f"  {package} ({manifest['bytes'] / 1e6:.1f} MB) {seconds}; peakGpuMemoryBytes "
            f"{manifest.get('peakGpuMemoryBytes')}",
            flush=True,
        )
        compiled.append((model, package, manifest, seconds))
    if args.compile_only:
        return

    support.build_server()
    results_dir = args.results or out.parent
    results_dir.mkdir(parents=True, exist_ok=True)
    env = run_environment(args, device, scale, load_before)
    results = []
    for model, package, manifest, seconds in compiled:
        started = time.monotonic()
        r = {"model": dataclasses.asdict(model), "manifest": manifest, "compiled": seconds, "env": env}
        if args.triton:
            r["triton"] = {"env": env, **triton_comparison(model, package, scale, device, logs)}
            r["extra"] = {"ceiling": r["triton"]["ceiling"]}
        else:
            r.update(measure_model(model, package, scale, device, logs))
            if not args.no_graph:
                print(f"== {model.name}: CUDA graph experiment", flush=True)
                r["graph"] = graph_experiment(package, scale, device, logs)
            if args.python_baseline:
                print(f"== {model.name}: (b) Python alternative", flush=True)
                r["python"] = [dataclasses.asdict(p) for p in python_points(model, package, scale, device)]
            if args.torch_modes:
                print(f"== {model.name}: {args.torch_modes} (bench/torch_baselines.py)", flush=True)
                r["torch"] = torch_baselines(model, scale, device, args.torch_modes, results_dir, args.torch_deadline_s)
        print(f"== {model.name}: {time.monotonic() - started:.0f} s", flush=True)
        results.append(r)
        # Written after each model: a run cut short still leaves what it measured, and
        # `--render` joins models measured in separate calls of the GPU machine.
        stem = out.stem if out.stem.endswith(f"-{model.name}") else f"{out.stem}-{model.name}"
        (results_dir / f"{stem}.json").write_text(json.dumps(r, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(results))
        print(f"wrote {out} and {results_dir / f'{stem}.json'}", flush=True)

    print(summary(results))


if __name__ == "__main__":
    main()
