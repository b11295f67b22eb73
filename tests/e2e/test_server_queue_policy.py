"""The queue policy (Triton's priority levels, queue timeouts and max queue size)
through the real server and Triton's own HTTP and gRPC clients.

Order is made observable without timing: TRTAOTI_DELAY_SCHEDULER=N (Triton's
TRITONSERVER_DELAY_SCHEDULER) holds every batch until N requests are queued at once,
so a test fills the queue first and then lets it go; with a batch range of exactly one
2-row request per batch, the server's debug "batch" log lines list the priority level
of each batch in the order they ran.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import requests

import server_support as support
from support.threads import ClientThreads
from support.tools import import_tool
from support.waiting import wait_for

httpclient = import_tool("tritonclient.http", "tritonclient[http] is in the test extra")
grpcclient = import_tool("tritonclient.grpc", "tritonclient[grpc] (grpcio, protobuf) is in the test extra")
InferenceServerException = import_tool(
    "tritonclient.utils", "tritonclient is in the test extra"
).InferenceServerException

pytestmark = pytest.mark.e2e

MODEL = {"model": support.MODEL_NAME, "version": "1"}
# One 2-row request fills a batch: every execution serves exactly one request.
ONE_REQUEST_PER_BATCH = ("--batch-min", "2", "--batch-opt", "2", "--batch-max", "2")
ROWS = 2


@pytest.fixture(scope="module")
def package():
    support.build_server()
    return support.build_package(2, 4, 8)


def _inputs(module, seed: int):
    x, mask = (t.numpy() for t in support.example_inputs(ROWS, seed=seed))
    inputs = [module.InferInput("x", list(x.shape), "FP32"), module.InferInput("mask", list(mask.shape), "INT64")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(mask)
    return inputs, support.eager_outputs(x, mask)[0]


def http_infer(server, seed: int, **schedule):
    """Infers over HTTP with tritonclient; returns (logits, expected logits)."""
    client = httpclient.InferenceServerClient(server.url)
    try:
        inputs, expected = _inputs(httpclient, seed)
        return client.infer(support.MODEL_NAME, inputs, **schedule).as_numpy("logits"), expected
    finally:
        client.close()


def grpc_infer(server, seed: int, **schedule):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        inputs, expected = _inputs(grpcclient, seed)
        return client.infer(support.MODEL_NAME, inputs, **schedule).as_numpy("logits"), expected
    finally:
        client.close()


def pending(server) -> float:
    return support.metric(server.metrics(), "nv_inference_pending_request_count", **MODEL)


def wait_queued(server, count: int) -> None:
    wait_for(lambda: pending(server) == count, timeout=30, interval=0.05, what=f"{count} requests queued")


def batch_levels(server, count: int) -> list[int]:
    """The priority level of each batch, in the order the batches ran."""

    def levels():
        found = [entry["priority_level"] for entry in server.logs if entry.get("msg") == "batch"]
        return found if len(found) >= count else None

    return wait_for(levels, timeout=30, interval=0.05, what=f"{count} batch log lines")


def run_clients(calls: list) -> tuple[ClientThreads, list]:
    """Starts each zero-argument call on its own thread; their results fill the list, in
    order, by the time the threads are joined."""
    results: list = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = ClientThreads(run, len(calls), timeout=60).start()
    return threads, results


def test_a_high_priority_request_overtakes_a_queue_of_low_priority_ones(package, monkeypatch):
    lows = 5
    monkeypatch.setenv("TRTAOTI_DELAY_SCHEDULER", str(lows + 1))
    flags = ("--priority-levels", "2", "--default-priority-level", "2", "--log-level", "debug", "--grpc-port", "0")
    with support.run_server(package, *ONE_REQUEST_PER_BATCH, *flags) as server:
        low_threads, low_results = run_clients(
            [lambda seed=seed: http_infer(server, seed) for seed in range(lows)]  # no priority: the default, 2
        )
        wait_queued(server, lows)
        high_threads, high_results = run_clients([lambda: grpc_infer(server, 99, priority=1)])
        high_threads.join()
        low_threads.join()

        for got, expected in [*low_results, *high_results]:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        # Queued last, ran first.
        assert batch_levels(server, lows + 1) == [1] + [2] * lows
        assert support.metric(server.metrics(), "nv_inference_request_success", **MODEL) == lows + 1


def test_without_priority_levels_the_same_queue_runs_in_arrival_order(package, monkeypatch):
    # The control for the test above: one level, so priority 1 is the only level and
    # the request queued last runs last.
    lows = 3
    monkeypatch.setenv("TRTAOTI_DELAY_SCHEDULER", str(lows + 1))
    with support.run_server(package, *ONE_REQUEST_PER_BATCH, "--log-level", "debug") as server:
        low_threads, _ = run_clients([lambda seed=seed: http_infer(server, seed) for seed in range(lows)])
        wait_queued(server, lows)
        last_threads, _ = run_clients([lambda: http_infer(server, 99, priority=1)])
        last_threads.join()
        low_threads.join()
        assert batch_levels(server, lows + 1) == [1] * (lows + 1)
        assert support.metric(server.metrics(), "nv_inference_queue_duration_us", **MODEL) > 0


def test_a_request_whose_timeout_expires_in_the_queue_gets_503_and_the_server_keeps_serving(package, monkeypatch):
    # Held until 3 are queued at once: the two with a timeout wait alone and expire.
    monkeypatch.setenv("TRTAOTI_DELAY_SCHEDULER", "3")
    flags = ("--allow-timeout-override", "--default-queue-timeout-us", "0", "--grpc-port", "0")
    with support.run_server(package, *ONE_REQUEST_PER_BATCH, *flags) as server:
        with pytest.raises(InferenceServerException) as http_error:
            http_infer(server, 1, timeout=100_000)
        assert http_error.value.status() == "503"
        assert http_error.value.message().startswith("Request timeout expired"), http_error.value.message()

        with pytest.raises(InferenceServerException) as grpc_error:
            grpc_infer(server, 2, timeout=100_000)
        assert grpc_error.value.status() == "StatusCode.UNAVAILABLE"
        assert "Request timeout expired" in grpc_error.value.message()

        # Still serving: three at once release the hold, and one more runs at once.
        threads, results = run_clients([lambda seed=seed: http_infer(server, seed) for seed in range(3, 6)])
        threads.join()
        results.append(grpc_infer(server, 6))
        for got, expected in results:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

        text = server.metrics()
        assert support.metric(text, "trtaoti_inference_request_rejected_total", reason="TIMEOUT", **MODEL) == 2
        assert support.metric(text, "trtaoti_inference_request_rejected_total", reason="QUEUE_FULL", **MODEL) == 0
        assert support.metric(text, "nv_inference_request_failure", reason="REJECTED", **MODEL) == 2
        assert support.metric(text, "nv_inference_request_success", **MODEL) == 4


def test_a_full_priority_level_rejects_with_503_while_another_level_still_queues(package, monkeypatch):
    # Held until 4 are queued: two per level is the most each level takes.
    monkeypatch.setenv("TRTAOTI_DELAY_SCHEDULER", "4")
    flags = ("--priority-levels", "2", "--default-priority-level", "2", "--max-queue-size", "2", "--grpc-port", "0")
    with support.run_server(package, *ONE_REQUEST_PER_BATCH, *flags) as server:
        low_threads, low_results = run_clients([lambda seed=seed: http_infer(server, seed) for seed in range(2)])
        wait_queued(server, 2)

        with pytest.raises(InferenceServerException) as http_error:
            http_infer(server, 2)
        assert http_error.value.status() == "503"
        assert http_error.value.message().startswith("Exceeds maximum queue size"), http_error.value.message()
        with pytest.raises(InferenceServerException) as grpc_error:
            grpc_infer(server, 3, priority=2)
        assert grpc_error.value.status() == "StatusCode.UNAVAILABLE"
        assert "Exceeds maximum queue size" in grpc_error.value.message()

        high_threads, high_results = run_clients(
            [lambda: http_infer(server, 4, priority=1), lambda: grpc_infer(server, 5, priority=1)]
        )
        high_threads.join()
        low_threads.join()
        for got, expected in [*low_results, *high_results]:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

        text = server.metrics()
        assert support.metric(text, "trtaoti_inference_request_rejected_total", reason="QUEUE_FULL", **MODEL) == 2
        assert support.metric(text, "nv_inference_request_failure", reason="REJECTED", **MODEL) == 2
        assert support.metric(text, "nv_inference_request_success", **MODEL) == 4


@pytest.fixture(scope="module")
def two_levels(package):
    with support.run_server(package, "--priority-levels", "2", "--grpc-port", "0") as server:
        yield server


def _raw_infer(server, parameters: dict) -> requests.Response:
    x, mask = (t.numpy() for t in support.example_inputs(ROWS))
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ],
        "parameters": parameters,
    }
    return requests.post(f"{server.base}/v2/models/{support.MODEL_NAME}/infer", json=body, timeout=30)


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"priority": 3}, "parameter 'priority' is 3"),
        ({"priority": -1}, "parameter 'priority' must be a non-negative integer"),
        ({"priority": 1.5}, "parameter 'priority' must be a non-negative integer"),
        ({"timeout": -5}, "parameter 'timeout' must be a non-negative integer"),
        ({"timeout": "100"}, "parameter 'timeout' must be a non-negative integer"),
    ],
)
def test_bad_schedule_parameters_are_400_naming_the_parameter(two_levels, parameters, named):
    response = _raw_infer(two_levels, parameters)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]
    assert _raw_infer(two_levels, {"priority": 2, "timeout": 5_000_000}).status_code == 200


def test_grpc_refuses_a_priority_beyond_the_levels_as_invalid_argument(two_levels):
    with pytest.raises(InferenceServerException) as error:
        grpc_infer(two_levels, 0, priority=3)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "parameter 'priority' is 3" in error.value.message()
    got, expected = grpc_infer(two_levels, 0, priority=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_model_config_reports_the_queue_policy_as_triton_does(package):
    flags = (
        "--priority-levels", "3", "--default-priority-level", "2", "--max-queue-size", "7",
        "--default-queue-timeout-us", "2500", "--timeout-action", "delay", "--allow-timeout-override",
        "--grpc-port", "0",
    )  # fmt: skip
    with support.run_server(package, *flags) as server:
        config = requests.get(f"{server.base}/v2/models/{support.MODEL_NAME}/config", timeout=10).json()
        batching = config["dynamic_batching"]
        assert batching["priority_levels"] == 3
        assert batching["default_priority_level"] == 2
        assert batching["default_queue_policy"] == {
            "max_queue_size": 7,
            "default_timeout_microseconds": 2500,
            "timeout_action": "DELAY",
            "allow_timeout_override": True,
        }
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            grpc_batching = client.get_model_config(support.MODEL_NAME, as_json=True)["config"]["dynamic_batching"]
        finally:
            client.close()
        # Protobuf's JSON writes 64-bit integers as strings.
        assert grpc_batching["priority_levels"] == "3"
        assert grpc_batching["default_priority_level"] == "2"
        assert grpc_batching["default_queue_policy"] == {
            "max_queue_size": 7,
            "default_timeout_microseconds": "2500",
            "timeout_action": "DELAY",
            "allow_timeout_override": True,
        }
        metadata = requests.get(f"{server.base}/v2", timeout=10).json()
        assert "schedule_policy" in metadata["extensions"]


def test_an_invalid_queue_policy_is_refused_at_start(package):
    binary = support.build_server()
    for flags, named in [
        (["--priority-levels", "0"], "--priority-levels"),
        (["--priority-levels", "2", "--default-priority-level", "3"], "--default-priority-level"),
        (["--timeout-action", "drop"], "--timeout-action"),
    ]:
        command = [str(binary), "--model", str(package), *flags]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert named in done.stderr
