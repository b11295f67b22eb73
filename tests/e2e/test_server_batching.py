"""Dynamic batching through the real server: concurrent clients coalesce into fewer
model executions, each client still gets exactly its own rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tritonclient.http as httpclient

import server_support as support
from support.threads import ClientThreads

pytestmark = pytest.mark.e2e


def test_concurrent_clients_are_batched_and_answered_exactly():
    support.build_server()
    package = support.build_package(2, 4, 8)
    clients, per_client = 16, 20
    with support.run_server(package, "--max-queue-delay-us", "2000") as server:
        errors: list[str] = []

        def client_loop(index: int) -> None:
            triton = httpclient.InferenceServerClient(server.url)
            try:
                for i in range(per_client):
                    batch = 1 + (index + i) % 3
                    x, mask = (t.numpy() for t in support.example_inputs(batch, seed=index * 1000 + i))
                    inputs = [
                        httpclient.InferInput("x", list(x.shape), "FP32"),
                        httpclient.InferInput("mask", list(mask.shape), "INT64"),
                    ]
                    inputs[0].set_data_from_numpy(x, binary_data=True)
                    inputs[1].set_data_from_numpy(mask, binary_data=bool(i % 2))
                    result = triton.infer(support.MODEL_NAME, inputs)
                    logits, label = support.eager_outputs(x, mask)
                    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-5, atol=1e-5)
                    np.testing.assert_array_equal(result.as_numpy("label"), label)
            except Exception as exc:  # noqa: BLE001 - collected: a thread's assert would otherwise vanish
                errors.append(f"client {index}: {exc!r}")
            finally:
                triton.close()
                # Its __del__ closes again, through gevent's per-thread hub: let that happen
                # here, not later in whichever thread the garbage collector runs.
                del triton

        with ClientThreads(client_loop, clients, timeout=120):
            pass
        assert not errors, errors[:5]

        text = server.metrics()
        model = {"model": support.MODEL_NAME, "version": "1"}
        requests_done = support.metric(text, "nv_inference_request_success", **model)
        executions = support.metric(text, "nv_inference_exec_count", **model)
        assert requests_done == clients * per_client
        assert executions < requests_done, f"no batching: {executions} executions for {requests_done} requests"
        # Some execution carried more rows than any single request (at most 3).
        batches = support.metric(text, "trtaoti_batch_size_count", **model)
        up_to_two = support.metric(text, "trtaoti_batch_size_bucket", le="2", **model)
        assert batches > up_to_two, "no batch larger than 2 rows formed"


def _big_request_storm(server, rows: int, clients: int) -> list[tuple[int, str, bool]]:
    """`clients` threads each send one request of `rows` rows at once; returns
    (status, error message, outputs correct) per request."""
    import requests

    x, mask = (t.numpy() for t in support.example_inputs(rows, seed=rows))
    logits, _ = support.eager_outputs(x, mask)
    body, headers = support.binary_infer_request(x, mask, "logits")
    results: list[tuple[int, str, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def send() -> None:
        start.wait(timeout=30)
        response = requests.post(
            f"{server.base}/v2/models/{support.MODEL_NAME}/infer",
            data=body,
            headers=headers,
            timeout=120,
        )
        correct = False
        error = ""
        if response.status_code == 200:
            offset = int(response.headers["Inference-Header-Content-Length"])
            got = np.frombuffer(response.content[offset:], dtype=np.float32).reshape(rows, -1)
            correct = bool(np.allclose(got, logits, rtol=1e-5, atol=1e-5))
        else:
            error = response.json()["error"]
        with lock:
            results.append((response.status_code, error, correct))

    with ClientThreads(send, clients, timeout=180, args=lambda index: ()):
        pass
    assert len(results) == clients
    return results


def test_a_full_queue_rejects_with_503_and_counts_it():
    # A 20000-row request is split into 2500 batches of 8 and stays queued until its
    # last chunk is taken, so with room for one queued request the others are refused.
    package = support.build_package(2, 4, 8)
    with support.run_server(package, "--max-queue-size", "1") as server:
        results = _big_request_storm(server, rows=20000, clients=6)
        rejected = [r for r in results if r[0] == 503]
        assert rejected and all("Exceeds maximum queue size" in error for _, error, _ in rejected), results
        assert all(correct for status, _, correct in results if status == 200)
        assert any(status == 200 for status, _, _ in results)
        text = server.metrics()
        model = {"model": support.MODEL_NAME, "version": "1"}
        assert support.metric(text, "nv_inference_request_failure", reason="REJECTED", **model) == len(rejected)


def test_requests_queued_past_the_timeout_get_503():
    package = support.build_package(2, 4, 8)
    # The first 40000-row request takes 5000 batches (>= 15 ms even at the floor's 3 us
    # each); the ones queued behind it pass their 5 ms deadline before their turn.
    with support.run_server(package, "--request-timeout-ms", "5") as server:
        results = _big_request_storm(server, rows=40000, clients=6)
        timed_out = [r for r in results if r[0] == 503]
        assert timed_out and all("Request timeout expired" in error for _, error, _ in timed_out), results
        assert all(correct for status, _, correct in results if status == 200)
