"""Dynamic batching through the real server: concurrent clients coalesce into fewer
model executions, each client still gets exactly its own rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tritonclient.http as httpclient

import server_support as support

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
                    inputs = [httpclient.InferInput("x", list(x.shape), "FP32"),
                              httpclient.InferInput("mask", list(mask.shape), "INT64")]
                    inputs[0].set_data_from_numpy(x, binary_data=True)
                    inputs[1].set_data_from_numpy(mask, binary_data=bool(i % 2))
                    result = triton.infer(support.MODEL_NAME, inputs)
                    logits, label = support.eager_outputs(x, mask)
                    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-5, atol=1e-5)
                    np.testing.assert_array_equal(result.as_numpy("label"), label)
            except Exception as exc:  # collected: a thread's assert would otherwise vanish
                errors.append(f"client {index}: {exc!r}")
            finally:
                triton.close()

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
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
