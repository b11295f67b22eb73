"""Latency of high-priority requests under a saturating low-priority load, with the
queue policy's priority levels on and off (the same trtaoti-server binary and package).

    python bench/priority_bench.py [--seconds 5] [--rounds 3] [--low-clients 8] [--out bench/results/priority-cpu.md]

Low-priority clients keep the one runner busy with large requests (each split into
many batches at the batch max), so the queue never drains. One high-priority client
sends small requests one after another and records each latency. Both servers stay up
and are loaded in turn, round after round, so drift on the machine hits them alike;
the tables report medians over rounds.

  priorities: --priority-levels 2 --default-priority-level 2; the high client sends
              parameters.priority 1, the low ones none (level 2).
  fifo:       one level (the default); the high client's priority 1 is that level.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests")]
import server_support as support  # noqa: E402

LOW_ROWS = 512  # one low request = 64 batches of 8 rows
HIGH_ROWS = 2
SERVE_FLAGS = ("--batch-min", "2", "--batch-opt", "8", "--batch-max", "8", "--runners", "1", "--max-queue-size", "0")
MODES = {
    "priorities": ("--priority-levels", "2", "--default-priority-level", "2"),
    "fifo": (),
}


def _body(rows: int, priority: int | None) -> tuple[bytes, dict]:
    x, mask = (t.numpy() for t in support.example_inputs(rows))
    return support.binary_infer_request(x, mask, "label", None if priority is None else {"priority": priority})


def measure(server, seconds: float, low_clients: int) -> dict:
    url = f"{server.base}/v2/models/{support.MODEL_NAME}/infer"
    low_body, low_headers = _body(LOW_ROWS, None)
    high_body, high_headers = _body(HIGH_ROWS, 1)
    stop = threading.Event()
    low_done = [0] * low_clients

    def low(index: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(url, data=low_body, headers=low_headers, timeout=120)
                response.raise_for_status()
                low_done[index] += 1

    threads = [threading.Thread(target=low, args=(i,), daemon=True) for i in range(low_clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the queue fills before anything is timed
    latencies = []
    start = time.perf_counter()
    with requests.Session() as session:
        while time.perf_counter() - start < seconds:
            sent = time.perf_counter()
            response = session.post(url, data=high_body, headers=high_headers, timeout=120)
            response.raise_for_status()
            latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - start
    stop.set()
    for thread in threads:
        thread.join(120)
    ms = np.array(latencies) * 1e3
    return {
        "high_p50_ms": float(np.percentile(ms, 50)),
        "high_p99_ms": float(np.percentile(ms, 99)),
        "high_requests": len(latencies),
        "low_rows_per_s": sum(low_done) * LOW_ROWS / (elapsed + 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--low-clients", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    support.build_server()
    package = support.build_package(2, 4, 8)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with ExitStack() as stack:
        servers = {
            mode: stack.enter_context(support.run_server(package, *SERVE_FLAGS, *flags))
            for mode, flags in MODES.items()
        }
        for round_index in range(args.rounds):
            order = list(MODES) if round_index % 2 == 0 else list(reversed(MODES))
            for mode in order:
                result = measure(servers[mode], args.seconds, args.low_clients)
                results[mode].append(result)
                print(
                    f"round {round_index + 1} {mode}: {json.dumps({k: round(v, 2) for k, v in result.items()})}",
                    flush=True,
                )

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    rows = [
        f"| {mode} | {median(mode, 'high_p50_ms'):.2f} | {median(mode, 'high_p99_ms'):.2f} | "
        f"{median(mode, 'high_requests'):.0f} | {median(mode, 'low_rows_per_s'):,.0f} |"
        for mode in MODES
    ]
    ratio_p99 = median("fifo", "high_p99_ms") / median("priorities", "high_p99_ms")
    ratio_p50 = median("fifo", "high_p50_ms") / median("priorities", "high_p50_ms")
    ratio_low = median("priorities", "low_rows_per_s") / median("fifo", "low_rows_per_s")
    command = "python bench/priority_bench.py " + " ".join(sys.argv[1:])
    report = "\n".join(
        [
            "# Priority levels under a saturating low-priority load (CPU)",
            "",
            f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} cores "
            f"({platform.processor() or platform.platform()}), load generator on the same machine",
            f"- command: `{command}`",
            f"- server: `{' '.join(SERVE_FLAGS)}` + mode flags; package: the e2e fixture MLP (CPU AOTInductor)",
            f"- load: {args.low_clients} low-priority clients, {LOW_ROWS}-row requests back to back; one "
            f"high-priority client, {HIGH_ROWS}-row requests one after another; {args.rounds} rounds of "
            f"{args.seconds:g} s, modes alternating; medians over rounds",
            "",
            "| mode | high p50 ms | high p99 ms | high requests | low rows/s |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"fifo / priorities: high p99 x{ratio_p99:.1f}, high p50 x{ratio_p50:.1f}; "
            f"low-priority throughput with priorities / fifo: x{ratio_low:.2f}",
            "",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
