"""What the operator reads off a compile Job and its pods (operator/observe.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from trtaoti.operator.observe import CONTAINER_NAME, observe_job


class PodsOnly:
    """The one Kube call observe_job makes: listing the Job's pods."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    async def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        assert kind == "Pod" and selector == "batch.kubernetes.io/job-name=mlp-online-1234"
        return self.pods


def _job(failed: int, backoff_limit: int = 2) -> dict[str, Any]:
    status: dict[str, Any] = {"active": 1}
    if failed:
        status["failed"] = failed
    return {
        "metadata": {"name": "mlp-online-1234", "namespace": "ns"},
        "spec": {"backoffLimit": backoff_limit},
        "status": status,
    }


def _pod(name: str, created: str, phase: str, terminated: dict[str, Any] | None = None) -> dict[str, Any]:
    state = {"terminated": terminated} if terminated else {"running": {}}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"nodeName": "node-0"},
        "status": {"phase": phase, "containerStatuses": [{"name": CONTAINER_NAME, "state": state}]},
    }


def test_a_running_job_after_a_killed_attempt_says_which_attempt_and_why():
    killed = _pod(
        "a",
        "2026-12-02T07:00:00Z",
        "Failed",
        {"exitCode": 137, "reason": "Error", "message": "[compile +12.0s] AOTInductor: compiling the package"},
    )
    retry = _pod("b", "2026-12-02T07:01:00Z", "Running")
    observed = asyncio.run(observe_job(PodsOnly([retry, killed]), _job(failed=1)))
    assert observed.state == "Running"
    assert observed.message.startswith("attempt 2 of 3 running; 1 failed (last: exit code 137")
    assert "AOTInductor" in observed.message


def test_the_latest_failed_attempt_is_the_one_reported():
    first = _pod("a", "2026-12-02T07:00:00Z", "Failed", {"exitCode": 1, "reason": "Error", "message": "first"})
    second = _pod("b", "2026-12-02T07:01:00Z", "Failed", {"exitCode": 137, "reason": "OOMKilled"})
    observed = asyncio.run(observe_job(PodsOnly([second, first]), _job(failed=2, backoff_limit=4)))
    assert observed.message == "attempt 3 of 5 running; 2 failed (last: exit code 137)"


def test_a_first_attempt_reports_nothing_extra():
    observed = asyncio.run(observe_job(PodsOnly([_pod("a", "2026-12-02T07:00:00Z", "Running")]), _job(failed=0)))
    assert observed.state == "Running" and observed.message == ""
