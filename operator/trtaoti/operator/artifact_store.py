"""The operator's view of object storage: manifests, model ETags, artifact deletion.

Wraps `trtaoti.storage` (obstore underneath, which blocks) in worker threads, and
keeps positive manifest lookups for a while: artifacts are content-addressed and a
manifest is written last, so once seen it never changes, but someone may delete it
(the documented way to force a recompile), so a kept lookup is re-read after
MANIFEST_TTL_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from trtaoti.api.models import Artifact
from trtaoti.artifact import Manifest, read_manifest

MANIFEST_CACHE_SIZE = 4096
MANIFEST_TTL_SECONDS = 60.0
STORE_CACHE_SIZE = 64


class ArtifactStore:
    def __init__(self, manifest_ttl_seconds: float = MANIFEST_TTL_SECONDS) -> None:
        self._manifest_ttl = manifest_ttl_seconds
        # (storage URI, key) -> (artifact, monotonic time it was read)
        self._manifests: OrderedDict[tuple[str, str], tuple[Artifact, float]] = OrderedDict()
        # Opening a store builds an HTTP client; reuse it per (URI, credentials).
        self._stores: OrderedDict[tuple[str, frozenset[tuple[str, str]]], Any] = OrderedDict()

    def _open(self, uri: str, env: dict[str, str]) -> Any:
        from trtaoti.storage import open_store

        cache_key = (uri, frozenset(env.items()))
        store = self._stores.get(cache_key)
        if store is None:
            store = self._stores[cache_key] = open_store(uri, env=env)
            if len(self._stores) > STORE_CACHE_SIZE:
                self._stores.popitem(last=False)
        return store

    async def artifact(self, storage_uri: str, env: dict[str, str], key: str) -> Artifact | None:
        """The compiled package under `key`, or None while its manifest does not exist."""
        cache_key = (storage_uri, key)
        kept = self._manifests.get(cache_key)
        if kept is not None and time.monotonic() - kept[1] < self._manifest_ttl:
            self._manifests.move_to_end(cache_key)
            return kept[0]

        def read() -> Manifest | None:
            return read_manifest(self._open(storage_uri, env), key)

        manifest = await asyncio.to_thread(read)
        if manifest is None:
            self._manifests.pop(cache_key, None)
            return None
        artifact = manifest.artifact()
        self._manifests[cache_key] = (artifact, time.monotonic())
        self._manifests.move_to_end(cache_key)
        if len(self._manifests) > MANIFEST_CACHE_SIZE:
            self._manifests.popitem(last=False)
        return artifact

    async def model_etag(self, model_uri: str, env: dict[str, str]) -> str | None:
        """The exported program's ETag: its identity when the spec pins no sha256.

        Raises trtaoti.storage.ObjectNotFound when the object does not exist."""
        from trtaoti.storage import split_object_uri

        parent, name = split_object_uri(model_uri)

        def head() -> str | None:
            return self._open(parent, env).head(name).etag

        return await asyncio.to_thread(head)

    async def delete_artifact(self, storage_uri: str, env: dict[str, str], key: str) -> None:
        await asyncio.to_thread(lambda: self._open(storage_uri, env).delete_prefix(f"{key}/"))
        self._manifests.pop((storage_uri, key), None)
