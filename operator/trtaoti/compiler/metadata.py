"""What the compiler records about a package (docs/package-format.md): the signature
stamped into the package itself, and the manifest stored beside it.

The package's metadata values are strings because the C++ loader's metadata is
map<string, string>; structured values are compact JSON.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

import torch

from trtaoti.api.models import BatchRange
from trtaoti.artifact import Manifest, TensorDescription, ValidationSummary
from trtaoti.compiler.dtypes import kserve_datatype
from trtaoti.compiler.export import OutputSpec
from trtaoti.compiler.plan import CompilePlan
from trtaoti.compiler.validate import ValidationReport
from trtaoti.storage import UploadResult

FORMAT = "1"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def input_descriptions(plan: CompilePlan) -> list[TensorDescription]:
    return [TensorDescription(name=i.name, datatype=kserve_datatype(i.dtype), shape=list(i.shape)) for i in plan.inputs]


def output_descriptions(outputs: Sequence[OutputSpec]) -> list[TensorDescription]:
    return [TensorDescription(name=o.name, datatype=o.datatype, shape=list(o.shape)) for o in outputs]


def versions(plan: CompilePlan, torchtrt: Any | None = None) -> dict[str, str]:
    found = {"torch": torch.__version__.split("+")[0]}
    if plan.device == "cuda" and torch.version.cuda:
        found["cuda"] = torch.version.cuda
    if torchtrt is not None:
        found["torch_tensorrt"] = str(getattr(torchtrt, "__version__", "unknown"))
        try:
            import tensorrt

            found["tensorrt"] = tensorrt.__version__
        except ImportError:
            pass
    return found


def package_metadata(
    plan: CompilePlan,
    outputs: Sequence[OutputSpec],
    found_versions: dict[str, str],
    *,
    requires_torchtrt_runtime: bool,
    rewrites: dict[str, int] | None = None,
) -> dict[str, str]:
    lo, opt, hi = plan.batch_range
    metadata = {
        "trtaoti.format": FORMAT,
        "trtaoti.model_name": plan.model_name,
        "trtaoti.inputs": _json([i.to_wire() for i in input_descriptions(plan)]),
        "trtaoti.outputs": _json([o.to_wire() for o in output_descriptions(outputs)]),
        "trtaoti.batch_min": str(lo),
        "trtaoti.batch_opt": str(opt),
        "trtaoti.batch_max": str(hi),
        "trtaoti.backend": plan.backend,
        "trtaoti.precision": plan.precision,
        "trtaoti.device": plan.device,
        "trtaoti.artifact_key": plan.key,
        "trtaoti.versions": _json(found_versions),
    }
    if requires_torchtrt_runtime:
        metadata["trtaoti.requires_torchtrt_runtime"] = "true"
    if rewrites:  # trtaoti.compiler.rewrites: what the package's graph was rewritten with
        metadata["trtaoti.rewrites"] = _json(rewrites)
    return metadata


def build_manifest(
    plan: CompilePlan,
    *,
    model_uri: str,
    upload: UploadResult,
    outputs: Sequence[OutputSpec],
    found_versions: dict[str, str],
    report: ValidationReport,
    gpu: dict[str, str],
    key_document: dict[str, Any] | None,
) -> Manifest:
    lo, opt, hi = plan.batch_range
    cuda = plan.device == "cuda"
    return Manifest(
        key=plan.key,
        model_name=plan.model_name,
        profile=plan.profile.name,
        model=model_uri.rsplit("/", 1)[-1],
        uri=model_uri,
        sha256=upload.sha256,
        bytes=upload.size,
        backend=plan.backend,
        precision=plan.precision,
        device=plan.device,
        batch=BatchRange(min=lo, opt=opt, max=hi),
        inputs=input_descriptions(plan),
        outputs=output_descriptions(outputs),
        versions=found_versions,
        compiler_image=plan.compiler_image,
        peak_memory_bytes=report.peak_host_bytes,
        peak_gpu_memory_bytes=report.peak_gpu_bytes,
        latency_ms=report.latency_ms,
        validation=ValidationSummary(
            max_abs_error=report.max_abs_error, rtol=report.rtol, atol=report.atol, batches=report.batches
        ),
        created_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        gpu_product=plan.gpu_product if cuda else None,
        gpu_name=gpu.get("gpuName") if cuda else None,
        compute_capability=gpu.get("computeCapability") if cuda else None,
        key_document=key_document,
    )
