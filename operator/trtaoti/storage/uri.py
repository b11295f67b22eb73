"""Storage URIs: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
`file:///absolute/path`.

A store is opened at a base URI; everything else addresses objects by a relative
path below it. These helpers are pure string handling (no client, no network).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

SCHEMES = ("s3", "gs", "az", "file")


@dataclass(frozen=True)
class StorageUri:
    scheme: str
    bucket: str  # bucket or container; empty for file://
    prefix: str  # without leading or trailing "/"; for file:// the absolute directory

    @classmethod
    def parse(cls, uri: str) -> StorageUri:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme not in SCHEMES:
            raise ValueError(
                f"unsupported storage URI {uri!r}: expected one of {', '.join(s + '://' for s in SCHEMES)}"
            )
        if scheme == "file":
            if not rest.startswith("/"):
                raise ValueError(f"file URI must be absolute (file:///path), got {uri!r}")
            path = posixpath.normpath(rest)
            return cls(scheme, "", path.rstrip("/") or "/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"storage URI {uri!r} names no bucket")
        return cls(scheme, bucket, prefix.strip("/"))

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.prefix}"
        return f"{self.scheme}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


def join_uri(base: str, *parts: str) -> str:
    """`join_uri("s3://b/p/", "key", "model.pt2")` -> `s3://b/p/key/model.pt2`."""
    parsed = StorageUri.parse(base)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if not tail:
        return str(parsed)
    return str(parsed).rstrip("/") + "/" + tail


def split_object_uri(uri: str) -> tuple[str, str]:
    """An object's URI -> (URI of its directory, object name), for opening a store at the directory."""
    parsed = StorageUri.parse(uri)
    head, name = posixpath.split(parsed.prefix)
    if not name or (parsed.scheme == "file" and parsed.prefix == "/"):
        raise ValueError(f"{uri!r} names no object")
    if parsed.scheme == "file":
        return f"file://{head}", name
    return str(StorageUri(parsed.scheme, parsed.bucket, head)), name


def check_relpath(relpath: str) -> str:
    """Relative object paths are plain: no leading "/", no "." or ".." segments."""
    segments = relpath.split("/")
    if not relpath or relpath.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"invalid relative object path {relpath!r}")
    return relpath
