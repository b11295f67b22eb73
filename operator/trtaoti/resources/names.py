"""Names and labels of the objects a TrtAotiModel owns.

Every name here is a pure function of the CR name, the profile name and (for compile
Jobs) the artifact key, so a restarted operator finds the children it created before
instead of creating twins. Labels carry the same facts for list-by-selector lookups.
"""

from __future__ import annotations

import hashlib
import re

from trtaoti.api.models import GROUP

DNS_LABEL_MAX = 63
KEY_SUFFIX_LENGTH = 8

MANAGED_BY = "trtaoti-operator"
APP_NAME = "trtaoti"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MODEL = f"{GROUP}/model"
LABEL_PROFILE = f"{GROUP}/profile"
LABEL_ARTIFACT_KEY = f"{GROUP}/artifact-key"
# The GPU product of a fleet's compile Jobs and per-product serving pods. Its value is
# the product itself (nvidia.com/gpu.product values are label values too).
LABEL_GPU_PRODUCT = f"{GROUP}/gpu-product"
# On a canary Deployment's pods and in its selector only: the stable pods keep their
# labels (adding one would roll them), and the Service selects both tracks.
LABEL_TRACK = f"{GROUP}/track"
TRACK_CANARY = "canary"

COMPONENT_COMPILE = "compile"
COMPONENT_SERVING = "serving"

ANNOTATION_ARTIFACT_SHA256 = f"{GROUP}/artifact-sha256"
ANNOTATION_ARTIFACT_URI = f"{GROUP}/artifact-uri"
ANNOTATION_ARTIFACT_PREFIX = f"{GROUP}/artifact-prefix"
# The served Artifact as JSON on the Deployment: after a restart the operator knows
# what is being served without trusting its own status.
ANNOTATION_ARTIFACT = f"{GROUP}/artifact"

# Owned by the operator (not Kopf): blocks CR deletion until artifacts are removed
# when storage.retentionPolicy is Delete; absent otherwise.
ARTIFACTS_FINALIZER = f"{GROUP}/delete-artifacts"

MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def _fit(base: str, suffix: str = "") -> str:
    """`base` + `suffix` cut to a DNS label; an over-long base gets a short hash so two
    long names that share a prefix still differ."""
    if len(base) + len(suffix) <= DNS_LABEL_MAX:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    room = DNS_LABEL_MAX - len(suffix) - len(digest) - 1
    return f"{base[:room].rstrip('-')}-{digest}{suffix}"


def product_slug(product: str) -> str:
    """A GPU product as a name part: "NVIDIA-H100-80GB-HBM3" -> "h100-80gb-hbm3"."""
    slug = re.sub(r"[^a-z0-9]+", "-", product.lower()).strip("-")
    return slug.removeprefix("nvidia-") or slug


def serving_name(model: str, profile: str, product: str | None = None) -> str:
    """The Service of one profile; also its Deployment, PodDisruptionBudget and HPA,
    which in a fleet are one per product, named after it."""
    return _fit(f"{model}-{profile}" + (f"-{product_slug(product)}" if product else ""))


def canary_name(model: str, profile: str, product: str | None = None) -> str:
    """The Deployment serving a target's canary artifact beside its stable Deployment."""
    return _fit(serving_name(model, profile, product), "-canary")


def compile_job_name(model: str, profile: str, key: str) -> str:
    """One name per (CR, profile, artifact key): the same compile is never started twice."""
    return _fit(f"{model}-{profile}", f"-{key[:KEY_SUFFIX_LENGTH]}")


def spec_config_map_name(job_name: str) -> str:
    return job_name


def endpoint(service: str, namespace: str, port: int) -> str:
    return f"http://{service}.{namespace}.svc:{port}"


def common_labels(model: str, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: model,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: APP_NAME,
        LABEL_MODEL: model,
    }


def _product(product: str | None) -> dict[str, str]:
    return {LABEL_GPU_PRODUCT: product} if product else {}


def compile_labels(model: str, profile: str, key: str, product: str | None = None) -> dict[str, str]:
    return {
        **common_labels(model, COMPONENT_COMPILE),
        LABEL_PROFILE: profile,
        LABEL_ARTIFACT_KEY: key,
        **_product(product),
    }


def serving_selector(model: str, profile: str, product: str | None = None) -> dict[str, str]:
    """Immutable Deployment selector: never includes the artifact key (which changes).

    Without a product it is also the profile's Service selector, which in a fleet
    selects every product's pods."""
    return {LABEL_MODEL: model, LABEL_PROFILE: profile, LABEL_COMPONENT: COMPONENT_SERVING, **_product(product)}


def serving_labels(model: str, profile: str, product: str | None = None) -> dict[str, str]:
    return {**common_labels(model, COMPONENT_SERVING), LABEL_PROFILE: profile, **_product(product)}


def model_selector(model: str) -> str:
    return f"{MANAGED_SELECTOR},{LABEL_MODEL}={model}"
