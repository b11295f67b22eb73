"""The committed examples' eager models, as the reference a served answer must equal."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def mlp_eager_logits(features: np.ndarray) -> np.ndarray:
    """examples/mlp's eager output for a batch of features (the same seeded weights
    its factory gives the compiler)."""
    import torch

    sys.path.insert(0, str(EXAMPLES))
    try:
        from mlp.model import build
    finally:
        sys.path.remove(str(EXAMPLES))
    module, _ = build()
    with torch.no_grad():
        return module(torch.from_numpy(features)).numpy()


def served_mlp_logits(address: str, features: np.ndarray, *, model: str = "mlp", grpc: bool = False) -> np.ndarray:
    """The served MLP's answer for `features`, asked as a user would: tritonclient over
    REST (`host:port`) or gRPC."""
    if grpc:
        import tritonclient.grpc as triton
    else:
        import tritonclient.http as triton
    client = triton.InferenceServerClient(address)
    try:
        request = triton.InferInput("features", list(features.shape), "FP32")
        request.set_data_from_numpy(features)
        return client.infer(model, [request]).as_numpy("logits")
    finally:
        client.close()
