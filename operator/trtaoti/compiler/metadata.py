"""The signature stamped into the package (docs/package-format.md, "Metadata").

Values are strings because the C++ loader's metadata is map<string, string>;
structured values are compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from trtaoti.compiler.dtypes import kserve_datatype
from trtaoti.compiler.export import OutputSpec
from trtaoti.compiler.plan import CompilePlan

FORMAT = "1"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def input_descriptions(plan: CompilePlan) -> list[dict[str, Any]]:
    return [{"name": i.name, "datatype": kserve_datatype(i.dtype), "shape": list(i.shape)} for i in plan.inputs]


def output_descriptions(outputs: Sequence[OutputSpec]) -> list[dict[str, Any]]:
    return [{"name": o.name, "datatype": o.datatype, "shape": list(o.shape)} for o in outputs]


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
    plan: CompilePlan, outputs: Sequence[OutputSpec], found_versions: dict[str, str], *, requires_torchtrt_runtime: bool
) -> dict[str, str]:
    lo, opt, hi = plan.batch_range
    metadata = {
        "trtaoti.format": FORMAT,
        "trtaoti.model_name": plan.model_name,
        "trtaoti.inputs": _json(input_descriptions(plan)),
        "trtaoti.outputs": _json(output_descriptions(outputs)),
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
    return metadata
