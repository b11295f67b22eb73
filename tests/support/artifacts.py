"""Stored artifacts for tests that play the compiler's part: the package bytes, then a
manifest built with the compiler's own model (trtaoti.artifact), so a test can never
store a manifest the real readers would refuse."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from trtaoti.api.models import BatchRange
from trtaoti.artifact import Manifest, TensorDescription, ValidationSummary, package_relpath, write_manifest
from trtaoti.storage import Store

GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


def sample_manifest(
    store: Store,
    key: str,
    payload: bytes,
    *,
    batch: tuple[int, int, int] = (1, 4, 16),
    device: str = "cuda",
    **fields: Any,
) -> Manifest:
    """The manifest a compile of `payload` under `key` in `store` would commit."""
    sha256 = hashlib.sha256(payload).hexdigest()
    relpath = package_relpath(key, sha256)
    lo, opt, hi = batch
    cuda = device == "cuda"
    values: dict[str, Any] = {
        "key": key,
        "model_name": "test-model",
        "profile": "online",
        "model": relpath.rsplit("/", 1)[-1],
        "uri": store.uri_of(relpath),
        "sha256": sha256,
        "bytes": len(payload),
        "backend": "tensorrt" if cuda else "inductor",
        "precision": "fp16" if cuda else "fp32",
        "device": device,
        "batch": BatchRange(min=lo, opt=opt, max=hi),
        "inputs": [TensorDescription(name="x", datatype="FP32", shape=[-1, 16])],
        "outputs": [TensorDescription(name="logits", datatype="FP32", shape=[-1, 10])],
        "versions": {"torch": "2.14.0", **({"torch_tensorrt": "2.14.0"} if cuda else {})},
        "compiler_image": "localhost/trtaoti/compiler:test",
        "peak_memory_bytes": 3 << 30,
        "latency_ms": {"opt": 1.2, "max": 4.5},
        "validation": ValidationSummary(max_abs_error=1e-3, rtol=1e-2, atol=1e-2, batches=[lo, opt, hi]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(
            {"gpu_product": GPU_PRODUCT, "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
            if cuda
            else {}
        ),
    }
    values.update(fields)
    return Manifest(**values)


def store_artifact(store: Store, key: str, payload: bytes, **manifest_fields: Any) -> Manifest:
    """Upload `payload` as the package of `key`, then commit its manifest (in that order,
    as the compiler does)."""
    manifest = sample_manifest(store, key, payload, **manifest_fields)
    store.put_bytes(package_relpath(key, manifest.sha256), payload)
    write_manifest(store, manifest)
    return manifest
