"""Progress lines on stdout (the Job's log) and the final message for Kubernetes."""

from __future__ import annotations

import os
import sys
import time

_STARTED = time.monotonic()
TERMINATION_LOG = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 3800


def step(message: str) -> None:
    print(f"[compile +{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def write_termination_message(message: str) -> None:
    """Write the Job's outcome where `kubectl describe pod` and the operator read it."""
    path = os.environ.get("TRTAOTI_TERMINATION_LOG", TERMINATION_LOG)
    if not os.path.exists(path):
        return
    data = message.encode()[:TERMINATION_LIMIT]
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        print(f"cannot write termination message to {path}: {exc}", file=sys.stderr, flush=True)
