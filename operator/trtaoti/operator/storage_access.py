"""What a model needs from its storage before anything is compiled or served: the
Secret's credentials, the model's ETag, and failures worded as what to fix."""

from __future__ import annotations

import base64

from kubernetes.client.exceptions import ApiException

from trtaoti.api.models import TrtAotiModelSpec
from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.operator.kube import Kube, api_error_message
from trtaoti.resources.owner import Owner
from trtaoti.resources.status import Problem
from trtaoti.storage import AccessDenied, BucketNotFound, NoCredentials, ObjectNotFound

STORAGE_UNAVAILABLE = "StorageUnavailable"  # the store could not be read (network, endpoint, 5xx)


async def storage_env(kube: Kube, owner: Owner, spec: TrtAotiModelSpec) -> tuple[dict[str, str], Problem | None]:
    """The storage Secret as environment variables (values never logged)."""
    secret_name = spec.storage.secret_name
    if not secret_name:
        return {}, None
    try:
        secret = await kube.get("Secret", owner.namespace, secret_name)
    except ApiException as error:
        return {}, Problem("SecretUnreadable", f"storage Secret {secret_name}: {api_error_message(error)}")
    if secret is None:
        return {}, Problem("SecretNotFound", f"storage Secret {owner.namespace}/{secret_name} does not exist")
    env = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    return env, None


async def model_etag(
    store: ArtifactStore, owner: Owner, spec: TrtAotiModelSpec, env: dict[str, str]
) -> tuple[str | None, Problem | None]:
    """The exported program's ETag, part of the artifact key when the spec pins no sha256."""
    source = spec.model
    if not source.exported_program or source.sha256:
        return None, None
    try:
        return await store.model_etag(source.exported_program, env), None
    except ObjectNotFound:
        return None, Problem("ModelNotFound", f"model.exportedProgram {source.exported_program} does not exist")
    except Exception as error:  # noqa: BLE001 - the store's errors vary by backend; all mean "cannot read"
        return None, storage_problem(owner, spec, error, "reading model.exportedProgram")


def storage_problem(owner: Owner, spec: TrtAotiModelSpec, error: Exception, doing: str) -> Problem:
    """A failed store call as a condition that says what is missing (the storage
    layer's messages name the bucket or object; never a credential's value)."""
    if isinstance(error, BucketNotFound):
        return Problem("BucketNotFound", f"{error}: create it, or set spec.storage.uri to an existing bucket")
    if isinstance(error, AccessDenied | NoCredentials):
        secret = spec.storage.secret_name
        used = (
            f"the keys of Secret {owner.namespace}/{secret}"
            if secret
            else "the operator's own, as spec.storage.secretName is not set"
        )
        return Problem("StorageCredentials", f"{error} (credentials tried: {used})")
    return Problem(STORAGE_UNAVAILABLE, f"{doing}: {error}")
