"""The compile Job of one batch profile, and the ConfigMap carrying the spec it reads.

The Job runs `trtaoti compile` on the profile's GPU product; it writes the package under
`<storage>/<key>/` and then `manifest.json` (the commit marker the operator waits for;
docs/package-format.md). Its name is derived from the artifact key, so the same compile is never
started twice, not even by a restarted operator.
"""

from __future__ import annotations

from typing import Any

import yaml

from trtaoti.api.models import TrtAotiModel, TrtAotiModelSpec
from trtaoti.resources import names
from trtaoti.resources.config import ChildSettings
from trtaoti.resources.owner import Owner
from trtaoti.resources.placement import gpu_placement, with_gpu_limit
from trtaoti.resources.security import container_security_context, pod_security_context
from trtaoti.resources.targets import Target

SPEC_DIR = "/etc/trtaoti"
SPEC_FILE = "model.yaml"
CONTAINER_NAME = "compile"
# `trtaoti compile` exits with this code for input it can never compile (bad spec,
# model/input mismatch): retrying on another GPU would fail the same way.
EXIT_INVALID_INPUT = 2


def compile_command(profile: str, storage_uri: str, compiler_image: str, gpu_product: str | None = None) -> list[str]:
    command = [
        "trtaoti",
        "compile",
        "--spec",
        f"{SPEC_DIR}/{SPEC_FILE}",
        "--profile",
        profile,
        "--output",
        storage_uri,
        "--compiler-image",
        compiler_image,
    ]
    return [*command, "--gpu-product", gpu_product] if gpu_product else command


def spec_document(owner: Owner, spec: TrtAotiModelSpec) -> str:
    """The CR as `trtaoti compile --spec` reads it (status and server-side metadata dropped)."""
    model = TrtAotiModel(metadata={"name": owner.name, "namespace": owner.namespace}, spec=spec)
    return yaml.safe_dump(model.to_wire(), sort_keys=False)


def build_spec_config_map(owner: Owner, spec: TrtAotiModelSpec, target: Target, key: str) -> dict[str, Any]:
    job_name = names.compile_job_name(owner.name, target.profile.name, key)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(
            names.spec_config_map_name(job_name),
            names.compile_labels(owner.name, target.profile.name, key, target.naming_product),
        ),
        "data": {SPEC_FILE: spec_document(owner, spec)},
    }


def build_compile_job(
    owner: Owner,
    spec: TrtAotiModelSpec,
    target: Target,
    key: str,
    settings: ChildSettings,
) -> dict[str, Any]:
    profile = target.profile
    compiler_image = settings.compiler_image_for(spec.compile.image)
    job_name = names.compile_job_name(owner.name, profile.name, key)
    labels = names.compile_labels(owner.name, profile.name, key, target.naming_product)
    gpu_product = target.product
    gpus = spec.compile.gpu.count if spec.device == "cuda" else 0

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": compiler_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": compile_command(profile.name, spec.storage.uri, compiler_image, gpu_product),
        "workingDir": "/tmp",
        # Compilers cache under $HOME; the root filesystem is read-only.
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "TRTAOTI_ARTIFACT_KEY", "value": key},
        ],
        "resources": with_gpu_limit(spec.compile.resources.to_wire(), gpus),
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.storage.secret_name:
        container["envFrom"] = [{"secretRef": {"name": spec.storage.secret_name}}]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(settings.run_as_user),
        "containers": [container],
        "volumes": [
            {"name": "spec", "configMap": {"name": names.spec_config_map_name(job_name)}},
            {"name": "tmp", "emptyDir": {}},
        ],
        **gpu_placement(gpu_product, gpus),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(
            job_name, labels, {names.ANNOTATION_ARTIFACT_PREFIX: artifact_prefix(spec.storage.uri, key)}
        ),
        "spec": {
            "backoffLimit": spec.compile.backoff_limit,
            "activeDeadlineSeconds": spec.compile.timeout_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER_NAME,
                            "operator": "In",
                            "values": [EXIT_INVALID_INPUT],
                        },
                    },
                    # A preempted or evicted pod is not the compiler's fault.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def artifact_prefix(storage_uri: str, key: str) -> str:
    """Where the Job's artifact will be (the package's own name is in its manifest)."""
    return f"{storage_uri.rstrip('/')}/{key}/"
