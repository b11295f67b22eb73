"""trtaoti-server on a GPU: a CUDA AOTInductor package served with --device cuda:0
(inputs staged through pinned memory on one stream per runner). Skips where there is
no CUDA GPU or no CUDA toolkit to build the CUDA variant of the server.

On the GPU machine (no kubernetes client there): python3 -m pytest --noconftest tests/e2e/test_server_cuda.py
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import requests

import server_support as support
from support.threads import ClientThreads

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.e2e, pytest.mark.gpu]
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
if shutil.which("nvcc") is None:
    pytest.skip("needs a CUDA toolkit (nvcc) to build the CUDA variant of trtaoti-server", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(2, 4, 8, device="cuda")
    with support.run_server(package, "--device", "cuda:0", "--runners", "2", "--max-queue-delay-us", "500") as running:
        yield running


def json_request(x, mask) -> dict:
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ]
    }


@pytest.mark.parametrize("batch", [1, 2, 4, 8, 20])
def test_cuda_outputs_equal_the_eager_model(server, batch):
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=batch))
    response = requests.post(
        f"{server.base}/v2/models/{support.MODEL_NAME}/infer", json=json_request(x, mask), timeout=30
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    logits, label = support.eager_outputs(x, mask)
    np.testing.assert_allclose(np.array(outputs["logits"]["data"]).reshape(batch, -1), logits, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(np.array(outputs["label"]["data"]), label)


def test_cuda_binary_tensors_and_concurrent_batching(server):
    errors: list[str] = []

    def client(index: int) -> None:
        session = requests.Session()
        for i in range(30):
            x, mask = (t.numpy() for t in support.example_inputs(1 + i % 3, seed=index * 100 + i))
            header = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "x",
                            "datatype": "FP32",
                            "shape": list(x.shape),
                            "parameters": {"binary_data_size": x.nbytes},
                        },
                        {
                            "name": "mask",
                            "datatype": "INT64",
                            "shape": list(mask.shape),
                            "parameters": {"binary_data_size": mask.nbytes},
                        },
                    ],
                    "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
                }
            ).encode()
            response = session.post(
                f"{server.base}/v2/models/{support.MODEL_NAME}/infer",
                data=header + x.tobytes() + mask.tobytes(),
                headers={
                    "Inference-Header-Content-Length": str(len(header)),
                    "Content-Type": "application/octet-stream",
                },
                timeout=30,
            )
            if response.status_code != 200:
                errors.append(response.text)
                continue
            json_length = int(response.headers["Inference-Header-Content-Length"])
            logits = np.frombuffer(response.content[json_length:], dtype=np.float32).reshape(x.shape[0], -1)
            if not np.allclose(logits, support.eager_outputs(x, mask)[0], rtol=1e-3, atol=1e-3):
                errors.append(f"client {index} request {i}: wrong logits")

    with ClientThreads(client, 8, timeout=120):
        pass
    assert not errors, errors[:3]
    text = server.metrics()
    model = {"model": support.MODEL_NAME, "version": "1"}
    assert support.metric(text, "nv_inference_exec_count", **model) < support.metric(
        text, "nv_inference_request_success", **model
    )
