"""Artifacts' lifecycle: with retentionPolicy Delete, a finalizer holds the model's
deletion until the artifacts only it used are removed from storage.

An artifact is shared by content (the key), so one another model still names in its
status outlives this one; a model that is itself being deleted does not keep it.
"""

from __future__ import annotations

import logging
from typing import Any

from trtaoti.api.models import RetentionPolicy, TrtAotiModelSpec, TrtAotiModelStatus
from trtaoti.operator import events
from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.operator.children import list_children, list_in_scope
from trtaoti.operator.kube import Kube
from trtaoti.operator.storage_access import storage_env
from trtaoti.resources import names, serving
from trtaoti.resources import status as status_rules
from trtaoti.resources.owner import Owner

log = logging.getLogger(__name__)


class ArtifactCollector:
    def __init__(self, kube: Kube, store: ArtifactStore, namespaces: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.store = store
        self.namespaces = namespaces

    async def ensure_finalizer(self, body: dict[str, Any], spec: TrtAotiModelSpec) -> None:
        """Hold deletion for artifact cleanup only when retentionPolicy is Delete."""
        finalizers = list(body["metadata"].get("finalizers") or [])
        wanted = spec.storage.retention_policy == RetentionPolicy.delete
        if wanted == (names.ARTIFACTS_FINALIZER in finalizers):
            return
        if wanted:
            finalizers.append(names.ARTIFACTS_FINALIZER)
        else:
            finalizers.remove(names.ARTIFACTS_FINALIZER)
        await self._patch_finalizers(body, finalizers)

    async def finalize(self, body: dict[str, Any]) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if names.ARTIFACTS_FINALIZER not in finalizers:
            return
        owner = Owner.from_body(body)
        spec = TrtAotiModelSpec.model_validate(body.get("spec") or {})
        keys = await self._keys_of(owner, body)
        still_used = await self._keys_used_elsewhere(owner)
        env, problem = await storage_env(self.kube, owner, spec)
        if problem is not None:
            await events.post(
                self.kube,
                body,
                status_rules.Transition("Warning", "ArtifactsRetained", f"cannot delete artifacts: {problem.message}"),
            )
        else:
            for key in sorted(keys - still_used):
                await self.store.delete_artifact(spec.storage.uri, env, key)
                log.info("deleted artifact %s%s/ of %s/%s", spec.storage.uri, key, owner.namespace, owner.name)
            if keys & still_used:
                log.info("kept artifacts still used by other models: %s", sorted(keys & still_used))
        finalizers.remove(names.ARTIFACTS_FINALIZER)
        await self._patch_finalizers(body, finalizers)

    async def _patch_finalizers(self, body: dict[str, Any], finalizers: list[str]) -> None:
        meta = body["metadata"]
        # resourceVersion makes this a compare-and-swap: never drop someone else's finalizer.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        await self.kube.merge_patch("TrtAotiModel", meta["namespace"], meta["name"], patch)

    async def _keys_of(self, owner: Owner, body: dict[str, Any]) -> set[str]:
        status = TrtAotiModelStatus.model_validate(body.get("status") or {})
        keys = {p.artifact_key for p in status.profiles if p.artifact_key}
        keys |= {p.artifact.key for p in status.profiles if p.artifact}
        keys |= set(status.superseded_artifact_keys)  # earlier specs' artifacts are this model's too
        children = await list_children(self.kube, owner)
        for job in children.of("Job").values():
            key = (job["metadata"].get("labels") or {}).get(names.LABEL_ARTIFACT_KEY)
            if key:
                keys.add(key)
        for deployment in children.of("Deployment").values():
            artifact = serving.served_artifact(deployment)
            if artifact:
                keys.add(artifact.key)
        return keys

    async def _keys_used_elsewhere(self, owner: Owner) -> set[str]:
        """Keys other TrtAotiModels (any namespace in scope) use."""
        used: set[str] = set()
        for other in await list_in_scope(self.kube, self.namespaces, "TrtAotiModel"):
            if other["metadata"].get("uid") == owner.uid:
                continue
            leaving = other["metadata"].get("deletionTimestamp") and names.ARTIFACTS_FINALIZER in (
                other["metadata"].get("finalizers") or []
            )
            if leaving:
                continue  # also deleting its artifacts (e.g. its namespace is going away)
            status = TrtAotiModelStatus.model_validate(other.get("status") or {})
            used |= {p.artifact_key for p in status.profiles if p.artifact_key}
            used |= {p.artifact.key for p in status.profiles if p.artifact}
        return used
