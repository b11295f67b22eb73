"""Admin-side access to TrtAotiModels, their children and their storage Secret, for the
cluster and real-node tiers."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from trtaoti.api.models import GROUP, PLURAL, VERSION
from trtaoti.resources import names

from .cluster import Cluster
from .waiting import wait_for

S3_SECRET = "s3-credentials"
SECRET_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")


def storage_secret(cluster: Cluster, namespace: str) -> None:
    with cluster.api_client() as api:
        client.CoreV1Api(api).create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=S3_SECRET), string_data={k: cluster.s3_env[k] for k in SECRET_KEYS}
            ),
        )


def storage_uri(cluster: Cluster, namespace: str) -> str:
    return f"s3://{cluster.s3_env['TRTAOTI_TEST_BUCKET']}/{namespace}/artifacts"


class Models:
    """Admin-side access to TrtAotiModels and their children in one namespace."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.api = cluster.api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.policy = client.PolicyV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            manifest["metadata"]["name"],
            manifest,
            field_manager="trtaoti-tests",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        body = self.get(name) or {}
        return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)

    def wait_condition(
        self, name: str, type_: str, status: str, timeout: float = 60, reason: str | None = None
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            cond = self.condition(name, type_)
            if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
                return cond
            return None

        return wait_for(probe, timeout=timeout, what=f"{name} {type_}={status} (now {self.condition(name, type_)})")

    def jobs(self, model: str) -> list[client.V1Job]:
        selector = f"{names.LABEL_MODEL}={model}"
        return self.batch.list_namespaced_job(self.namespace, label_selector=selector).items

    def wait_job(
        self, model: str, profile: str, exclude_keys: set[str] = frozenset(), timeout: float = 60
    ) -> client.V1Job:
        def probe() -> client.V1Job | None:
            for job in self.jobs(model):
                labels = job.metadata.labels
                if labels[names.LABEL_PROFILE] == profile and labels[names.LABEL_ARTIFACT_KEY] not in exclude_keys:
                    return job
            return None

        return wait_for(probe, timeout=timeout, what=f"compile Job of {model}/{profile}")

    def job_pods(self, job_name: str) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}"
        ).items

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(name, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def close(self) -> None:
        self.api.close()
