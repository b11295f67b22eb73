"""--max-body-bytes: a body over it is refused with 413 from the Content-Length header
alone, at once and without reading the body; one within it is served."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

import server_support as support

pytestmark = pytest.mark.e2e

LIMIT = 4096


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(2, 4, 8)
    with support.run_server(package, "--max-body-bytes", str(LIMIT)) as running:
        yield running


def _body(size: int) -> bytes:
    """A valid inference request padded with trailing whitespace to exactly `size` bytes."""
    x, mask = (t.numpy() for t in support.example_inputs(2))
    request = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
                {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
            ]
        }
    ).encode()
    assert len(request) <= size
    return request + b" " * (size - len(request))


def _url(server) -> str:
    return f"{server.base}/v2/models/{support.MODEL_NAME}/infer"


def test_a_body_at_the_limit_is_served(server):
    response = requests.post(_url(server), data=_body(LIMIT), timeout=10)
    assert response.status_code == 200, response.text


def test_a_body_over_the_limit_gets_413(server):
    response = requests.post(_url(server), data=_body(LIMIT + 1), timeout=10)
    assert response.status_code == 413, response.text
    assert "--max-body-bytes" in response.json()["error"]
    assert response.headers.get("Connection") == "close"  # the unread body must not be parsed as a request


def test_a_chunked_body_over_the_limit_gets_413(server):
    body = _body(2 * LIMIT)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # no length: chunked encoding
    response = requests.post(_url(server), data=chunks, timeout=10)
    assert response.status_code == 413, response.text
    assert "--max-body-bytes" in response.json()["error"]


def test_a_huge_content_length_gets_413_at_once_without_the_body(server):
    """Only the headers are sent: the answer must come from them, not after the server
    waited for (and read) a terabyte."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.settimeout(2)  # the server's read timeout is 5 s; the answer must beat it
        started = time.monotonic()
        sock.sendall(
            f"POST /v2/models/{support.MODEL_NAME}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10**12}\r\n\r\n".encode()
        )
        received = b""
        try:
            while chunk := sock.recv(65536):  # until the server closes the connection
                received += chunk
        except TimeoutError:
            pytest.fail(f"no complete answer and no close within 2 s; got {received[:200]!r}")
        elapsed = time.monotonic() - started
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), received[:300]
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert str(10**12).encode() in payload and b"--max-body-bytes" in payload
    assert elapsed < 2
