"""What a spec asks to compile and serve: one target per (batch profile, GPU product).

A target is one artifact (the product is part of its key), one compile Job on a node
of that product, and one serving Deployment pinned to it. A model that names one
`compile.gpu.product` (or runs on CPU) has one target per profile, named as the
profile; a fleet (`compile.gpu.products`) has one per profile and product, and its
per-product objects carry the product in their names and selectors.
"""

from __future__ import annotations

import dataclasses

from trtaoti.api.models import BatchProfile, TrtAotiModelSpec


@dataclasses.dataclass(frozen=True)
class Target:
    profile: BatchProfile
    product: str | None  # the GPU product compiled for; None on CPU
    fleet: bool = False

    @property
    def id(self) -> tuple[str, str]:
        """(profile, product): unique within a spec, and how its status entry is keyed."""
        return self.profile.name, self.product or ""

    @property
    def naming_product(self) -> str | None:
        """The product as it appears in names and selectors (only in a fleet)."""
        return self.product if self.fleet else None

    @property
    def label(self) -> str:
        """How messages and Events name the target."""
        return f"{self.profile.name} on {self.product}" if self.fleet else self.profile.name


def targets(spec: TrtAotiModelSpec) -> list[Target]:
    return [Target(profile, product, spec.fleet) for profile in spec.batch_profiles for product in spec.gpu_products()]
