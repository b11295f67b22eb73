"""The validation worker: `python -m trtaoti.compiler.validate_worker REQUEST RESULT PHASE`.

Runs in its own process (see validate.py). Writes its current step to PHASE before
each step, so a crash can be reported with what it was doing, and a JSON result to
RESULT: {"ok": bool, "kind": "load" | "run" | "mismatch", "error": str, "max_abs_error",
"latency_ms", "peak_host_bytes", "peak_gpu_bytes"}.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from trtaoti.compiler.dtypes import describe_tensors

WARMUP_RUNS = 2
TIMED_RUNS = 25
TIMING_BUDGET_SECONDS = 3.0


def main(argv: list[str]) -> int:
    request_path, result_path, phase_path = (Path(a) for a in argv)
    request = torch.load(request_path, weights_only=False)

    def phase(text: str) -> None:
        phase_path.write_text(text)
        print(f"[validate] {text}", flush=True)

    def finish(result: dict[str, Any]) -> int:
        result_path.write_text(json.dumps(result))
        return 0

    device = torch.device("cuda" if request["device"] == "cuda" else "cpu")
    phase(f"loading package {request['package']}")
    try:
        if request["requires_torchtrt_runtime"]:
            import torch_tensorrt  # noqa: F401 - registers torch.ops.tensorrt.execute_engine

        runner = torch._inductor.aoti_load_package(request["package"])
    except Exception as exc:  # noqa: BLE001 - report any loader failure as the result
        return finish({"ok": False, "kind": "load", "error": f"cannot load the package: {type(exc).__name__}: {exc}"})

    max_abs_error = 0.0
    for case in request["cases"]:
        batch = case["batch"]
        inputs = [t.to(device) for t in case["inputs"]]
        described = describe_tensors(request["input_names"], inputs)
        phase(f"running batch {batch} (inputs {described})")
        try:
            with torch.no_grad():
                actual = [t.cpu() for t in tree_flatten(runner(*inputs))[0]]
        except Exception as exc:  # noqa: BLE001 - report any failure of the package as the result
            return finish(
                {
                    "ok": False,
                    "kind": "run",
                    "error": f"batch {batch} (inputs {described}): {type(exc).__name__}: {exc}",
                }
            )
        error, worst = compare(actual, case["expected"], request)
        if error:
            return finish({"ok": False, "kind": "mismatch", "error": f"batch {batch} (inputs {described}): {error}"})
        max_abs_error = max(max_abs_error, worst)

    latency_ms = {}
    by_batch = {case["batch"]: case for case in request["cases"]}
    for label, batch in request["latency_batches"].items():
        phase(f"timing batch {batch}")
        inputs = [t.to(device) for t in by_batch[batch]["inputs"]]
        latency_ms[label] = round(time_runs(runner, inputs, device), 4)

    result: dict[str, Any] = {
        "ok": True,
        "error": None,
        "max_abs_error": max_abs_error,
        "latency_ms": latency_ms,
        # ru_maxrss is KiB on Linux: the process's high-water mark, weights included.
        "peak_host_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(device)
    phase("done")
    return finish(result)


def compare(
    actual: list[torch.Tensor], expected: list[torch.Tensor], request: dict[str, Any]
) -> tuple[str | None, float]:
    names, rtol, atol = request["output_names"], request["rtol"], request["atol"]
    if len(actual) != len(expected):
        return f"the package returned {len(actual)} outputs, the eager model {len(expected)}", 0.0
    worst = 0.0
    for name, got, want in zip(names, actual, expected, strict=True):
        if got.shape != want.shape:
            return f"output {name!r} has shape {list(got.shape)}, the eager model's {list(want.shape)}", worst
        if not want.dtype.is_floating_point:
            # Integer outputs (argmax, ids) must match exactly at full precision; at
            # fp16/bf16 a near-tie may legitimately flip, so they are not compared.
            if request["precision"] == "fp32" and not torch.equal(got.to(want.dtype), want):
                mismatches = int((got.to(want.dtype) != want).sum())
                return (
                    f"output {name!r}: {mismatches} of {want.numel()} integer elements differ from the eager model",
                    worst,
                )
            continue
        got64, want64 = got.double(), want.double()
        diff = (got64 - want64).abs()
        nan_mismatch = torch.isnan(got64) != torch.isnan(want64)
        outside = (diff > atol + rtol * want64.abs()) & ~torch.isnan(want64) | nan_mismatch
        finite = diff[~torch.isnan(diff)]
        output_worst = float(finite.max()) if finite.numel() else 0.0
        worst = max(worst, output_worst)
        if bool(outside.any()):
            return (
                f"output {name!r} differs from the eager model: max abs error {output_worst:.3g}, "
                f"{int(outside.sum())} of {want.numel()} elements outside rtol {rtol:g} / atol {atol:g}"
            ), worst
    return None, worst


def time_runs(runner: Any, inputs: list[torch.Tensor], device: torch.device) -> float:
    """Median wall time of one call in ms (CUDA: synchronized)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        for _ in range(WARMUP_RUNS):
            runner(*inputs)
        sync()
        samples: list[float] = []
        deadline = time.perf_counter() + TIMING_BUDGET_SECONDS
        while len(samples) < TIMED_RUNS and (not samples or time.perf_counter() < deadline):
            start = time.perf_counter()
            runner(*inputs)
            sync()
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
