"""The served artifact, kept on the Deployment so a restarted operator knows what it serves."""

from __future__ import annotations

import json

from pydantic import ValidationError

from trtaoti.api.models import Artifact


def encode(artifact: Artifact) -> str:
    """Compact JSON for the Deployment's annotation."""
    return json.dumps(artifact.to_wire(), sort_keys=True, separators=(",", ":"))


def decode(text: str | None) -> Artifact | None:
    if not text:
        return None
    try:
        return Artifact.model_validate_json(text)
    except ValidationError:
        return None
