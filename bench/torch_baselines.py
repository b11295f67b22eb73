"""What users run today, per batch: the bench models in eager PyTorch and under
torch.compile(mode="max-autotune"), timed the way trtaoti-bench-floor times a package.

    python3 bench/torch_baselines.py --models encoder,resnet50 --modes eager,max-autotune --out DIR
    python3 bench/torch_baselines.py --models encoder --modes max-autotune --warm-only   # fill the caches

Each model is built by its factory (bench/models.py, random weights), put in eval mode
and cast to the compile precision (fp16) on cuda:0, as `trtaoti compile` does before
export. One timed run = the inputs from pageable host memory to the device, the
forward pass under inference_mode, every output back into page-locked host memory,
one synchronisation: the same data movement as the floor's `Device::Run` (whose
inputs start in pageable memory too, like a request body), so the difference is the
model's execution alone. Integer inputs are drawn like the server
benchmark's (token ids below the vocabulary size).

torch.compile is called the way a user would call it: one compiled module, batches
called in the order given; Dynamo specialises the first batch size and compiles once
more with a dynamic batch at the second, and max-autotune's CUDA graphs are recorded
per batch size during the warm-up. A mode that has not finished compiling by
--deadline-s is reported as not measured (with how far it got), not waited for.
Compiles are cached under TORCHINDUCTOR_CACHE_DIR (a --warm-only run earlier in the
same machine makes the measured run's compile a cache hit).

Writes DIR/torch-<model>.json: {"model", "gpu", "torch", "date", "modes": {mode:
{"batches": {batch: {"p50_us", "p99_us", "iterations"}}, "compile_s", "error"}}}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bench_model(name: str):
    from bench.gpu_bench import gpu_models, smoke_models

    return next(m for m in [*gpu_models(), *smoke_models()] if m.name == name)


def build(name: str, device: str):
    """The model as `trtaoti compile` prepares it: eval mode, the device, the compute precision."""
    import importlib

    import torch

    spec = bench_model(name)
    if spec.python_path not in sys.path:
        sys.path.insert(0, spec.python_path)
    module_name, function = spec.factory.split(":")
    module, example = getattr(importlib.import_module(module_name), function)()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[spec.precision]
    module = module.eval().to(device).to(dtype)
    return module, example, dtype


def host_inputs(name: str, example, batch: int, dtype, pinned: bool):
    import torch

    generator = torch.Generator().manual_seed(batch)
    int_high = bench_model(name).int_high
    inputs = []
    for t in example:
        shape = (batch, *t.shape[1:])
        if t.dtype in (torch.int64, torch.int32):
            x = torch.randint(0, int_high, shape, generator=generator, dtype=t.dtype)
        else:
            x = torch.randn(shape, generator=generator).to(dtype)
        inputs.append(x.pin_memory() if pinned else x)
    return inputs


def flat(outputs):
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [o for o in outputs if isinstance(o, torch.Tensor)]


def time_batch(fn, inputs, device: str, seconds: float) -> dict:
    """p50/p99 of host->device, fn, device->host, synchronise (wall clock per run)."""
    import torch

    on_gpu = device.startswith("cuda")
    state: dict = {}

    def once():
        device_inputs = [x.to(device, non_blocking=True) for x in inputs]
        outputs = flat(fn(*device_inputs))
        if "host" not in state:
            state["host"] = [torch.empty(o.shape, dtype=o.dtype, pin_memory=on_gpu) for o in outputs]
        for h, o in zip(state["host"], outputs, strict=True):
            h.copy_(o, non_blocking=on_gpu)
        if on_gpu:
            torch.cuda.current_stream().synchronize()

    t0 = time.perf_counter()
    once()  # a compiled module compiles (or loads from the cache) and records its graphs here
    first_call_s = time.perf_counter() - t0
    warm_until = time.perf_counter() + 0.3
    for i in range(100):
        once()
        if i >= 3 and time.perf_counter() > warm_until:
            break
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(latencies) < 5:
        t0 = time.perf_counter()
        once()
        latencies.append((time.perf_counter() - t0) * 1e6)
    latencies.sort()
    return {
        "p50_us": statistics.median(latencies),
        "p99_us": latencies[int(0.99 * (len(latencies) - 1))],
        "iterations": len(latencies),
        "first_call_s": first_call_s,
    }


def run_mode(
    name: str, mode: str, batches: list[int], device: str, seconds: float, deadline: float, warm_only: bool
) -> dict:
    import torch

    module, example, dtype = build(name, device)
    result: dict = {"batches": {}}
    started = time.monotonic()
    fn = module if mode == "eager" else torch.compile(module, mode=mode)
    with torch.inference_mode():
        for batch in batches:
            if time.monotonic() > deadline:
                result["error"] = f"deadline reached before batch {batch}"
                break
            # Pageable, like the floor's inputs and a request body: both pay the way to the device.
            inputs = host_inputs(name, example, batch, dtype, pinned=False)
            t0 = time.monotonic()
            try:
                if warm_only:
                    fn(*[x.to(device) for x in inputs])
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    result["batches"][batch] = {"warm_s": time.monotonic() - t0}
                else:
                    result["batches"][batch] = time_batch(fn, inputs, device, seconds)
            except Exception as e:  # noqa: BLE001 — a mode that fails is reported, the others still run
                result["error"] = f"batch {batch}: {type(e).__name__}: {e}"
                traceback.print_exc()
                break
            row = result["batches"][batch]
            print(
                f"  {name:<10} {mode:<13} batch {batch:4d}: "
                + (
                    f"warm {row['warm_s']:.1f} s"
                    if warm_only
                    else f"p50 {row['p50_us']:9.1f} us  p99 {row['p99_us']:9.1f} us  first call {row['first_call_s']:.1f} s"
                ),
                flush=True,
            )
    result["seconds"] = time.monotonic() - started
    del fn, module
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="encoder,resnet50")
    parser.add_argument("--modes", default="eager,max-autotune", help="eager and/or torch.compile modes")
    parser.add_argument("--batches", default="1,8,64,256")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=0.6, help="timed seconds per batch")
    parser.add_argument("--deadline-s", type=float, default=1e9, help="stop starting new work after this many seconds")
    parser.add_argument("--warm-only", action="store_true", help="compile and run each batch once (fills the caches)")
    parser.add_argument("--out", type=Path, default=None, help="directory for torch-<model>.json")
    args = parser.parse_args()

    import torch

    deadline = time.monotonic() + args.deadline_s
    device = "cuda:0" if args.device.startswith("cuda") else "cpu"
    batches = [int(b) for b in args.batches.split(",")]
    for name in args.models.split(","):
        report = {
            "model": name,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
            "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "timing": "pageable inputs -> device, forward (inference_mode), outputs -> page-locked host, one sync",
            "modes": {},
        }
        for mode in args.modes.split(","):
            print(f"== {name}: {mode}{' (warm only)' if args.warm_only else ''}", flush=True)
            report["modes"][mode] = run_mode(name, mode, batches, device, args.seconds, deadline, args.warm_only)
        if args.out and not args.warm_only:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"torch-{name}.json"
            path.write_text(json.dumps(report, indent=1))
            print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    main()
