"""The best backend this machine can compile for, with the reason shown to the user.

Preference follows the project's pipeline: TensorRT engines (+ AOTInductor for the
rest) where Torch-TensorRT imports and a GPU is visible, else AOTInductor on CUDA,
else AOTInductor on CPU. Explicit --backend/--device win over detection.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field

from trtaoti.api.models import GpuSelector, TrtAotiModel


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    device: str
    reason: str
    # This machine's GPU as nvidia.com/gpu.product names it (cuda only).
    gpu_product: str | None = field(default=None)

    def describe(self) -> str:
        on = f"{self.device} ({self.gpu_product})" if self.gpu_product else self.device
        return f"backend {self.backend} on {on}: {self.reason}"


def gpu_product_label(device_name: str) -> str:
    """A CUDA device name as GPU Feature Discovery writes it into nvidia.com/gpu.product
    ("NVIDIA H100 80GB HBM3" -> "NVIDIA-H100-80GB-HBM3")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", device_name.strip()).strip("-._")


def _cuda_device_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))


def for_this_machine(model: TrtAotiModel, choice: BackendChoice) -> tuple[TrtAotiModel, str | None]:
    """The model as `trtaoti run` compiles it here: on a GPU, for this GPU's product,
    whatever products the spec names (a package only runs on the GPU it was built
    for). Returns the model and a note for the user when that changed the spec."""
    if choice.device != "cuda" or not choice.gpu_product:
        return model, None
    named = model.spec.compile.gpu.product_list()
    if named == [choice.gpu_product]:
        return model, None
    gpu = GpuSelector(product=choice.gpu_product, count=model.spec.compile.gpu.count)
    spec = model.spec.model_copy(update={"compile": model.spec.compile.model_copy(update={"gpu": gpu})})
    note = f"compiling for this machine's GPU, {choice.gpu_product}" + (
        f" (the spec names {', '.join(named)})" if named else ""
    )
    return model.model_copy(update={"spec": spec}), note


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
    product = gpu_product_label(_cuda_device_name()) if cuda else None
    if backend == "inductor":
        chosen_device = device or ("cuda" if cuda else "cpu")
        why = "requested with --backend" + (f" --device {device}" if device else "")
        if not device:
            why += "; " + ("a CUDA device is visible" if cuda else "no CUDA device is visible")
        return BackendChoice("inductor", chosen_device, why, product if chosen_device == "cuda" else None)
    if not cuda:
        if backend == "tensorrt":
            raise ValueError("--backend tensorrt needs a CUDA device, and torch sees none")
        why = "--device cpu requested" if device == "cpu" else "no CUDA device is visible to torch"
        return BackendChoice("inductor", "cpu", why)
    trt_ok, trt_why = _torch_tensorrt_importable()
    if backend == "tensorrt":
        if not trt_ok:
            raise ValueError(f"--backend tensorrt requested but {trt_why}")
        return BackendChoice("tensorrt", "cuda", "requested with --backend", product)
    if trt_ok:
        return BackendChoice("tensorrt", "cuda", f"a CUDA device is visible and {trt_why}", product)
    return BackendChoice("inductor", "cuda", f"a CUDA device is visible but {trt_why}", product)
