"""A mixed GPU fleet on the real control plane: one model, two profiles, three GPU
products of KWOK nodes (H100, L4, A100), then a product no node has, then products
removed. The operator runs as its least-privilege ServiceAccount."""

from __future__ import annotations

import pytest

from operator_support import (
    Models,
    model_manifest,
    play_compile,
    storage_uri,
    upload_model,
)
from support.waiting import wait_for
from trtaoti.resources import names

pytestmark = pytest.mark.cluster

H100, L4, A100 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", "NVIDIA-A100-SXM4-80GB"
NOWHERE = "NVIDIA-GB200"  # no node in the cluster has it
PROFILES = [
    {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 1},
    {"name": "bulk", "min": 32, "opt": 64, "max": 128, "replicas": 1},
]
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def fleet_jobs(owner: Models, name: str, expected: int) -> dict[tuple[str, str], object]:
    """(profile, product) -> the compile Job, once `expected` of them exist."""

    def probe() -> dict | None:
        jobs = {
            (j.metadata.labels[names.LABEL_PROFILE], j.metadata.labels[names.LABEL_GPU_PRODUCT]): j
            for j in owner.jobs(name)
        }
        return jobs if len(jobs) == expected else None

    return wait_for(probe, timeout=90, what=f"{expected} compile Jobs of {name}")


def profile_entries(owner: Models, name: str) -> dict[tuple[str, str], dict]:
    return {(p["name"], p["gpuProduct"]): p for p in owner.get(name)["status"].get("profiles", [])}


def test_a_fleet_compiles_and_serves_each_product_its_own_package(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    products = [H100, L4, A100]
    manifest = model_manifest(
        "fleet", ns, upload_model(cluster, ns), storage, profiles=PROFILES, compile={"gpu": {"products": products}},
        serving={"products": [{"name": L4, "replicas": 2}]},
    )  # fmt: skip
    models.apply(manifest)

    # Six compile Jobs, each on a node of its own product.
    jobs = fleet_jobs(models, "fleet", 6)
    assert set(jobs) == {(p["name"], product) for p in PROFILES for product in products}
    assert len({j.metadata.labels[names.LABEL_ARTIFACT_KEY] for j in jobs.values()}) == 6  # six artifacts
    produced = {}
    for (profile, product), job in jobs.items():
        pods = wait_for(lambda job=job: models.job_pods(job.metadata.name), timeout=60, what="compile pod")
        assert models.core.read_node(pods[0].spec.node_name).metadata.labels[GPU_PRODUCT_LABEL] == product
        batch = next((p["min"], p["opt"], p["max"]) for p in PROFILES if p["name"] == profile)
        produced[(profile, product)] = play_compile(models, job, storage, batch=batch)

    models.wait_condition("fleet", "Ready", "True", timeout=120)
    status = models.get("fleet")["status"]
    assert status["profilesReady"] == "6/6"
    entries = profile_entries(models, "fleet")
    for (profile, product), written in produced.items():
        assert written["gpuProduct"] == product
        entry = entries[(profile, product)]
        assert entry["phase"] == "Ready" and entry["artifact"]["sha256"] == written["sha256"]
        assert entry["endpoint"] == f"http://fleet-{profile}.{ns}.svc:8000"  # one Service per profile
        # The Deployment is pinned to its product and fetches the package built there.
        deployment = models.deployment(names.serving_name("fleet", profile, product))
        assert entry["deployment"] == deployment.metadata.name
        template = deployment.spec.template
        assert template.spec.node_selector == {GPU_PRODUCT_LABEL: product}
        assert template.metadata.annotations[names.ANNOTATION_ARTIFACT_SHA256] == written["sha256"]
        assert template.spec.init_containers[0].command[:3] == ["trtaoti", "fetch", written["uri"]]
        assert deployment.spec.replicas == (2 if product == L4 else 1)
        pods = models.core.list_namespaced_pod(
            ns, label_selector=",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
        ).items
        assert pods and {models.core.read_node(p.spec.node_name).metadata.labels[GPU_PRODUCT_LABEL] for p in pods} == {
            product
        }
    for profile in ("online", "bulk"):
        service = models.core.read_namespaced_service(f"fleet-{profile}", ns)
        selected = models.core.list_namespaced_pod(
            ns, label_selector=",".join(f"{k}={v}" for k, v in service.spec.selector.items())
        ).items
        assert {p.metadata.labels[names.LABEL_GPU_PRODUCT] for p in selected} == set(products)
    # A PodDisruptionBudget only where a product runs more than one replica.
    budgets = models.policy.list_namespaced_pod_disruption_budget(ns, label_selector=f"{names.LABEL_MODEL}=fleet").items
    assert sorted(b.metadata.name for b in budgets) == ["fleet-bulk-l4", "fleet-online-l4"]

    # A product no node has: its compiles wait, say so, and hold nothing else up.
    manifest["spec"]["compile"]["gpu"]["products"] = [*products, NOWHERE]
    models.apply(manifest)
    jobs = fleet_jobs(models, "fleet", 8)

    def waiting_reported() -> bool:
        entries = profile_entries(models, "fleet")
        return all(
            entries.get((p["name"], NOWHERE), {}).get("phase") == "Compiling"
            and "compile pod waiting for a node" in (entries[(p["name"], NOWHERE)].get("message") or "")
            for p in PROFILES
        )

    wait_for(waiting_reported, timeout=90, what=f"{NOWHERE} reported as waiting for a node")
    entries = profile_entries(models, "fleet")
    assert [k for k, e in entries.items() if e["phase"] == "Ready"] == [k for k in entries if k[1] != NOWHERE]
    ready = models.condition("fleet", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Compiling"
    assert f"online on {NOWHERE}: compile pod waiting for a node" in ready["message"]
    events = models.core.list_namespaced_event(ns, field_selector="involvedObject.name=fleet").items
    assert any(e.reason == "WaitingForNode" and NOWHERE in e.message for e in events)
    assert models.deployment(names.serving_name("fleet", "online", NOWHERE)) is None

    # Removing products removes their Deployments, budgets and compile Jobs; the rest serve on.
    manifest["spec"]["compile"]["gpu"]["products"] = [H100, A100]
    manifest["spec"]["serving"] = {}
    models.apply(manifest)

    def cleaned_up() -> bool:
        left = {
            d.metadata.name
            for d in models.apps.list_namespaced_deployment(ns, label_selector=f"{names.LABEL_MODEL}=fleet").items
        }
        job_products = {j.metadata.labels[names.LABEL_GPU_PRODUCT] for j in models.jobs("fleet")}
        return left == {
            names.serving_name("fleet", p, g) for p in ("online", "bulk") for g in (H100, A100)
        } and job_products <= {H100, A100}

    wait_for(cleaned_up, timeout=90, what="the L4 and GB200 objects removed")
    models.wait_condition("fleet", "Ready", "True", timeout=90)
    assert set(profile_entries(models, "fleet")) == {(p, g) for p in ("online", "bulk") for g in (H100, A100)}
    assert not models.policy.list_namespaced_pod_disruption_budget(
        ns, label_selector=f"{names.LABEL_MODEL}=fleet"
    ).items
