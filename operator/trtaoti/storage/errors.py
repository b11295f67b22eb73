"""Errors of the storage layer: each names the object it concerns, never a credential."""

from __future__ import annotations


class StorageError(Exception):
    """An object-store operation failed (after the client's own retries)."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class ChecksumMismatch(StorageError):
    """Downloaded bytes do not hash to the expected sha256; nothing was kept."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {uri}: expected {expected}, got {actual}; the download was discarded")
        self.uri = uri
        self.expected = expected
        self.actual = actual
