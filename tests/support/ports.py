"""Loopback ports for the local components."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


class PortBusy(RuntimeError):
    pass


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ensure_free(ports: dict[str, int]) -> None:
    """Raises PortBusy naming the first port (and its user) that cannot be bound."""
    for user, port in ports.items():
        with socket.socket() as s:
            # As the servers do: lingering TIME_WAIT connections from a previous run
            # must not count as "in use"; a listener still does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                raise PortBusy(
                    f"port {port} on {HOST} (for {user}) is in use: stop what holds it "
                    "(or an old dev cluster: make dev-cluster-down), or set TRTAOTI_DEV_PORT_BASE"
                ) from None
