"""trtaoti-server driven by the KServe Python SDK's own V2 REST client, unchanged:
readiness, JSON and binary tensors at batch sizes inside and around the compiled
range, answers equal to the eager model, and a bad request surfacing as the SDK's
HTTP error with our message."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

import server_support as support

kserve = pytest.importorskip("kserve", reason="the kserve SDK is in the test extra (pip install -e '.[test]')")
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig  # noqa: E402

pytestmark = pytest.mark.e2e

BATCH_MIN, BATCH_OPT, BATCH_MAX = 2, 4, 8


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(BATCH_MIN, BATCH_OPT, BATCH_MAX)
    with support.run_server(package, "--max-queue-delay-us", "500") as running:
        yield running


def request(batch: int, binary: bool, seed: int) -> tuple[InferRequest, np.ndarray, np.ndarray]:
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=seed))
    inputs = []
    for name, datatype, array in (("x", "FP32", x), ("mask", "INT64", mask)):
        tensor = InferInput(name=name, shape=list(array.shape), datatype=datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return InferRequest(model_name=support.MODEL_NAME, infer_inputs=inputs), x, mask


def run(coroutine):
    return asyncio.run(coroutine)


async def _infer_all(base: str, cases: list[tuple[int, bool]]):
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
        assert await client.is_server_ready(base)
        assert await client.is_model_ready(base, support.MODEL_NAME)
        results = []
        for seed, (batch, binary) in enumerate(cases):
            infer_request, x, mask = request(batch, binary, seed)
            response = await client.infer(base, infer_request, model_name=support.MODEL_NAME)
            results.append((batch, binary, x, mask, response))
        return results


# 1 is below the compiled min (padded), 3 inside, 8 the max, 13 above it (split).
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_sdk_answers_equal_eager(server, binary):
    cases = [(batch, binary) for batch in (1, BATCH_MIN, 3, BATCH_MAX, 13)]
    for batch, _, x, mask, response in run(_infer_all(server.base, cases)):
        logits = response.get_output_by_name("logits").as_numpy()
        label = response.get_output_by_name("label").as_numpy()
        expected_logits, expected_label = support.eager_outputs(x, mask)
        assert logits.shape == (batch, expected_logits.shape[1])
        np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(label, expected_label)


def test_kserve_sdk_sees_a_bad_request_as_400_with_our_message(server):
    async def send_wrong_dtype():
        async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
            x, mask = (t.numpy() for t in support.example_inputs(2))
            bad = InferInput(name="x", shape=list(x.shape), datatype="FP64")
            bad.set_data_from_numpy(x.astype(np.float64), binary_data=False)
            good = InferInput(name="mask", shape=list(mask.shape), datatype="INT64")
            good.set_data_from_numpy(mask, binary_data=False)
            await client.infer(server.base, InferRequest(support.MODEL_NAME, [bad, good]),
                               model_name=support.MODEL_NAME)  # fmt: skip

    with pytest.raises(httpx.HTTPStatusError) as error:
        run(send_wrong_dtype())
    assert error.value.response.status_code == 400
    message = error.value.response.json()["error"]
    assert "x" in message and "FP64" in message
