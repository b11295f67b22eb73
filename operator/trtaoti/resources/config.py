"""Operator-wide settings the child builders need (images, pull policy, headroom).

Kept apart from the Kopf command line so the builders stay pure functions of
(spec, settings, observations) and unit tests construct them directly.
"""

from __future__ import annotations

import dataclasses

from trtaoti import __version__

DEFAULT_COMPILER_IMAGE = f"ghcr.io/trtaoti/compiler:{__version__}"
DEFAULT_SERVER_IMAGE = f"ghcr.io/trtaoti/server:{__version__}"
DEFAULT_FETCH_IMAGE = f"ghcr.io/trtaoti/operator:{__version__}"

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class ChildSettings:
    compiler_image: str = DEFAULT_COMPILER_IMAGE
    server_image: str = DEFAULT_SERVER_IMAGE
    # `trtaoti fetch` runs in the serving pod's init container; the operator image has it
    # (and obstore) without torch, so it is small and starts fast.
    fetch_image: str = DEFAULT_FETCH_IMAGE
    image_pull_policy: str = "IfNotPresent"
    # Serving memory request = peak measured by the compile Job * factor + fixed headroom:
    # the measurement is at the profile's max batch, the server adds HTTP buffers and queues.
    memory_headroom_factor: float = 1.25
    memory_headroom_bytes: int = 256 * MiB
    # Numeric non-root user: runAsNonRoot needs a numeric UID to verify without the image.
    run_as_user: int = 65532
    # Where spec.compile.image / spec.serving.image may point. Empty: anywhere. Whoever
    # may create a TrtAotiModel otherwise chooses what runs with the namespace's storage
    # Secret; an administrator who does not want that lists registries here.
    allowed_image_prefixes: tuple[str, ...] = ()

    def compiler_image_for(self, spec_image: str | None) -> str:
        return spec_image or self.compiler_image

    def server_image_for(self, spec_image: str | None) -> str:
        return spec_image or self.server_image

    def image_refusal(self, field: str, spec_image: str | None) -> str | None:
        """Why a per-model image override may not run, or None when it may."""
        if spec_image is None or not self.allowed_image_prefixes:
            return None
        if spec_image in (self.compiler_image, self.server_image):
            return None
        if any(spec_image.startswith(prefix) for prefix in self.allowed_image_prefixes):
            return None
        allowed = ", ".join(self.allowed_image_prefixes)
        return f"{field} {spec_image} is not under an image prefix this operator allows ({allowed})"
