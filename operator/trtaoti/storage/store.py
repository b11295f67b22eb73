"""One object store, opened at a base URI, addressed by relative paths.

All transfers go through obstore (Rust `object_store`): multipart uploads, retries
with backoff (its RetryConfig), S3/MinIO/Ceph, GCS, Azure and local files behind one
API. This class adds only what trtaoti needs on top: sha256 computed while
streaming (a multi-GB package never sits in memory), downloads that appear at
their final path atomically and only when verified, and errors that name the object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    GenericError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import AzureStore, GCSStore, LocalStore, S3Store

from trtaoti.storage.credentials import RETRY_CONFIG, store_config
from trtaoti.storage.errors import (
    AccessDenied,
    BucketNotFound,
    ChecksumMismatch,
    NoCredentials,
    ObjectNotFound,
    StorageError,
)
from trtaoti.storage.uri import StorageUri, check_relpath

if TYPE_CHECKING:
    from obstore.store import AzureConfig, ClientConfig, GCSConfig, ObjectStore, RetryConfig, S3Config

# S3 parts must be >= 5 MiB; 16 MiB parts keep a 10 GB package under S3's
# 10,000-part limit and amortise per-request latency.
CHUNK_SIZE = 16 * 1024 * 1024
UPLOAD_CONCURRENCY = 8
# Downloads are handed to Python in 4 MiB pieces: large enough to amortise the
# per-chunk overhead, small enough that hashing and writing pipeline well (measured).
DOWNLOAD_CHUNK_SIZE = 4 * 1024 * 1024

# How a store says that the bucket, not just the object, is missing: S3's error code
# (AWS, MinIO, Ceph RGW), Azure's, GCS's message. Only bodies carry it: a HEAD of a
# missing bucket reads as a missing object.
BUCKET_MISSING = ("<Code>NoSuchBucket</Code>", "<Code>ContainerNotFound</Code>", "The specified bucket does not exist")
# obstore falls back to the EC2 instance metadata service (IMDSv2 token, then the
# role's credentials) only when no S3 credentials are configured at all.
INSTANCE_METADATA_PATHS = ("/latest/api/token", "/latest/meta-data/iam/")


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None
    last_modified: datetime | None


@dataclass(frozen=True)
class UploadResult:
    sha256: str
    size: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def open_store(uri: str, env: Mapping[str, str] | None = None) -> Store:
    """Open the store at `uri`; `env` (e.g. a Secret's data) overrides os.environ."""
    return Store(uri, env)


class Store:
    def __init__(self, uri: str, env: Mapping[str, str] | None = None) -> None:
        self.base = StorageUri.parse(uri)
        self.uri = str(self.base)
        merged = {**os.environ, **(env or {})}
        self._store = _connect(self.base, merged)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def uri_of(self, relpath: str) -> str:
        return f"{self.uri.rstrip('/')}/{check_relpath(relpath)}"

    # --- metadata ------------------------------------------------------------------

    def head(self, relpath: str) -> ObjectInfo:
        with self._errors(relpath):
            meta = obstore.head(self._store, check_relpath(relpath))
        return ObjectInfo(size=meta["size"], etag=meta.get("e_tag"), last_modified=meta.get("last_modified"))

    def exists(self, relpath: str) -> bool:
        try:
            self.head(relpath)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        """Relative paths of every object below `prefix` (recursively), sorted."""
        prefix = prefix.strip("/")
        with self._errors(prefix or "."):
            pages = obstore.list(self._store, prefix or None, chunk_size=1000)
            paths = [meta["path"] for page in pages for meta in page]
        return sorted(paths)

    # --- small objects -------------------------------------------------------------

    def get_bytes(self, relpath: str) -> bytes:
        with self._errors(relpath):
            return bytes(obstore.get(self._store, check_relpath(relpath)).bytes())

    def put_bytes(self, relpath: str, data: bytes) -> None:
        with self._errors(relpath):
            obstore.put(self._store, check_relpath(relpath), data, use_multipart=False)

    def create_bytes(self, relpath: str, data: bytes) -> bool:
        """Write `data` only if nothing is at `relpath` yet (a conditional put: S3
        If-None-Match, GCS/Azure preconditions, O_EXCL locally). False when something
        already was, which is then left as it is."""
        try:
            with self._errors(relpath):
                obstore.put(self._store, check_relpath(relpath), data, use_multipart=False, mode="create")
        except StorageError as exc:
            if isinstance(exc.__cause__, (AlreadyExistsError, PreconditionError)):
                return False
            raise
        return True

    def delete(self, relpath: str) -> None:
        with self._errors(relpath):
            obstore.delete(self._store, check_relpath(relpath))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object below `prefix`; returns how many were deleted."""
        if not prefix.strip("/"):
            raise ValueError("refusing to delete the whole store: give a non-empty prefix")
        paths = self.list(prefix)
        if paths:
            with self._errors(prefix):
                obstore.delete(self._store, paths)
        return len(paths)

    # --- large files ---------------------------------------------------------------

    def upload_file(self, local_path: str | os.PathLike[str], relpath: str) -> UploadResult:
        """Stream a local file up (multipart above CHUNK_SIZE), hashing as it is read."""
        check_relpath(relpath)
        digest = _BackgroundSha256()
        size = os.path.getsize(local_path)
        try:
            with open(local_path, "rb") as source, self._errors(relpath):
                if size <= CHUNK_SIZE:
                    data = source.read()
                    digest.update(data)
                    obstore.put(self._store, relpath, data, use_multipart=False)
                else:
                    obstore.put(
                        self._store,
                        relpath,
                        _hashed_chunks(source, digest),
                        use_multipart=True,
                        chunk_size=CHUNK_SIZE,
                        max_concurrency=UPLOAD_CONCURRENCY,
                    )
        finally:
            digest.close()
        return UploadResult(sha256=digest.hexdigest(), size=size)

    def download_file(
        self,
        relpath: str,
        local_path: str | os.PathLike[str],
        expected_sha256: str | None = None,
    ) -> str:
        """Stream an object to `local_path`; returns its sha256.

        Bytes land in a temporary file next to `local_path` and are renamed into
        place only when complete (and matching `expected_sha256`), so a reader never
        sees a partial or corrupt file and a failure leaves nothing at `local_path`.
        """
        check_relpath(relpath)
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        digest = _BackgroundSha256()
        try:
            with os.fdopen(fd, "wb") as sink, self._errors(relpath):
                result = obstore.get(self._store, relpath)
                for chunk in result.stream(min_chunk_size=DOWNLOAD_CHUNK_SIZE):
                    view = memoryview(chunk)
                    digest.update(view)
                    sink.write(view)
            actual = digest.hexdigest()
            digest.close()
            if expected_sha256 is not None and actual != expected_sha256.lower():
                raise ChecksumMismatch(self.uri_of(relpath), expected_sha256.lower(), actual)
            # No fsync: the rename only has to hide partial files from readers while
            # this process runs or after it is killed (the page cache survives that).
            # After a kernel crash, `trtaoti fetch` re-hashes any file it finds anyway.
            os.replace(temp_name, target)
        except BaseException:
            digest.close()
            Path(temp_name).unlink(missing_ok=True)
            raise
        return actual

    # --- internals -----------------------------------------------------------------

    def _errors(self, relpath: str) -> contextlib.AbstractContextManager[None]:
        bucket = str(StorageUri(self.base.scheme, self.base.bucket, ""))
        return _translated_errors(f"{self.uri.rstrip('/')}/{relpath}", bucket)


@contextlib.contextmanager
def _translated_errors(uri: str, bucket_uri: str) -> Iterator[None]:
    """Turn obstore's exceptions into ours, naming the object's URI (never credentials)."""
    try:
        yield
    except (FileNotFoundError, NotFoundError) as exc:
        # obstore reports a missing object as the builtin FileNotFoundError.
        if any(marker in str(exc) for marker in BUCKET_MISSING):
            raise BucketNotFound(
                f"bucket {bucket_uri} does not exist ({_server_said(str(exc))}; reading {uri})", bucket_uri
            ) from None
        raise ObjectNotFound(f"object not found: {uri}") from None
    except (PermissionDeniedError, UnauthenticatedError) as exc:
        raise AccessDenied(f"access denied to {uri}: {_server_said(str(exc))}") from exc
    except GenericError as exc:
        if any(path in str(exc) for path in INSTANCE_METADATA_PATHS):
            raise NoCredentials(
                f"no credentials for {bucket_uri}: none configured (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                f"or a web identity) and the instance metadata service gave none ({_first_line(exc)})"
            ) from exc
        raise StorageError(f"{type(exc).__name__} on {uri}: {_first_line(exc)}") from exc
    except ObstoreError as exc:
        raise StorageError(f"{type(exc).__name__} on {uri}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    # obstore appends a multi-line debug dump; its first line carries the cause.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _server_said(text: str) -> str:
    """The HTTP status and the store's own error code and message, e.g. "403 Forbidden:
    InvalidAccessKeyId: The Access Key Id you provided does not exist in our records."."""
    status = re.search(r"status code: (\d{3}[^:\n]*)", text)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    parts = [
        status.group(1).strip() if status else None,
        code.group(1) if code else None,
        message.group(1) if message else None,
    ]
    return ": ".join(p for p in parts if p) or text.strip().splitlines()[0]


class _BackgroundSha256:
    """sha256 fed in order on a helper thread, overlapping the transfer.

    hashlib releases the GIL for large buffers, so hashing chunk n runs while chunk
    n+1 is read, sent or written. A buffer must stay unchanged until the next
    update() or hexdigest() returns; the chunks passed here are never reused.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._pending: Future[None] | None = None

    def update(self, data: bytes | memoryview) -> None:
        self._wait()
        self._pending = self._pool.submit(self._digest.update, data)

    def hexdigest(self) -> str:
        self._wait()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


def _hashed_chunks(source: BinaryIO, digest: _BackgroundSha256) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        yield chunk


def _connect(base: StorageUri, env: Mapping[str, str]) -> ObjectStore:
    if base.scheme == "file":
        # mkdir: a fresh embedded store (trtaoti run, tests) needs no setup step.
        return LocalStore(prefix=base.prefix, mkdir=True)
    # Plain dicts to obstore's TypedDicts: store_config() only writes the scheme's own keys.
    config, client = store_config(base.scheme, env)
    client_options, retry = cast("ClientConfig", client), cast("RetryConfig", RETRY_CONFIG)
    prefix = base.prefix or None
    try:
        if base.scheme == "s3":
            s3 = cast("S3Config", config)
            return S3Store(base.bucket, prefix=prefix, config=s3, client_options=client_options, retry_config=retry)
        if base.scheme == "gs":
            gcs = cast("GCSConfig", config)
            return GCSStore(base.bucket, prefix=prefix, config=gcs, client_options=client_options, retry_config=retry)
        azure = cast("AzureConfig", config)
        return AzureStore(base.bucket, prefix=prefix, config=azure, client_options=client_options, retry_config=retry)
    except ObstoreError as exc:
        summary = str(exc).strip().splitlines()[0]
        raise StorageError(f"cannot open store {base}: {summary}") from exc
