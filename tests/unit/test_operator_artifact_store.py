"""The operator's manifest lookups against a real file:// store."""

import asyncio
import hashlib

from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.storage import model_relpath, open_store, write_manifest

KEY = "0123456789abcdef0123456789abcdef"


def publish(root, key=KEY) -> None:
    """What a finished compile leaves behind: the package, then its manifest."""
    store = open_store(root.as_uri())
    payload = f"package {key}".encode()
    store.put_bytes(model_relpath(key), payload)
    write_manifest(store, key, {
        "format": 1, "key": key, "model": "model.pt2", "uri": store.uri_of(model_relpath(key)),
        "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload), "backend": "inductor",
        "precision": "fp32", "device": "cpu", "batch": {"min": 1, "opt": 4, "max": 8},
        "versions": {"torch": "2.14.0"}, "createdAt": "2026-11-26T00:00:00Z",
    })  # fmt: skip


def test_a_deleted_artifact_is_noticed_once_the_kept_lookup_expires(tmp_path):
    store = ArtifactStore(manifest_ttl_seconds=0.2)
    uri = tmp_path.as_uri()
    assert asyncio.run(store.artifact(uri, {}, KEY)) is None
    publish(tmp_path)
    found = asyncio.run(store.artifact(uri, {}, KEY))
    assert found is not None and found.key == KEY and found.bytes == len(f"package {KEY}")

    # README: deleting <storage.uri>/<key>/ makes the operator compile it again.
    open_store(uri).delete_prefix(f"{KEY}/")
    assert asyncio.run(store.artifact(uri, {}, KEY)) is not None  # still within the TTL
    asyncio.run(asyncio.sleep(0.25))
    assert asyncio.run(store.artifact(uri, {}, KEY)) is None


def test_a_kept_lookup_is_served_without_reading_storage(tmp_path):
    store = ArtifactStore()
    publish(tmp_path)
    first = asyncio.run(store.artifact(tmp_path.as_uri(), {}, KEY))
    (tmp_path / KEY / "manifest.json").write_text("{ not json")  # any read now would fail
    assert asyncio.run(store.artifact(tmp_path.as_uri(), {}, KEY)) == first
