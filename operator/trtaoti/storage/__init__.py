"""Object storage by URI (s3://, gs://, az://, file://) through obstore.

    store = open_store("s3://artifacts/trtaoti", env=secret_data)
    store.upload_file("model.pt2", model_relpath(key, sha))  # streaming, sha256 on the way
    manifest = commit_manifest(store, key, manifest)          # first writer wins
    manifest = read_manifest(store, key)                      # None until committed

Importing this package must stay light (no torch): `trtaoti fetch` runs it in every
serving pod's init container.
"""

from trtaoti.storage.errors import (
    AccessDenied,
    BucketNotFound,
    ChecksumMismatch,
    NoCredentials,
    ObjectNotFound,
    StorageError,
)
from trtaoti.storage.layout import (
    MANIFEST_FILE,
    MODEL_FILE,
    commit_manifest,
    manifest_relpath,
    model_relpath,
    package_relpath,
    read_manifest,
    write_manifest,
)
from trtaoti.storage.store import ObjectInfo, Store, UploadResult, file_sha256, open_store
from trtaoti.storage.uri import StorageUri, join_uri, split_object_uri

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "AccessDenied",
    "BucketNotFound",
    "ChecksumMismatch",
    "NoCredentials",
    "ObjectInfo",
    "ObjectNotFound",
    "StorageError",
    "StorageUri",
    "Store",
    "UploadResult",
    "commit_manifest",
    "file_sha256",
    "join_uri",
    "manifest_relpath",
    "model_relpath",
    "open_store",
    "package_relpath",
    "read_manifest",
    "split_object_uri",
    "write_manifest",
]
