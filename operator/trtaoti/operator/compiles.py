"""One compile Job per artifact key, however many models need it.

Two models with the same compile inputs get the same key. The first to find no
artifact starts the Job; the others wait for it (and are reconciled when it changes),
and check-then-create runs under a per-key lock so models reconciled at once still
make one Job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from trtaoti.api.models import TrtAotiModelSpec
from trtaoti.operator.children import list_in_scope
from trtaoti.operator.kube import Kube, api_error_message
from trtaoti.operator.observe import job_state
from trtaoti.resources import compile_job, names
from trtaoti.resources.config import ChildSettings
from trtaoti.resources.owner import Owner
from trtaoti.resources.status import Problem
from trtaoti.resources.targets import Target

log = logging.getLogger(__name__)


class CompileCoordinator:
    def __init__(self, kube: Kube, settings: ChildSettings, namespaces: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.settings = settings
        self.namespaces = namespaces
        # artifact key -> models waiting for another model's compile Job of that key.
        self._waiting: dict[str, set[tuple[str, str]]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, users)

    def waiting_for(self, key: str) -> set[tuple[str, str]]:
        """Models to reconcile when a compile Job of `key` changes."""
        return set(self._waiting.get(key, ()))

    async def job_for(
        self,
        owner: Owner,
        spec: TrtAotiModelSpec,
        target: Target,
        key: str | None,
        own_job: dict[str, Any] | None,
        *,
        needed: bool,
    ) -> tuple[dict[str, Any] | None, Problem | None]:
        """The compile Job that produces `key` for this model: its own, another model's
        running one (this model then waits for it), or, when `needed`, a new one."""
        if key is None:
            return own_job, None
        waiters = self._waiting.setdefault(key, set())
        waiters.discard((owner.namespace, owner.name))
        job, problem = own_job, None
        if needed and job is None:
            async with self._lock(key):
                job = await self._running_job(key)
                if job is not None:
                    waiters.add((owner.namespace, owner.name))
                else:
                    job, problem = await self._start(owner, spec, target, key)
        if not waiters:
            self._waiting.pop(key, None)
        return job, problem

    @contextlib.asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _running_job(self, key: str) -> dict[str, Any] | None:
        selector = f"{names.MANAGED_SELECTOR},{names.LABEL_ARTIFACT_KEY}={key}"
        for job in await list_in_scope(self.kube, self.namespaces, "Job", selector):
            if job_state(job) == "Running" and not job["metadata"].get("deletionTimestamp"):
                return job
        return None

    async def _start(
        self, owner: Owner, spec: TrtAotiModelSpec, target: Target, key: str
    ) -> tuple[dict[str, Any] | None, Problem | None]:
        config_map = compile_job.build_spec_config_map(owner, spec, target, key)
        job = compile_job.build_compile_job(owner, spec, target, key, self.settings)
        try:
            await self.kube.apply(config_map)
            created = await self.kube.apply(job)
        except ApiException as error:
            if error.status in (400, 403, 422):
                return None, Problem("JobRejected", f"compile Job rejected: {api_error_message(error)}")
            raise
        log.info("started compile Job %s/%s for key %s", owner.namespace, job["metadata"]["name"], key)
        return created, None
