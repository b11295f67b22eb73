"""Validate a package before it is stored: load it in a separate process, run the
profile's min, opt and max batch, compare with the eager model, time opt and max,
measure peak memory.

A separate process because a package that crashes its loader (a segfault in
generated code, a TensorRT engine for another GPU) must fail the Job with a message,
not take the compiler down or hang it: the worker runs under a timeout and a crash
is reported with the signal and the step it was on.

LD_PRELOAD: with torch 2.11 on the GPU machines, Python's aoti_load_package crashed
inside the package's std::regex use (a libstdc++ clash) unless the system libstdc++
was preloaded. The worker therefore starts with LD_PRELOAD=<system libstdc++> when
validating a CUDA package and that file exists; CPU validation has not needed it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import trtaoti
from trtaoti.compiler.errors import CompileFailed, ValidationFailed
from trtaoti.compiler.plan import CompilePlan

SYSTEM_LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
DEFAULT_TIMEOUT_SECONDS = 1200

# (rtol, atol) against the fp32 eager model; spec.compile.rtol/atol override.
DEFAULT_TOLERANCES = {
    "fp32": (1e-3, 1e-4),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
}


@dataclass(frozen=True)
class ValidationCase:
    batch: int
    inputs: tuple[torch.Tensor, ...]  # on CPU
    expected: list[torch.Tensor]  # flattened eager outputs, on CPU


@dataclass(frozen=True)
class ValidationReport:
    batches: list[int]
    max_abs_error: float
    rtol: float
    atol: float
    latency_ms: dict[str, float]
    peak_host_bytes: int
    peak_gpu_bytes: int | None


def tolerances(plan: CompilePlan) -> tuple[float, float]:
    rtol, atol = DEFAULT_TOLERANCES[plan.precision]
    return (plan.options.rtol or rtol, plan.options.atol or atol)


def validate_package(
    package: Path,
    plan: CompilePlan,
    cases: Sequence[ValidationCase],
    *,
    output_names: Sequence[str],
    workdir: Path,
    requires_torchtrt_runtime: bool,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> ValidationReport:
    rtol, atol = tolerances(plan)
    request = workdir / "validation-request.pt"
    result_path = workdir / "validation-result.json"
    phase_path = workdir / "validation-phase.txt"
    stderr_path = workdir / "validation-stderr.txt"
    for stale in (result_path, phase_path):
        stale.unlink(missing_ok=True)
    _, opt, hi = plan.batch_range
    torch.save(
        {
            "package": str(package),
            "device": plan.device,
            "precision": plan.precision,
            "rtol": rtol,
            "atol": atol,
            "input_names": [i.name for i in plan.inputs],
            "output_names": list(output_names),
            "requires_torchtrt_runtime": requires_torchtrt_runtime,
            "latency_batches": {"opt": opt, "max": hi},
            "cases": [{"batch": c.batch, "inputs": list(c.inputs), "expected": c.expected} for c in cases],
        },
        request,
    )
    command = [
        sys.executable,
        "-m",
        "trtaoti.compiler.validate_worker",
        str(request),
        str(result_path),
        str(phase_path),
    ]
    with stderr_path.open("wb") as stderr:
        try:
            completed = subprocess.run(
                command, env=worker_env(plan), stderr=stderr, timeout=timeout_seconds, check=False
            )
        except subprocess.TimeoutExpired:
            raise CompileFailed(
                f"validation timed out after {timeout_seconds:.0f}s while {_phase(phase_path)}"
            ) from None
    if completed.returncode < 0:
        name = signal.Signals(-completed.returncode).name
        raise CompileFailed(f"the package crashed its loader ({name}) while {_phase(phase_path)}; {_tail(stderr_path)}")
    if not result_path.exists():
        raise CompileFailed(
            f"validation worker exited with status {completed.returncode} while {_phase(phase_path)}: "
            f"{_tail(stderr_path)}"
        )
    result = json.loads(result_path.read_text())
    if not result["ok"]:
        if result.get("kind") == "mismatch":
            raise ValidationFailed(f"validation failed: {result['error']}")
        # The package did not load or run: may be the node (GPU memory, driver), so retryable.
        raise CompileFailed(f"validation failed: {result['error']}")
    return ValidationReport(
        batches=[c.batch for c in cases],
        max_abs_error=result["max_abs_error"],
        rtol=rtol,
        atol=atol,
        latency_ms=result["latency_ms"],
        peak_host_bytes=result["peak_host_bytes"],
        peak_gpu_bytes=result.get("peak_gpu_bytes"),
    )


def worker_env(plan: CompilePlan) -> dict[str, str]:
    env = dict(os.environ)
    # The worker imports trtaoti the same way this process did.
    package_root = str(Path(trtaoti.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    if plan.device == "cuda" and os.path.exists(SYSTEM_LIBSTDCXX):
        env["LD_PRELOAD"] = " ".join(p for p in (SYSTEM_LIBSTDCXX, env.get("LD_PRELOAD", "")) if p)
    return env


def _phase(path: Path) -> str:
    return path.read_text().strip() if path.exists() else "starting"


def _tail(path: Path, limit: int = 1200) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    lines = [line for line in text.splitlines() if "Warning" not in line]
    tail = "\n".join(lines)[-limit:]
    return f"stderr: {tail}" if tail else "no output on stderr"
