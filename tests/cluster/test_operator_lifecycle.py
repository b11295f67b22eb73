"""The operator end to end on a real control plane (KWOK GPU nodes, MinIO storage),
running as `trtaoti operator` under a ServiceAccount with only the chart's RBAC rules.

KWOK runs no containers: each test plays the compile step (operator_support.play_compile)
by writing what `trtaoti compile` writes to MinIO and then letting the Job's pod exit.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import watch
from minio import Minio

from operator_support import (
    GPU,
    SECRET_KEYS,
    Models,
    model_manifest,
    play_compile,
    running_operator,
    storage_uri,
    store_for,
    upload_model,
)
from support.kwok import finish_job_pods
from support.waiting import wait_for
from trtaoti.artifact import manifest_relpath
from trtaoti.compiler.progress import termination_summary
from trtaoti.resources import names

REPO = Path(__file__).resolve().parents[2]
ONLINE = {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 2}
BULK = {"name": "bulk", "min": 32, "opt": 128, "max": 512}


def compile_and_serve(models: Models, name: str, manifest: dict) -> dict[str, dict]:
    """Apply, play every profile's compile, wait until Ready. Returns manifests by profile."""
    storage = manifest["spec"]["storage"]["uri"]
    models.apply(manifest)
    produced = {}
    for profile in manifest["spec"]["batchProfiles"]:
        job = models.wait_job(name, profile["name"])
        batch = (profile["min"], profile["opt"], profile["max"])
        produced[profile["name"]] = play_compile(models, job, storage, batch=batch)
    models.wait_condition(name, "Ready", "True", timeout=90)
    return produced


def load_example(path: str, namespace: str, storage: str) -> dict:
    """A committed example, pointed at the test's namespace and MinIO bucket."""
    manifest = next(d for d in yaml.safe_load_all((REPO / path).read_text()) if d and d["kind"] == "TrtAotiModel")
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["storage"]["uri"] = storage
    return manifest


def test_apply_compiles_on_the_gpu_then_serves(cluster, restricted_models, restricted_operator):
    models = restricted_models
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = load_example("examples/mlp/trtaotimodel-gpu.yaml", ns, storage)
    name = manifest["metadata"]["name"]
    profiles = {p["name"]: p for p in manifest["spec"]["batchProfiles"]}
    assert manifest["spec"]["compile"]["gpu"]["product"] == GPU and set(profiles) == {"online", "bulk"}
    models.apply(manifest)

    # First visit: both conditions exist before anything is compiled, and neither is True.
    models.wait_condition(name, "Compiled", "False", reason="Compiling")
    assert models.condition(name, "Ready")["status"] != "True"

    jobs = {p: models.wait_job(name, p) for p in ("online", "bulk")}
    for profile, job in jobs.items():
        pods = wait_for(lambda job=job: models.job_pods(job.metadata.name), timeout=60, what="compile pod")
        node = models.core.read_node(pods[0].spec.node_name)
        assert node.metadata.labels["nvidia.com/gpu.product"] == GPU, f"{profile} compiled on {node.metadata.name}"
        assert pods[0].spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert pods[0].spec.security_context.run_as_non_root  # admitted under Pod Security "restricted"
        # Nothing is served before its artifact exists.
        assert models.deployment(f"{name}-{profile}") is None

    produced = {p: play_compile(models, job, storage, batch=tuple(profiles[p][k] for k in ("min", "opt", "max")))
                for p, job in jobs.items()}  # fmt: skip

    models.wait_condition(name, "Compiled", "True", timeout=60)
    ready = models.wait_condition(name, "Ready", "True", timeout=90)
    body = models.get(name)
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"] == ready["observedGeneration"]
    assert status["profilesReady"] == "2/2"
    by_name = {p["name"]: p for p in status["profiles"]}
    for profile, manifest_written in produced.items():
        entry = by_name[profile]
        assert entry["phase"] == "Ready"
        assert entry["artifact"]["sha256"] == manifest_written["sha256"]
        assert entry["endpoint"] == f"http://{name}-{profile}.{ns}.svc:8000"
        deployment = models.deployment(f"{name}-{profile}")
        template = deployment.spec.template
        assert template.metadata.annotations[names.ANNOTATION_ARTIFACT_SHA256] == manifest_written["sha256"]
        assert template.spec.node_selector == {"nvidia.com/gpu.product": GPU}
        fetch = template.spec.init_containers[0]
        assert fetch.command[:3] == ["trtaoti", "fetch", manifest_written["uri"]]
        assert models.core.read_namespaced_service(f"{name}-{profile}", ns).spec.ports[0].port == 8000
        selector = f"{names.LABEL_MODEL}={name},{names.LABEL_PROFILE}={profile},{names.LABEL_COMPONENT}=serving"
        pods = models.core.list_namespaced_pod(ns, label_selector=selector).items
        assert pods and all(models.core.read_node(p.spec.node_name).metadata.labels["nvidia.com/gpu.product"] == GPU
                            for p in pods)  # fmt: skip
    # replicas 2 -> a PodDisruptionBudget; replicas 1 -> none.
    assert models.policy.read_namespaced_pod_disruption_budget(f"{name}-online", ns).spec.max_unavailable == 1
    assert not models.policy.list_namespaced_pod_disruption_budget(
        ns, label_selector=f"{names.LABEL_MODEL}={name},{names.LABEL_PROFILE}=bulk"
    ).items

    table = cluster.kubectl("get", "trtaotimodels", "-n", ns, name)
    header, row = table.strip().splitlines()
    assert header.split()[:3] == ["NAME", "READY", "PROFILES"] and row.split()[:3] == [name, "True", "2/2"]

    events = models.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    assert {"Compiled", "Ready"} <= {e.reason for e in events}


def test_identical_compile_inputs_share_one_compile_and_one_artifact(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    model_uri = upload_model(cluster, ns)
    single = {**ONLINE, "replicas": 1}
    # Two models applied together with the same compile inputs (serving settings differ).
    models.apply(model_manifest("first", ns, model_uri, storage, profiles=[single]))
    models.apply(model_manifest("second", ns, model_uri, storage,
                                profiles=[{**single, "maxQueueDelayMicroseconds": 900}]))  # fmt: skip

    def the_compile():
        jobs = models.jobs("first") + models.jobs("second")
        return jobs[0] if len(jobs) == 1 else None

    job = wait_for(the_compile, timeout=60, what="exactly one compile Job for both models")
    owner = job.metadata.labels[names.LABEL_MODEL]
    other = "second" if owner == "first" else "first"

    def waiting():
        profiles = (models.get(other).get("status") or {}).get("profiles") or [{}]
        return profiles[0].get("phase") == "Compiling" and profiles[0].get("compileJob") == job.metadata.name

    wait_for(waiting, timeout=30, what=f"{other} waiting on {job.metadata.name}")
    assert len(models.jobs("first") + models.jobs("second")) == 1
    play_compile(models, job, storage)
    for name in ("first", "second"):
        models.wait_condition(name, "Ready", "True", timeout=90)

    # Later, a third model with the same inputs: the artifact exists, no Job at all.
    models.apply(model_manifest("third", ns, model_uri, storage, profiles=[{**single, "replicas": 2}]))
    models.wait_condition("third", "Ready", "True", timeout=60)
    assert models.jobs("third") == []
    keys = {models.get(n)["status"]["profiles"][0]["artifactKey"] for n in ("first", "second", "third")}
    assert len(keys) == 1


def test_failed_compile_reports_the_compiler_message_and_a_fix_recovers(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("broken", ns, upload_model(cluster, ns), storage, profiles=[{**ONLINE, "replicas": 1}])
    models.apply(manifest)
    job = models.wait_job("broken", "online")
    wait_for(lambda: models.job_pods(job.metadata.name), timeout=60, what="compile pod")
    said = "input 'x': model expects float32, spec says float16"
    # The compiler's own JSON summary, as `trtaoti compile` writes it to the termination log.
    summary = termination_summary({"ok": False, "exitCode": 2, "error": f"compile failed: {said}"})
    wait_for(lambda: finish_job_pods(models.core, ns, job.metadata.name, "Failed", exit_code=2, message=summary),
             timeout=30, what="a running compile pod to fail")  # fmt: skip

    failed = models.wait_condition("broken", "Compiled", "False", reason="CompileFailed", timeout=60)
    assert said in failed["message"] and "online" in failed["message"]
    assert '"exitCode"' not in failed["message"]  # the error, not the JSON around it
    assert models.condition("broken", "Ready")["status"] == "False"
    profile = models.get("broken")["status"]["profiles"][0]
    assert profile["phase"] == "Failed"
    assert models.deployment("broken-online") is None
    events = models.core.list_namespaced_event(ns, field_selector="involvedObject.name=broken").items
    assert any(e.type == "Warning" and said in e.message for e in events)
    assert len(models.jobs("broken")) == 1  # a failed compile is not retried forever

    manifest["spec"]["inputs"][0]["dtype"] = "float32"
    models.apply(manifest)
    fixed = models.wait_job("broken", "online", exclude_keys={job.metadata.labels[names.LABEL_ARTIFACT_KEY]})
    play_compile(models, fixed, storage)
    models.wait_condition("broken", "Ready", "True", timeout=90)
    # The failed Job of the abandoned spec is cleaned up.
    wait_for(lambda: [j.metadata.name for j in models.jobs("broken")] == [fixed.metadata.name],
             timeout=30, what="only the fixed Job left")  # fmt: skip


@pytest.mark.faults
def test_operator_killed_mid_compile_neither_duplicates_nor_loses_the_job(cluster, models, operator, tmp_path):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("crashy", ns, upload_model(cluster, ns), storage, profiles=[{**ONLINE, "replicas": 1}])
    models.apply(manifest)
    job = models.wait_job("crashy", "online")
    operator.kill()

    log_before = len(operator.log())
    operator.start()  # the same command, as a restarted pod
    # The new process reconciles the model while its compile is still running...
    wait_for(lambda: f"picked up {ns}/crashy" in operator.log()[log_before:], timeout=60,
             what="the restarted operator to pick up the model")  # fmt: skip
    assert [j.metadata.uid for j in models.jobs("crashy")] == [job.metadata.uid]
    assert models.get("crashy")["status"]["profiles"][0]["compileJob"] == job.metadata.name
    # ... and finishes it when the Job completes.
    play_compile(models, job, storage)
    models.wait_condition("crashy", "Ready", "True", timeout=90)
    jobs = models.jobs("crashy")
    assert [j.metadata.uid for j in jobs] == [job.metadata.uid], "the restarted operator made another Job"


def test_spec_change_rolls_only_after_the_new_artifact_compiled(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("rolling", ns, upload_model(cluster, ns), storage, profiles=[{**ONLINE, "replicas": 1}])
    old = compile_and_serve(models, "rolling", manifest)["online"]
    old_job = models.jobs("rolling")[0]

    manifest["spec"]["batchProfiles"][0]["max"] = 64
    models.apply(manifest)
    new_job = models.wait_job("rolling", "online", exclude_keys={old_job.metadata.labels[names.LABEL_ARTIFACT_KEY]})
    ready = models.wait_condition("rolling", "Ready", "False", reason="Compiling", timeout=30)
    assert "previous artifact still serving" in ready["message"]
    template = models.deployment("rolling-online").spec.template
    assert template.metadata.annotations[names.ANNOTATION_ARTIFACT_SHA256] == old["sha256"]
    assert template.spec.containers[0].args[template.spec.containers[0].args.index("--sha256") + 1] == old["sha256"]

    new = play_compile(models, new_job, storage, payload=b"recompiled for max 64", batch=(1, 4, 64))
    models.wait_condition("rolling", "Ready", "True", timeout=90)
    template = models.deployment("rolling-online").spec.template
    assert template.metadata.annotations[names.ANNOTATION_ARTIFACT_SHA256] == new["sha256"] != old["sha256"]
    assert template.spec.containers[0].args[template.spec.containers[0].args.index("--sha256") + 1] == new["sha256"]
    status = models.get("rolling")["status"]
    assert status["profiles"][0]["artifact"]["sha256"] == new["sha256"]
    assert status["observedGeneration"] == models.get("rolling")["metadata"]["generation"]


def test_removed_profile_loses_its_serving_objects(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("two", ns, upload_model(cluster, ns), storage, profiles=[ONLINE, BULK])
    compile_and_serve(models, "two", manifest)
    assert models.policy.read_namespaced_pod_disruption_budget("two-online", ns)

    manifest["spec"]["batchProfiles"] = [BULK]
    models.apply(manifest)

    def online_gone() -> bool:
        selector = f"{names.LABEL_MODEL}=two,{names.LABEL_PROFILE}=online"
        return not (
            models.apps.list_namespaced_deployment(ns, label_selector=selector).items
            or models.core.list_namespaced_service(ns, label_selector=selector).items
            or models.policy.list_namespaced_pod_disruption_budget(ns, label_selector=selector).items
        )

    wait_for(online_gone, timeout=60, what="online profile's Deployment, Service and PDB deleted")
    assert models.deployment("two-bulk") is not None
    status = models.wait_condition("two", "Ready", "True", timeout=60)
    assert models.get("two")["status"]["profilesReady"] == "1/1", status


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_follows_the_retention_policy(cluster, models, operator, policy):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("gone", ns, upload_model(cluster, ns), storage,
                              profiles=[{**ONLINE, "replicas": 1}], retention=policy)  # fmt: skip
    first = compile_and_serve(models, "gone", manifest)["online"]["key"]
    finalizers = models.get("gone")["metadata"].get("finalizers") or []
    assert (names.ARTIFACTS_FINALIZER in finalizers) == (policy == "Delete")

    # A second spec replaces the first artifact; the first is still this model's to delete.
    manifest["spec"]["compile"]["optimizationLevel"] = 5
    models.apply(manifest)
    job = models.wait_job("gone", "online", exclude_keys={first})
    second = play_compile(models, job, storage)["key"]
    wait_for(lambda: first in (models.get("gone")["status"].get("supersededArtifactKeys") or []), timeout=60,
             what="the first artifact recorded as superseded")  # fmt: skip

    models.delete("gone")
    wait_for(lambda: models.get("gone") is None, timeout=60, what="TrtAotiModel deleted")
    wait_for(lambda: models.deployment("gone-online") is None, timeout=60, what="Deployment garbage-collected")
    store = store_for(cluster, storage)
    for key in (first, second):
        kept = store.exists(manifest_relpath(key)) and any(p.endswith(".pt2") for p in store.list(f"{key}/"))
        assert kept == (policy == "Retain"), key


def test_serving_changes_apply_without_recompiling(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("tuned", ns, upload_model(cluster, ns), storage, profiles=[{**ONLINE, "replicas": 1}])
    compile_and_serve(models, "tuned", manifest)
    (job,) = models.jobs("tuned")
    template_before = models.deployment("tuned-online").spec.template.metadata.annotations

    # More replicas, a longer queue delay, autoscaling: serving settings only.
    manifest["spec"]["batchProfiles"][0].update(replicas=2, maxQueueDelayMicroseconds=750)
    manifest["spec"]["serving"] = {"autoscaling": {"maxReplicas": 4}}
    models.apply(manifest)

    def autoscaled():
        hpas = models.cluster.kubectl("get", "hpa", "-n", ns, "-o", "name")
        return "horizontalpodautoscaler.autoscaling/tuned-online" in hpas

    wait_for(autoscaled, timeout=60, what="HorizontalPodAutoscaler tuned-online")
    deployment = wait_for(
        lambda: (d := models.deployment("tuned-online")) and "750" in d.spec.template.spec.containers[0].args and d,
        timeout=60, what="queue delay rolled into the Deployment",
    )  # fmt: skip
    assert deployment.spec.template.metadata.annotations == template_before  # same artifact
    assert models.policy.read_namespaced_pod_disruption_budget("tuned-online", ns)
    assert [j.metadata.uid for j in models.jobs("tuned")] == [job.metadata.uid]  # nothing recompiled
    models.wait_condition("tuned", "Ready", "True", timeout=60)

    # On the queue depth instead of CPU: the same HPA now targets a Pods metric (the
    # server's pending-request gauge), and the apiserver accepts that autoscaling/v2 form.
    manifest["spec"]["serving"] = {"autoscaling": {"maxReplicas": 4, "metric": "queueDepth", "targetQueueDepth": 6}}
    models.apply(manifest)

    def metrics() -> list[dict]:
        hpa = yaml.safe_load(models.cluster.kubectl("get", "hpa", "tuned-online", "-n", ns, "-o", "json"))
        return hpa["spec"]["metrics"]

    wait_for(lambda: metrics()[0]["type"] == "Pods", timeout=60, what="the HPA on the queue depth")
    (metric,) = metrics()
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "6"}
    assert [j.metadata.uid for j in models.jobs("tuned")] == [job.metadata.uid]

    del manifest["spec"]["serving"]
    models.apply(manifest)
    wait_for(lambda: not autoscaled(), timeout=60, what="HorizontalPodAutoscaler removed with autoscaling")
    wait_for(lambda: models.deployment("tuned-online").spec.replicas == 2, timeout=60, what="replicas back to 2")


def test_switching_autoscaling_on_keeps_the_running_replicas(cluster, models, operator):
    """Handing `spec.replicas` to an HPA must not scale a serving Deployment down to the
    default of 1 on the way, not even for the seconds until the HPA's first sync."""
    ns = models.namespace
    manifest = model_manifest("scaled", ns, upload_model(cluster, ns), storage_uri(cluster, ns),
                              profiles=[{**ONLINE, "replicas": 3}])  # fmt: skip
    compile_and_serve(models, "scaled", manifest)
    before = models.deployment("scaled-online")
    assert before.spec.replicas == 3

    seen: list[int] = []
    hpa_seen = threading.Event()

    def record_replicas() -> None:
        # A watch from the Deployment's current version sees every write, however brief.
        stream = watch.Watch()
        for event in stream.stream(models.apps.list_namespaced_deployment, ns,
                                   field_selector="metadata.name=scaled-online",
                                   resource_version=before.metadata.resource_version, timeout_seconds=60):  # fmt: skip
            seen.append(event["object"].spec.replicas)
            if hpa_seen.is_set():
                stream.stop()

    recorder = threading.Thread(target=record_replicas, daemon=True)
    recorder.start()
    manifest["spec"]["serving"] = {"autoscaling": {"maxReplicas": 5}}
    models.apply(manifest)
    # The operator applies the Deployment before the HPA, so once the HPA exists every
    # write of the hand-off is in the watch's history.
    wait_for(lambda: models.autoscaling.list_namespaced_horizontal_pod_autoscaler(ns).items, timeout=60,
             what="the HorizontalPodAutoscaler")  # fmt: skip
    hpa_seen.set()
    models.apps.patch_namespaced_deployment("scaled-online", ns, {"metadata": {"annotations": {"test/poke": "1"}}})
    recorder.join(timeout=30)

    assert seen, "the watch saw no write to the Deployment"
    assert min(seen) == 3, f"replicas during the switch: {seen}"
    managers = {entry.manager for entry in models.deployment("scaled-online").metadata.managed_fields
                if "f:replicas" in (entry.fields_v1 or {}).get("f:spec", {})}  # fmt: skip
    assert "trtaoti-operator" not in managers, "the operator still claims replicas beside the HPA"


@pytest.mark.faults
def test_a_compile_in_flight_survives_its_storage_secret_going_away(cluster, models, operator):
    """Rotating the storage Secret (delete, then create) while a compile runs: the
    operator reports the missing Secret but keeps the Job, whose key it cannot
    recompute without the model's ETag, and carries on once the Secret is back."""
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    manifest = model_manifest("rotated", ns, upload_model(cluster, ns), storage, profiles=[{**ONLINE, "replicas": 1}])
    models.apply(manifest)
    job = models.wait_job("rotated", "online")
    key = job.metadata.labels[names.LABEL_ARTIFACT_KEY]

    secret = models.core.read_namespaced_secret("s3-credentials", ns)
    models.core.delete_namespaced_secret("s3-credentials", ns)
    missing = models.wait_condition("rotated", "Compiled", "False", reason="SecretNotFound")
    assert f"{ns}/s3-credentials" in missing["message"]
    # Another pass of the operator must not change its mind either.
    models.apply({**manifest, "metadata": {**manifest["metadata"], "annotations": {"test/poke": "1"}}})
    models.wait_condition("rotated", "Compiled", "False", reason="SecretNotFound")
    assert [j.metadata.uid for j in models.jobs("rotated")] == [job.metadata.uid]
    assert models.jobs("rotated")[0].metadata.deletion_timestamp is None
    [profile] = models.get("rotated")["status"]["profiles"]
    assert profile["artifactKey"] == key

    secret.metadata = {"name": "s3-credentials"}
    models.core.create_namespaced_secret(ns, secret)
    play_compile(models, job, storage)
    models.wait_condition("rotated", "Ready", "True", timeout=60)
    assert [j.metadata.uid for j in models.jobs("rotated")] == [job.metadata.uid]


def test_a_compile_no_node_can_take_reports_the_schedulers_reason(cluster, models, operator):
    ns = models.namespace
    manifest = model_manifest(
        "nowhere",
        ns,
        upload_model(cluster, ns),
        storage_uri(cluster, ns),
        profiles=[{**ONLINE, "replicas": 1}],
        compile={"gpu": {"product": "NVIDIA-B200"}},
    )
    models.apply(manifest)

    def waiting_message() -> str | None:
        status = models.get("nowhere").get("status") or {}
        profiles = status.get("profiles") or []
        message = profiles[0].get("message") if profiles else None
        return message if message and "waiting for a node" in message else None

    message = wait_for(waiting_message, timeout=90, what="the profile to say its compile pod waits for a node")
    assert "node affinity/selector" in message  # the scheduler's own words
    compiled = models.condition("nowhere", "Compiled")
    assert (compiled["status"], compiled["reason"]) == ("False", "Compiling") and "waiting for a node" in compiled[
        "message"
    ]


def test_an_image_outside_the_allowed_prefixes_runs_nothing(cluster, models, operator_identity, tmp_path):
    """With --allowed-image-prefix, a model naming another compiler or server image gets
    ImageNotAllowed and no Job; naming an allowed one compiles as usual."""
    ns = models.namespace
    manifest = model_manifest("pinned", ns, upload_model(cluster, ns), storage_uri(cluster, ns),
                              profiles=[{**ONLINE, "replicas": 1}],
                              compile={"gpu": {"product": GPU}, "image": "evil.example/miner:1"})  # fmt: skip
    with running_operator(operator_identity, tmp_path / "operator.log", [ns],
                          extra_args=("--allowed-image-prefix", "registry.example.com/ml/")):  # fmt: skip
        models.apply(manifest)
        refused = models.wait_condition("pinned", "Compiled", "False", reason="ImageNotAllowed")
        assert "spec.compile.image evil.example/miner:1" in refused["message"]
        assert models.jobs("pinned") == []

        manifest["spec"]["compile"]["image"] = "registry.example.com/ml/compiler:2"
        models.apply(manifest)
        job = models.wait_job("pinned", "online")
        assert job.spec.template.spec.containers[0].image == "registry.example.com/ml/compiler:2"


def test_two_models_wanting_the_same_child_names_do_not_fight(cluster, models, operator):
    """'bert-base' + profile 'online' and 'bert' + profile 'base-online' both want
    Deployment and Service 'bert-base-online': the first keeps them, the second is told."""
    ns = models.namespace
    model_uri, storage = upload_model(cluster, ns), storage_uri(cluster, ns)
    first = model_manifest("bert-base", ns, model_uri, storage, profiles=[{**ONLINE, "replicas": 1}])
    compile_and_serve(models, "bert-base", first)
    owner_uid = models.get("bert-base")["metadata"]["uid"]

    second = model_manifest("bert", ns, model_uri, storage, profiles=[{**ONLINE, "name": "base-online", "replicas": 1}])
    models.apply(second)
    conflict = models.wait_condition("bert", "Ready", "False", reason="NameConflict")
    assert (
        f"Deployment {ns}/bert-base-online" in conflict["message"] and "TrtAotiModel bert-base" in conflict["message"]
    )
    assert models.jobs("bert") == []  # no GPU time for a profile that could never be served
    deployment = models.deployment("bert-base-online")
    assert [ref.uid for ref in deployment.metadata.owner_references] == [owner_uid]
    models.wait_condition("bert-base", "Ready", "True", timeout=30)


def test_missing_secret_and_model_are_reported_then_recovered(cluster, models, operator):
    ns = models.namespace
    storage = storage_uri(cluster, ns)
    model_uri = f"s3://{cluster.s3_env['TRTAOTI_TEST_BUCKET']}/{ns}/models/not-yet.pt2"
    manifest = model_manifest("early", ns, model_uri, storage, profiles=[{**ONLINE, "replicas": 1}])
    manifest["spec"]["storage"]["secretName"] = "later-credentials"
    models.apply(manifest)

    missing = models.wait_condition("early", "Compiled", "False", reason="SecretNotFound")
    assert f"{ns}/later-credentials" in missing["message"]
    assert models.jobs("early") == []

    # The Secret appears (nothing in the cluster announces it: the operator re-checks).
    secret = models.core.read_namespaced_secret("s3-credentials", ns)
    secret.metadata = {"name": "later-credentials"}
    models.core.create_namespaced_secret(ns, secret)
    absent = models.wait_condition("early", "Compiled", "False", reason="ModelNotFound", timeout=60)
    assert model_uri in absent["message"]
    assert models.jobs("early") == []

    store_for(cluster, model_uri.rsplit("/", 1)[0]).put_bytes("not-yet.pt2", b"exported at last")
    job = models.wait_job("early", "online", timeout=60)
    play_compile(models, job, storage)
    models.wait_condition("early", "Ready", "True", timeout=60)


def test_storage_problems_are_reported_before_any_compile_job(cluster, models, operator):
    """A bucket that does not exist, no credentials anywhere, credentials the store
    refuses: each a Compiled=False condition that names the bucket and what is missing,
    with a Warning event, and no compile Job (it could only fail at upload). Creating
    the bucket is noticed (the operator re-checks; no event announces it)."""
    ns = models.namespace
    model_uri = upload_model(cluster, ns)
    profile = {**ONLINE, "replicas": 1}
    bucket = f"trtaoti-later-{ns[-6:]}"
    models.apply(model_manifest("nobucket", ns, model_uri, f"s3://{bucket}/artifacts", profiles=[profile]))
    anonymous = model_manifest("nokeys", ns, model_uri, storage_uri(cluster, ns), profiles=[profile])
    del anonymous["spec"]["storage"]["secretName"]
    models.apply(anonymous)
    models.core.create_namespaced_secret(ns, {
        "metadata": {"name": "wrong-credentials"},
        "stringData": {**{k: cluster.s3_env[k] for k in SECRET_KEYS}, "AWS_SECRET_ACCESS_KEY": "not-the-key"},
    })  # fmt: skip
    refused = model_manifest("badkeys", ns, model_uri, storage_uri(cluster, ns), profiles=[profile])
    refused["spec"]["storage"]["secretName"] = "wrong-credentials"
    models.apply(refused)

    missing = models.wait_condition("nobucket", "Compiled", "False", reason="BucketNotFound")
    assert f"bucket s3://{bucket} does not exist" in missing["message"], missing["message"]
    assert "NoSuchBucket" in missing["message"]
    nokeys = models.wait_condition("nokeys", "Compiled", "False", reason="StorageCredentials")
    assert f"no credentials for s3://{cluster.s3_env['TRTAOTI_TEST_BUCKET']}" in nokeys["message"], nokeys["message"]
    assert "spec.storage.secretName is not set" in nokeys["message"]
    badkeys = models.wait_condition("badkeys", "Compiled", "False", reason="StorageCredentials")
    assert "403 Forbidden" in badkeys["message"] and f"Secret {ns}/wrong-credentials" in badkeys["message"]
    assert "not-the-key" not in badkeys["message"]
    for name, reason in (("nobucket", "BucketNotFound"), ("nokeys", "StorageCredentials"),
                         ("badkeys", "StorageCredentials")):  # fmt: skip
        assert models.jobs(name) == [], f"{name} started a compile Job"
        events = models.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
        assert any(e.type == "Warning" and f"({reason})" in e.message for e in events), [e.message for e in events]

    # The bucket appears: the next look (within the 30 s re-check) starts the compile.
    endpoint = cluster.s3_env["AWS_ENDPOINT_URL"].removeprefix("http://")
    Minio(endpoint, access_key=cluster.s3_env["AWS_ACCESS_KEY_ID"], secret_key=cluster.s3_env["AWS_SECRET_ACCESS_KEY"],
          secure=False, region=cluster.s3_env["AWS_REGION"]).make_bucket(bucket)  # fmt: skip
    models.wait_job("nobucket", "online", timeout=60)
    models.wait_condition("nobucket", "Compiled", "False", reason="Compiling")
