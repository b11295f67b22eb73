"""Acceptance tests of the test control plane itself (docs/dev-cluster.md): the cluster
other tiers rely on must really schedule, run controllers, enforce RBAC and Pod Security,
and MinIO must really store objects."""

from __future__ import annotations

import json
import uuid

import obstore
import pytest
from kubernetes import client
from obstore.store import S3Store

from support.binaries import versions
from support.kwok import finish_job_pods, outcome_annotations
from support.waiting import wait_for

H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"


@pytest.fixture
def api(cluster):
    with cluster.api_client() as api_client:
        yield api_client


def gpu_job(
    name: str, product: str, *, gpus: int = 1, annotations: dict | None = None, backoff_limit: int = 0
) -> client.V1Job:
    container = client.V1Container(
        name="work",
        image="registry.example/compile:1",
        resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus), "cpu": "1", "memory": "1Gi"}),
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(
                    restart_policy="Never", containers=[container], node_selector={"nvidia.com/gpu.product": product}
                ),
            ),
        ),
    )


def job_pods(core: client.CoreV1Api, namespace: str, job: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items


def job_condition(batch: client.BatchV1Api, namespace: str, job: str) -> str | None:
    """The Job's terminal condition type (Complete/Failed) once it is True, else None."""
    status = batch.read_namespaced_job_status(job, namespace).status
    for cond in status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


def test_version_reports_the_pinned_release(api):
    info = client.VersionApi(api).get_code()
    pinned = versions()["KUBERNETES_VERSION"]
    assert info.git_version == pinned
    assert (info.major, info.minor) == tuple(pinned.removeprefix("v").split(".")[:2])


def test_bundled_kubectl_and_helm_are_the_pinned_releases(cluster):
    pins = versions()
    kubectl = json.loads(cluster.kubectl("version", "-o", "json"))
    assert kubectl["clientVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    assert kubectl["serverVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    assert cluster.helm("version", "--template", "{{ .Version }}") == pins["HELM_VERSION"]


def test_fake_gpu_nodes_advertise_gpus_per_product(cluster):
    nodes = json.loads(cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.present=true", "-o", "json"))["items"]
    by_product: dict[str, int] = {}
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["nvidia.com/gpu.count"] == node["status"]["allocatable"]["nvidia.com/gpu"]
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        by_product[labels["nvidia.com/gpu.product"]] = by_product.get(labels["nvidia.com/gpu.product"], 0) + 1
    assert by_product.keys() >= {H100, L4}
    assert sum(by_product.values()) >= 4


@pytest.mark.parametrize("product", [H100, L4])
def test_gpu_job_lands_on_its_product_and_completes_when_the_pod_succeeds(api, namespace, product):
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, gpu_job("compile", product, gpus=8))

    pod = wait_for(
        lambda: next((p for p in job_pods(core, namespace, "compile") if p.status.phase == "Running"), None),
        timeout=30,
        what="the Job's pod to run",
    )
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == product
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 8
    # The fake container keeps running until the test decides: the Job is not done yet.
    assert job_condition(batch, namespace, "compile") is None

    assert finish_job_pods(core, namespace, "compile", "Succeeded") == [pod.metadata.name]
    assert (
        wait_for(lambda: job_condition(batch, namespace, "compile"), timeout=30, what="the Job to finish") == "Complete"
    )


def test_gpu_job_fails_with_the_exit_code_the_test_chose(api, namespace):
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    annotations = outcome_annotations("Failed", exit_code=3, message="engine build failed")
    batch.create_namespaced_job(namespace, gpu_job("compile", L4, annotations=annotations))

    assert (
        wait_for(lambda: job_condition(batch, namespace, "compile"), timeout=30, what="the Job to finish") == "Failed"
    )
    [pod] = job_pods(core, namespace, "compile")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code, terminated.message) == ("Failed", 3, "engine build failed")


def test_gpu_job_for_an_absent_product_stays_pending(api, namespace):
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, gpu_job("compile", "NVIDIA-B200"))

    def failed_scheduling():
        return [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.reason == "FailedScheduling" and e.involved_object.kind == "Pod"
        ]

    [event, *_] = wait_for(failed_scheduling, timeout=30, what="a FailedScheduling event")
    assert "node affinity/selector" in event.message
    [pod] = job_pods(core, namespace, "compile")
    assert (pod.status.phase, pod.spec.node_name) == ("Pending", None)


def test_more_gpus_than_any_node_has_stays_pending(api, namespace):
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, gpu_job("compile", H100, gpus=9))

    def failed_scheduling():
        return [e for e in core.list_namespaced_event(namespace).items if e.reason == "FailedScheduling"]

    [event, *_] = wait_for(failed_scheduling, timeout=30, what="a FailedScheduling event")
    assert "Insufficient nvidia.com/gpu" in event.message


def test_deployment_becomes_available_and_its_dependents_are_garbage_collected(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="registry.example/web:1")]),
                ),
            ),
        ),
    )

    def available():
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return (
            any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
            and status.available_replicas == 3
        )

    wait_for(available, timeout=60, what="Deployment web to be Available with 3 replicas")
    assert len(apps.list_namespaced_replica_set(namespace, label_selector="app=web").items) == 1
    assert len(core.list_namespaced_pod(namespace, label_selector="app=web").items) == 3

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    def dependents_gone():
        return (
            not apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
            and not core.list_namespaced_pod(namespace, label_selector="app=web").items
        )

    wait_for(dependents_gone, timeout=60, what="the ReplicaSet and pods to be garbage-collected")


def test_service_account_is_denied_what_its_role_does_not_grant(api, namespace):
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)),
    ).status.token

    sa_config = client.Configuration()
    sa_config.host = api.configuration.host
    sa_config.ssl_ca_cert = api.configuration.ssl_ca_cert
    sa_config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(sa_config) as sa_api:
        sa_core = client.CoreV1Api(sa_api)
        who = client.AuthenticationV1Api(sa_api).create_self_subject_review(client.V1SelfSubjectReview())
        assert who.status.user_info.username == f"system:serviceaccount:{namespace}:reader"
        sa_core.list_namespaced_config_map(namespace)  # granted

        denied = [
            lambda: sa_core.list_namespaced_secret(namespace),
            lambda: sa_core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            ),
            lambda: sa_core.list_namespaced_config_map("default"),
        ]
        for call in denied:
            with pytest.raises(client.ApiException) as err:
                call()
            assert err.value.status == 403


def test_restricted_namespace_rejects_a_privileged_pod(api, restricted_namespace):
    core = client.CoreV1Api(api)
    privileged = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c", image="registry.example/x:1", security_context=client.V1SecurityContext(privileged=True)
                )
            ]
        ),
    )
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod(restricted_namespace, privileged)
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "c" must not set securityContext.privileged=true)' in message

    # The same namespace admits a pod that meets the restricted profile.
    compliant = client.V1Pod(
        metadata=client.V1ObjectMeta(name="compliant"),
        spec=client.V1PodSpec(
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=65532, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")
            ),
            containers=[
                client.V1Container(
                    name="c",
                    image="registry.example/x:1",
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])
                    ),
                )
            ],
        ),
    )
    core.create_namespaced_pod(restricted_namespace, compliant)


def test_object_storage_round_trip_through_obstore(s3):
    store = S3Store(
        s3["TRTAOTI_TEST_BUCKET"],
        endpoint=s3["AWS_ENDPOINT_URL"],
        access_key_id=s3["AWS_ACCESS_KEY_ID"],
        secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
        region=s3["AWS_REGION"],
        client_options={"allow_http": True},
    )
    prefix = f"roundtrip-{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes * 1000
    obstore.put(store, f"{prefix}/a.bin", payload)
    obstore.put(store, f"{prefix}/b.bin", b"second")

    assert obstore.get(store, f"{prefix}/a.bin").bytes().to_bytes() == payload
    listed = {meta["path"]: meta["size"] for batch in obstore.list(store, prefix) for meta in batch}
    assert listed == {f"{prefix}/a.bin": len(payload), f"{prefix}/b.bin": 6}

    obstore.delete(store, f"{prefix}/a.bin")
    with pytest.raises(FileNotFoundError):
        obstore.get(store, f"{prefix}/a.bin")
    assert [m["path"] for batch in obstore.list(store, prefix) for m in batch] == [f"{prefix}/b.bin"]
    obstore.delete(store, f"{prefix}/b.bin")
