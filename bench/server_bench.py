"""trtaoti-server against Triton Inference Server, the Python alternative and the
in-process floor, on one package, in alternating rounds.

    python bench/server_bench.py [--seconds 3] [--rounds 3] [--concurrency 1,16,64] [--out bench/results/server-cpu.md]
    python3 bench/server_bench.py --device cuda:0 --skip-python   # on a GPU machine -> server-gpu.md

(a) trtaoti-server (C++, KServe V2 REST, dynamic batching);
(t) Triton Inference Server 2.51 from the pinned nvidia-pytriton wheel (bench/triton_baseline.py):
    Triton's C++ front end and dynamic batcher, the same package in its Python backend,
    the same model name, batch range (max_batch_size) and queue delay;
(b) bench/python_baseline.py: aoti_load_package behind FastAPI + uvicorn (what a user would write);
(c) trtaoti-bench-floor: AOTIModelPackageLoader::run in a tight loop, no HTTP (the floor).

Every request is batch 1 in KServe V2 JSON, the same bytes for (a), (t) and (b). All
servers stay up for the whole run and are measured in turn, round after round (the
order rotates each round), so drift in what else the machine does hits them alike;
the tables report each point's median over rounds. Requests per execution come from
each server's own metrics (nv_inference_request_success / nv_inference_exec_count,
Triton's names, which trtaoti-server serves too). The load generator runs in this
process: asyncio + uvloop with one keep-alive connection per unit of concurrency and
httptools (llhttp) parsing responses, bounded in time and count, loopback only. Its
own ceiling is measured against /v2/health/live and reported, so a reader can tell
when the client, not the server, was the limit.
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
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import server_support as support  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import triton_baseline  # noqa: E402

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
    return {
        "requests": count,
        "errors": errors,
        "per_second": count / seconds,
        "p50_us": quantile(0.5),
        "p99_us": quantile(0.99),
        "mean_us": mean,
    }


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
        [
            str(support.FLOOR_BIN),
            "--model",
            str(package),
            "--batch",
            str(batch),
            "--seconds",
            str(seconds),
            "--intra-op-threads",
            str(threads),
            "--device",
            device,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class Contender:
    """One server under load: where to send requests and how to read its metrics."""

    key: str  # "a", "t", "b"
    label: str
    port: int
    metrics: object = None  # () -> Prometheus text, or None (no metrics: the Python server)
    points: dict[int, list[dict]] = field(default_factory=dict)  # concurrency -> one result per round
    served: dict[int, float] = field(default_factory=dict)  # concurrency -> requests (metrics delta)
    executions: dict[int, float] = field(default_factory=dict)  # concurrency -> model executions

    def counters(self) -> tuple[float, float]:
        text = self.metrics()
        model = {"model": support.MODEL_NAME, "version": "1"}
        return (support.metric(text, "nv_inference_request_success", **model),
                support.metric(text, "nv_inference_exec_count", **model))  # fmt: skip

    def measure(self, body: bytes, concurrency: int, seconds: float) -> dict:
        payload = _request_bytes("POST", self.port, f"/v2/models/{support.MODEL_NAME}/infer", body)
        before = self.counters() if self.metrics else None
        result = run_load(self.port, payload, concurrency, seconds)
        if before:
            after = self.counters()
            self.served[concurrency] = self.served.get(concurrency, 0) + after[0] - before[0]
            self.executions[concurrency] = self.executions.get(concurrency, 0) + after[1] - before[1]
        self.points.setdefault(concurrency, []).append(result)
        return result

    def median(self, concurrency: int, key: str) -> float:
        return statistics.median(r[key] for r in self.points[concurrency])

    def per_execution(self, concurrency: int) -> float | None:
        if concurrency not in self.executions:
            return None
        return self.served[concurrency] / max(self.executions[concurrency], 1)

    def errors(self) -> int:
        return sum(r["errors"] for results in self.points.values() for r in results)


def _median_floor(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("p50_us", "p99_us", "per_second")}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per point (after 0.5 s warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each point reports its median")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--server-args", default="--runners 1 --intra-op-threads 1 --max-queue-delay-us 0",
                        help="extra trtaoti-server flags; Triton gets the same runners (instances), "
                             "intra-op threads and queue delay")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (the package is compiled for it)")
    parser.add_argument(
        "--skip-python", action="store_true", help="skip baseline (b), e.g. where FastAPI is not installed"
    )
    parser.add_argument("--skip-triton", action="store_true", help="skip baseline (t)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/server-<cpu|gpu>.md")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()[0]
    on_gpu = args.device.startswith("cuda")
    if args.out is None:
        args.out = REPO / "bench" / "results" / ("server-gpu.md" if on_gpu else "server-cpu.md")
    flags = _server_flags(args.server_args)

    support.build_server()
    package = support.build_package(1, 8, 64, device="cuda" if on_gpu else "cpu")
    body = _infer_body()
    script = Path(sys.argv[0])
    command = "python " + shlex.join(
        [str(script.relative_to(REPO)) if script.is_absolute() else sys.argv[0], *sys.argv[1:]]
    )

    contenders: list[Contender] = []
    floors: list[dict] = []
    floors_max: list[dict] = []
    triton_versions = ""
    with ExitStack() as stack:
        print("(a) trtaoti-server: starting", flush=True)
        server = stack.enter_context(support.run_server(package, *args.server_args.split(), "--device", args.device))
        contenders.append(Contender("a", "trtaoti-server", server.port, server.metrics))
        ceiling = run_load(server.port, _request_bytes("GET", server.port, "/v2/health/live"), 16, args.seconds)
        print(f"  load generator ceiling (GET /v2/health/live, c=16): {ceiling['per_second']:.0f} req/s", flush=True)
        triton_missing = "" if args.skip_triton else _triton_missing()
        if triton_missing:
            print(f"(t) Triton not run: {triton_missing}", flush=True)
        elif not args.skip_triton:
            print("(t) Triton: starting (its Python backend loads torch: 15-25 s)", flush=True)
            triton = stack.enter_context(triton_baseline.run_triton(
                package, max_queue_delay_us=flags["max_queue_delay_us"], instances=flags["runners"],
                intra_op_threads=flags["intra_op_threads"], device=args.device))  # fmt: skip
            triton_versions = f"Triton {triton.version}, nvidia-pytriton {triton.dist.pytriton_version}"
            contenders.append(Contender("t", "Triton", triton.http_port, triton.metrics))
        if not args.skip_python:
            print("(b) Python: aoti_load_package + FastAPI/uvicorn: starting", flush=True)
            port = _free_port()
            baseline = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "python_baseline.py"),
                 "--package", str(package), "--port", str(port)],
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )  # fmt: skip
            stack.callback(lambda: (baseline.terminate(), baseline.wait(timeout=30)))
            _wait_ready(port, "/v2/health/ready", timeout=120)
            contenders.append(Contender("b", "Python", port))

        for round_index in range(args.rounds):
            order = contenders[round_index % len(contenders) :] + contenders[: round_index % len(contenders)]
            print(f"round {round_index + 1}/{args.rounds}", flush=True)
            floors.append(_floor(package, 1.0, threads=flags["intra_op_threads"], device=args.device))
            floors_max.append(_floor(package, 1.0, threads=flags["intra_op_threads"], device=args.device, batch=64))
            print(f"  (c) floor: batch 1 p50 {floors[-1]['p50_us']:.1f} us", flush=True)
            for contender in order:
                for c in concurrencies:
                    r = contender.measure(body, c, args.seconds)
                    print(f"  ({contender.key}) {contender.label:14s} c={c:3d}: {r['per_second']:9.0f} req/s  "
                          f"p50 {r['p50_us']:8.1f} us  p99 {r['p99_us']:8.1f} us  errors {r['errors']}",
                          flush=True)  # fmt: skip

    floor, floor_max = _median_floor(floors), _median_floor(floors_max)
    by_key = {c.key: c for c in contenders}
    ours, triton, python = by_key["a"], by_key.get("t"), by_key.get("b")
    lines = [
        f"# trtaoti-server on {'GPU' if on_gpu else 'CPU'}: against Triton, the Python alternative and the floor",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}){_gpu_model(on_gpu)}; 1-minute load "
        f"average {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after (other work shares the machine; "
        f"servers and load generator share the same {os.cpu_count()} cores)",
        f"- command: `{command}`",
        f"- model: the e2e fixture MLP (x FP32 [1,16], mask INT64 [1,8] -> logits FP32 [1,8], label INT64 [1]), "
        f"{'CUDA' if on_gpu else 'CPU'} AOTInductor package, batch range 1..64 (opt 8); torch {_torch_version()}",
        f"- (a) trtaoti-server flags: `{args.server_args}`",
    ]
    if triton:
        lines.append(
            f"- (t) {triton_versions}: `bench/triton_baseline.py`, Python backend (`bench/triton_aoti_model.py`, "
            f"`aoti_load_package`), max_batch_size 64, dynamic batcher with max_queue_delay_microseconds "
            f"{flags['max_queue_delay_us']}, {flags['runners']} instance(s), "
            f"torch intra-op threads {flags['intra_op_threads']}"
        )
    elif triton_missing:
        lines.append(f"- (t) Triton not run: {triton_missing}")
    lines += [
        f"- every request batch 1, KServe V2 JSON ({len(body)} bytes), the same bytes for every server",
        f"- {args.rounds} alternating rounds (order rotated each round), {args.seconds:g} s per point "
        f"after 0.5 s warm-up; each cell is the median over rounds",
        f"- load generator: this process, asyncio + uvloop + httptools, one keep-alive connection per unit of "
        f"concurrency. Its ceiling on this machine (GET /v2/health/live at c=16 on trtaoti-server): "
        f"**{ceiling['per_second']:.0f} req/s**; points near it are client-bound",
        "- req/exec: requests per model execution, from each server's own metrics "
        "(nv_inference_request_success / nv_inference_exec_count) over all rounds at that concurrency",
        "",
    ]
    header = "| concurrency | (a) trtaoti-server req/s | p50 us | p99 us | req/exec |"
    rule = "| ---: | ---: | ---: | ---: | ---: |"
    if triton:
        header += " (t) Triton req/s | p50 us | p99 us | req/exec | (a)/(t) throughput | (a)/(t) p99 |"
        rule += " ---: | ---: | ---: | ---: | ---: | ---: |"
    if python:
        header += " (b) Python req/s | p50 us | p99 us | (a)/(b) throughput |"
        rule += " ---: | ---: | ---: | ---: |"
    lines += [header, rule]
    for c in concurrencies:
        row = (f"| {c} | {ours.median(c, 'per_second'):.0f} | {ours.median(c, 'p50_us'):.0f} | "
               f"{ours.median(c, 'p99_us'):.0f} | {ours.per_execution(c):.2f} |")  # fmt: skip
        if triton:
            row += (f" {triton.median(c, 'per_second'):.0f} | {triton.median(c, 'p50_us'):.0f} | "
                    f"{triton.median(c, 'p99_us'):.0f} | {triton.per_execution(c):.2f} | "
                    f"**{_ratio(ours.median(c, 'per_second'), triton.median(c, 'per_second'))}** | "
                    f"{ours.median(c, 'p99_us') / triton.median(c, 'p99_us'):.2f} |")  # fmt: skip
        if python:
            row += (f" {python.median(c, 'per_second'):.0f} | {python.median(c, 'p50_us'):.0f} | "
                    f"{python.median(c, 'p99_us'):.0f} | "
                    f"{_ratio(ours.median(c, 'per_second'), python.median(c, 'per_second'))} |")  # fmt: skip
        lines.append(row)
    lines += [
        "",
        f"(c) floor, `trtaoti-bench-floor` (loader.run, batch 1, {flags['intra_op_threads']} thread(s), no HTTP"
        f"{', host->device->host copies included' if on_gpu else ''}), median of one 1 s run per round: "
        f"p50 **{floor['p50_us']:.1f} us**, p99 {floor['p99_us']:.1f} us, {floor['per_second']:.0f} runs/s; "
        f"at batch 64: p50 {floor_max['p50_us']:.1f} us ({64 * floor_max['per_second']:.0f} rows/s).",
        "",
        f"- (a) p50 at concurrency {concurrencies[0]} minus the floor: "
        f"**{ours.median(concurrencies[0], 'p50_us') - floor['p50_us']:.0f} us** "
        f"(target: <= 150 us; includes the Python client's own time per round trip)",
    ]
    if triton:
        top = max(concurrencies)
        lower_p99 = [c for c in concurrencies if ours.median(c, "p99_us") < triton.median(c, "p99_us")]
        lines += [
            f"- throughput at concurrency {top}, batch-1 requests: (a)/(t) = "
            f"**{_ratio(ours.median(top, 'per_second'), triton.median(top, 'per_second'))}** (target: >= 1.5x)",
            f"- p99 lower than Triton's at concurrency {', '.join(map(str, lower_p99)) or 'none'} of "
            f"{', '.join(map(str, concurrencies))} (target: every one)",
        ]
    if python and 16 in concurrencies:
        lines.append(
            f"- throughput at concurrency 16: (a)/(b) = "
            f"**{_ratio(ours.median(16, 'per_second'), python.median(16, 'per_second'))}** (target: >= 3x)"
        )
    lines.append(f"- non-200 responses during the run: {sum(c.errors() for c in contenders)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-(len(concurrencies) + 10) :]))
    print(f"wrote {args.out}")


def _triton_missing() -> str:
    """Why baseline (t) cannot run here ("" when it can): a machine without the wheel
    (a GPU machine that was not given it) still measures the rest."""
    try:
        triton_baseline.locate()
    except triton_baseline.TritonUnavailable as exc:
        return str(exc)
    return ""


def _server_flags(text: str) -> dict[str, int]:
    """The trtaoti-server flags Triton mirrors, with trtaoti-server's defaults."""
    flags = {"runners": 1, "intra_op_threads": 1, "max_queue_delay_us": 0}
    words = text.split()
    for name in flags:
        option = "--" + name.replace("_", "-")
        if option in words:
            flags[name] = int(words[words.index(option) + 1])
    return flags


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
