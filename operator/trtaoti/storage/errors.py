"""Errors of the storage layer: each names the object it concerns, never a credential."""

from __future__ import annotations


class StorageError(Exception):
    """An object-store operation failed (after the client's own retries)."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class BucketNotFound(ObjectNotFound):
    """The bucket (container) itself does not exist, so no object in it can.

    An ObjectNotFound for callers that only ask "is it there?"; read_manifest and the
    operator tell it apart, since no upload to the bucket can succeed either."""

    def __init__(self, message: str, bucket_uri: str) -> None:
        super().__init__(message)
        self.bucket_uri = bucket_uri


class AccessDenied(StorageError):
    """The store refused the request (HTTP 401/403): wrong, expired or insufficient credentials."""


class NoCredentials(StorageError):
    """None configured, and the environment (the cloud's instance metadata) provided none."""


class ChecksumMismatch(StorageError):
    """Downloaded bytes do not hash to the expected sha256; nothing was kept."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {uri}: expected {expected}, got {actual}; the download was discarded")
        self.uri = uri
        self.expected = expected
        self.actual = actual
