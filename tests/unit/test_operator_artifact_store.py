"""The operator's manifest lookups against a real file:// store."""

import asyncio

from support.artifacts import store_artifact
from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.storage import open_store

KEY = "0123456789abcdef0123456789abcdef"


def publish(root, key=KEY) -> None:
    """What a finished compile leaves behind: the package, then its manifest."""
    store_artifact(open_store(root.as_uri()), key, f"package {key}".encode(), device="cpu")


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
