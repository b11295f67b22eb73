"""trtaoti-server end to end over KServe V2 REST: a real compiled package, the real
binary, Triton's own HTTP client (JSON and binary tensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import server_support as support

pytestmark = pytest.mark.e2e

BATCH_MIN, BATCH_OPT, BATCH_MAX = 2, 4, 8


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(BATCH_MIN, BATCH_OPT, BATCH_MAX)
    with support.run_server(package, "--max-queue-delay-us", "500") as running:
        yield running


@pytest.fixture
def client(server):
    triton = httpclient.InferenceServerClient(server.url)
    yield triton
    triton.close()


def infer(client, x, mask, binary: bool, outputs=("logits", "label"), request_id=""):
    inputs = [
        httpclient.InferInput("x", list(x.shape), "FP32"),
        httpclient.InferInput("mask", list(mask.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(mask, binary_data=binary)
    requested = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return client.infer(support.MODEL_NAME, inputs, outputs=requested, request_id=request_id)


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(support.MODEL_NAME)
    metadata = client.get_server_metadata()
    assert metadata["name"] == "trtaoti-server"
    assert metadata["version"] == (support.REPO / "VERSION").read_text().strip()
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_comes_from_the_package(server, client):
    metadata = client.get_model_metadata(support.MODEL_NAME)
    assert metadata["name"] == support.MODEL_NAME
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, support.IN_FEATURES]},
        {"name": "mask", "datatype": "INT64", "shape": [-1, support.MASK_FEATURES]},
    ]
    assert metadata["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, support.OUT_FEATURES]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    assert (metadata["parameters"]["batch_min"], metadata["parameters"]["batch_max"]) == (BATCH_MIN, BATCH_MAX)
    # The versioned route serves the same document.
    versioned = requests.get(f"{server.base}/v2/models/{support.MODEL_NAME}/versions/1", timeout=10)
    assert versioned.status_code == 200 and versioned.json() == metadata


def test_model_config_tells_triton_tools_the_batch_limits(server, client):
    """perf_analyzer and other Triton-aware tools size their requests from the model
    configuration (max_batch_size, per-row dims), not from the KServe metadata."""
    config = client.get_model_config(support.MODEL_NAME)
    assert config["name"] == support.MODEL_NAME
    assert config["max_batch_size"] == BATCH_MAX
    assert config["input"] == [
        {"name": "x", "data_type": "TYPE_FP32", "dims": [support.IN_FEATURES]},
        {"name": "mask", "data_type": "TYPE_INT64", "dims": [support.MASK_FEATURES]},
    ]
    assert [o["name"] for o in config["output"]] == ["logits", "label"]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert BATCH_OPT in config["dynamic_batching"]["preferred_batch_size"]
    assert requests.get(f"{server.base}/v2/models/{support.MODEL_NAME}/versions/1/config", timeout=10).json() == config
    assert requests.get(f"{server.base}/v2/models/no-such-model/config", timeout=10).status_code == 404


# Batch 1 is below the compiled minimum (padded), 20 above the maximum (split).
@pytest.mark.parametrize("batch", [1, BATCH_MIN, BATCH_OPT, BATCH_MAX, 20])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_outputs_equal_the_eager_model(client, batch, binary):
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=batch))
    result = infer(client, x, mask, binary)
    logits, label = support.eager_outputs(x, mask)
    got_logits = result.as_numpy("logits")
    assert got_logits.shape == (batch, support.OUT_FEATURES)
    np.testing.assert_allclose(got_logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.as_numpy("label"), label)


def test_requested_output_subset_and_request_id(client):
    x, mask = (t.numpy() for t in support.example_inputs(3, seed=7))
    result = infer(client, x, mask, binary=True, outputs=("label",), request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42"
    assert [o["name"] for o in response["outputs"]] == ["label"]
    np.testing.assert_array_equal(result.as_numpy("label"), support.eager_outputs(x, mask)[1])


def test_nested_json_data_and_json_outputs(server):
    x, mask = (t.numpy() for t in support.example_inputs(2, seed=3))
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, support.IN_FEATURES], "data": x.tolist()},
            {"name": "mask", "datatype": "INT64", "shape": [2, support.MASK_FEATURES], "data": mask.flatten().tolist()},
        ]
    }
    response = requests.post(f"{server.base}/v2/models/{support.MODEL_NAME}/versions/1/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    np.testing.assert_allclose(
        np.array(outputs["logits"]["data"]).reshape(2, -1), support.eager_outputs(x, mask)[0], rtol=1e-5, atol=1e-5
    )


def _valid_body(batch=2):
    x, mask = (t.numpy() for t in support.example_inputs(batch))
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ]
    }


def _mutated(mutate):
    body = _valid_body()
    mutate(body)
    return json.dumps(body)


BAD_REQUESTS = {
    "malformed-json": ('{"inputs": [', "malformed JSON"),
    "unknown-input": (_mutated(lambda b: b["inputs"][0].update(name="y")), "unknown input 'y'"),
    "missing-input": (_mutated(lambda b: b["inputs"].pop()), "missing input 'mask'"),
    "wrong-datatype": (_mutated(lambda b: b["inputs"][0].update(datatype="FP16")), "the model expects FP32"),
    "wrong-rank": (_mutated(lambda b: b["inputs"][0].update(shape=[2, 8, 2])), "has rank 3"),
    "wrong-feature-dim": (_mutated(lambda b: b["inputs"][0].update(shape=[4, 8])), "dimension 1 is 8"),
    "size-disagrees": (_mutated(lambda b: b["inputs"][0].update(shape=[3, 16])), "needs 48"),
    "batch-zero": (
        _mutated(lambda b: [i.update(shape=[0, i["shape"][1]], data=[]) for i in b["inputs"]]),
        "batch size 0",
    ),
    "unknown-output": (_mutated(lambda b: b.update(outputs=[{"name": "nope"}])), "unknown output 'nope'"),
    "string-in-data": (_mutated(lambda b: b["inputs"][1]["data"].__setitem__(0, "x")), "not an integer"),
    # Finite in a double, not in FP32: converted it would be infinity (served as null).
    "fp32-out-of-range": (
        _mutated(lambda b: b["inputs"][0]["data"].__setitem__(1, 1e308)),
        "input 'x': element 1e+308 is out of range for FP32",
    ),
    "fp32-negative-out-of-range": (
        _mutated(lambda b: b["inputs"][0]["data"].__setitem__(0, -3.5e38)),
        "is out of range for FP32",
    ),
    # JSON has no NaN or Infinity literals (binary tensor data carries them).
    "nan-literal": (_mutated(lambda b: b["inputs"][0]["data"].__setitem__(0, float("nan"))), "malformed JSON"),
    "infinity-literal": (_mutated(lambda b: b["inputs"][0]["data"].__setitem__(0, float("inf"))), "malformed JSON"),
    # `parameters` is an object wherever it appears; another value is not "no parameters".
    "input-parameters-not-object": (
        _mutated(lambda b: b["inputs"][0].update(parameters="FP32")),
        "input 'x': 'parameters' must be an object",
    ),
    "request-parameters-not-object": (_mutated(lambda b: b.update(parameters=[1])), "the request: 'parameters' must"),
    "output-parameters-not-object": (
        _mutated(lambda b: b.update(outputs=[{"name": "logits", "parameters": 3}])),
        "output 'logits': 'parameters' must be an object",
    ),
}


def _with_number(literal: str, input_index: int = 0) -> str:
    """A valid body whose first element of one input's data is a raw JSON number
    literal that Python's json module cannot produce (1e999 overflows a double)."""
    body = _valid_body()
    body["inputs"][input_index]["data"][0] = "@NUMBER@"
    return json.dumps(body).replace('"@NUMBER@"', literal)


BAD_REQUESTS |= {
    "number-overflow": (_with_number("1e999"), "input 'x': element 1e999 is out of range"),
    "negative-number-overflow": (_with_number("-1e999", 1), "input 'mask': element -1e999 is out of range"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_400_naming_the_problem(server, case):
    body, needle = BAD_REQUESTS[case]
    response = requests.post(f"{server.base}/v2/models/{support.MODEL_NAME}/infer", data=body, timeout=10)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]


def test_bad_binary_framing_gets_400(server):
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
                {"name": "mask", "datatype": "INT64", "shape": [1, 8], "parameters": {"binary_data_size": 64}},
            ]
        }
    ).encode()
    url = f"{server.base}/v2/models/{support.MODEL_NAME}/infer"
    short = requests.post(
        url, data=header + b"\0" * 100, headers={"Inference-Header-Content-Length": str(len(header))}, timeout=10
    )
    assert short.status_code == 400 and "runs past the end" in short.json()["error"]
    bogus = requests.post(
        url, data=header + b"\0" * 128, headers={"Inference-Header-Content-Length": "abc"}, timeout=10
    )
    assert bogus.status_code == 400 and "Inference-Header-Content-Length" in bogus.json()["error"]


def test_unknown_model_and_version_get_404(server, client):
    with pytest.raises(InferenceServerException) as error:
        client.get_model_metadata("no-such-model")
    assert "unknown model" in str(error.value)
    response = requests.post(
        f"{server.base}/v2/models/{support.MODEL_NAME}/versions/7/infer", json=_valid_body(), timeout=10
    )
    assert response.status_code == 404 and "unknown version '7'" in response.json()["error"]


def test_metrics_count_successes_and_failures(server, client):
    model = {"model": support.MODEL_NAME, "version": "1"}
    before = server.metrics()
    x, mask = (t.numpy() for t in support.example_inputs(5))
    infer(client, x, mask, binary=True)
    requests.post(f"{server.base}/v2/models/{support.MODEL_NAME}/infer", data="{}", timeout=10)
    after = server.metrics()

    def delta(name, **labels):
        return support.metric(after, name, **model, **labels) - support.metric(before, name, **model, **labels)

    assert delta("nv_inference_request_success") == 1
    assert delta("nv_inference_count") == 5
    assert delta("nv_inference_request_failure", reason="OTHER") == 1


def test_a_number_overflow_is_the_clients_error_not_the_models(server):
    """1e999 used to escape the JSON parser's error handling as a 500 counted against
    the model (reason BACKEND), which pages whoever watches model failures."""
    model = {"model": support.MODEL_NAME, "version": "1"}
    before = server.metrics()
    response = requests.post(
        f"{server.base}/v2/models/{support.MODEL_NAME}/infer", data=_with_number("1e999"), timeout=10
    )
    assert response.status_code == 400, response.text
    assert "input 'x'" in response.json()["error"]
    after = server.metrics()

    def delta(reason):
        labels = {**model, "reason": reason}
        return support.metric(after, "nv_inference_request_failure", **labels) - support.metric(
            before, "nv_inference_request_failure", **labels
        )

    assert delta("BACKEND") == 0
    assert delta("OTHER") == 1
