"""manifest.json: what the operator reads once the package is stored (written last)."""

from __future__ import annotations

import datetime
from typing import Any

from trtaoti.compiler.metadata import input_descriptions, output_descriptions
from trtaoti.compiler.plan import CompilePlan
from trtaoti.compiler.validate import ValidationReport
from trtaoti.compiler.export import OutputSpec
from trtaoti.storage import UploadResult


def build_manifest(
    plan: CompilePlan,
    *,
    model_uri: str,
    upload: UploadResult,
    outputs: list[OutputSpec],
    found_versions: dict[str, str],
    report: ValidationReport,
    gpu: dict[str, str],
    key_document: dict[str, Any] | None,
) -> dict[str, Any]:
    lo, opt, hi = plan.batch_range
    manifest: dict[str, Any] = {
        "format": 1,
        "key": plan.key,
        "modelName": plan.model_name,
        "profile": plan.profile.name,
        "model": model_uri.rsplit("/", 1)[-1],  # the package's name under <key>/
        "uri": model_uri,
        "sha256": upload.sha256,
        "bytes": upload.size,
        "backend": plan.backend,
        "precision": plan.precision,
        "device": plan.device,
        "batch": {"min": lo, "opt": opt, "max": hi},
        "inputs": input_descriptions(plan),
        "outputs": output_descriptions(outputs),
        "versions": found_versions,
        "compilerImage": plan.compiler_image,
        "peakMemoryBytes": report.peak_host_bytes,
        "latencyMs": report.latency_ms,
        "validation": {
            "maxAbsError": report.max_abs_error,
            "rtol": report.rtol,
            "atol": report.atol,
            "batches": report.batches,
        },
        "createdAt": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if report.peak_gpu_bytes is not None:
        manifest["peakGpuMemoryBytes"] = report.peak_gpu_bytes
    if plan.device == "cuda":
        manifest["gpuProduct"] = plan.gpu_product
        manifest.update(gpu)
    if key_document is not None:
        manifest["keyDocument"] = key_document
    return manifest
