"""A small async facade over the kubernetes client for the kinds the operator touches.

Kopf watches; this module writes. Kopf has no server-side apply, so children are
applied with `application/apply-patch+yaml` under the field manager
"trtaoti-operator". The kubernetes client is synchronous: every call runs in a worker
thread (the facade's own pool) so a slow apiserver never stalls Kopf's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from trtaoti.api import models as m

FIELD_MANAGER = "trtaoti-operator"
# Holds a Deployment's replicas while they pass from FIELD_MANAGER to an HPA
# (resources.serving.replicas_handover).
HANDOVER_FIELD_MANAGER = "trtaoti-operator-handover"
REQUEST_TIMEOUT_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class Kind:
    api_version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}" if namespace else f"{root}/{self.plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path


KINDS: dict[str, Kind] = {
    "ConfigMap": Kind("v1", "configmaps"),
    "Event": Kind("v1", "events"),
    "Pod": Kind("v1", "pods"),
    "Secret": Kind("v1", "secrets"),
    "Service": Kind("v1", "services"),
    "Deployment": Kind("apps/v1", "deployments"),
    "Job": Kind("batch/v1", "jobs"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": Kind("autoscaling/v2", "horizontalpodautoscalers"),
    m.KIND: Kind(m.API_VERSION, m.PLURAL),
}


def api_error_message(error: ApiException) -> str:
    """The apiserver's own message (it names the offending field) rather than the HTTP dump."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def load_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (or $KUBECONFIG)."""
    configuration = k8s.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.ApiClient(configuration)


class Kube:
    def __init__(self, api_client: k8s.ApiClient, max_concurrent_requests: int = 32) -> None:
        self._api = api_client
        # Its own threads: asyncio's default pool has cpu+4 threads, which a burst of
        # reconciles (each a dozen requests) would queue behind.
        self._threads = concurrent.futures.ThreadPoolExecutor(max_concurrent_requests, thread_name_prefix="kube")
        # One kept connection per thread. The client's default pool is cpu_count * 5
        # connections; with more threads than that, urllib3 opens extra connections and
        # drops each afterwards ("Connection pool is full, discarding connection"), a new
        # TLS handshake per request. The pool is built by ApiClient's constructor from the
        # configuration, so setting the size now means building the REST client again.
        configuration = api_client.configuration
        if (configuration.connection_pool_maxsize or 0) < max_concurrent_requests:
            configuration.connection_pool_maxsize = max_concurrent_requests
            api_client.rest_client.close()
            api_client.rest_client = k8s.rest.RESTClientObject(configuration)

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _, url, headers, body, _ = self._api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        response.read()
        return self._api.response_deserialize(response, {"2XX": "object"}).data

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(self._call, method, path, **kwargs))

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("GET", KINDS[kind].path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        result = await self.call("GET", KINDS[kind].path(namespace), query=query)
        return list(result.get("items") or [])

    async def apply(self, manifest: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        meta = manifest["metadata"]
        kind = KINDS[manifest["kind"]]
        return await self.call(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            query=[("fieldManager", field_manager), ("force", "true")],
            body=manifest,
            content_type="application/apply-patch+yaml",
        )

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete (children in the background); False when it was already gone."""
        try:
            await self.call(
                "DELETE",
                KINDS[kind].path(namespace, name),
                body={"propagationPolicy": "Background"},
                content_type="application/json",
            )
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    async def merge_patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        return await self.call(
            "PATCH",
            KINDS[kind].path(namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = KINDS[manifest["kind"]]
        return await self.call("POST", kind.path(manifest["metadata"]["namespace"]), body=manifest)
