"""manifest.json: the one description of a stored package (docs/package-format.md).

The compiler writes it (last: its presence commits the artifact); the operator,
`trtaoti run` and the tests read it back through `Manifest.parse`, so a field the
writer renames fails loudly at the reader instead of drifting. The status'
`Artifact` is the subset a user sees on the TrtAotiModel.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Literal

from pydantic import Field, ValidationError

from trtaoti.api.models import ApiModel, Artifact, BatchRange

MANIFEST_FORMAT: Literal[1] = 1


class InvalidManifest(ValueError):
    """manifest.json exists but does not describe a usable package."""


class TensorDescription(ApiModel):
    """An input or output as KServe V2 names it; -1 is the batch dimension."""

    name: str
    datatype: str
    shape: list[int]


class ValidationSummary(ApiModel):
    """How the compiled package was checked against the eager model."""

    max_abs_error: float
    rtol: float
    atol: float
    batches: list[int]


class Manifest(ApiModel):
    format: Literal[1] = MANIFEST_FORMAT
    key: str = Field(description="The artifact key the package is stored under.")
    model_name: str
    profile: str
    model: str = Field(description="The package's file name under <key>/, named by its content.")
    uri: str
    sha256: str
    bytes: int
    backend: str
    precision: str
    device: str
    batch: BatchRange
    inputs: list[TensorDescription]
    outputs: list[TensorDescription]
    versions: dict[str, str]
    compiler_image: str
    peak_memory_bytes: int
    peak_gpu_memory_bytes: int | None = None
    latency_ms: dict[str, float]
    validation: ValidationSummary
    created_at: str
    gpu_product: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    # The document the key hashes, as the compiler saw it: for debugging a cache miss.
    key_document: dict[str, Any] | None = None

    @classmethod
    def parse(cls, data: builtins.bytes | str, expected_key: str | None = None) -> Manifest:
        """The manifest in `data`; InvalidManifest names what is wrong with it."""
        where = f"manifest for {expected_key}" if expected_key else "manifest"
        try:
            document = json.loads(data)
        except ValueError as error:
            raise InvalidManifest(f"{where} is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise InvalidManifest(f"{where} is not a JSON object")
        if expected_key is not None and document.get("key") != expected_key:
            raise InvalidManifest(f"manifest is for key {document.get('key')!r}, expected {expected_key!r}")
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InvalidManifest(f"{where} is invalid: {problems}") from None

    def encode(self) -> builtins.bytes:  # `bytes` is a field here
        return json.dumps(self.to_wire(), indent=2, sort_keys=True).encode() + b"\n"

    def artifact(self) -> Artifact:
        """What the TrtAotiModel's status shows of this package."""
        return Artifact(
            uri=self.uri,
            sha256=self.sha256,
            bytes=self.bytes,
            key=self.key,
            backend=self.backend,
            versions=self.versions,
            device=self.device,
            batch=self.batch,
            gpu_product=self.gpu_product,
            compute_capability=self.compute_capability,
            peak_memory_bytes=self.peak_memory_bytes,
            latency_ms=self.latency_ms,
        )
