"""What trtaoti.storage says when the bucket or the credentials are wrong, against a real
S3 endpoint (MinIO; no control plane needed). The operator turns these into the
`BucketNotFound` and `StorageCredentials` conditions before it starts any compile Job."""

from __future__ import annotations

import os
import secrets

import pytest

from support.ports import free_port
from trtaoti.artifact import read_manifest
from trtaoti.storage import AccessDenied, BucketNotFound, NoCredentials, open_store

KEY = "0123456789abcdef0123456789abcdef"
S3_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")


def _env(s3: dict[str, str], **changes: str) -> dict[str, str]:
    return {**{k: s3[k] for k in S3_KEYS}, **changes}


def test_a_missing_bucket_is_not_a_missing_manifest(s3):
    bucket = f"trtaoti-missing-{secrets.token_hex(4)}"
    store = open_store(f"s3://{bucket}/models", env=_env(s3))
    with pytest.raises(
        BucketNotFound, match=rf"bucket s3://{bucket} does not exist \(404 Not Found: NoSuchBucket"
    ) as raised:
        read_manifest(store, KEY)
    assert raised.value.bucket_uri == f"s3://{bucket}"
    # Still "not there" to callers that only ask that.
    assert not store.exists("anything")

    present = open_store(f"s3://{s3['TRTAOTI_TEST_BUCKET']}/models", env=_env(s3))
    assert read_manifest(present, KEY) is None


@pytest.mark.parametrize(
    ("variable", "server_code"),
    [("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"), ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")],
)
def test_refused_credentials_are_access_denied(s3, variable, server_code):
    wrong = "wrong-" + secrets.token_hex(8)
    store = open_store(f"s3://{s3['TRTAOTI_TEST_BUCKET']}/models", env=_env(s3, **{variable: wrong}))
    with pytest.raises(AccessDenied, match=f"403 Forbidden: {server_code}") as raised:
        read_manifest(store, KEY)
    assert f"s3://{s3['TRTAOTI_TEST_BUCKET']}/models/{KEY}/manifest.json" in str(raised.value)
    with pytest.raises(AccessDenied, match="403 Forbidden"):
        store.head(f"{KEY}/manifest.json")  # a HEAD has no body: the status alone
    assert wrong not in str(raised.value) and s3["AWS_SECRET_ACCESS_KEY"] not in str(raised.value)


def test_no_credentials_anywhere_is_named(s3, monkeypatch):
    """No keys in the Secret or the process, and no instance metadata service (here a
    closed local port stands in for 169.254.169.254, so the test never waits on it)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    env = {k: s3[k] for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ALLOW_HTTP")}
    store = open_store(f"s3://{s3['TRTAOTI_TEST_BUCKET']}/models", env=env)
    with pytest.raises(NoCredentials, match=rf"no credentials for s3://{s3['TRTAOTI_TEST_BUCKET']}: none configured"):
        read_manifest(store, KEY)
