"""Kopf handlers: they only translate watch events into work-queue keys.

No handler here changes anything. Kopf watches TrtAotiModels and the Jobs and
Deployments the operator labelled; each event enqueues the owning model, and a
periodic resync enqueues every known model as a safety net for missed events. The
reconciler (trtaoti.operator.reconciler) does the work. Because no Kopf *changing*
handler (create/update/delete) is registered, Kopf stores no progress annotations and
adds no finalizer to the CRs: the only finalizer is the operator's own, and only
when storage.retentionPolicy is Delete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from trtaoti.api.models import GROUP, PLURAL, VERSION
from trtaoti.operator.config import OperatorConfig
from trtaoti.operator.kube import Kube, load_api_client
from trtaoti.operator.observe import job_state, observe_deployment
from trtaoti.operator.reconciler import Reconciler
from trtaoti.operator.workqueue import WorkQueue
from trtaoti.resources import names

log = logging.getLogger(__name__)
SLOW_RECONCILE_SECONDS = 1.0
CHILD_FILTER = {names.LABEL_MANAGED_BY: names.MANAGED_BY}


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf connects with the same credentials as the reconciler's client."""
    if memo.config.kubeconfig:
        # `trtaoti operator --kubeconfig` exported it as $KUBECONFIG, which this reads.
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Kopf would otherwise list/watch every CRD and namespace (more RBAC, more load);
    # the CRD is installed before the operator, so startup discovery is enough.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Only our children, filtered by the apiserver, not every Job in the cluster.
    settings.watching.label_selectors["batch", "jobs"] = names.MANAGED_SELECTOR
    settings.watching.label_selectors["apps", "deployments"] = names.MANAGED_SELECTOR

    # The client's threads, and its kept connections, sized from the worker count.
    kube = Kube(load_api_client(config.kubeconfig), max_concurrent_requests=config.concurrency)
    reconciler = Reconciler(kube, config.children, namespaces=config.namespaces)
    memo.reconciler = reconciler

    async def reconcile(key: Any) -> None:
        namespace, name = key
        started = time.monotonic()
        again = await reconciler.reconcile(namespace, name)
        elapsed = time.monotonic() - started
        log.log(
            logging.INFO if elapsed > SLOW_RECONCILE_SECONDS else logging.DEBUG,
            "reconciled %s/%s in %.0f ms",
            namespace,
            name,
            elapsed * 1000,
        )
        if again is not None:
            queue.add_after(key, again)

    memo.known = {}  # (namespace, name) -> (generation, deleting) last enqueued
    memo.children = {}  # child uid -> what the reconciler last read from it
    memo.queue = queue = WorkQueue(reconcile, concurrency=config.concurrency)
    memo.tasks = [
        asyncio.create_task(memo.queue.run(), name="reconcile-queue"),
        asyncio.create_task(_resync(memo, config.resync_seconds), name="resync"),
    ]


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for task in getattr(memo, "tasks", []):
        task.cancel()
    await asyncio.gather(*getattr(memo, "tasks", []), return_exceptions=True)


async def _resync(memo: kopf.Memo, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        for key in list(memo.known):
            memo.queue.add(key)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_event(
    type: str | None, name: str, namespace: str | None, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    if namespace is None:  # Kopf's type allows cluster-scoped objects; TrtAotiModel is namespaced
        return
    key = (namespace, name)
    if type == "DELETED":
        memo.known.pop(key, None)
        return
    # The operator's own status and finalizer patches come back as events too; only a
    # new generation (spec) or a deletion is worth a reconcile. The resync catches the rest.
    revision = (meta.get("generation"), meta.get("deletionTimestamp") is not None)
    if memo.known.get(key) == revision:
        return
    memo.known[key] = revision
    memo.queue.add(key)


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_FILTER)
async def job_event(
    type: str | None, body: kopf.Body, labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    # Only a Job's outcome matters to the reconciler, and its failed attempts (the
    # profile's message says a retry runs), not its pods coming and going.
    failed_attempts = int((body.get("status") or {}).get("failed") or 0)
    if not _changed(memo, type, body, (job_state(body), failed_attempts)):
        return
    _enqueue_owner(labels, namespace, memo)
    # Models waiting for this compile (same artifact key, another owner) move on with it.
    for key in memo.reconciler.waiting_for(labels.get(names.LABEL_ARTIFACT_KEY, "")):
        memo.queue.add(key)


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_FILTER)
async def deployment_event(
    type: str | None, body: kopf.Body, labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    if _changed(memo, type, body, observe_deployment(body)):
        _enqueue_owner(labels, namespace, memo)


def _changed(memo: kopf.Memo, type: str | None, body: kopf.Body, signature: Any) -> bool:
    """Whether a child changed in a way the reconciler reads (see trtaoti.operator.observe)."""
    uid = body.get("metadata", {}).get("uid")
    if type == "DELETED":
        memo.children.pop(uid, None)
        return True
    if memo.children.get(uid) == signature:
        return False
    memo.children[uid] = signature
    return True


def _enqueue_owner(labels: kopf.Labels, namespace: str | None, memo: kopf.Memo) -> None:
    model = labels.get(names.LABEL_MODEL)
    if model and namespace is not None:
        memo.queue.add((namespace, model))
