"""A user's first `helm install`, for real: every pod runs in a container on a real
kubelet node, from the images built from images/*/Dockerfile.

1. The chart installs into a namespace that enforces the `restricted` Pod Security
   Standard; the operator runs as a pod from the operator image, with the chart's RBAC.
2. The CPU MLP example is applied: the compile Job's pod runs in the compiler image and
   uploads to MinIO over the pod network; the serving pod's init container (`trtaoti
   fetch`, operator image) downloads and checks the sha256; `trtaoti-server` (server
   image) turns Ready through the kubelet's probes; the model reports Ready=True.
3. Inference through the Service's ClusterIP (kube-proxy), REST and gRPC, equals the
   eager model.
4. Two replicas under steady load, one pod deleted: preStop, endpoint removal and the
   server's SIGTERM drain lose no request.
5. `kubectl drain` of the node respects the serving PodDisruptionBudget.
6. A compile container killed mid-compile: the Job retries and the model still goes
   Ready, serving a package whose sha256 is the one recorded.

The tests share one chart release and one model, in order (each leaves the model Ready).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import yaml
from kubernetes import client

from support.binaries import REPO_ROOT
from support.cluster import Cluster
from support.examples import mlp_eager_logits, served_mlp_logits
from support.models import S3_SECRET, Models, storage_secret, storage_uri
from support.node import NODE_NAME
from support.node_cluster import NodeCluster
from support.waiting import wait_for
from trtaoti.resources import names

EXAMPLE = REPO_ROOT / "examples" / "mlp" / "trtaotimodel.yaml"
CHART = "charts/trtaoti-operator"
MODEL, PROFILE = "mlp", "online"
COMPILE_TIMEOUT = 900  # a CPU compile in a container on 2 busy cores


def _split(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    return repository, tag


@pytest.fixture(scope="module")
def namespace(cluster_on_node: Cluster) -> Iterator[str]:
    name = f"t-node-{secrets.token_hex(3)}"
    cluster_on_node.kubectl("create", "namespace", name)
    cluster_on_node.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    with cluster_on_node.api_client() as api:
        wait_for(
            lambda: client.CoreV1Api(api).read_namespaced_service_account("default", name),
            timeout=30,
            what=f"ServiceAccount {name}/default",
            ignore=(client.ApiException,),
        )
    yield name
    cluster_on_node.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, cluster_on_node: Cluster, namespace: str) -> Iterator[str]:
    """The chart as a user installs it, with the images `make images` built; `--wait`
    returns once the operator pod is Ready on the real node."""
    images = node_cluster.images
    values = {
        "image": dict(zip(("repository", "tag"), _split(images["OPERATOR_IMAGE"]), strict=True)),
        "compiler": {"image": dict(zip(("repository", "tag"), _split(images["COMPILER_IMAGE"]), strict=True))},
        "server": {"image": dict(zip(("repository", "tag"), _split(images["SERVER_IMAGE"]), strict=True))},
        "watchNamespaces": [namespace],
    }
    name = "node-" + namespace[-6:]
    try:
        cluster_on_node.helm(
            "install",
            name,
            CHART,
            "--namespace",
            namespace,
            "--values",
            "-",
            "--wait",
            "--timeout",
            "300s",
            input=yaml.safe_dump(values),
        )
    except subprocess.CalledProcessError as error:
        pytest.fail(f"helm install failed: {error.stderr}\n{_pods_report(cluster_on_node, namespace)}", pytrace=False)
    yield name
    cluster_on_node.helm("uninstall", name, "--namespace", namespace, "--wait", "--timeout", "120s", check=False)


@pytest.fixture(scope="module")
def models(cluster_on_node: Cluster, namespace: str) -> Iterator[Models]:
    storage_secret(cluster_on_node, namespace)
    m = Models(cluster_on_node, namespace)
    yield m
    m.close()


def _pods_report(cluster: Cluster, namespace: str) -> str:
    """What a user would look at when something hangs: pods, events, container logs."""
    parts = [
        cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False),
        cluster.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)[-4000:],
    ]
    pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).split()
    parts += [
        f"--- logs {pod}\n"
        + cluster.kubectl("logs", "-n", namespace, pod, "--all-containers", "--tail=40", check=False)
        for pod in pods
    ]
    return "\n".join(parts)


def _example(namespace: str, storage: str, replicas: int = 1) -> dict:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["namespace"] = namespace
    # The compiler image carries examples/ at /opt/trtaoti/examples (images/compiler/Dockerfile).
    document["spec"]["model"]["python"]["pythonPath"] = ["/opt/trtaoti/examples"]
    document["spec"]["storage"] = {"uri": storage, "secretName": S3_SECRET}
    document["spec"]["batchProfiles"][0]["replicas"] = replicas
    return document


def _service_ip(models: Models) -> str:
    service = models.core.read_namespaced_service(names.serving_name(MODEL, PROFILE), models.namespace)
    return service.spec.cluster_ip


# Its setup starts the node, which imports the images into containerd the first time.
@pytest.mark.timeout(2400)
def test_model_compiles_serves_and_turns_ready_in_real_pods(cluster_on_node, namespace, release, models):
    started = time.monotonic()
    cluster = cluster_on_node
    try:
        # 1. The operator: a real pod from the operator image, admitted as restricted.
        operator_pods = models.core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={release}"
        )
        assert [p.spec.node_name for p in operator_pods.items] == [NODE_NAME]
        assert operator_pods.items[0].status.container_statuses[0].ready

        # 2. The example, pointed at MinIO on the node's bridge.
        storage = storage_uri(cluster, namespace)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(_example(namespace, storage)))
        models.wait_condition(MODEL, "Compiled", "True", timeout=COMPILE_TIMEOUT)
        compiled_at = time.monotonic() - started
        models.wait_condition(MODEL, "Ready", "True", timeout=300)
        ready_at = time.monotonic() - started
    except BaseException:
        print(_pods_report(cluster, namespace))
        raise

    # Every pod ran on the real node, from our images.
    pods = models.core.list_namespaced_pod(namespace).items
    jobs = [p for p in pods if "batch.kubernetes.io/job-name" in (p.metadata.labels or {})]
    serving = [p for p in pods if (p.metadata.labels or {}).get(names.LABEL_PROFILE) == PROFILE and p not in jobs]
    assert jobs and serving and {p.spec.node_name for p in pods} == {NODE_NAME}
    assert jobs[0].status.phase == "Succeeded"
    summary = json.loads(jobs[0].status.container_statuses[0].state.terminated.message)
    assert summary["ok"] and summary["uri"].startswith(storage + "/"), summary
    fetch_log = cluster.kubectl("logs", "-n", namespace, serving[0].metadata.name, "-c", "fetch")
    assert "sha256 verified" in fetch_log, fetch_log
    status = models.get(MODEL)["status"]["profiles"][0]
    assert status["artifact"]["sha256"] == summary["sha256"]

    # 3. Through the Service: kube-proxy routes the ClusterIP to the pod.
    address = _service_ip(models)
    features = np.random.default_rng(3).standard_normal((7, 64)).astype(np.float32)
    logits = served_mlp_logits(f"{address}:8000", features, model=MODEL)
    np.testing.assert_allclose(logits, mlp_eager_logits(features), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        served_mlp_logits(f"{address}:8001", features, model=MODEL, grpc=True), logits, rtol=1e-6
    )
    print(f"real pods: Compiled after {compiled_at:.0f} s, Ready after {ready_at:.0f} s")


class SteadyLoad:
    """Clients sending inference requests through the Service until stopped; each keeps
    its connection alive, as HTTP clients of a model server do."""

    def __init__(self, address: str, clients: int) -> None:
        features = np.random.default_rng(5).standard_normal((2, 64)).astype(np.float32)
        self.expected = mlp_eager_logits(features)
        self.body = {
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 64], "data": features.flatten().tolist()}]
        }
        self.url = f"http://{address}:8000/v2/models/{MODEL}/infer"
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, name=f"load-{i}") for i in range(clients)]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"load clients still running: {alive}"

    def _client(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(self.url, json=self.body, timeout=30)
                except requests.RequestException as error:
                    outcome, detail = "no response", repr(error)
                else:
                    if response.status_code == 200:
                        logits = np.array(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, -1)
                        good = np.allclose(logits, self.expected, rtol=1e-4, atol=1e-5)
                        outcome, detail = ("ok", "") if good else ("wrong", response.text[:200])
                    else:
                        outcome, detail = f"http {response.status_code}", response.text[:200]
                with self._lock:
                    self.outcomes[outcome] += 1
                    if outcome != "ok":
                        self.failures.append(f"{outcome}: {detail}")

    def wait_for_successes(self, count: int, timeout: float) -> None:
        start = self.outcomes["ok"]
        wait_for(
            lambda: self.outcomes["ok"] >= start + count,
            timeout=timeout,
            what=f"{count} more successful requests (outcomes so far: {dict(self.outcomes)})",
        )


def _ready_serving_pods(models: Models) -> list[client.V1Pod]:
    selector = ",".join(f"{k}={v}" for k, v in names.serving_selector(MODEL, PROFILE).items())
    pods = models.core.list_namespaced_pod(models.namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if not p.metadata.deletion_timestamp
        and p.status.container_statuses
        and all(c.ready for c in p.status.container_statuses)
    ]


def _ready_endpoints(models: Models) -> int:
    slices = (
        client.DiscoveryV1Api(models.api)
        .list_namespaced_endpoint_slice(
            models.namespace, label_selector=f"kubernetes.io/service-name={names.serving_name(MODEL, PROFILE)}"
        )
        .items
    )
    return sum(1 for s in slices for e in s.endpoints or [] if e.conditions and e.conditions.ready)


def _scale_to(cluster: Cluster, models: Models, replicas: int) -> None:
    storage = storage_uri(cluster, models.namespace)
    cluster.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=yaml.safe_dump(_example(models.namespace, storage, replicas=replicas)),
    )
    wait_for(
        lambda: len(_ready_serving_pods(models)) == replicas and _ready_endpoints(models) == replicas,
        timeout=300,
        what=f"{replicas} ready serving pods behind the Service",
    )


@pytest.mark.faults
def test_deleting_a_serving_pod_under_load_loses_no_request(cluster_on_node, models):
    if models.condition(MODEL, "Ready") is None:
        pytest.skip("needs the model the first test of this module made Ready")
    _scale_to(cluster_on_node, models, 2)
    victim = _ready_serving_pods(models)[0].metadata.name
    with SteadyLoad(_service_ip(models), clients=8) as load:
        load.wait_for_successes(200, timeout=120)
        models.core.delete_namespaced_pod(victim, models.namespace)  # the default grace period: preStop, SIGTERM
        wait_for(
            lambda: victim not in {p.metadata.name for p in models.core.list_namespaced_pod(models.namespace).items},
            timeout=120,
            what=f"pod {victim} to terminate",
        )
        wait_for(lambda: len(_ready_serving_pods(models)) == 2, timeout=300, what="the replacement pod ready")
        load.wait_for_successes(200, timeout=120)
    print("requests while a pod was deleted:", dict(load.outcomes))
    assert not load.failures, f"{len(load.failures)} failed requests, first: {load.failures[:5]}"


def test_drain_of_the_node_respects_the_serving_disruption_budget(cluster_on_node, models):
    if len(_ready_serving_pods(models)) != 2:
        _scale_to(cluster_on_node, models, 2)
    address = _service_ip(models)
    features = np.random.default_rng(7).standard_normal((3, 64)).astype(np.float32)
    try:
        # The only schedulable node: an evicted pod's replacement has nowhere to go, so
        # the budget (maxUnavailable 1) must stop the second eviction.
        drain = subprocess.run(
            [
                str(cluster_on_node.bin_dir / "kubectl"), f"--kubeconfig={cluster_on_node.kubeconfig}",
                "drain", NODE_NAME, "--ignore-daemonsets", "--delete-emptydir-data",
                "--pod-selector", ",".join(f"{k}={v}" for k, v in names.serving_selector(MODEL, PROFILE).items()),
                "--timeout=40s",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip # argv: flags beside their values
        assert drain.returncode != 0, f"drain evicted every serving pod:\n{drain.stdout}"
        assert "disruption budget" in drain.stderr + drain.stdout, drain.stderr
        remaining = _ready_serving_pods(models)
        assert len(remaining) == 1, [p.metadata.name for p in remaining]
        # The pod the budget kept still answers through the Service.
        np.testing.assert_allclose(
            served_mlp_logits(f"{address}:8000", features, model=MODEL),
            mlp_eager_logits(features),
            rtol=1e-4,
            atol=1e-5,
        )
    finally:
        cluster_on_node.kubectl("uncordon", NODE_NAME)
    wait_for(lambda: len(_ready_serving_pods(models)) == 2, timeout=300, what="both serving pods ready after uncordon")


@pytest.mark.faults
def test_a_compile_killed_mid_way_is_retried_and_serves_a_whole_package(cluster_on_node, namespace, node_cluster):
    models = Models(cluster_on_node, namespace)
    name = "mlp-retried"
    document = _example(namespace, storage_uri(cluster_on_node, namespace))
    document["metadata"]["name"] = name
    # Another batch range: another artifact key, so this is a compile, not a cache hit.
    document["spec"]["batchProfiles"][0].update({"max": 16, "opt": 2})
    try:
        cluster_on_node.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(document))
        job = models.wait_job(name, PROFILE, timeout=120)

        def compiling_container() -> str | None:
            for pod in models.job_pods(job.metadata.name):
                for status in pod.status.container_statuses or []:
                    if status.state.running and status.container_id:
                        return status.container_id.removeprefix("containerd://")
            return None

        container = wait_for(compiling_container, timeout=300, what="the compile container running")
        # Mid-compile: exported, AOTInductor at work.
        wait_for(
            lambda: (
                "compiling the package"
                in cluster_on_node.kubectl("logs", "-n", namespace, f"job/{job.metadata.name}", check=False)
            ),
            timeout=300,
            what="the compiler to reach its AOTInductor stage",
        )
        assert node_cluster.node is not None
        node_cluster.node.ctr("tasks", "kill", "--signal", "SIGKILL", container)

        wait_for(
            lambda: (models.batch.read_namespaced_job(job.metadata.name, namespace).status.failed or 0) >= 1,
            timeout=120,
            what="the killed attempt counted as failed",
        )

        # The model's status says what happened while the retry runs.
        def retry_reported() -> str | None:
            profiles = ((models.get(name) or {}).get("status") or {}).get("profiles") or []
            message = (profiles[0].get("message") or "") if profiles else ""
            return message if "attempt 2" in message else None

        said = wait_for(retry_reported, timeout=120, what="the retry in the model's status")
        assert "exit code 137" in said, said
        models.wait_condition(name, "Compiled", "True", timeout=COMPILE_TIMEOUT)
        models.wait_condition(name, "Ready", "True", timeout=300)
    except BaseException:
        print(_pods_report(cluster_on_node, namespace))
        raise
    finished = models.batch.read_namespaced_job(job.metadata.name, namespace)
    assert finished.status.failed == 1 and finished.status.succeeded == 1
    killed = [p for p in models.job_pods(job.metadata.name) if p.status.phase == "Failed"]
    assert killed and killed[0].status.container_statuses[0].state.terminated.exit_code == 137
    # What is served is the whole package the retry wrote: fetch verified the recorded sha256.
    status = models.get(name)["status"]["profiles"][0]
    selector = ",".join(f"{k}={v}" for k, v in names.serving_selector(name, PROFILE).items())
    pod = models.core.list_namespaced_pod(namespace, label_selector=selector).items[0]
    fetch_log = cluster_on_node.kubectl("logs", "-n", namespace, pod.metadata.name, "-c", "fetch")
    assert "sha256 verified" in fetch_log and status["artifact"]["sha256"][:16] in fetch_log, fetch_log
    models.close()
