"""The serving objects of one batch profile: Deployment, Service, PDB and HPA.

In a fleet (compile.gpu.products) a profile has one Deployment, PDB and HPA per GPU
product, each pinned to its product and running the package compiled there, and one
Service selecting all of them.

A Deployment is a function of the *served artifact* (what was compiled, for which
batch range and GPU) plus the serving knobs of the spec, never of the compile inputs
directly: while a new artifact compiles, the old one keeps being served with the
batch range it was compiled for, and the pod template only changes (a rollout) once
the new package exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trtaoti.api.models import (
    QUEUE_DEPTH_METRIC,
    Artifact,
    AutoscalingMetric,
    AutoscalingSpec,
    BatchProfile,
    TimeoutAction,
    TrtAotiModelSpec,
)
from trtaoti.resources import artifacts, names
from trtaoti.resources.config import ChildSettings, MiB
from trtaoti.resources.owner import Owner
from trtaoti.resources.placement import gpu_placement, with_gpu_limit
from trtaoti.resources.security import container_security_context, pod_security_context
from trtaoti.resources.targets import Target

MODEL_DIR = "/models"
MODEL_PATH = f"{MODEL_DIR}/model.pt2"
PORT_NAME = "http"
GRPC_PORT_NAME = "grpc"
# Sleep before SIGTERM so endpoints and proxies stop routing here before the server
# starts refusing new requests; the drain after it fits the default 30 s grace period.
PRE_STOP_SLEEP_SECONDS = 5
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
SERVER_CONTAINER = "server"
FETCH_CONTAINER = "fetch"


def server_args(model_name: str, spec: TrtAotiModelSpec, profile: BatchProfile, artifact: Artifact) -> list[str]:
    """trtaoti-server's flags. No batch range: the server reads it from the package, the
    one authority on what it was compiled for (the old package keeps its own range while
    a new one compiles). --sha256 is the manifest's: the fetch container verified the
    download, and the server checks the file again before loading it (a disk fault after
    the fetch; the same flags run by hand)."""
    device = "cuda:0" if _device(spec, artifact) == "cuda" else "cpu"
    serving = spec.serving
    return [
        "--model-path", MODEL_PATH,
        "--model-name", model_name,
        "--port", str(serving.port),
        "--grpc-port", str(serving.grpc_port),
        "--max-queue-delay-us", str(profile.max_queue_delay_microseconds),
        "--max-queue-size", str(profile.max_queue_size),
        *_queue_policy_args(spec, profile),
        "--num-runners", str(serving.num_runners),
        "--device", device,
        *_cuda_graph_args(profile, device),
        "--sha256", artifact.sha256,
    ]  # fmt: skip # argv: flags beside their values


def _cuda_graph_args(profile: BatchProfile, device: str) -> list[str]:
    # Only when asked for: 0 is the server's default, and an unchanged argv leaves
    # existing Deployments alone on an operator upgrade.
    if device == "cpu" or not profile.cuda_graph_max_batch:
        return []
    return ["--cuda-graph-max-batch", str(profile.cuda_graph_max_batch)]


def _queue_policy_args(spec: TrtAotiModelSpec, profile: BatchProfile) -> list[str]:
    policy = profile.queue_policy
    args = [
        "--priority-levels", str(policy.priority_levels),
        "--default-priority-level", str(policy.default_priority_level),
        "--default-queue-timeout-us", str(profile.queue_timeout_microseconds(spec.serving)),
        "--timeout-action", TimeoutAction(policy.timeout_action).value.lower(),
    ]  # fmt: skip # argv: flags beside their values
    # A switch, not a flag with a value: absent means no override.
    if policy.allow_timeout_override:
        args.append("--allow-timeout-override")
    return args


def _device(spec: TrtAotiModelSpec, artifact: Artifact) -> str:
    return artifact.device or spec.device


def memory_request_bytes(artifact: Artifact, settings: ChildSettings) -> int:
    """What the compile Job measured at the profile's max batch, plus headroom.

    Without a measurement the package size stands in: the loader holds the weights."""
    measured = artifact.peak_memory_bytes or artifact.bytes
    return int(measured * settings.memory_headroom_factor) + settings.memory_headroom_bytes


def _quantity_mib(n_bytes: int) -> str:
    return f"{-(-n_bytes // MiB)}Mi"


def server_resources(spec: TrtAotiModelSpec, artifact: Artifact, settings: ChildSettings) -> dict[str, Any]:
    resources = spec.serving.resources.to_wire()
    requests = dict(resources.get("requests", {}))
    limits = resources.get("limits", {})
    # Where the spec sets a limit but no request, Kubernetes makes the request equal the
    # limit; a computed default above it would get the Deployment rejected.
    if "memory" not in limits:
        requests.setdefault("memory", _quantity_mib(memory_request_bytes(artifact, settings)))
    autoscaling = spec.serving.autoscaling
    if autoscaling is not None and autoscaling.metric == AutoscalingMetric.cpu and "cpu" not in limits:
        # A CPU-utilization HPA has nothing to divide by without a CPU request.
        requests.setdefault("cpu", "1")
    if requests:
        resources["requests"] = requests
    gpus = spec.compile.gpu.count if _device(spec, artifact) == "cuda" else 0
    return with_gpu_limit(resources, gpus)


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _scratch_limit(artifact: Artifact) -> str:
    # /models holds the package; /tmp holds its unpacked copy (the AOTI loader extracts
    # it there): each needs the package size plus room for the loader's files.
    return _quantity_mib(artifact.bytes * 2 + 512 * MiB)


def build_deployment(
    owner: Owner,
    spec: TrtAotiModelSpec,
    target: Target,
    artifact: Artifact,
    settings: ChildSettings,
    *,
    replicas: int | None = None,
    canary: bool = False,
) -> dict[str, Any]:
    """The target's stable Deployment, or with `canary` its canary Deployment (its own
    name, and a track label in its pods and selector; the Service selects both).
    `replicas` overrides the spec's (a canary split); a canary always sets it, an
    autoscaled stable Deployment never does."""
    profile, product = target.profile, target.naming_product
    name = (names.canary_name if canary else names.serving_name)(owner.name, profile.name, product)
    track = {names.LABEL_TRACK: names.TRACK_CANARY} if canary else {}
    labels = {**names.serving_labels(owner.name, profile.name, product), **track}
    env_from = [{"secretRef": {"name": spec.storage.secret_name}}] if spec.storage.secret_name else []
    scratch = _scratch_limit(artifact)
    device = _device(spec, artifact)
    gpus = spec.compile.gpu.count if device == "cuda" else 0
    gpu_product = artifact.gpu_product or target.product

    fetch: dict[str, Any] = {
        "name": FETCH_CONTAINER,
        "image": settings.fetch_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["trtaoti", "fetch", artifact.uri, "--sha256", artifact.sha256, "--to", MODEL_PATH],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env_from:
        fetch["envFrom"] = env_from
    server: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": settings.server_image_for(spec.serving.image),
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["trtaoti-server"],
        "args": server_args(owner.name, spec, profile, artifact),
        "env": [{"name": "TMPDIR", "value": "/tmp"}],
        "ports": [
            {"name": PORT_NAME, "containerPort": spec.serving.port, "protocol": "TCP"},
            {"name": GRPC_PORT_NAME, "containerPort": spec.serving.grpc_port, "protocol": "TCP"},
        ],
        "resources": server_resources(spec, artifact, settings),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        # Loading (and, for TensorRT, deserializing engines) can take minutes: the
        # startup probe allows 10 of them before liveness takes over.
        "startupProbe": _probe(READY_PATH, period=2, failures=300),
        "readinessProbe": _probe(READY_PATH, period=5, failures=2),
        "livenessProbe": _probe(LIVE_PATH, period=10, failures=3),
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(settings.run_as_user),
        "initContainers": [fetch],
        "containers": [server],
        "volumes": [
            {"name": "models", "emptyDir": {"sizeLimit": scratch}},
            {"name": "tmp", "emptyDir": {"sizeLimit": scratch}},
        ],
        **gpu_placement(gpu_product, gpus),
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": {**names.serving_selector(owner.name, profile.name, product), **track}},
        "revisionHistoryLimit": 3,
        # Never drop below the serving capacity during a rollout: surge one new pod first.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {
                "labels": {**labels, names.LABEL_ARTIFACT_KEY: artifact.key},
                # A new package changes the template, which is what rolls the pods.
                "annotations": {names.ANNOTATION_ARTIFACT_SHA256: artifact.sha256},
            },
            "spec": pod_spec,
        },
    }
    if canary:
        deployment_spec["replicas"] = replicas if replicas is not None else 1
    elif spec.serving.autoscaling is None:
        # With an HPA, replicas belong to the HPA: leaving the field out of our apply
        # means server-side apply never fights it (replicas_handover: how it changes hands).
        deployment_spec["replicas"] = (
            replicas if replicas is not None else spec.serving.replicas(profile, target.product)
        )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(
            name,
            labels,
            {names.ANNOTATION_ARTIFACT_URI: artifact.uri, names.ANNOTATION_ARTIFACT: artifacts.encode(artifact)},
        ),
        "spec": deployment_spec,
    }


def served_artifact(deployment: Mapping[str, Any] | None) -> Artifact | None:
    """The artifact an existing Deployment serves (read back after an operator restart)."""
    if not deployment:
        return None
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    return artifacts.decode(annotations.get(names.ANNOTATION_ARTIFACT))


def build_service(owner: Owner, spec: TrtAotiModelSpec, profile: BatchProfile) -> dict[str, Any]:
    name = names.serving_name(owner.name, profile.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(name, names.serving_labels(owner.name, profile.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": names.serving_selector(owner.name, profile.name),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": spec.serving.port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": GRPC_PORT_NAME,
                    "port": spec.serving.grpc_port,
                    "targetPort": GRPC_PORT_NAME,
                    "protocol": "TCP",
                    # Cleartext HTTP/2: lets meshes and gateways balance per RPC.
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    }


def wants_disruption_budget(spec: TrtAotiModelSpec, target: Target) -> bool:
    return spec.serving.replicas(target.profile, target.product) > 1 or spec.serving.autoscaling is not None


def build_disruption_budget(owner: Owner, target: Target) -> dict[str, Any]:
    profile, product = target.profile.name, target.naming_product
    name = names.serving_name(owner.name, profile, product)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": owner.metadata(name, names.serving_labels(owner.name, profile, product)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names.serving_selector(owner.name, profile, product)},
            # Pods that never became ready (e.g. still fetching) may always be evicted.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def build_autoscaler(owner: Owner, spec: TrtAotiModelSpec, target: Target) -> dict[str, Any] | None:
    autoscaling = spec.serving.autoscaling
    if autoscaling is None:
        return None
    profile, product = target.profile.name, target.naming_product
    name = names.serving_name(owner.name, profile, product)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owner.metadata(name, names.serving_labels(owner.name, profile, product)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": max(1, spec.serving.replicas(target.profile, target.product)),
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [_autoscaling_metric(autoscaling)],
        },
    }


DEFAULT_TARGET_QUEUE_DEPTH = 4


def _autoscaling_metric(autoscaling: AutoscalingSpec) -> dict[str, Any]:
    if autoscaling.metric == AutoscalingMetric.queue_depth:
        # A Pods metric: the HPA averages the per-pod values a custom-metrics adapter
        # serves from each pod's /metrics (prometheus-adapter; docs/install.md).
        target = autoscaling.target_queue_depth or DEFAULT_TARGET_QUEUE_DEPTH
        return {
            "type": "Pods",
            "pods": {
                "metric": {"name": QUEUE_DEPTH_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(target)},
            },
        }
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": autoscaling.target_cpu_utilization_percentage},
        },
    }


def replicas_handover(live_deployment: dict[str, Any], manager: str, replicas: int) -> dict[str, Any] | None:
    """The apply that hands `spec.replicas` over to an HPA without a dip, or None when
    `manager` no longer owns the field (nothing to hand over).

    Leaving `replicas` out of our apply while we are its only owner would reset it to
    the default of 1 until the HPA scales back up. Kubernetes' documented way out
    ("transferring ownership" in the server-side apply guide) is a second field manager
    that applies `replicas` alone first: once ours drops the field, that one still
    holds it, and the HPA's scale updates take it from there. The value kept is the
    larger of what runs now and the HPA's minimum, which it would scale to anyway.
    """
    owned = any(
        entry.get("manager") == manager
        and entry.get("operation") == "Apply"
        and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        for entry in live_deployment["metadata"].get("managedFields") or []
    )
    if not owned:
        return None
    meta = live_deployment["metadata"]
    current = int(live_deployment.get("spec", {}).get("replicas") or 1)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": max(current, 1, replicas)},
    }
