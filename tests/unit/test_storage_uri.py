"""Storage URIs and the artifact layout: pure string handling."""

from __future__ import annotations

import pytest

from trtaoti.storage import StorageUri, join_uri, split_object_uri
from trtaoti.storage.uri import check_relpath


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "prefix"),
    [
        ("s3://artifacts/trtaoti/", "s3", "artifacts", "trtaoti"),
        ("s3://artifacts", "s3", "artifacts", ""),
        ("gs://bkt/a/b", "gs", "bkt", "a/b"),
        ("az://container/models", "az", "container", "models"),
        ("file:///var/lib/trtaoti/", "file", "", "/var/lib/trtaoti"),
        ("file:///", "file", "", "/"),
    ],
)
def test_parse(uri: str, scheme: str, bucket: str, prefix: str) -> None:
    parsed = StorageUri.parse(uri)
    assert (parsed.scheme, parsed.bucket, parsed.prefix) == (scheme, bucket, prefix)
    assert StorageUri.parse(str(parsed)) == parsed


@pytest.mark.parametrize("uri", ["http://x/y", "s3:/bucket", "file://relative/path", "s3:///prefix", "bucket/key"])
def test_parse_rejects_with_the_uri_named(uri: str) -> None:
    with pytest.raises(ValueError, match=r"URI|file URI|bucket"):
        StorageUri.parse(uri)


def test_join_uri_normalises_slashes() -> None:
    assert join_uri("s3://b/p/", "abc", "model.pt2") == "s3://b/p/abc/model.pt2"
    assert join_uri("s3://b", "/abc/", "manifest.json") == "s3://b/abc/manifest.json"
    assert join_uri("file:///data/store/", "k1/model.pt2") == "file:///data/store/k1/model.pt2"
    assert join_uri("gs://b/p") == "gs://b/p"


def test_split_object_uri() -> None:
    assert split_object_uri("s3://b/p/key/model.pt2") == ("s3://b/p/key", "model.pt2")
    assert split_object_uri("s3://b/model.pt2") == ("s3://b", "model.pt2")
    assert split_object_uri("file:///srv/a/model.pt2") == ("file:///srv/a", "model.pt2")
    with pytest.raises(ValueError, match="names no object"):
        split_object_uri("s3://bucket")


@pytest.mark.parametrize("relpath", ["", "/abs", "a/../b", "a//b", "./a"])
def test_relpaths_cannot_escape_the_store(relpath: str) -> None:
    with pytest.raises(ValueError, match="invalid relative object path"):
        check_relpath(relpath)
