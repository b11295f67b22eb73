"""A model's child objects: listing them, the names they need, and removing the unwanted.

Children are found by label and kept only when their ownerReference names the model's
uid, so a same-named model recreated in between never inherits the old one's objects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from trtaoti.operator.kube import Kube
from trtaoti.resources import names
from trtaoti.resources.owner import Owner
from trtaoti.resources.status import ProfileObservation
from trtaoti.resources.targets import Target

log = logging.getLogger(__name__)

SERVING_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")
COMPILE_KINDS = ("Job", "ConfigMap")


@dataclasses.dataclass
class Children:
    """Everything labelled as belonging to one CR, by kind then name."""

    by_kind: dict[str, dict[str, dict[str, Any]]]

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.by_kind.get(kind, {})

    def compile_job(self, profile: str, key: str) -> dict[str, Any] | None:
        for job in self.of("Job").values():
            labels = job["metadata"].get("labels") or {}
            if labels.get(names.LABEL_PROFILE) == profile and labels.get(names.LABEL_ARTIFACT_KEY) == key:
                return job
        return None


class NameConflict(Exception):
    """A child's name is taken by an object another owner (or nobody) holds."""


async def list_children(kube: Kube, owner: Owner) -> Children:
    selector = names.model_selector(owner.name)
    kinds = (*COMPILE_KINDS, *SERVING_KINDS)
    listed = await asyncio.gather(*(kube.list(kind, owner.namespace, selector) for kind in kinds))
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, items in zip(kinds, listed, strict=True):
        by_kind[kind] = {
            item["metadata"]["name"]: item
            for item in items
            if any(ref.get("uid") == owner.uid for ref in item["metadata"].get("ownerReferences") or [])
        }
    return Children(by_kind)


async def check_names_free(kube: Kube, owner: Owner, name: str, children: Children, kinds: tuple[str, ...]) -> None:
    """Raises NameConflict when `name` is taken by an object this model does not own.

    Child names are "<model>-<profile>", so model "bert" with profile "base-online"
    and model "bert-base" with "online" want the same Deployment; a user's own Service
    may hold the name too. A server-side apply would take such an object over (or be
    refused with a puzzling ownerReferences error): refuse with a clear message.
    Only names missing from this model's children cost a GET.
    """
    for kind in kinds:
        if name in children.of(kind):
            continue
        live = await kube.get(kind, owner.namespace, name)
        if live is None:
            continue
        refs = live["metadata"].get("ownerReferences") or []
        if any(ref.get("uid") == owner.uid for ref in refs):
            continue
        holder = next((f"{ref['kind']} {ref['name']}" for ref in refs if ref.get("controller")), None)
        raise NameConflict(
            f"{kind} {owner.namespace}/{name} already exists and belongs to "
            f"{holder or 'no TrtAotiModel'}; rename this model or profile"
        )


def wanted_serving_names(model: str, wanted: list[Target]) -> dict[str, set[str]]:
    """kind -> the serving objects' names the targets need (a Service per profile; the
    rest per target). PDBs and HPAs the spec does not want are removed where applied."""
    per_target = {names.serving_name(model, t.profile.name, t.naming_product) for t in wanted}
    return {
        "Service": {names.serving_name(model, t.profile.name) for t in wanted},
        "Deployment": per_target,
        "PodDisruptionBudget": per_target,
        "HorizontalPodAutoscaler": per_target,
    }


async def prune(
    kube: Kube,
    owner: Owner,
    wanted_names: dict[str, set[str]],
    children: Children,
    observations: list[ProfileObservation],
) -> None:
    """Remove serving objects no target needs (a removed profile or GPU product) and
    compile objects of artifact keys no target needs."""
    wanted_keys = {(o.name, o.key) for o in observations}
    # A profile whose key could not be computed this time keeps all its compile objects.
    unknown = {o.name for o in observations if o.key is None}
    for kind in SERVING_KINDS:
        for name in children.of(kind):
            if name not in wanted_names.get(kind, set()):
                log.info("deleting %s %s/%s: no profile or GPU product needs it", kind, owner.namespace, name)
                await kube.delete(kind, owner.namespace, name)
    for kind in COMPILE_KINDS:
        for name, obj in children.of(kind).items():
            labels = obj["metadata"].get("labels") or {}
            if labels.get(names.LABEL_PROFILE) in unknown:
                continue
            if (labels.get(names.LABEL_PROFILE), labels.get(names.LABEL_ARTIFACT_KEY)) not in wanted_keys:
                log.info("deleting %s %s/%s: its artifact key is no longer wanted", kind, owner.namespace, name)
                await kube.delete(kind, owner.namespace, name)


async def list_in_scope(
    kube: Kube, namespaces: tuple[str, ...], kind: str, selector: str | None = None
) -> list[dict[str, Any]]:
    """Objects of `kind` in the watched namespaces, or cluster-wide when none are named
    (a namespaced install has no cluster-wide permissions)."""
    if not namespaces:
        return await kube.list(kind, None, selector)
    found: list[dict[str, Any]] = []
    for namespace in namespaces:
        found += await kube.list(kind, namespace, selector)
    return found
