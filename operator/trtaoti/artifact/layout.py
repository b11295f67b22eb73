"""Where an artifact lives below the store's base URI (docs/package-format.md).

    <base>/<key>/model-<sha256 prefix>.pt2   the package, named by its content
    <base>/<key>/manifest.json               written last, once: the artifact's commit

Two writers of one key (two operators sharing a bucket, a Job's replacement pod next
to the old one) can never mix their bytes: each uploads under its own content name,
and only the first manifest is written (a conditional put); the other adopts it.
Readers go through the manifest's "model" and "uri", never a fixed name.
"""

from __future__ import annotations

from trtaoti.artifact.manifest import Manifest
from trtaoti.storage.errors import BucketNotFound, ObjectNotFound
from trtaoti.storage.store import Store

MANIFEST_FILE = "manifest.json"
# The name of the package a compile works on locally, before it is named by content.
LOCAL_PACKAGE_FILE = "model.pt2"


def package_relpath(key: str, sha256: str) -> str:
    return f"{key}/model-{sha256[:16]}.pt2"


def manifest_relpath(key: str) -> str:
    return f"{key}/{MANIFEST_FILE}"


def read_manifest(store: Store, key: str) -> Manifest | None:
    """The artifact's manifest, or None while the artifact is absent or incomplete.

    Raises InvalidManifest for one that does not parse, and BucketNotFound when the
    bucket itself is missing: then no compile could ever store the artifact."""
    try:
        data = store.get_bytes(manifest_relpath(key))
    except BucketNotFound:
        raise
    except ObjectNotFound:
        return None
    return Manifest.parse(data, expected_key=key)


def write_manifest(store: Store, manifest: Manifest) -> None:
    """Write (or replace) the manifest: call only after the package is fully uploaded."""
    store.put_bytes(manifest_relpath(manifest.key), manifest.encode())


def commit_manifest(store: Store, manifest: Manifest) -> Manifest:
    """Commit the artifact unless another writer already did: returns the manifest that
    is in force (ours, or the one that was there first)."""
    if store.create_bytes(manifest_relpath(manifest.key), manifest.encode()):
        return manifest
    existing = read_manifest(store, manifest.key)
    if existing is None:  # deleted again in between: nothing to defer to
        write_manifest(store, manifest)
        return manifest
    return existing
