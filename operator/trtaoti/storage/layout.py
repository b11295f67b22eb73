"""Where an artifact lives below the store's base URI (docs/package-format.md).

    <base>/<key>/model-<sha256 prefix>.pt2   the package, named by its content
    <base>/<key>/manifest.json               written last, once: the artifact's commit

Two writers of one key (two operators sharing a bucket, a Job's replacement pod next
to the old one) can never mix their bytes: each uploads under its own content name,
and only the first manifest is written (a conditional put); the other adopts it.
Readers go through the manifest's "model" and "uri", never a fixed name.
"""

from __future__ import annotations

import json
from typing import Any

from trtaoti.storage.errors import BucketNotFound, ObjectNotFound
from trtaoti.storage.store import Store

MODEL_FILE = "model.pt2"
MANIFEST_FILE = "manifest.json"


def model_relpath(key: str, sha256: str | None = None) -> str:
    """The package's path: content-named when its sha256 is given (what the compiler
    writes); plain `model.pt2` for artifacts written before content names."""
    return f"{key}/model-{sha256[:16]}.pt2" if sha256 else f"{key}/{MODEL_FILE}"


def package_relpath(manifest: dict[str, Any]) -> str:
    """Where a committed manifest's package is, relative to the store's base."""
    return f"{manifest['key']}/{manifest.get('model') or MODEL_FILE}"


def manifest_relpath(key: str) -> str:
    return f"{key}/{MANIFEST_FILE}"


def read_manifest(store: Store, key: str) -> dict[str, Any] | None:
    """The artifact's manifest, or None while the artifact is absent or incomplete.

    Raises BucketNotFound when the bucket itself is missing: then no compile could
    ever store the artifact."""
    try:
        data = store.get_bytes(manifest_relpath(key))
    except BucketNotFound:
        raise
    except ObjectNotFound:
        return None
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ValueError(f"{store.uri_of(manifest_relpath(key))} is not a JSON object")
    return manifest


def _encode(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"


def write_manifest(store: Store, key: str, manifest: dict[str, Any]) -> None:
    """Write (or replace) the manifest: call only after the package is fully uploaded."""
    store.put_bytes(manifest_relpath(key), _encode(manifest))


def commit_manifest(store: Store, key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Commit the artifact unless another writer already did: returns the manifest that
    is in force (ours, or the one that was there first)."""
    if store.create_bytes(manifest_relpath(key), _encode(manifest)):
        return manifest
    existing = read_manifest(store, key)
    if existing is None:  # deleted again in between: nothing to defer to
        write_manifest(store, key, manifest)
        return manifest
    return existing
