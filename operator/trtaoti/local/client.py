"""How to call a served profile: a curl line, a tritonclient snippet, and one real call.

Everything is derived from the package's manifest (`inputs`/`outputs` with KServe V2
datatypes and shapes, batch dimension -1), the same signature the server reads from
the package itself, so the printed requests are correctly shaped by construction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import requests

from trtaoti.artifact import Manifest, TensorDescription

_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BF16": np.float32,  # JSON carries BF16 as numbers; the server converts
}


def concrete_shape(shape: list[int], batch: int) -> list[int]:
    return [batch if d == -1 else d for d in shape]


def random_inputs(inputs: Sequence[TensorDescription], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Floats from N(0, 1); integers and booleans 0/1, which any embedding or mask accepts."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in inputs:
        shape = concrete_shape(spec.shape, batch)
        dtype = _NUMPY[spec.datatype]
        if np.issubdtype(dtype, np.floating):
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return arrays


def infer_body(inputs: Sequence[TensorDescription], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": spec.name,
                "shape": list(arrays[spec.name].shape),
                "datatype": spec.datatype,
                "data": arrays[spec.name].flatten().tolist(),
            }
            for spec in inputs
        ]
    }


def curl_command(base_url: str, model_name: str, inputs: Sequence[TensorDescription]) -> str:
    """A copy-pasteable batch-1 request (zeros, so the line stays short to read)."""
    body = {
        "inputs": [
            {
                "name": spec.name,
                "shape": concrete_shape(spec.shape, 1),
                "datatype": spec.datatype,
                "data": [False if spec.datatype == "BOOL" else 0] * math.prod(concrete_shape(spec.shape, 1)),
            }
            for spec in inputs
        ]
    }
    return (
        f"curl -s -X POST {base_url}/v2/models/{model_name}/infer -H 'Content-Type: application/json' "
        f"-d '{json.dumps(body, separators=(',', ':'))}'"
    )


def python_snippet(
    host_port: str, model_name: str, inputs: Sequence[TensorDescription], outputs: Sequence[TensorDescription]
) -> str:
    lines = [
        "import numpy as np",
        "import tritonclient.http as httpclient",
        "",
        f'client = httpclient.InferenceServerClient("{host_port}")',
        "batch = 4",
        "inputs = []",
    ]
    for spec in inputs:
        shape = ", ".join(["batch", *(str(d) for d in spec.shape[1:])])
        dtype = np.dtype(_NUMPY[spec.datatype]).name
        make = (
            f"np.random.randn({shape}).astype(np.{dtype})"
            if dtype.startswith("float")
            else f"np.zeros(({shape},), np.{dtype})"
        )
        lines += [
            f'inp = httpclient.InferInput("{spec.name}", [{shape}], "{spec.datatype}")',
            f"inp.set_data_from_numpy({make})",
            "inputs.append(inp)",
        ]
    lines.append(f'result = client.infer("{model_name}", inputs)')
    lines += [f'print(result.as_numpy("{spec.name}"))' for spec in outputs]
    return "\n".join(lines)


def infer_once(base_url: str, model_name: str, manifest: Manifest, batch: int, timeout: float = 60) -> dict[str, Any]:
    """One KServe V2 JSON inference with random inputs; returns the response document."""
    arrays = random_inputs(manifest.inputs, batch)
    response = requests.post(
        f"{base_url}/v2/models/{model_name}/infer", json=infer_body(manifest.inputs, arrays), timeout=timeout
    )
    if response.status_code != 200:
        raise RuntimeError(f"inference failed: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def summarize(response: dict[str, Any]) -> list[str]:
    """One line per output: name, datatype, shape and a few values."""
    lines = []
    for output in response.get("outputs", []):
        data = np.asarray(output.get("data", []))
        head = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in data[:6].tolist())
        stats = (
            f" min {data.min():.4g} max {data.max():.4g}" if data.size and np.issubdtype(data.dtype, np.number) else ""
        )
        lines.append(
            f"{output['name']} {output['datatype']} {output['shape']}: "
            f"[{head}{', ...' if data.size > 6 else ''}]{stats}"
        )
    return lines
