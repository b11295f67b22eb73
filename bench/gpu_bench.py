"""trtaoti-server on a GPU with real models: ResNet-50 (fp16 image, 301 KB a request)
and a BERT-base-shaped encoder (int64 token ids), one package per model, compiled by
the real `trtaoti compile` (AOTInductor, CUDA, fp16) and measured three ways:

(c) floor: trtaoti-bench-floor, loader.run in a tight loop (host->device->host copies
    included), at several batch sizes;
(a) trtaoti-server: latency at concurrency 1, throughput at concurrency 64, saturation
    (rows/s) with and without dynamic batching, and where the time goes (its /metrics);
(b) the Python alternative, bench/python_baseline.py (aoti_load_package + FastAPI/uvicorn).

    python3 bench/gpu_bench.py --packages .gpu-work/store            # on the GPU machine
    python bench/gpu_bench.py --device cpu --smoke --packages /tmp/s  # the same code path on a CPU

The load generator, its ceiling measurement and the server launcher are
bench/server_bench.py's and tests/e2e/server_support.py's. Compiles are cached in the
--packages store (the compiler's own cache check: a second run only loads manifests).
Writes bench/results/gpu.md (smoke: bench/results/gpu-smoke.md) and prints a short
summary last.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import server_support as support  # noqa: E402
from bench import server_bench  # noqa: E402  (also puts tests/e2e on sys.path)

SYSTEM_LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
KSERVE = {"float16": "FP16", "bfloat16": "BF16", "float32": "FP32", "int64": "INT64"}
NUMPY = {"FP16": np.float16, "FP32": np.float32, "INT64": np.int64}


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
    """Concurrency and batch sizes of one run (full on the GPU, small for --smoke)."""

    floor_batches: list[int]
    throughput_concurrency: int
    saturation: list[tuple[int, int]]  # (concurrency, rows per request)
    seconds: float
    floor_seconds: float
    runners: int = 2


FULL = Scale(
    floor_batches=[1, 8, 64, 256],
    throughput_concurrency=64,
    saturation=[(256, 1), (64, 8), (32, 16)],
    seconds=2.5,
    floor_seconds=2.0,
)
SMOKE = Scale(
    floor_batches=[1, 4, 16],
    throughput_concurrency=8,
    saturation=[(16, 1), (8, 4)],
    seconds=1.0,
    floor_seconds=1.0,
    runners=1,
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


METRICS = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)


def _counters(server: support.ServerProcess, model_name: str) -> dict[str, float]:
    text = server.metrics()
    labels = {"model": model_name, "version": "1"}
    return {name: support.metric(text, name, **labels) for name in METRICS}


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

    def breakdown(self) -> str:
        s = self.server
        if not s or not s["nv_inference_exec_count"]:
            return ""
        executions = s["nv_inference_exec_count"]
        requests = max(s["nv_inference_request_success"], 1)
        compute_us = s["nv_inference_compute_infer_duration_us"] / executions
        return (
            f"{s['nv_inference_count'] / executions:.1f} rows/execution, compute {compute_us:.0f} us/execution "
            f"(= {s['nv_inference_count'] / max(s['nv_inference_compute_infer_duration_us'], 1) * 1e6:.0f} rows/s "
            f"per busy runner), queue {s['nv_inference_queue_duration_us'] / requests:.0f} us/request, "
            f"request {s['nv_inference_request_duration_us'] / requests:.0f} us/request in the server"
        )


def measure(
    port: int,
    payload: bytes,
    label: str,
    concurrency: int,
    rows: int,
    request_bytes: int,
    seconds: float,
    server: support.ServerProcess | None = None,
    model_name: str = "",
) -> Point:
    before = _counters(server, model_name) if server else None
    load = server_bench.run_load(port, payload, concurrency, seconds)
    point = Point(label, concurrency, rows, request_bytes, load)
    if server:
        after = _counters(server, model_name)
        point.server = {k: after[k] - before[k] for k in METRICS}
    print(
        f"  {label:<44} {load['per_second']:9.0f} req/s {point.rows_per_second:9.0f} rows/s  p50 {load['p50_us']:9.0f} us"
        f"  p99 {load['p99_us']:9.0f} us  errors {load['errors']}",
        flush=True,
    )
    if point.breakdown():
        print(f"    {point.breakdown()}", flush=True)
    return point


def floor_runs(package: Path, scale: Scale, device: str) -> dict[int, dict]:
    runs = {}
    for batch in scale.floor_batches:
        runs[batch] = server_bench._floor(package, scale.floor_seconds, threads=1, device=device, batch=batch)
        r = runs[batch]
        print(
            f"  floor batch {batch:4d}: p50 {r['p50_us']:9.1f} us  p99 {r['p99_us']:9.1f} us  "
            f"{batch * r['per_second']:9.0f} rows/s",
            flush=True,
        )
    return runs


def server_points(model: BenchModel, package: Path, scale: Scale, device: str) -> tuple[list[Point], dict]:
    path = f"/v2/models/{model.name}/infer"
    # cpp-httplib serves one connection per thread: more threads than connections.
    server_args = [
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
    points: list[Point] = []
    extra: dict = {}
    with support.run_server(package, *server_args, startup_timeout=300) as server:
        port = server.port
        ceiling = server_bench.run_load(
            port, server_bench._request_bytes("GET", port, "/v2/health/live"), 16, min(2.0, scale.seconds)
        )
        extra["ceiling"] = ceiling["per_second"]
        print(f"  load generator ceiling (GET /v2/health/live, c=16): {ceiling['per_second']:.0f} req/s", flush=True)
        body, head = binary_body(model, 1)
        check_once(port, path, body, head)
        one = http_request(port, path, body, head)
        points.append(measure(port, one, "c=1 batch-1 binary", 1, 1, len(body), scale.seconds, server, model.name))
        c = scale.throughput_concurrency
        points.append(measure(port, one, f"c={c} batch-1 binary", c, 1, len(body), scale.seconds, server, model.name))
        json_one = json_body(model, 1)
        check_once(port, path, json_one, None)
        points.append(
            measure(
                port,
                http_request(port, path, json_one),
                f"c={c} batch-1 JSON",
                c,
                1,
                len(json_one),
                scale.seconds,
                server,
                model.name,
            )
        )
        points.append(
            measure(
                port,
                http_request(port, path, json_one),
                "c=1 batch-1 JSON",
                1,
                1,
                len(json_one),
                scale.seconds,
                server,
                model.name,
            )
        )
        for concurrency, rows in scale.saturation:
            body, head = binary_body(model, rows)
            check_once(port, path, body, head)
            points.append(
                measure(
                    port,
                    http_request(port, path, body, head),
                    f"saturation c={concurrency} batch-{rows} binary",
                    concurrency,
                    rows,
                    len(body),
                    scale.seconds,
                    server,
                    model.name,
                )
            )
        extra["server_log_tail"] = server.raw[-3:]
    # Without dynamic batching: the batcher may not coalesce requests (max batch = the
    # request's rows), the same offered load as the best batched saturation point.
    concurrency, rows = max(scale.saturation, key=lambda cr: cr[1])
    no_batching = ["--batch-min", "1", "--batch-opt", str(rows), "--batch-max", str(rows)]
    with support.run_server(package, *server_args, *no_batching, startup_timeout=300) as server:
        body, head = binary_body(model, rows)
        check_once(server.port, path, body, head)
        points.append(
            measure(
                server.port,
                http_request(server.port, path, body, head),
                f"no batching (--batch-max {rows}) c={concurrency} batch-{rows}",
                concurrency,
                rows,
                len(body),
                scale.seconds,
                server,
                model.name,
            )
        )
    return points, extra


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
        for c in (1, scale.throughput_concurrency):
            points.append(measure(port, payload, f"(b) python c={c} batch-1 JSON", c, 1, len(body), scale.seconds))
    finally:
        baseline.terminate()
        baseline.wait(timeout=60)
    return points


# --- report --------------------------------------------------------------------------------------------


@dataclass
class ModelResult:
    model: BenchModel
    manifest: dict
    compiled: str  # "compiled in N s" or "cache hit in N s"
    floor: dict[int, dict]
    ours: list[Point]
    theirs: list[Point]
    extra: dict
    env: dict  # where and how it was measured (the card, torch, the command, the Scale)

    def point(self, prefix: str) -> Point:
        return next(p for p in [*self.ours, *self.theirs] if p.label.startswith(prefix))

    def saturation(self) -> Point:
        return max((p for p in self.ours if p.label.startswith("saturation")), key=lambda p: p.rows_per_second)


def ratios(r: ModelResult) -> dict[str, float]:
    scale = Scale(**r.env["scale"])
    c = scale.throughput_concurrency
    top = max(scale.floor_batches)
    floor_max_rows = top * r.floor[top]["per_second"]
    ours_json = r.point(f"c={c} batch-1 JSON").load["per_second"]
    theirs = r.point(f"(b) python c={c}").load["per_second"]
    return {
        "saturation_vs_floor": r.saturation().rows_per_second / floor_max_rows,
        "batch1_vs_python": ours_json / max(theirs, 1e-9),
        "batch1_binary_vs_python": r.point(f"c={c} batch-1 binary").load["per_second"] / max(theirs, 1e-9),
        "p50_minus_floor_us": r.point("c=1 batch-1 binary").load["p50_us"] - r.floor[1]["p50_us"],
    }


def render(results: list[ModelResult]) -> str:
    """gpu.md from one or more runs' results (each model may come from another call of
    the GPU machine, so each section names its own card, date and command)."""
    env = results[0].env
    scale = Scale(**env["scale"])
    on_gpu = env["device"].startswith("cuda")
    lines = [
        "# trtaoti-server on a GPU: ResNet-50 and a BERT-base encoder"
        if not env["smoke"]
        else "# trtaoti-server GPU benchmark, smoke run on CPU (small models; checks the script, not the numbers)",
        "",
        "- packages: `trtaoti compile` (the CLI the compile Job runs), backend inductor (AOTInductor), "
        f"device {env['device'].split(':')[0]}, one package per model, batch profile min/opt/max as listed; the same "
        "package for (a), (b) and (c)",
        f"- (a) trtaoti-server `--device {env['device']} --runners {scale.runners} --max-queue-delay-us 0 --max-queue-size 4096 "
        "--http-threads 320`, the same flags plus `--batch-min 1 --batch-opt N --batch-max N` (N = the request's rows) for "
        '"no batching"; (b) bench/python_baseline.py (aoti_load_package + FastAPI/uvicorn, KServe V2 JSON only, no '
        f"batching{', LD_PRELOAD=' + SYSTEM_LIBSTDCXX if on_gpu else ''}); (c) `trtaoti-bench-floor` (loader.run in a loop "
        f"on one thread, random inputs{', host->device->host copies included' if on_gpu else ''})",
        "- load generator: bench/server_bench.py's (asyncio + uvloop + httptools in one process, one keep-alive connection "
        f"per unit of concurrency, {scale.seconds:g} s per point after 0.5 s warm-up, the same request bytes repeated); "
        "binary = Triton's binary tensor extension, JSON = KServe V2 JSON (all outputs)",
        "- peak GPU memory: the compiler manifest's `peakGpuMemoryBytes` (torch.cuda.max_memory_allocated in the "
        "compiler's validation worker, which runs the package at min, opt and max batch)",
        "",
    ]
    for r in results:
        m = r.model
        b = r.manifest["batch"]
        peak = r.manifest.get("peakGpuMemoryBytes")
        e = r.env
        scale = Scale(**e["scale"])
        c = scale.throughput_concurrency
        top = max(scale.floor_batches)
        lines += [
            f"## {m.name}",
            "",
            f"- {m.note}",
            f"- measured {e['date']} on **{e['gpu']}**, torch {e['torch']}, {e['cpus']} CPUs ({e['cpu']}), 1-minute load "
            f"average {e['load_before']:.2f} before; command `{e['command']}`",
            f"- package: precision {r.manifest['precision']}, batch {b['min']}/{b['opt']}/{b['max']}, {r.manifest['bytes'] / 1e6:.1f} MB, "
            f"this run's `trtaoti compile`: {r.compiled}, "
            f"validation max abs error {r.manifest['validation']['maxAbsError']:.3g}; peak GPU memory "
            f"{f'{peak / 2**30:.2f} GiB' if peak else 'n/a (CPU)'}, peak host memory {r.manifest['peakMemoryBytes'] / 2**30:.2f} GiB",
            f"- load generator ceiling (GET /v2/health/live, c=16): {r.extra['ceiling']:.0f} req/s",
            "",
            "(c) floor:",
            "",
            "| batch | p50 us | p99 us | rows/s |",
            "| ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {n} | {f['p50_us']:.0f} | {f['p99_us']:.0f} | {n * f['per_second']:.0f} |" for n, f in r.floor.items()
        ]
        lines += [
            "",
            "(a) trtaoti-server and (b) the Python alternative:",
            "",
            "| point | request bytes | req/s | rows/s | p50 us | p99 us | MB/s in | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in [*r.ours, *r.theirs]:
            lines.append(
                f"| {p.label} | {p.request_bytes} | {p.load['per_second']:.0f} | {p.rows_per_second:.0f} | "
                f"{p.load['p50_us']:.0f} | {p.load['p99_us']:.0f} | {p.load['per_second'] * p.request_bytes / 1e6:.0f} | "
                f"{p.load['errors']} |"
            )
        lines += ["", "Where the server's time goes (its /metrics, deltas over each point):", ""]
        lines += [f"- {p.label}: {p.breakdown()}" for p in r.ours if p.breakdown()]
        q = ratios(r)
        sat = r.saturation()
        lines += [
            "",
            f"- saturation ({sat.label}): {sat.rows_per_second:.0f} rows/s = **{q['saturation_vs_floor']:.2f}x** the floor "
            f"at batch {top} ({top * r.floor[top]['per_second']:.0f} rows/s){' (target >= 0.9x)' if 'encoder' in m.name else ''}",
            f"- concurrency {c}, batch-1, the same JSON bytes: (a)/(b) = **{q['batch1_vs_python']:.1f}x** (target >= 5x); "
            f"with binary requests (a)/(b) = {q['batch1_binary_vs_python']:.1f}x",
            f"- dynamic batching: {sat.rows_per_second:.0f} rows/s at saturation vs {r.point('no batching').rows_per_second:.0f} "
            f"rows/s without ({r.point('no batching').label})",
            f"- p50 at concurrency 1 (binary) minus the floor's batch-1 p50: **{q['p50_minus_floor_us']:.0f} us** "
            f"(target <= 100 us; includes the Python client's own time per round trip)",
            "",
        ]
    return "\n".join(lines) + "\n"


def summary(results: list[ModelResult]) -> str:
    scale = Scale(**results[0].env["scale"])
    c = scale.throughput_concurrency
    top = max(scale.floor_batches)
    rows = [
        "SUMMARY",
        f"{'model':<14}{'floor b1 p50':>13}{'c1 p50':>9}{'d us':>7}{'floor b' + str(top) + ' r/s':>16}"
        f"{'sat rows/s':>12}{'sat/floor':>10}{'nobatch r/s':>12}{f'c{c} ours/py':>13}{'bin/py':>8}{'GPU GiB':>9}",
    ]
    for r in results:
        q = ratios(r)
        nobatch = r.point("no batching").rows_per_second
        peak = r.manifest.get("peakGpuMemoryBytes") or 0
        rows.append(
            f"{r.model.name:<14}{r.floor[1]['p50_us']:>13.0f}{r.point('c=1 batch-1 binary').load['p50_us']:>9.0f}"
            f"{q['p50_minus_floor_us']:>7.0f}{top * r.floor[top]['per_second']:>16.0f}{r.saturation().rows_per_second:>12.0f}"
            f"{q['saturation_vs_floor']:>10.2f}{nobatch:>12.0f}{q['batch1_vs_python']:>13.1f}"
            f"{q['batch1_binary_vs_python']:>8.1f}{peak / 2**30:>9.2f}"
        )
    rows.append(
        "targets: sat/floor >= 0.9 (encoder), ours/py >= 5 at c=%d batch-1, d us (c1 p50 - floor b1 p50) <= 100" % c
    )
    return "\n".join(rows)


def save_result(r: ModelResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(r), indent=1))


def load_result(path: Path) -> ModelResult:
    d = json.loads(path.read_text())
    return ModelResult(
        model=BenchModel(**d["model"]),
        manifest=d["manifest"],
        compiled=d["compiled"],
        floor={int(k): v for k, v in d["floor"].items()},
        ours=[Point(**p) for p in d["ours"]],
        theirs=[Point(**p) for p in d["theirs"]],
        extra=d["extra"],
        env=d["env"],
    )


def run_environment(args: argparse.Namespace, device: str, scale: Scale, load_before: float) -> dict:
    import torch

    script = Path(sys.argv[0])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
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
    parser.add_argument("--seconds", type=float, help="measured seconds per point")
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
        results = [load_result(path) for path in args.render]
        out = args.out or REPO / "bench" / "results" / ("gpu-smoke.md" if results[0].env["smoke"] else "gpu.md")
        out.write_text(render(results))
        print(f"wrote {out}")
        print(summary(results))
        return
    load_before = os.getloadavg()[0]
    device = "cuda:0" if args.device.startswith("cuda") else "cpu"
    scale = SMOKE if args.smoke else FULL
    if args.seconds:
        scale.seconds = args.seconds
    models = smoke_models() if args.smoke else gpu_models()
    if args.models:
        models = [m for m in models if m.name in args.models.split(",")]
    out = args.out or REPO / "bench" / "results" / ("gpu-smoke.md" if args.smoke else "gpu.md")
    store = args.packages.resolve()
    logs = store.parent / "logs"
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
    env = run_environment(args, device, scale, load_before)
    results = []
    for model, package, manifest, seconds in compiled:
        started = time.monotonic()
        print(f"== {model.name}: (c) floor", flush=True)
        floor = floor_runs(package, scale, device)
        print(f"== {model.name}: (a) trtaoti-server", flush=True)
        ours, extra = server_points(model, package, scale, device)
        print(f"== {model.name}: (b) Python alternative", flush=True)
        theirs = python_points(model, package, scale, device)
        print(f"== {model.name}: {time.monotonic() - started:.0f} s", flush=True)
        results.append(ModelResult(model, manifest, seconds, floor, ours, theirs, extra, env))
        # Written after each model: a run cut short still leaves what it measured, and
        # `--render` joins models measured in separate calls of the GPU machine.
        save_result(results[-1], results_dir / f"{out.stem}-{model.name}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(results))
        print(f"wrote {out} and {results_dir / f'{out.stem}-{model.name}.json'}", flush=True)

    print(summary(results))


if __name__ == "__main__":
    main()
