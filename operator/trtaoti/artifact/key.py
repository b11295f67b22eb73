"""The artifact key: the content address of a compiled package.

The artifact key hashes everything that changes the compiled bytes and nothing that
does not (replicas, queue delay, serving image): an identical compile anywhere in
the cluster reuses the artifact, and a serving-only change never costs a GPU Job.
The operator and `trtaoti compile` both call `artifact_key`, so they always agree.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trtaoti.api.models import BatchProfile, TrtAotiModelSpec

KEY_FORMAT = 1
KEY_LENGTH = 32  # hex characters: 128 bits is plenty for content addressing


def model_identity(spec: TrtAotiModelSpec, source_etag: str | None, compiler_image: str) -> dict[str, Any]:
    """What identifies the model's weights and code."""
    source = spec.model
    if source.exported_program:
        identity: dict[str, Any] = {"exportedProgram": source.exported_program}
        if source.sha256:
            identity["sha256"] = source.sha256
        elif source_etag:
            identity["etag"] = source_etag
        return identity
    assert source.python is not None
    # A factory's code lives in the compiler image; the image pins it.
    return {"python": source.python.to_wire(), "image": compiler_image}


def key_document(
    spec: TrtAotiModelSpec,
    profile: BatchProfile,
    *,
    compiler_image: str,
    source_etag: str | None = None,
    gpu_product: str | None = None,
) -> dict[str, Any]:
    """The canonical document the artifact key hashes (also stored for debugging).

    `gpu_product` is the product compiled for: one of a fleet's, by default the spec's
    one product."""
    options = spec.compile
    return {
        "format": KEY_FORMAT,
        "model": model_identity(spec, source_etag, compiler_image),
        "inputs": [i.to_wire() for i in spec.inputs],
        "batch": {"min": profile.min, "opt": profile.opt, "max": profile.max},
        "backend": spec.backend,
        "precision": spec.precision,
        "device": spec.device,
        "options": {
            "minBlockSize": options.min_block_size,
            "optimizationLevel": options.optimization_level,
            "workspaceBytes": options.workspace_bytes,
            "rtol": options.rtol,
            "atol": options.atol,
        },
        "compilerImage": compiler_image,
        "gpuProduct": (gpu_product or options.gpu.product) if spec.device == "cuda" else None,
    }


def artifact_key(
    spec: TrtAotiModelSpec,
    profile: BatchProfile,
    *,
    compiler_image: str,
    source_etag: str | None = None,
    gpu_product: str | None = None,
) -> str:
    document = key_document(
        spec, profile, compiler_image=compiler_image, source_etag=source_etag, gpu_product=gpu_product
    )
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]
