"""The best backend this machine can compile for, with the reason shown to the user.

Preference follows the project's pipeline: TensorRT engines (+ AOTInductor for the
rest) where Torch-TensorRT imports and a GPU is visible, else AOTInductor on CUDA,
else AOTInductor on CPU. Explicit --backend/--device win over detection.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    device: str
    reason: str

    def describe(self) -> str:
        return f"backend {self.backend} on {self.device}: {self.reason}"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _torch_tensorrt_importable() -> tuple[bool, str]:
    if importlib.util.find_spec("torch_tensorrt") is None:
        return False, "torch_tensorrt is not installed"
    try:
        import torch_tensorrt  # noqa: F401 - the import is the test
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        return False, f"torch_tensorrt does not import ({type(exc).__name__}: {exc})"
    return True, "torch_tensorrt imports"


def choose_backend(backend: str | None = None, device: str | None = None) -> BackendChoice:
    """Fill in what the user did not force, from what this machine has."""
    if backend == "tensorrt" and device == "cpu":
        raise ValueError("--backend tensorrt needs --device cuda (TensorRT engines run on NVIDIA GPUs)")
    cuda = _cuda_available() if device != "cpu" else False
    if device == "cuda" and not cuda:
        raise ValueError("--device cuda requested but torch sees no CUDA device")
    if backend == "inductor":
        chosen_device = device or ("cuda" if cuda else "cpu")
        why = "requested with --backend" + (f" --device {device}" if device else "")
        if not device:
            why += "; " + ("a CUDA device is visible" if cuda else "no CUDA device is visible")
        return BackendChoice("inductor", chosen_device, why)
    if not cuda:
        if backend == "tensorrt":
            raise ValueError("--backend tensorrt needs a CUDA device, and torch sees none")
        why = "--device cpu requested" if device == "cpu" else "no CUDA device is visible to torch"
        return BackendChoice("inductor", "cpu", why)
    trt_ok, trt_why = _torch_tensorrt_importable()
    if backend == "tensorrt":
        if not trt_ok:
            raise ValueError(f"--backend tensorrt requested but {trt_why}")
        return BackendChoice("tensorrt", "cuda", "requested with --backend")
    if trt_ok:
        return BackendChoice("tensorrt", "cuda", f"a CUDA device is visible and {trt_why}")
    return BackendChoice("inductor", "cuda", f"a CUDA device is visible but {trt_why}")
