"""What one compile produces: the spec, narrowed to one profile and made concrete."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trtaoti.api.models import BatchProfile, CompileSpec, TrtAotiModelSpec
from trtaoti.compiler.dtypes import PRECISION_DTYPES, TORCH_DTYPES
from trtaoti.compiler.errors import InvalidInput

# torch.export specializes a dimension whose example size is 0 or 1, so the example
# batch used for tracing must be >= 2 even when the profile starts at 1. The Dim's
# own min may still be 1: export then keeps the range [1, max] (measured, torch 2.14).
MIN_TRACE_BATCH = 2


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]  # shape[0] == -1: the batch dimension

    def at(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape[1:])


@dataclass(frozen=True)
class CompilePlan:
    model_name: str
    profile: BatchProfile
    inputs: tuple[TensorSpec, ...]
    backend: str
    precision: str
    device: str
    options: CompileSpec
    key: str
    compiler_image: str
    gpu_product: str | None

    @classmethod
    def from_spec(
        cls,
        model_name: str,
        spec: TrtAotiModelSpec,
        profile: BatchProfile,
        *,
        key: str,
        compiler_image: str,
        gpu_product: str | None = None,
    ) -> CompilePlan:
        check_spec(spec, profile)
        inputs = tuple(TensorSpec(i.name, TORCH_DTYPES[i.dtype], tuple(i.shape)) for i in spec.inputs)
        return cls(
            model_name=model_name,
            profile=profile,
            inputs=inputs,
            backend=spec.backend,
            precision=spec.precision,
            device=spec.device,
            options=spec.compile,
            key=key,
            compiler_image=compiler_image,
            gpu_product=(gpu_product or spec.compile.gpu.product) if spec.device == "cuda" else None,
        )

    @property
    def batch_range(self) -> tuple[int, int, int]:
        return self.profile.min, self.profile.opt, self.profile.max

    @property
    def dynamic(self) -> bool:
        return self.profile.min < self.profile.max

    @property
    def trace_batch(self) -> int:
        """The batch size of the example inputs torch.export traces with."""
        if not self.dynamic:
            return self.profile.min
        return min(max(self.profile.opt, MIN_TRACE_BATCH), self.profile.max)

    @property
    def compute_dtype(self) -> torch.dtype:
        return PRECISION_DTYPES[self.precision]

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda" if self.device == "cuda" else "cpu")

    @property
    def validation_batches(self) -> list[int]:
        return sorted(set(self.batch_range))

    def describe_range(self) -> str:
        lo, opt, hi = self.batch_range
        return f"[{lo}, {hi}] (opt {opt}, profile {self.profile.name!r})"


def check_spec(spec: TrtAotiModelSpec, profile: BatchProfile) -> None:
    """The spec's cross-field rules (the apiserver's CEL rules; a spec file skips them)."""
    if not profile.min <= profile.opt <= profile.max:
        raise InvalidInput(
            f"profile {profile.name!r}: need min <= opt <= max, got {profile.min}, {profile.opt}, {profile.max}"
        )
    for spec_input in spec.inputs:
        shape = list(spec_input.shape)
        if shape[0] != -1 or shape.count(-1) != 1 or any(d == 0 or d < -1 for d in shape):
            raise InvalidInput(
                f"input {spec_input.name!r}: shape {shape} must start with -1 (the batch) "
                "and have fixed positive sizes after it"
            )
