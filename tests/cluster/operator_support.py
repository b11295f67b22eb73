"""Running the real operator against the test cluster, and playing the compile step.

- `install_crd`: the generated CRD, applied and Established.
- `OperatorIdentity`: a ServiceAccount bound to exactly the chart's ClusterRole rules
  (trtaoti.operator.rbac), and a kubeconfig holding its TokenRequest token: the
  operator under test never runs as cluster-admin.
- `OperatorProcess`: `trtaoti operator` as a subprocess (the container's entry
  point), logging to a file; `kill()` is an abrupt SIGKILL, for restart tests.
- `play_compile`: writes what `trtaoti compile` would (model.pt2, then manifest.json)
  into MinIO through trtaoti.storage, then KWOK finishes the Job's pod;
  `store_artifact` is its first half alone (the pod keeps running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from support.artifacts import store_artifact
from support.cluster import Cluster
from support.kwok import finish_job_pods
from support.models import S3_SECRET, SECRET_KEYS, Models, storage_secret, storage_uri  # noqa: F401 - the test modules import these from here
from support.ports import free_port
from support.waiting import wait_for
from trtaoti.api.crd import crd_manifest
from trtaoti.api.models import GROUP, VERSION
from trtaoti.operator.rbac import cluster_role_rules
from trtaoti.resources import names
from trtaoti.storage import open_store

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "trtaoti-system"
OPERATOR_SA = "trtaoti-operator"
CLUSTER_ROLE = "trtaoti-operator-under-test"
GPU = "NVIDIA-H100-80GB-HBM3"
COMPILER_IMAGE = "registry.test/trtaoti/compiler:test"


def install_crd(cluster: Cluster) -> None:
    with cluster.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        manifest = crd_manifest()
        ext.patch_custom_resource_definition(
            manifest["metadata"]["name"], manifest, field_manager="trtaoti-tests", force=True,
            _content_type="application/apply-patch+yaml",
        )  # fmt: skip

        def established() -> bool:
            crd = ext.read_custom_resource_definition(manifest["metadata"]["name"])
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        wait_for(established, timeout=30, what="CRD Established")


def _apply(api: client.ApiClient, obj: dict[str, Any]) -> None:
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(api)
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    dyn.server_side_apply(resource, body=obj, namespace=obj["metadata"].get("namespace"),
                          field_manager="trtaoti-tests", force_conflicts=True)  # fmt: skip


def operator_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig for the operator's ServiceAccount, bound to the chart's rules only."""
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        for obj in (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": CLUSTER_ROLE}, "rules": cluster_role_rules()},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": CLUSTER_ROLE},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
             "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}]},
        ):  # fmt: skip
            _apply(api, obj)
        token = core.create_namespaced_service_account_token(
            OPERATOR_SA, SYSTEM_NAMESPACE,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
                audiences=[], expiration_seconds=4 * 3600)),
        ).status.token  # fmt: skip
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster_entry["cluster"]}],
        "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": OPERATOR_SA}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


class OperatorProcess:
    """`trtaoti operator` in a subprocess, watching the given namespaces."""

    def __init__(self, kubeconfig: Path, log_path: Path, namespaces: list[str], resync_seconds: float = 15,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.argv = [
            sys.executable, "-m", "trtaoti.cli", "operator",
            "--kubeconfig", str(kubeconfig),
            "--compiler-image", COMPILER_IMAGE,
            "--server-image", "registry.test/trtaoti/server:test",
            "--fetch-image", "registry.test/trtaoti/operator:test",
            "--resync-seconds", str(resync_seconds),
            *[arg for ns in namespaces for arg in ("--namespace", ns)],
            *extra_args,
        ]  # fmt: skip
        self.log_path = log_path
        # Set over the inherited environment (e.g. PYTHONPATH for another copy of the package).
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # creds come from the Secret only
        # No cloud instance metadata service here: a closed local port refuses at once
        # where 169.254.169.254 may time out, so "no credentials" shows without a wait.
        env["AWS_METADATA_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_running(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log()[-4000:]}"

    def kill(self) -> None:
        """Abrupt death (no cleanup), as when a node dies or the pod is OOM-killed."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def running_operator(kubeconfig: Path, log_path: Path, namespaces: list[str],
                     extra_args: tuple[str, ...] = ()) -> Iterator[OperatorProcess]:  # fmt: skip
    operator = OperatorProcess(kubeconfig, log_path, namespaces, extra_args=extra_args).start()
    try:
        yield operator
    finally:
        operator.stop()


# --- the custom resources ---------------------------------------------------------


def store_for(cluster: Cluster, uri: str):  # noqa: ANN201 - trtaoti.storage.Store
    return open_store(uri, env={k: cluster.s3_env[k] for k in SECRET_KEYS})


def upload_model(cluster: Cluster, namespace: str, data: bytes = b"exported program bytes") -> str:
    """An exportedProgram in MinIO; returns its URI."""
    base = f"s3://{cluster.s3_env['TRTAOTI_TEST_BUCKET']}/{namespace}/models"
    store_for(cluster, base).put_bytes("ep.pt2", data)
    return f"{base}/ep.pt2"


def model_manifest(name: str, namespace: str, model_uri: str, storage: str, *, profiles: list[dict[str, Any]],
                   retention: str = "Retain", **spec_extra: Any) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "model": {"exportedProgram": model_uri},
        "inputs": [{"name": "x", "dtype": "float16", "shape": [-1, 3, 224, 224]}],
        "batchProfiles": profiles,
        "compile": {"gpu": {"product": GPU}},
        "storage": {"uri": storage, "secretName": S3_SECRET, "retentionPolicy": retention},
    }
    spec.update(spec_extra)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrtAotiModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def play_compile(models: Models, job: client.V1Job, storage: str, *, payload: bytes | None = None,
                 batch: tuple[int, int, int] = (1, 4, 16), peak_memory_bytes: int = 3 << 30,
                 device: str = "cuda") -> dict[str, Any]:  # fmt: skip
    """Do what `trtaoti compile` does for `job`: upload model.pt2, commit manifest.json,
    exit 0. Returns the manifest as stored."""
    manifest = stage_artifact(models, job, storage, payload=payload, batch=batch,
                              peak_memory_bytes=peak_memory_bytes, device=device)  # fmt: skip
    finished = finish_job_pods(models.core, models.namespace, job.metadata.name, "Succeeded")
    assert finished, f"no running pod to finish for {job.metadata.name}"
    return manifest


def stage_artifact(models: Models, job: client.V1Job, storage: str, *, payload: bytes | None = None,
                   batch: tuple[int, int, int] = (1, 4, 16), peak_memory_bytes: int = 3 << 30,
                   device: str = "cuda") -> dict[str, Any]:  # fmt: skip
    """The first half of play_compile, once `job`'s pod runs: the package and its manifest
    in storage, the pod left running (a compile that stored its package, not yet exited).
    Returns the manifest as stored."""
    labels = job.metadata.labels
    key = labels[names.LABEL_ARTIFACT_KEY]
    wait_for(lambda: any(p.status.phase == "Running" for p in models.job_pods(job.metadata.name)),
             timeout=60, what=f"compile pod of {job.metadata.name} running")  # fmt: skip
    payload = payload or f"compiled package {key}".encode()
    store = store_for(models.cluster, storage)
    manifest = store_artifact(
        store, key, payload, batch=batch, device=device, peak_memory_bytes=peak_memory_bytes,
        model_name=labels.get(names.LABEL_MODEL, "test-model"), profile=labels.get(names.LABEL_PROFILE, "online"),
        **({"gpu_product": labels.get(names.LABEL_GPU_PRODUCT, GPU)} if device == "cuda" else {}),
    )  # fmt: skip
    return manifest.to_wire()


# --- fixtures (imported by the test modules) ---------------------------------------


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    install_crd(cluster)


@pytest.fixture(scope="session")
def operator_identity(cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return operator_kubeconfig(cluster, tmp_path_factory.mktemp("operator") / "kubeconfig")


@pytest.fixture
def models(cluster: Cluster, namespace: str) -> Iterator[Models]:
    storage_secret(cluster, namespace)
    m = Models(cluster, namespace)
    try:
        yield m
    finally:
        m.close()


def _operator_for(identity: Path, namespace: str, log_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(identity, log_path, [namespace]) as process:
        yield process
        if process.proc is not None and process.proc.poll() is not None:
            pytest.fail(f"the operator died during the test:\n{process.log()[-4000:]}")


@pytest.fixture
def operator(operator_identity: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`trtaoti operator` watching the test's `namespace`."""
    yield from _operator_for(operator_identity, namespace, tmp_path / "operator.log")


@pytest.fixture
def restricted_models(cluster: Cluster, restricted_namespace: str) -> Iterator[Models]:
    storage_secret(cluster, restricted_namespace)
    m = Models(cluster, restricted_namespace)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def restricted_operator(
    operator_identity: Path, restricted_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`trtaoti operator` watching the test's `restricted_namespace` (Pod Security: restricted)."""
    yield from _operator_for(operator_identity, restricted_namespace, tmp_path / "operator.log")
