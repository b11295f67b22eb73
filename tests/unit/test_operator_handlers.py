"""Which child events wake the reconciler (operator/handlers.py): the ones that change
what it reads, and no others."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from trtaoti.operator.handlers import job_event
from trtaoti.resources import names


class Queue:
    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, key: Any) -> None:
        self.added.append(key)


class NobodyWaits:
    def waiting_for(self, key: str) -> list[Any]:
        return []


def _job(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"uid": "job-uid", "name": "mlp-online-1234", "namespace": "ns"}, "status": status}


def test_a_failed_attempt_of_a_running_job_wakes_the_reconciler_once():
    memo = kopf.Memo(children={}, queue=Queue(), reconciler=NobodyWaits())
    labels = {names.LABEL_MODEL: "mlp", names.LABEL_ARTIFACT_KEY: "1234"}

    def event(status: dict[str, Any]) -> int:
        before = len(memo.queue.added)
        asyncio.run(job_event(type="MODIFIED", body=kopf.Body(_job(status)), labels=labels, namespace="ns", memo=memo))
        return len(memo.queue.added) - before

    assert event({"active": 1}) == 1  # first sight
    assert event({"active": 1, "ready": 1}) == 0  # its pod coming and going: nothing to read
    assert event({"active": 1, "failed": 1}) == 1  # a failed attempt, retried
    assert event({"active": 1, "failed": 1}) == 0
    assert event({"failed": 1, "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}) == 1
