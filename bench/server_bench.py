"""trtaoti-server against the Python alternative and the in-process floor, on one package.

    python bench/server_bench.py [--seconds 4] [--concurrency 1,4,16,64] [--out bench/results/server-cpu.md]
    python3 bench/server_bench.py --device cuda:0 --skip-python   # on a GPU machine -> server-gpu.md

(a) trtaoti-server (C++, KServe V2 REST, dynamic batching);
(b) bench/python_baseline.py: aoti_load_package behind FastAPI + uvicorn (what a user would write);
(c) trtaoti-bench-floor: AOTIModelPackageLoader::run in a tight loop, no HTTP (the floor).

Every request is batch 1 in KServe V2 JSON, the same bytes for (a) and (b). The load
generator runs in this process: asyncio + uvloop with one keep-alive connection per
unit of concurrency and httptools (llhttp) parsing responses, bounded in time and
count, loopback only. Its own ceiling is measured against /v2/health/live and
reported, so a reader can tell when the client, not the server, was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httptools
import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import server_support as support  # noqa: E402

MAX_REQUESTS_PER_POINT = 2_000_000


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def roundtrip(self, payload: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


def _request_bytes(method: str, port: int, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _load(port: int, payload: bytes, concurrency: int, seconds: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
        protocol.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append(protocol)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + seconds
    budget = MAX_REQUESTS_PER_POINT

    async def worker(connection: _Connection) -> None:
        nonlocal errors, budget
        clock = time.perf_counter
        while budget > 0:
            budget -= 1
            t0 = clock()
            if t0 >= end:
                return
            status = await connection.roundtrip(payload)
            t1 = clock()
            if t0 >= measure_from and t1 <= end:
                latencies.append(t1 - t0)
                if status != 200:
                    errors += 1

    await asyncio.gather(*(worker(c) for c in connections))
    for connection in connections:
        connection.transport.close()
    latencies.sort()
    count = len(latencies)

    def quantile(q: float) -> float:
        return latencies[min(count - 1, int(q * count))] * 1e6 if count else float("nan")

    mean = sum(latencies) / count * 1e6 if count else float("nan")
    return {"requests": count, "errors": errors, "per_second": count / seconds, "p50_us": quantile(0.5),
            "p99_us": quantile(0.99), "mean_us": mean}


def run_load(port: int, payload: bytes, concurrency: int, seconds: float, warmup: float = 0.5) -> dict:
    return uvloop.run(_load(port, payload, concurrency, seconds, warmup))


def _wait_ready(port: int, path: str, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing ready on port {port}{path} after {timeout}s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _infer_body() -> bytes:
    x, mask = (t.numpy() for t in support.example_inputs(1, seed=5))
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _floor(package: Path, seconds: float, threads: int, device: str, batch: int = 1) -> dict:
    out = subprocess.run(
        [str(support.FLOOR_BIN), "--model", str(package), "--batch", str(batch), "--seconds", str(seconds),
         "--intra-op-threads", str(threads), "--device", device],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sweep(port: int, body: bytes, concurrencies: list[int], seconds: float) -> dict[int, dict]:
    payload = _request_bytes("POST", port, f"/v2/models/{support.MODEL_NAME}/infer", body)
    results = {}
    for c in concurrencies:
        results[c] = run_load(port, payload, c, seconds)
        r = results[c]
        print(f"  c={c:3d}: {r['per_second']:9.0f} req/s  p50 {r['p50_us']:8.1f} us  p99 {r['p99_us']:8.1f} us  errors {r['errors']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point (after 0.5 s warm-up)")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--server-args", default="--runners 1 --intra-op-threads 1 --max-queue-delay-us 0",
                        help="extra trtaoti-server flags")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (the package is compiled for it)")
    parser.add_argument("--skip-python", action="store_true",
                        help="skip baseline (b), e.g. where FastAPI is not installed")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/server-<cpu|gpu>.md")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()[0]
    on_gpu = args.device.startswith("cuda")
    if args.out is None:
        args.out = REPO / "bench" / "results" / ("server-gpu.md" if on_gpu else "server-cpu.md")

    support.build_server()
    package = support.build_package(1, 8, 64, device="cuda" if on_gpu else "cpu")
    body = _infer_body()
    script = Path(sys.argv[0])
    command = "python " + shlex.join([str(script.relative_to(REPO)) if script.is_absolute() else sys.argv[0], *sys.argv[1:]])

    print("(c) floor: loader.run in a loop", flush=True)
    floor = _floor(package, max(2.0, args.seconds), threads=1, device=args.device)
    floor_max = _floor(package, max(2.0, args.seconds), threads=1, device=args.device, batch=64)
    print(f"  batch 1: p50 {floor['p50_us']:.1f} us, {floor['per_second']:.0f} runs/s; "
          f"batch 64: p50 {floor_max['p50_us']:.1f} us", flush=True)

    print("(a) trtaoti-server", flush=True)
    server_args = [*args.server_args.split(), "--device", args.device]
    with support.run_server(package, *server_args) as server:
        ceiling = run_load(server.port, _request_bytes("GET", server.port, "/v2/health/live"), 16, args.seconds)
        print(f"  load generator ceiling (GET /v2/health/live, c=16): {ceiling['per_second']:.0f} req/s", flush=True)
        ours = _sweep(server.port, body, concurrencies, args.seconds)
        text = server.metrics()
        model = {"model": support.MODEL_NAME, "version": "1"}
        executions = support.metric(text, "nv_inference_exec_count", **model)
        served = support.metric(text, "nv_inference_request_success", **model)

    theirs = {}
    if not args.skip_python:
        print("(b) Python: aoti_load_package + FastAPI/uvicorn", flush=True)
        port = _free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        baseline = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "python_baseline.py"), "--package", str(package), "--port", str(port)],
            env=env,
        )
        try:
            _wait_ready(port, "/v2/health/ready", timeout=120)
            theirs = _sweep(port, body, concurrencies, args.seconds)
        finally:
            baseline.terminate()
            baseline.wait(timeout=30)

    lines = [
        f"# trtaoti-server on {'GPU' if on_gpu else 'CPU'}: throughput and latency",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}){_gpu_model(on_gpu)}; 1-minute load "
        f"average {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after (other work shares the machine)",
        f"- command: `{command}`",
        f"- model: the e2e fixture MLP (x FP32 [1,16], mask INT64 [1,8] -> logits FP32 [1,8], label INT64 [1]), "
        f"{'CUDA' if on_gpu else 'CPU'} AOTInductor package, batch range 1..64 (opt 8); torch {_torch_version()}",
        f"- trtaoti-server flags: `{args.server_args}`; every request batch 1, KServe V2 JSON "
        f"({len(body)} bytes), the same for (a) and (b)",
        f"- load generator: this process, asyncio + uvloop + httptools, one keep-alive connection per unit of "
        f"concurrency, {args.seconds:g} s per point after 0.5 s warm-up. Its ceiling on this machine "
        f"(GET /v2/health/live at c=16 on trtaoti-server): **{ceiling['per_second']:.0f} req/s**; points near "
        f"it are client-bound",
        f"- batching during (a): {served:.0f} requests in {executions:.0f} model executions "
        f"({served / max(executions, 1):.2f} requests per execution)",
        "",
    ]
    if theirs:
        lines += [
            "| concurrency | (a) trtaoti-server req/s | p50 us | p99 us | (b) Python req/s | p50 us | p99 us | (a)/(b) throughput |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    else:
        lines += [
            "(b) not run (`--skip-python`).",
            "",
            "| concurrency | (a) trtaoti-server req/s | p50 us | p99 us | (a) / floor's batch-1 runs/s |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
    for c in concurrencies:
        a = ours[c]
        if theirs:
            b = theirs[c]
            lines.append(
                f"| {c} | {a['per_second']:.0f} | {a['p50_us']:.0f} | {a['p99_us']:.0f} | {b['per_second']:.0f} | "
                f"{b['p50_us']:.0f} | {b['p99_us']:.0f} | {a['per_second'] / max(b['per_second'], 1e-9):.1f}x |"
            )
        else:
            lines.append(
                f"| {c} | {a['per_second']:.0f} | {a['p50_us']:.0f} | {a['p99_us']:.0f} | "
                f"{a['per_second'] / floor['per_second']:.1f}x |"
            )
    errors = sum(r["errors"] for r in [*ours.values(), *theirs.values()])
    lines += [
        "",
        f"(c) floor, `trtaoti-bench-floor` (loader.run, batch 1, one thread, no HTTP"
        f"{', host->device->host copies included' if on_gpu else ''}): p50 **{floor['p50_us']:.1f} us**, "
        f"p99 {floor['p99_us']:.1f} us, {floor['per_second']:.0f} runs/s; at batch 64: p50 {floor_max['p50_us']:.1f} us "
        f"({64 * floor_max['per_second']:.0f} rows/s).",
        "",
        f"- (a) p50 at concurrency 1 minus the floor: **{ours[concurrencies[0]]['p50_us'] - floor['p50_us']:.0f} us** "
        f"(target: <= 150 us; includes the Python client's own time per round trip)",
    ]
    if 16 in ours and theirs:
        lines.append(
            f"- throughput at concurrency 16: (a)/(b) = **{ours[16]['per_second'] / max(theirs[16]['per_second'], 1e-9):.1f}x** (target: >= 3x)"
        )
    lines.append(f"- non-200 responses during the run: {errors}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _gpu_model(on_gpu: bool) -> str:
    if not on_gpu:
        return ""
    import torch

    return f", GPU {torch.cuda.get_device_name(0)}"


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
