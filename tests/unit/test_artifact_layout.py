"""The artifact contract against a real file:// store: manifests committed once, read
back typed, and refused with the field named when they are damaged."""

from __future__ import annotations

import hashlib
import json

import pytest

from support.artifacts import sample_manifest, store_artifact
from trtaoti.artifact import (
    InvalidManifest,
    Manifest,
    commit_manifest,
    manifest_relpath,
    package_relpath,
    read_manifest,
)
from trtaoti.storage import open_store

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path.as_uri())


def test_a_manifest_is_none_until_committed_then_reads_back_as_written(store) -> None:
    assert read_manifest(store, KEY) is None
    written = store_artifact(store, KEY, b"package bytes")
    assert read_manifest(store, KEY) == written
    assert written.model == f"model-{written.sha256[:16]}.pt2"
    assert store.exists(package_relpath(KEY, written.sha256))


def test_two_writers_of_one_key_never_mix_their_bytes(store) -> None:
    """Two compiles of one key (two operators on one bucket, a Job's replacement pod):
    each package is stored under its content name, the first manifest stays, and the
    manifest in force always describes bytes that are really there."""
    manifests = []
    for payload in (b"package built by writer A", b"package built by writer B"):
        manifest = sample_manifest(store, KEY, payload)
        store.put_bytes(package_relpath(KEY, manifest.sha256), payload)
        manifests.append(manifest)
    first, second = manifests
    assert first.uri != second.uri
    assert commit_manifest(store, first) is first
    assert commit_manifest(store, second) == first  # the late writer adopts the committed one
    in_force = read_manifest(store, KEY)
    assert in_force == first
    assert hashlib.sha256(store.get_bytes(package_relpath(KEY, in_force.sha256))).hexdigest() == in_force.sha256


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda wire: wire.pop("batch"), "batch: Field required"),
        (lambda wire: wire.update(bytes="many"), "bytes: Input should be a valid integer"),
        (lambda wire: wire.update(format=2), "format: Input should be 1"),
        (lambda wire: wire.update(key="another"), "manifest is for key 'another'"),
    ],
)
def test_a_damaged_manifest_is_refused_naming_what_is_wrong(store, damage, message) -> None:
    wire = store_artifact(store, KEY, b"package bytes").to_wire()
    damage(wire)
    store.put_bytes(manifest_relpath(KEY), json.dumps(wire).encode())
    with pytest.raises(InvalidManifest, match=message):
        read_manifest(store, KEY)


def test_a_manifest_that_is_not_json_is_refused(store) -> None:
    store.put_bytes(manifest_relpath(KEY), b"{ torn")
    with pytest.raises(InvalidManifest, match=f"manifest for {KEY} is not JSON"):
        read_manifest(store, KEY)


def test_the_status_artifact_is_the_manifests_subset(store) -> None:
    manifest = store_artifact(store, KEY, b"package bytes", batch=(2, 8, 32))
    artifact = manifest.artifact()
    assert (artifact.key, artifact.uri, artifact.sha256, artifact.bytes) == (KEY, manifest.uri, manifest.sha256, 13)
    assert (artifact.batch.min, artifact.batch.opt, artifact.batch.max) == (2, 8, 32)
    assert artifact.gpu_product == manifest.gpu_product and artifact.peak_memory_bytes == manifest.peak_memory_bytes
    # Extra fields a newer compiler adds are ignored by this reader, not refused.
    assert Manifest.parse(json.dumps({**manifest.to_wire(), "addedLater": 1})) == manifest
