"""The conformance checks run against Triton Inference Server itself as well as ours.

Every test here runs twice: against trtaoti-server and against Triton 2.51 (the
`tritonserver` in the pinned nvidia-pytriton wheel, started by
bench/triton_baseline.py on the same package, model name, batch range and queue
delay). The clients are the ones users run: tritonclient HTTP (JSON and binary
tensors) and gRPC, `requests`, and the KServe SDK. Where the two servers answer the
same, a test asserts it for both; where they differ, the test pins each server's
answer, so a change on either side shows up here, and docs/triton-differences.md says
why ours differs. Triton takes 15-25 s to start on two cores (its Python backend stub
loads torch); the module starts each server once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import server_support as support

sys.path.insert(0, str(support.REPO / "bench"))
import triton_baseline

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (grpcio, protobuf) not installed")

pytestmark = pytest.mark.e2e

BATCH_MIN, BATCH_OPT, BATCH_MAX = 2, 4, 8
QUEUE_DELAY_US = 500
TARGETS = ["trtaoti", "triton"]


@dataclass
class Target:
    """One server under test, as the clients see it."""

    kind: str  # "trtaoti" or "triton"
    http: str  # host:port
    grpc: str  # host:port
    metrics_url: str

    @property
    def base(self) -> str:
        return f"http://{self.http}"

    def metrics(self) -> str:
        return requests.get(self.metrics_url, timeout=10).text

    def pick(self, ours, triton):
        """The answer expected from this server where the two differ."""
        return ours if self.kind == "trtaoti" else triton


@pytest.fixture(scope="module")
def package():
    return support.build_package(BATCH_MIN, BATCH_OPT, BATCH_MAX)


@pytest.fixture(scope="module", params=TARGETS)
def target(request, package):
    if request.param == "trtaoti":
        support.build_server()
        try:
            with support.run_server(package, "--grpc-port", "0", "--max-queue-delay-us", str(QUEUE_DELAY_US)) as server:
                yield Target("trtaoti", server.url, f"127.0.0.1:{server.grpc_port}", f"{server.base}/metrics")
        except RuntimeError as exc:
            if "built without gRPC support" in str(exc):
                pytest.skip("trtaoti-server was built without gRPC (no grpc++/protoc at build time)")
            raise
        return
    try:
        triton_baseline.locate()
    except triton_baseline.TritonUnavailable as exc:
        pytest.skip(str(exc))
    with triton_baseline.run_triton(package, max_queue_delay_us=QUEUE_DELAY_US) as server:
        yield Target(
            "triton", server.url, f"127.0.0.1:{server.grpc_port}", f"http://127.0.0.1:{server.metrics_port}/metrics"
        )


@pytest.fixture
def http(target):
    client = httpclient.InferenceServerClient(target.http)
    yield client
    client.close()


@pytest.fixture
def grpc(target):
    client = grpcclient.InferenceServerClient(target.grpc)
    yield client
    client.close()


def infer_http(client, x, mask, binary: bool, outputs=("logits", "label"), request_id=""):
    inputs = [
        httpclient.InferInput("x", list(x.shape), "FP32"),
        httpclient.InferInput("mask", list(mask.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(mask, binary_data=binary)
    requested = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return client.infer(support.MODEL_NAME, inputs, outputs=requested, request_id=request_id)


def infer_grpc(client, x, mask, outputs=None, request_id=""):
    inputs = [
        grpcclient.InferInput("x", list(x.shape), "FP32"),
        grpcclient.InferInput("mask", list(mask.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(mask)
    requested = [grpcclient.InferRequestedOutput(name) for name in outputs] if outputs else None
    return client.infer(support.MODEL_NAME, inputs, outputs=requested, request_id=request_id)


def label_shape(target, batch: int) -> tuple[int, ...]:
    # Triton cannot declare an output that is only the batch dimension: its config
    # needs dims [1] (reshaped to []), and it serves [batch, 1] (docs/triton-differences.md).
    return target.pick((batch,), (batch, 1))


def assert_equals_eager(target, result, x, mask) -> None:
    logits, label = support.eager_outputs(x, mask)
    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-5, atol=1e-5)
    assert result.as_numpy("label").shape == label_shape(target, len(x))
    np.testing.assert_array_equal(result.as_numpy("label").reshape(-1), label)


def test_health_over_http_and_grpc(http, grpc):
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(support.MODEL_NAME)
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(support.MODEL_NAME)


def test_server_metadata(target, http):
    metadata = http.get_server_metadata()
    assert metadata["name"] == target.pick("trtaoti-server", "triton")
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata(target, http, grpc):
    metadata = http.get_model_metadata(support.MODEL_NAME)
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, support.IN_FEATURES]},
        {"name": "mask", "datatype": "INT64", "shape": [-1, support.MASK_FEATURES]},
    ]
    assert metadata["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, support.OUT_FEATURES]},
        {"name": "label", "datatype": "INT64", "shape": target.pick([-1], [-1, 1])},
    ]
    over_grpc = grpc.get_model_metadata(support.MODEL_NAME, as_json=True)
    assert [(o["name"], [int(d) for d in o["shape"]]) for o in over_grpc["outputs"]] == [
        (o["name"], o["shape"]) for o in metadata["outputs"]
    ]


def test_model_config_over_http_and_grpc(http, grpc):
    over_grpc = grpc.get_model_config(support.MODEL_NAME, as_json=True)["config"]
    for config in (http.get_model_config(support.MODEL_NAME), over_grpc):
        assert int(config["max_batch_size"]) == BATCH_MAX
        assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in config["input"]] == [
            ("x", "TYPE_FP32", [support.IN_FEATURES]),
            ("mask", "TYPE_INT64", [support.MASK_FEATURES]),
        ]
        assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == QUEUE_DELAY_US
        assert BATCH_OPT in [int(b) for b in config["dynamic_batching"]["preferred_batch_size"]]
        assert config["instance_group"][0]["kind"] == "KIND_CPU"


# Batch 1 is below the compiled minimum: both pad it (Triton's model does it in Python).
@pytest.mark.parametrize("batch", [1, BATCH_MIN, BATCH_OPT, BATCH_MAX])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_http_outputs_equal_the_eager_model(target, http, batch, binary):
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=batch))
    assert_equals_eager(target, infer_http(http, x, mask, binary), x, mask)


@pytest.mark.parametrize("batch", [1, BATCH_MAX])
def test_grpc_outputs_equal_the_eager_model(target, grpc, batch):
    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=100 + batch))
    assert_equals_eager(target, infer_grpc(grpc, x, mask), x, mask)


def test_a_request_above_the_batch_max(target, http, grpc):
    """Ours splits it across executions; Triton refuses it."""
    x, mask = (t.numpy() for t in support.example_inputs(20, seed=20))
    if target.kind == "trtaoti":
        assert_equals_eager(target, infer_http(http, x, mask, binary=True), x, mask)
        assert_equals_eager(target, infer_grpc(grpc, x, mask), x, mask)
        return
    with pytest.raises(InferenceServerException) as error:
        infer_http(http, x, mask, binary=True)
    assert error.value.status() == "400" and "batch-size must be <= 8" in error.value.message()
    with pytest.raises(InferenceServerException) as error:
        infer_grpc(grpc, x, mask)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_requested_output_subset_and_request_id(http, grpc):
    x, mask = (t.numpy() for t in support.example_inputs(3, seed=7))
    expected = support.eager_outputs(x, mask)[1]
    over_http = infer_http(http, x, mask, binary=True, outputs=("label",), request_id="req-42")
    assert over_http.get_response()["id"] == "req-42"
    assert [o["name"] for o in over_http.get_response()["outputs"]] == ["label"]
    np.testing.assert_array_equal(over_http.as_numpy("label").reshape(-1), expected)
    over_grpc = infer_grpc(grpc, x, mask, outputs=["label"], request_id="grpc-7")
    assert over_grpc.get_response().id == "grpc-7"
    assert [o.name for o in over_grpc.get_response().outputs] == ["label"]


def _body(batch=2) -> dict:
    x, mask = (t.numpy() for t in support.example_inputs(batch))
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ]
    }


def _mutated(mutate) -> str:
    body = _body()
    mutate(body)
    return json.dumps(body)


def _with_number(literal: str) -> str:
    body = _body()
    body["inputs"][0]["data"][0] = "@NUMBER@"
    return json.dumps(body).replace('"@NUMBER@"', literal)


# case: (body, status from trtaoti-server, status from Triton). 200 from Triton means it
# served the request: out-of-range and NaN/Infinity floats become inf/NaN inputs.
BAD_REQUESTS = {
    "malformed-json": ('{"inputs": [', 400, 500),
    "empty-object": ("{}", 400, 500),
    "unknown-input": (_mutated(lambda b: b["inputs"][0].update(name="y")), 400, 400),
    "missing-input": (_mutated(lambda b: b["inputs"].pop()), 400, 400),
    "wrong-datatype": (_mutated(lambda b: b["inputs"][0].update(datatype="FP64")), 400, 400),
    "wrong-rank": (_mutated(lambda b: b["inputs"][0].update(shape=[2, 8, 2])), 400, 400),
    "wrong-feature-dim": (_mutated(lambda b: b["inputs"][0].update(shape=[4, 8])), 400, 400),
    "size-disagrees": (_mutated(lambda b: b["inputs"][0].update(shape=[3, 16])), 400, 500),
    "batch-zero": (_mutated(lambda b: [i.update(shape=[0, i["shape"][1]], data=[]) for i in b["inputs"]]), 400, 400),
    "unknown-output": (_mutated(lambda b: b.update(outputs=[{"name": "nope"}])), 400, 400),
    "string-in-data": (_mutated(lambda b: b["inputs"][1]["data"].__setitem__(0, "x")), 400, 500),
    "fp32-out-of-range": (_mutated(lambda b: b["inputs"][0]["data"].__setitem__(1, 1e308)), 400, 200),
    "number-overflow": (_with_number("1e999"), 400, 500),
    "nan-literal": (_with_number("NaN"), 400, 200),
    "infinity-literal": (_with_number("Infinity"), 400, 200),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests(target, case):
    body, ours, triton = BAD_REQUESTS[case]
    response = requests.post(f"{target.base}/v2/models/{support.MODEL_NAME}/infer", data=body, timeout=30)
    assert response.status_code == target.pick(ours, triton), response.text[:300]
    if response.status_code != 200:
        assert response.json()["error"]


def test_bad_binary_framing(target):
    header = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
                    {"name": "mask", "datatype": "INT64", "shape": [1, 8], "parameters": {"binary_data_size": 64}}]}
    ).encode()  # fmt: skip
    url = f"{target.base}/v2/models/{support.MODEL_NAME}/infer"
    length = {"Inference-Header-Content-Length": str(len(header))}
    short = requests.post(url, data=header + b"\0" * 100, headers=length, timeout=30)
    assert short.status_code == 400
    not_a_number = {"Inference-Header-Content-Length": "abc"}
    bogus = requests.post(url, data=header + b"\0" * 128, headers=not_a_number, timeout=30)
    assert bogus.status_code == 400  # Triton ignores the bad header and parses the body as raw data: still a 400


def test_grpc_bad_requests_are_invalid_argument(grpc):
    x, mask = (t.numpy() for t in support.example_inputs(2))
    for bad_x, datatype in ((x[:, :8].copy(), "FP32"), (x.astype(np.float64), "FP64")):
        inputs = [
            grpcclient.InferInput("x", list(bad_x.shape), datatype),
            grpcclient.InferInput("mask", list(mask.shape), "INT64"),
        ]
        inputs[0].set_data_from_numpy(bad_x)
        inputs[1].set_data_from_numpy(mask)
        with pytest.raises(InferenceServerException) as error:
            grpc.infer(support.MODEL_NAME, inputs)
        assert error.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_unknown_model_and_version_are_not_found(target, http, grpc):
    with pytest.raises(InferenceServerException) as error:
        http.get_model_metadata("no-such-model")
    assert error.value.status() == "404"
    response = requests.post(f"{target.base}/v2/models/{support.MODEL_NAME}/versions/7/infer", json=_body(), timeout=30)
    assert response.status_code == 404
    with pytest.raises(InferenceServerException) as error:
        grpc.get_model_metadata("no-such-model")
    assert error.value.status() == "StatusCode.NOT_FOUND"


def test_metrics_count_requests_rows_and_failures(target, http):
    model = {"model": support.MODEL_NAME, "version": "1"}
    before = target.metrics()
    x, mask = (t.numpy() for t in support.example_inputs(5))
    infer_http(http, x, mask, binary=True)
    assert requests.post(f"{target.base}/v2/models/{support.MODEL_NAME}/infer", data=_mutated(
        lambda b: b["inputs"][0].update(datatype="FP64")), timeout=30).status_code == 400  # fmt: skip
    after = target.metrics()

    def delta(name, **labels):
        return support.metric(after, name, **model, **labels) - support.metric(before, name, **model, **labels)

    assert delta("nv_inference_request_success") == 1
    assert delta("nv_inference_count") == 5
    assert delta("nv_inference_exec_count") == 1
    # Ours counts a refused request against the model; Triton counts only what reached it.
    assert delta("nv_inference_request_failure", reason="OTHER") == target.pick(1, 0)


KSERVE = importlib.util.find_spec("kserve") is not None


@pytest.mark.skipif(not KSERVE, reason="the kserve SDK is in the test extra (pip install -e '.[test]')")
def test_kserve_sdk_answers_equal_eager(target, tmp_path):
    from test_server_kserve_sdk import run_sdk

    batches = (1, BATCH_MIN, 3, BATCH_MAX)
    cases = {}
    for encoding in ("json", "binary"):  # one SDK process: its start costs seconds
        for seed, batch in enumerate(batches):
            x, mask = (t.numpy() for t in support.example_inputs(batch, seed=seed))
            cases[f"{encoding}{batch}"] = (encoding, {"x": x, "mask": mask})
    cases["wrong"] = ("json", {"x": cases["json2"][1]["x"].astype(np.float64), "mask": cases["json2"][1]["mask"]})
    results = run_sdk(target, tmp_path, cases, allow_unreadable_health=True)
    # The SDK's is_server_ready/is_model_ready read the KServe V2 body {"ready": true};
    # Triton answers 200 with an empty body, so the SDK's readiness calls raise on it.
    assert ("ready/error" in results) == (target.kind == "triton")
    for name, (_, tensors) in cases.items():
        if name == "wrong":
            continue
        x, mask = tensors["x"], tensors["mask"]
        expected_logits, expected_label = support.eager_outputs(x, mask)
        np.testing.assert_allclose(results[f"{name}/logits"], expected_logits, rtol=1e-5, atol=1e-5)
        assert results[f"{name}/label"].shape == label_shape(target, len(x))
        np.testing.assert_array_equal(results[f"{name}/label"].reshape(-1), expected_label)
    assert int(results["wrong/status"]) == 400
    assert "FP64" in str(results["wrong/error"])
