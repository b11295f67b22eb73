"""Where an artifact lives below the store's base URI (docs/package-format.md).

    <base>/<key>/model.pt2
    <base>/<key>/manifest.json   written last: its presence means the artifact is complete
"""

from __future__ import annotations

import json
from typing import Any

from trtaoti.storage.errors import ObjectNotFound
from trtaoti.storage.store import Store

MODEL_FILE = "model.pt2"
MANIFEST_FILE = "manifest.json"


def model_relpath(key: str) -> str:
    return f"{key}/{MODEL_FILE}"


def manifest_relpath(key: str) -> str:
    return f"{key}/{MANIFEST_FILE}"


def read_manifest(store: Store, key: str) -> dict[str, Any] | None:
    """The artifact's manifest, or None while the artifact is absent or incomplete."""
    try:
        data = store.get_bytes(manifest_relpath(key))
    except ObjectNotFound:
        return None
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ValueError(f"{store.uri_of(manifest_relpath(key))} is not a JSON object")
    return manifest


def write_manifest(store: Store, key: str, manifest: dict[str, Any]) -> None:
    """Commit the artifact: call only after model.pt2 is fully uploaded."""
    store.put_bytes(manifest_relpath(key), json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
