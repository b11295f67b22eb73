"""Element types: spec names, torch dtypes, KServe V2 datatype names."""

from __future__ import annotations

import torch

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}

KSERVE_DATATYPES: dict[torch.dtype, str] = {
    torch.bool: "BOOL",
    torch.uint8: "UINT8",
    torch.int8: "INT8",
    torch.int16: "INT16",
    torch.int32: "INT32",
    torch.int64: "INT64",
    torch.float16: "FP16",
    torch.bfloat16: "BF16",
    torch.float32: "FP32",
    torch.float64: "FP64",
}

PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def kserve_datatype(dtype: torch.dtype) -> str:
    try:
        return KSERVE_DATATYPES[dtype]
    except KeyError:
        raise ValueError(f"{dtype} has no KServe V2 datatype") from None


def describe_tensors(names: list[str], tensors: list[torch.Tensor]) -> str:
    """For error messages: `'image' [8, 3, 32, 32] FP32, 'class_id' [8] INT64`."""
    described = zip(names, tensors, strict=True)
    return ", ".join(f"{n!r} {list(t.shape)} {KSERVE_DATATYPES.get(t.dtype, t.dtype)}" for n, t in described)
