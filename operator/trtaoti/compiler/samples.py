"""Seeded model inputs at any batch size.

Floating inputs are standard normal. Integer inputs are usually indices (token ids,
class ids, embedding rows), where an out-of-range value crashes the model rather
than testing it, so they are drawn from the range the model's own example inputs
span; without examples, from [0, 1] (valid for any embedding), uint8 from [0, 255].
Integer inputs are never cast to the compute precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trtaoti.compiler.plan import TensorSpec

DEFAULT_INT_RANGES = {torch.uint8: (0, 255)}


class SampleInputs:
    def __init__(self, inputs: Sequence[TensorSpec], examples: Sequence[torch.Tensor] | None, seed: int = 0) -> None:
        self.inputs = list(inputs)
        self.seed = seed
        self.int_ranges: dict[str, tuple[int, int]] = {}
        for index, spec in enumerate(self.inputs):
            if spec.dtype.is_floating_point or spec.dtype == torch.bool:
                continue
            if examples is not None and examples[index].numel() > 0:
                example = examples[index]
                self.int_ranges[spec.name] = (int(example.min()), int(example.max()))
            else:
                self.int_ranges[spec.name] = DEFAULT_INT_RANGES.get(spec.dtype, (0, 1))

    def make(self, batch: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """The same batch size always gives the same tensors."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + batch)
        tensors = []
        for spec in self.inputs:
            shape = spec.at(batch)
            if spec.dtype.is_floating_point:
                tensor = torch.randn(shape, generator=generator).to(spec.dtype)
            elif spec.dtype == torch.bool:
                tensor = torch.rand(shape, generator=generator) < 0.5
            else:
                lo, hi = self.int_ranges[spec.name]
                tensor = torch.randint(lo, hi + 1, shape, generator=generator, dtype=torch.int64).to(spec.dtype)
            tensors.append(tensor.to(device))
        return tuple(tensors)
