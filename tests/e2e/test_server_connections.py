"""Many client connections, opened in a burst and kept open: every one is served, and a
new one (a kubelet probe, which opens a fresh connection with a 2 s timeout) is answered
at once."""

from __future__ import annotations

import http.client
import time

import pytest

import server_support as support

pytestmark = pytest.mark.e2e

# Above the 128 threads a fixed pool used to have: each open keep-alive connection
# held one, and the next connection waited for the keep-alive timeout.
OPEN_CONNECTIONS = 200


def live_status(conn: http.client.HTTPConnection) -> int:
    """GET /v2/health/live on an HTTP/1.1 keep-alive connection, kept open afterwards."""
    conn.request("GET", "/v2/health/live")
    response = conn.getresponse()
    response.read()
    assert not response.will_close, "the server closed a keep-alive connection"
    return response.status


def test_a_probe_is_answered_while_hundreds_of_connections_stay_open():
    support.build_server()
    package = support.build_package(2, 4, 8)
    with support.run_server(package) as server:
        held = []
        try:
            # A burst of connections first, as a client pool opens them (cpp-httplib's own
            # listen backlog of 5 dropped most of such a burst), then a request on each.
            for _ in range(OPEN_CONNECTIONS):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.connect()
                held.append(conn)
            # Each connection is served (a thread holds it from here until it closes).
            statuses = [live_status(conn) for conn in held]
            assert statuses == [200] * OPEN_CONNECTIONS

            started = time.monotonic()
            probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)  # the kubelet's timeout
            try:
                probe.request("GET", "/v2/health/ready")
                status = probe.getresponse().status
            finally:
                probe.close()
            answered_in = time.monotonic() - started
            assert status == 200 and answered_in < 2

            # The held connections are still live, not dropped to make room.
            for conn in held[:: OPEN_CONNECTIONS // 10]:
                assert live_status(conn) == 200
        finally:
            for conn in held:
                conn.close()
