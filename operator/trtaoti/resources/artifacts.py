"""Reading a compiled package's manifest.json into the status' Artifact."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from trtaoti.api.models import Artifact


class InvalidManifest(ValueError):
    """manifest.json exists but does not describe a usable package."""


def artifact_from_manifest(manifest: dict[str, Any], expected_key: str) -> Artifact:
    """The Artifact a manifest describes; refuses one stored under another key."""
    if manifest.get("key") != expected_key:
        raise InvalidManifest(f"manifest is for key {manifest.get('key')!r}, expected {expected_key!r}")
    try:
        return Artifact.model_validate(manifest)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidManifest(f"manifest for {expected_key} is invalid: {problems}") from None


def encode(artifact: Artifact) -> str:
    """Compact JSON kept on the Deployment, so a restarted operator knows what it serves."""
    return json.dumps(artifact.to_wire(), sort_keys=True, separators=(",", ":"))


def decode(text: str | None) -> Artifact | None:
    if not text:
        return None
    try:
        return Artifact.model_validate_json(text)
    except ValidationError:
        return None
