"""Progress lines on stdout (the Job's log) and the final message for Kubernetes."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_STARTED = time.monotonic()
TERMINATION_LOG = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 3800


def step(message: str) -> None:
    print(f"[compile +{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def termination_summary(outcome: dict[str, Any]) -> str:
    """`outcome` as one line of JSON that fits Kubernetes' limit: an over-long "error"
    keeps its end (where the cause usually is), the other fields stay whole."""
    text = json.dumps(outcome, separators=(",", ":"))
    error = outcome.get("error")
    if len(text.encode()) <= TERMINATION_LIMIT or not isinstance(error, str):
        return text
    overflow = len(text.encode()) - TERMINATION_LIMIT
    kept = error.encode()[overflow + 64 :].decode(errors="ignore")
    return json.dumps({**outcome, "error": "..." + kept}, separators=(",", ":"))


def write_termination_message(outcome: dict[str, Any]) -> None:
    """Write the Job's outcome (JSON, see termination_summary) where `kubectl describe pod`
    and the operator read it."""
    path = os.environ.get("TRTAOTI_TERMINATION_LOG", TERMINATION_LOG)
    if not os.path.exists(path):
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(termination_summary(outcome))
    except OSError as exc:
        print(f"cannot write termination message to {path}: {exc}", file=sys.stderr, flush=True)
