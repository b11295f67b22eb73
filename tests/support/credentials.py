"""Talking to the apiserver as a ServiceAccount, the way its pod would."""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes import client

from .cluster import Cluster


def service_account_kubeconfig(cluster: Cluster, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig holding only a TokenRequest token of the ServiceAccount: what the
    operator pod's projected token would give it in the cluster (never admin rights)."""
    with cluster.api_client() as admin:
        token = (
            client.CoreV1Api(admin)
            .create_namespaced_service_account_token(
                service_account,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
                ),
            )
            .status.token
        )
    admin_config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin_config["contexts"] if c["name"] == admin_config["current-context"])["context"]
    cluster_entry = next(c for c in admin_config["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": cluster_entry["cluster"]}],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "test", "user": service_account}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path
