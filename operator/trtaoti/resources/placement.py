"""Putting pods on the GPU product their compiled kernels were built for."""

from __future__ import annotations

from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def gpu_placement(product: str | None, gpus: int) -> dict[str, Any]:
    """nodeSelector + toleration for a GPU pod; nothing for a CPU pod."""
    if gpus <= 0:
        return {}
    placement: dict[str, Any] = {
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if product:
        placement["nodeSelector"] = {GPU_PRODUCT_LABEL: product}
    return placement


def with_gpu_limit(resources: dict[str, Any], gpus: int) -> dict[str, Any]:
    """The container's resources with `nvidia.com/gpu` set (extended resources: limit only)."""
    out = {section: dict(values) for section, values in resources.items() if values}
    if gpus > 0:
        out.setdefault("limits", {})[GPU_RESOURCE] = gpus
        out.get("requests", {}).pop(GPU_RESOURCE, None)
    else:
        for section in out.values():
            section.pop(GPU_RESOURCE, None)
    return {k: v for k, v in out.items() if v}
