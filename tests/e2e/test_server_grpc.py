"""trtaoti-server's KServe V2 gRPC front end, driven by Triton's gRPC client: the same
package, the same validation and batcher as REST."""

from __future__ import annotations

import numpy as np
import pytest
import requests

import server_support as support
from support.threads import ClientThreads
from support.tools import import_tool, tool_missing

grpcclient = import_tool("tritonclient.grpc", "tritonclient[grpc] (grpcio, protobuf) is in the test extra")
InferenceServerException = import_tool(
    "tritonclient.utils", "tritonclient is in the test extra"
).InferenceServerException

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(2, 4, 8)
    try:
        with support.run_server(package, "--grpc-port", "0", "--max-queue-delay-us", "500") as running:
            yield running
    except RuntimeError as exc:
        if "built without gRPC support" in str(exc):
            tool_missing("trtaoti-server was built without gRPC (no grpc++/protoc at build time: make system-deps)")
        raise


@pytest.fixture
def client(server):
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield triton
    triton.close()


def infer(client, x, mask, outputs=None, request_id=""):
    inputs = [
        grpcclient.InferInput("x", list(x.shape), "FP32"),
        grpcclient.InferInput("mask", list(mask.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(mask)
    requested = [grpcclient.InferRequestedOutput(name) for name in outputs] if outputs else None
    return client.infer(support.MODEL_NAME, inputs, outputs=requested, request_id=request_id)


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(support.MODEL_NAME)
    metadata = client.get_model_metadata(support.MODEL_NAME, as_json=True)
    assert metadata["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("x", "FP32", ["-1", str(support.IN_FEATURES)]),
        ("mask", "INT64", ["-1", str(support.MASK_FEATURES)]),
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["logits", "label"]


def test_model_config_matches_the_http_one(server, client):
    """perf_analyzer's gRPC mode calls ModelConfig first; it must say what HTTP says."""
    config = client.get_model_config(support.MODEL_NAME, as_json=True)["config"]
    assert int(config["max_batch_size"]) == 8
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in config["input"]] == [
        ("x", "TYPE_FP32", [support.IN_FEATURES]),
        ("mask", "TYPE_INT64", [support.MASK_FEATURES]),
    ]
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    over_http = requests.get(f"{server.base}/v2/models/{support.MODEL_NAME}/config", timeout=10).json()
    assert (
        int(config["dynamic_batching"]["max_queue_delay_microseconds"])
        == over_http["dynamic_batching"]["max_queue_delay_microseconds"]
        == 500
    )
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_config("no-such-model")


@pytest.mark.parametrize("batch", [1, 2, 4, 8, 20])
def test_outputs_equal_the_eager_model(client, batch):
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=100 + batch))
    result = infer(client, x, mask)
    logits, label = support.eager_outputs(x, mask)
    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.as_numpy("label"), label)


def test_output_subset_and_id(client):
    x, mask = (t.numpy() for t in support.example_inputs(3, seed=9))
    result = infer(client, x, mask, outputs=["label"], request_id="grpc-7")
    response = result.get_response()
    assert response.id == "grpc-7"
    assert [o.name for o in response.outputs] == ["label"]
    np.testing.assert_array_equal(result.as_numpy("label"), support.eager_outputs(x, mask)[1])


def test_bad_requests_are_invalid_argument_and_unknown_model_not_found(client):
    x, mask = (t.numpy() for t in support.example_inputs(2))
    bad = [grpcclient.InferInput("x", [2, 8], "FP32"), grpcclient.InferInput("mask", list(mask.shape), "INT64")]
    bad[0].set_data_from_numpy(x[:, :8].copy())
    bad[1].set_data_from_numpy(mask)
    with pytest.raises(InferenceServerException) as error:
        client.infer(support.MODEL_NAME, bad)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "dimension 1 is 8" in error.value.message()

    wrong_type = [
        grpcclient.InferInput("x", list(x.shape), "FP64"),
        grpcclient.InferInput("mask", list(mask.shape), "INT64"),
    ]
    wrong_type[0].set_data_from_numpy(x.astype(np.float64))
    wrong_type[1].set_data_from_numpy(mask)
    with pytest.raises(InferenceServerException) as error:
        client.infer(support.MODEL_NAME, wrong_type)
    assert "the model expects FP32" in error.value.message()

    with pytest.raises(InferenceServerException) as error:
        client.get_model_metadata("no-such-model")
    assert error.value.status() == "StatusCode.NOT_FOUND"


def test_concurrent_grpc_clients_are_batched(server):
    errors: list[str] = []

    def loop(index: int) -> None:
        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            for i in range(20):
                x, mask = (t.numpy() for t in support.example_inputs(1 + i % 2, seed=index * 50 + i))
                result = infer(triton, x, mask)
                np.testing.assert_allclose(
                    result.as_numpy("logits"), support.eager_outputs(x, mask)[0], rtol=1e-5, atol=1e-5
                )
        except Exception as exc:  # noqa: BLE001 - collected: an assert in a thread would vanish
            errors.append(f"client {index}: {exc!r}")
        finally:
            triton.close()

    before = server.metrics()
    with ClientThreads(loop, 12, timeout=120):
        pass
    assert not errors, errors[:3]
    after = server.metrics()
    model = {"model": support.MODEL_NAME, "version": "1"}
    requests_done = support.metric(after, "nv_inference_request_success", **model) - support.metric(
        before, "nv_inference_request_success", **model
    )
    executions = support.metric(after, "nv_inference_exec_count", **model) - support.metric(
        before, "nv_inference_exec_count", **model
    )
    assert requests_done == 240
    assert executions < requests_done
