"""Kubernetes Events on a TrtAotiModel (what `kubectl describe` shows).

Posted with the operator's own client rather than Kopf's event poster so the
reconciler, which runs in its own work-queue tasks, needs no Kopf context.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from trtaoti.operator.kube import Kube
from trtaoti.resources.names import MANAGED_BY
from trtaoti.resources.status import Transition, now

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


async def post(kube: Kube, body: dict[str, Any], event: Transition) -> None:
    meta = body["metadata"]
    timestamp = now()
    manifest = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MAX_MESSAGE],
        "source": {"component": MANAGED_BY},
        "reportingComponent": f"trtaoti.dev/{MANAGED_BY}",
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }
    try:
        await kube.create(manifest)
    except Exception as error:  # noqa: BLE001 - an event is best effort: never fail a reconcile for it
        log.warning("could not post event %s on %s/%s: %s", event.reason, meta["namespace"], meta["name"], error)
