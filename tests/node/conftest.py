"""The real-node tier (docs/dev-cluster.md): a control plane with a real kubelet node
(containerd + runc + CNI + kube-proxy) beside KWOK's GPU nodes, MinIO on the node's
bridge, and pods running the images built from images/*/Dockerfile (`make images`).

One such cluster per test session, started here. It needs root; under CI=true a machine
that cannot run it fails the tier instead of skipping it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.binaries import BinariesMissing
from support.cluster import Cluster
from support.node import NodeUnavailable
from support.node_cluster import ImagesMissing, NodeCluster
from support.processes import ProcessSet
from support.tools import tool_missing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in item.nodeid or item.nodeid.startswith("node/"):
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    state = tmp_path_factory.mktemp("real-node")
    cluster = NodeCluster(state, ProcessSet(state, die_with_parent=True))
    problem = None
    try:
        cluster.start()
    except (NodeUnavailable, ImagesMissing, BinariesMissing) as exc:
        problem = exc
    except Exception as exc:  # noqa: BLE001 - reported as one line; details are in the logs
        problem = RuntimeError(f"the real node did not start: {exc} (logs: {state / 'logs'})")
    if problem is not None:
        cluster.stop()
        if isinstance(problem, NodeUnavailable):
            tool_missing(f"the real-node tier cannot run here: {problem}")
        pytest.fail(f"the real-node tier cannot run: {problem}", pytrace=False)
    print("real-node cluster up (s):", {k: round(v, 1) for k, v in cluster.timings.items()})
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster_on_node(node_cluster: NodeCluster) -> Cluster:
    assert node_cluster.cluster is not None
    return node_cluster.cluster
