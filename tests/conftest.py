"""Session fixtures shared by every test tier (docs/dev-cluster.md):

- `s3`: a MinIO endpoint + bucket (env-style dict), without any Kubernetes.
- `cluster`: a real control plane with KWOK fake GPU nodes (reuses `make dev-cluster`).
- `namespace` / `restricted_namespace`: a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from support.binaries import BinariesMissing, require_binaries
from support.cluster import Cluster, answers
from support.control_plane import ControlPlane, Ports
from support.devcluster import DEV_DIR, read_env_file
from support.minio_server import minio_answers, start_minio
from support.ports import free_port
from support.processes import ProcessSet
from support.waiting import wait_for


def _binaries(*names: str) -> Path:
    try:
        return require_binaries(*([names] if names else []))
    except BinariesMissing as exc:
        problem = str(exc)
    # A failure, not a skip: CI must not pass with the cluster tier silently missing.
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, TRTAOTI_TEST_BUCKET
    (and AWS_ALLOW_HTTP) of a live MinIO: the dev cluster's, or one started for this session."""
    dev_env = DEV_DIR / "s3.env"
    if dev_env.is_file():
        env = read_env_file(dev_env)
        if minio_answers(env):
            yield env
            return
    bins = _binaries("minio")
    state = tmp_path_factory.mktemp("minio")
    procs = ProcessSet(state, die_with_parent=True)
    try:
        yield start_minio(procs, bins, state / "data", free_port(), free_port())
    finally:
        procs.stop_all()


@pytest.fixture(scope="session")
def cluster(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Admin access to a running control plane; started here (and stopped at the end)
    unless `make dev-cluster` is already up."""
    bins = _binaries()
    dev_kubeconfig = DEV_DIR / "kubeconfig"
    server = answers(dev_kubeconfig)
    if server:
        yield Cluster(str(dev_kubeconfig), server, s3, bins, DEV_DIR)
        return
    state = tmp_path_factory.mktemp("control-plane")
    procs = ProcessSet(state, die_with_parent=True)
    ports = Ports(
        etcd=free_port(),
        etcd_peer=free_port(),
        apiserver=free_port(),
        controller_manager=free_port(),
        scheduler=free_port(),
    )
    plane = ControlPlane(state, bins, ports, procs)
    try:
        plane.up()
    except Exception as exc:  # noqa: BLE001 - reported as one line; details are in the logs
        procs.stop_all()
        problem = f"control plane did not start: {exc} (logs: {state / 'logs'})"
    else:
        problem = None
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield Cluster(str(plane.kubeconfig), plane.server, s3, bins, state)
    finally:
        plane.down()


def _make_namespace(cluster: Cluster, request: pytest.FixtureRequest, labels: dict[str, str]) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"trtaoti.dev/test": "true", **labels}))
        )
        try:
            # Pods are rejected until the controller-manager has created the namespace's
            # default ServiceAccount; tests should not have to know that.
            wait_for(
                lambda: core.read_namespaced_service_account("default", name),
                timeout=30,
                what=f"ServiceAccount {name}/default",
                ignore=(client.ApiException,),
            )
            yield name
        finally:
            _delete_namespace(core, name)


def _delete_namespace(core: client.CoreV1Api, name: str) -> None:
    """Deletes the namespace and waits until its pods are gone.

    The fake nodes are shared by the whole session: a test that needs a whole GPU node
    must not find it still held by the previous test's pods while the namespace
    controller works through its queue (slow on a loaded CI machine). The namespace
    itself may stay Terminating (finalizers of a stopped operator); its pods may not.
    """
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    # A Terminating namespace admits no new pods, so nothing recreates these.
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(name).items, timeout=30, what=f"the pods of namespace {name} to go")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (name returned) deleted after the test, pass or fail."""
    yield from _make_namespace(cluster, request, {})


@pytest.fixture
def restricted_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """Like `namespace`, enforcing the `restricted` Pod Security Standard."""
    yield from _make_namespace(
        cluster,
        request,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
