"""Canary rollouts between artifacts on a real control plane (KWOK pods, MinIO storage):
a spec change that produces a new artifact serves it beside the old one at the
requested split until promoted; an edit back rolls back without a compile Job."""

from __future__ import annotations

import copy

from operator_support import Models, model_manifest, play_compile, storage_uri, upload_model
from support.waiting import wait_for
from trtaoti.resources import names

ONLINE = {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 4}


def sha_of(deployment) -> str | None:
    return deployment.spec.template.metadata.annotations[names.ANNOTATION_ARTIFACT_SHA256] if deployment else None


def served_keys(models: Models, name: str) -> list[str]:
    """The artifact key of every pod behind the profile's Service, sorted."""
    service = models.core.read_namespaced_service(f"{name}-online", models.namespace)
    selector = ",".join(f"{k}={v}" for k, v in service.spec.selector.items())
    pods = models.core.list_namespaced_pod(models.namespace, label_selector=selector).items
    return sorted(p.metadata.labels[names.LABEL_ARTIFACT_KEY] for p in pods if not p.metadata.deletion_timestamp)


def open_canary(models: Models, name: str, old: dict, new: dict) -> dict:
    """Waits until the stable Deployment serves `old` on 3 replicas and the canary `new`
    on 1, every pod behind the one Service; returns the profile's status entry."""
    wait_for(
        lambda: sha_of(models.deployment(f"{name}-online-canary")) == new["sha256"],
        timeout=60, what="canary Deployment serving the new artifact",
    )  # fmt: skip
    stable, canary = models.deployment(f"{name}-online"), models.deployment(f"{name}-online-canary")
    assert sha_of(stable) == old["sha256"] and (stable.spec.replicas, canary.spec.replicas) == (3, 1)
    wait_for(
        lambda: served_keys(models, name) == sorted([old["key"]] * 3 + [new["key"]]),
        timeout=90, what=f"3 old + 1 new pods behind the Service (now {served_keys(models, name)})",
    )  # fmt: skip

    def reported():
        entry = models.get(name)["status"]["profiles"][0]
        return entry if (entry.get("canary") or {}).get("readyReplicas") == 1 else None

    entry = wait_for(reported, timeout=60, what="status showing the canary ready")
    assert entry["artifact"]["sha256"] == old["sha256"] and entry["canary"]["artifact"]["sha256"] == new["sha256"]
    assert entry["canary"]["split"] == "3/1" and entry["canary"]["percent"] == 25
    ready = models.condition(name, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RollingOut"  # GitOps: Progressing
    return entry


def closed(models: Models, name: str, sha: str, replicas: int) -> None:
    wait_for(
        lambda: models.deployment(f"{name}-online-canary") is None
        and sha_of(d := models.deployment(f"{name}-online")) == sha and d.spec.replicas == replicas,
        timeout=60, what=f"canary gone, stable serving {sha[:12]} on {replicas} replicas",
    )  # fmt: skip
    models.wait_condition(name, "Ready", "True", timeout=90)
    entry = models.get(name)["status"]["profiles"][0]
    assert entry["artifact"]["sha256"] == sha and "canary" not in entry


def test_canary_split_then_rollback_without_compile_then_promotion(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("canary", ns, upload_model(cluster, ns), storage, profiles=[dict(ONLINE)],
                              serving={"canary": {"percent": 25}})  # fmt: skip
    models.apply(manifest)
    old = play_compile(models, models.wait_job("canary", "online"), storage)
    closed(models, "canary", old["sha256"], 4)  # the first artifact opens no canary
    old_key = old["key"]

    changed = copy.deepcopy(manifest)
    changed["spec"]["batchProfiles"][0]["max"] = 64
    models.apply(changed)
    job = models.wait_job("canary", "online", exclude_keys={old_key})
    new = play_compile(models, job, storage, payload=b"recompiled for max 64", batch=(1, 4, 64))
    open_canary(models, "canary", old, new)

    # Rollback: an edit back. The old manifest is still in storage: no compile Job.
    models.apply(manifest)
    closed(models, "canary", old["sha256"], 4)
    wait_for(lambda: served_keys(models, "canary") == [old_key] * 4, timeout=60, what="canary pods gone")
    assert [j.metadata.labels[names.LABEL_ARTIFACT_KEY] for j in models.jobs("canary")] == []

    # Forward again: the new artifact is stored too, so the canary reopens at once.
    models.apply(changed)
    open_canary(models, "canary", old, new)
    assert models.jobs("canary") == []

    # Promotion by a spec edit: percent 100.
    promoted = copy.deepcopy(changed)
    promoted["spec"]["serving"]["canary"]["percent"] = 100
    models.apply(promoted)
    closed(models, "canary", new["sha256"], 4)
    wait_for(
        lambda: served_keys(models, "canary") == [new["key"]] * 4, timeout=90, what="every pod on the new artifact"
    )
    assert models.jobs("canary") == []


def test_a_canary_healthy_for_its_period_is_promoted_by_itself(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    canary = {"percent": 25, "promotion": "AfterHealthySeconds", "healthySeconds": 5}
    manifest = model_manifest("auto", ns, upload_model(cluster, ns), storage, profiles=[dict(ONLINE)],
                              serving={"canary": canary})  # fmt: skip
    models.apply(manifest)
    old = play_compile(models, models.wait_job("auto", "online"), storage)
    closed(models, "auto", old["sha256"], 4)

    manifest["spec"]["batchProfiles"][0]["max"] = 64
    models.apply(manifest)
    job = models.wait_job("auto", "online", exclude_keys={old["key"]})
    new = play_compile(models, job, storage, payload=b"recompiled for max 64", batch=(1, 4, 64))
    wait_for(
        lambda: sha_of(models.deployment("auto-online-canary")) == new["sha256"],
        timeout=60, what="canary Deployment serving the new artifact",
    )  # fmt: skip
    assert sha_of(models.deployment("auto-online")) == old["sha256"]
    # Nothing edits the spec: the healthy period alone promotes it.
    closed(models, "auto", new["sha256"], 4)
