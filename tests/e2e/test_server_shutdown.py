"""SIGTERM under load: readiness drops, new requests are refused (503 or connection
refused), and every request the server accepted is answered; the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

import server_support as support
from support.threads import ClientThreads
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def test_sigterm_during_load_loses_no_accepted_request():
    support.build_server()
    package = support.build_package(2, 4, 8)
    x, mask = (t.numpy() for t in support.example_inputs(3, seed=11))
    expected_logits, _ = support.eager_outputs(x, mask)
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [3, support.IN_FEATURES], "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": [3, support.MASK_FEATURES], "data": mask.flatten().tolist()},
        ]
    }
    with support.run_server(package, "--max-queue-delay-us", "1000") as server:
        url = f"{server.base}/v2/models/{support.MODEL_NAME}/infer"
        outcomes: list[str] = []
        lock = threading.Lock()
        successes = threading.Semaphore(0)
        stop_at = time.monotonic() + 60

        def client() -> None:
            session = requests.Session()
            while time.monotonic() < stop_at:
                try:
                    response = session.post(url, json=body, timeout=30)
                except requests.ConnectionError:
                    outcome = "refused"
                else:
                    if response.status_code == 200:
                        logits = np.array(response.json()["outputs"][0]["data"]).reshape(3, -1)
                        outcome = "ok" if np.allclose(logits, expected_logits, atol=1e-5) else "wrong"
                        successes.release()
                    elif response.status_code == 503 and "shutting down" in response.json()["error"]:
                        outcome = "rejected"
                    else:
                        outcome = f"http {response.status_code}: {response.text[:200]}"
                with lock:
                    outcomes.append(outcome)
                if outcome == "refused":
                    return

        with ClientThreads(client, 8, timeout=60, args=lambda index: ()):
            for _ in range(200):  # load is flowing
                assert successes.acquire(timeout=30)
            rc = server.terminate(timeout=60)

        assert rc == 0, "".join(server.raw[-20:])
        unexpected = [o for o in outcomes if o not in ("ok", "rejected", "refused")]
        assert not unexpected, unexpected[:5]
        stopped = server.log_entry("stopped")
        assert stopped is not None, "".join(server.raw[-20:])
        assert stopped["accepted"] == stopped["completed"]
        # Every request the batcher accepted reached its client as a correct 200.
        assert outcomes.count("ok") == stopped["accepted"]
        assert server.log_entry("draining") is not None


def test_idle_keep_alive_connection_does_not_hold_the_drain():
    """Kubernetes kills a pod 30 s after SIGTERM by default; an idle client connection
    (a load balancer's pooled keep-alive) must not keep the server alive that long."""
    support.build_server()
    package = support.build_package(2, 4, 8)
    with support.run_server(package, "--keep-alive-timeout-s", "2") as server:
        idle = requests.Session()
        assert idle.get(f"{server.base}/v2/health/ready", timeout=10).status_code == 200
        started = time.monotonic()
        assert server.terminate(timeout=25) == 0
        drained_in = time.monotonic() - started
        idle.close()
    assert drained_in < 10, f"SIGTERM took {drained_in:.1f} s with one idle keep-alive connection open"


def test_sigterm_while_the_model_loads_exits_instead_of_serving():
    """A pod deleted while its (possibly minutes-long) model load runs: the SIGTERM waits
    until the server can act on it, and then it must stop, not start serving unready."""
    support.build_server()
    package = support.build_package(2, 4, 8)
    process = subprocess.Popen(
        [str(support.SERVER_BIN), "--model", str(package), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        for line in process.stderr:
            lines.append(line)
            if '"loading model"' in line:  # stop signals are blocked from here on
                process.send_signal(signal.SIGTERM)
                break
        lines += process.communicate(timeout=30)[1].splitlines(keepends=True)
    except subprocess.TimeoutExpired:
        process.kill()
        lines += process.communicate()[1].splitlines(keepends=True)
        pytest.fail("SIGTERM during the model load left the server running:\n" + "".join(lines[-10:]))
    assert process.returncode == 0, "".join(lines[-10:])
    messages = [json.loads(line).get("msg") for line in lines if line.startswith("{")]
    assert "draining" in messages and messages[-1] == "stopped", messages


KEEP_ALIVE_CLIENTS = 64


def _request_and_answer(seed: int) -> tuple[str, np.ndarray]:
    """A batch-3 JSON inference request and the logits eager PyTorch gives for it."""
    x, mask = (t.numpy() for t in support.example_inputs(3, seed=seed))
    expected_logits, _ = support.eager_outputs(x, mask)
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [3, support.IN_FEATURES], "data": x.flatten().tolist()},
                {
                    "name": "mask",
                    "datatype": "INT64",
                    "shape": [3, support.MASK_FEATURES],
                    "data": mask.flatten().tolist(),
                },
            ]
        }
    )
    return body, expected_logits


def test_sigterm_loses_no_request_on_keep_alive_connections():
    """Each client keeps one HTTP/1.1 connection and sends requests back to back. During
    the drain every response must say `Connection: close`, so no client sends another
    request on a connection the server is about to close: a request written on a
    connection that had already carried a response must always get one. (The drain's
    503s used to say Keep-Alive; the next request on that connection met EOF.)

    A connect refused after the listener closed is fine, and so is a reset on a fresh
    connection before any response: the kernel queued it, but the listener closed before
    the server accepted it, so the request never reached the server. Both are counted
    apart and reported."""
    support.build_server()
    package = support.build_package(2, 4, 8)
    body, expected_logits = _request_and_answer(seed=12)
    path = f"/v2/models/{support.MODEL_NAME}/infer"
    with support.run_server(package, "--max-queue-delay-us", "1000", "--keep-alive-timeout-s", "2") as server:
        outcomes: list[str] = []
        keep_alive_503s: list[str] = []
        lock = threading.Lock()
        successes = threading.Semaphore(0)
        stop_at = time.monotonic() + 90

        def record(outcome: str) -> None:
            with lock:
                outcomes.append(outcome)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            reused = False  # this connection already carried a response
            try:
                while time.monotonic() < stop_at:
                    if conn.sock is None:  # new connection (http.client drops one that said close)
                        try:
                            conn.connect()
                        except ConnectionRefusedError:
                            record("refused")
                            return
                        reused = False
                    try:
                        conn.request("POST", path, body, {"Content-Type": "application/json"})
                        response = conn.getresponse()
                        data = response.read()
                    except (OSError, http.client.HTTPException) as error:
                        record(f"lost: {error!r}" if reused else "reset before accept")
                        return
                    reused = not response.will_close
                    if response.status == 200:
                        logits = np.array(json.loads(data)["outputs"][0]["data"]).reshape(3, -1)
                        record("ok" if np.allclose(logits, expected_logits, atol=1e-5) else "wrong")
                        successes.release()
                    elif response.status == 503 and "shutting down" in json.loads(data)["error"]:
                        record("rejected")
                        if not response.will_close:
                            with lock:
                                keep_alive_503s.append(response.getheader("Keep-Alive", ""))
                            continue  # the server kept the connection open: use it
                        return  # told to go away; a real client turns to another replica
                    else:
                        record(f"http {response.status}: {data[:200]!r}")
                        return
            finally:
                conn.close()

        with ClientThreads(client, KEEP_ALIVE_CLIENTS, timeout=60, args=lambda index: ()):
            for _ in range(300):  # load is flowing on every connection
                assert successes.acquire(timeout=30)
            rc = server.terminate(timeout=60)

        counts = {o: outcomes.count(o) for o in set(outcomes)}
        print("outcomes:", counts)
        assert rc == 0, "".join(server.raw[-20:])
        lost = [o for o in outcomes if o.startswith("lost")]
        assert not lost, f"{len(lost)} requests got no response on a reused keep-alive connection: {lost[:3]}"
        unexpected = [o for o in outcomes if o not in ("ok", "rejected", "refused", "reset before accept")]
        assert not unexpected, unexpected[:5]
        assert not keep_alive_503s, f"{len(keep_alive_503s)} 'shutting down' answers kept the connection alive"
        stopped = server.log_entry("stopped")
        assert stopped is not None and stopped["accepted"] == stopped["completed"], "".join(server.raw[-20:])
        assert outcomes.count("ok") == stopped["accepted"]


def test_requests_on_open_connections_are_answered_during_the_drain():
    """In Kubernetes the pod's endpoint is gone by the time SIGTERM comes (preStop), but
    kube-proxy keeps connections opened before on this pod, and their clients keep
    sending. The drain answers those requests (with `Connection: close`, so the client
    moves to another replica) instead of failing them with 503; readiness fails at once
    and new connections are refused."""
    support.build_server()
    package = support.build_package(2, 4, 8)
    body, expected_logits = _request_and_answer(seed=13)
    path = f"/v2/models/{support.MODEL_NAME}/infer"
    # The keep-alive timeout bounds how long the idle connection below holds the drain.
    with support.run_server(package, "--keep-alive-timeout-s", "20") as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            client.request("POST", path, body, {"Content-Type": "application/json"})
            first = client.getresponse()
            first.read()
            probe.request("GET", "/v2/health/ready")
            ready = probe.getresponse()
            ready.read()
            assert first.status == 200 and not first.will_close and ready.status == 200 and not ready.will_close

            server.process.send_signal(signal.SIGTERM)
            wait_for(lambda: server.log_entry("draining"), timeout=10, what="the server to start draining")

            client.request("POST", path, body, {"Content-Type": "application/json"})
            during = client.getresponse()
            data = during.read()
            assert during.status == 200, data[:200]
            assert during.getheader("Connection") == "close"
            logits = np.array(json.loads(data)["outputs"][0]["data"]).reshape(3, -1)
            assert np.allclose(logits, expected_logits, atol=1e-5)

            probe.request("GET", "/v2/health/ready")
            unready = probe.getresponse()
            unready.read()
            assert unready.status == 503 and unready.getheader("Connection") == "close"
            with pytest.raises(ConnectionRefusedError):
                http.client.HTTPConnection("127.0.0.1", server.port, timeout=5).connect()
        finally:
            client.close()
            probe.close()
        assert server.process.wait(timeout=30) == 0
    stopped = server.log_entry("stopped")
    assert stopped is not None and stopped["accepted"] == stopped["completed"] == 2
