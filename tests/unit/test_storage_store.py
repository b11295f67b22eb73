"""trtaoti.storage against a real file:// store (obstore's LocalStore), and the
environment -> obstore configuration mapping for remote stores."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from trtaoti.storage import ChecksumMismatch, ObjectNotFound, open_store
from trtaoti.storage.credentials import store_config
from trtaoti.storage.store import CHUNK_SIZE


def _random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path):
    return open_store(f"file://{tmp_path}/store")


@pytest.mark.parametrize("size", [0, 1000, CHUNK_SIZE + 12345])  # single put and multipart
def test_upload_then_download_round_trips_with_sha256(store, tmp_path: Path, size: int) -> None:
    expected = _random_file(tmp_path / "in.bin", size)
    result = store.upload_file(tmp_path / "in.bin", "key/model.pt2")
    assert (result.sha256, result.size) == (expected, size)
    assert store.head("key/model.pt2").size == size

    got = store.download_file("key/model.pt2", tmp_path / "out" / "model.pt2", expected_sha256=expected)
    assert got == expected
    assert (tmp_path / "out" / "model.pt2").read_bytes() == (tmp_path / "in.bin").read_bytes()
    assert os.listdir(tmp_path / "out") == ["model.pt2"]  # no temporary left behind


def test_checksum_mismatch_leaves_nothing(store, tmp_path: Path) -> None:
    _random_file(tmp_path / "in.bin", 4096)
    store.upload_file(tmp_path / "in.bin", "k/model.pt2")
    with pytest.raises(ChecksumMismatch, match=r"k/model\.pt2"):
        store.download_file("k/model.pt2", tmp_path / "out" / "model.pt2", expected_sha256="0" * 64)
    assert os.listdir(tmp_path / "out") == []


def test_missing_object_is_named(store, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match=r"nope/model\.pt2"):
        store.download_file("nope/model.pt2", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not store.exists("nope/model.pt2")
    with pytest.raises(ObjectNotFound):
        store.head("nope/model.pt2")


def test_list_and_delete_prefix(store) -> None:
    for name in ["a/model.pt2", "a/manifest.json", "b/model.pt2"]:
        store.put_bytes(name, b"x")
    assert store.list("a") == ["a/manifest.json", "a/model.pt2"]
    assert store.delete_prefix("a/") == 2
    assert store.list() == ["b/model.pt2"]
    store.delete("b/model.pt2")
    assert store.list() == []
    with pytest.raises(ValueError, match="whole store"):
        store.delete_prefix("/")


def test_secret_keys_become_obstore_config_and_http_endpoints_are_allowed() -> None:
    secret = {
        "AWS_ACCESS_KEY_ID": "minio",
        "AWS_SECRET_ACCESS_KEY": "minio-secret",
        "AWS_ENDPOINT_URL": "http://minio.storage:9000",
        "UNRELATED": "ignored",
    }
    config, client = store_config("s3", secret)
    assert config == {
        "access_key_id": "minio",
        "secret_access_key": "minio-secret",
        "endpoint": "http://minio.storage:9000",
        "region": "us-east-1",
    }
    assert client["allow_http"] is True

    config, client = store_config("s3", {"AWS_REGION": "eu-west-1"})
    assert config == {"region": "eu-west-1"} and "allow_http" not in client


def test_open_store_uses_env_over_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-process")
    store = open_store(
        "s3://bucket/pre/fix",
        env={"AWS_ACCESS_KEY_ID": "from-secret", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-2"},
    )
    assert store.uri == "s3://bucket/pre/fix"
    assert store._store.config["access_key_id"] == "from-secret"
    assert store._store.prefix == "pre/fix"
    assert "from-secret" not in repr(store)
