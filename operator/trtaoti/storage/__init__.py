"""Object storage by URI (s3://, gs://, az://, file://) through obstore.

    store = open_store("s3://artifacts/trtaoti", env=secret_data)
    result = store.upload_file("model.pt2", "key/model.pt2")  # streaming, sha256 on the way
    created = store.create_bytes("key/manifest.json", data)   # conditional put: first writer wins

What the objects mean (keys, manifests, the layout under a key) is trtaoti.artifact's.

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
from trtaoti.storage.store import ObjectInfo, Store, UploadResult, file_sha256, open_store
from trtaoti.storage.uri import StorageUri, join_uri, split_object_uri

__all__ = [
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
    "file_sha256",
    "join_uri",
    "open_store",
    "split_object_uri",
]
