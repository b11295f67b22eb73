"""The artifact contract shared by the compiler, the operator and `trtaoti run`.

    key.py        the content address: what changes the compiled bytes, hashed
    manifest.py   manifest.json, the typed description of a stored package
    layout.py     where the package and its manifest live under the storage URI

Light to import (pydantic, no torch, no Kubernetes client): the serving pod's init
container and the operator load it, not only the compile Job.
"""

from trtaoti.artifact.key import KEY_LENGTH, artifact_key, key_document
from trtaoti.artifact.layout import (
    LOCAL_PACKAGE_FILE,
    MANIFEST_FILE,
    commit_manifest,
    manifest_relpath,
    package_relpath,
    read_manifest,
    write_manifest,
)
from trtaoti.artifact.manifest import InvalidManifest, Manifest, TensorDescription, ValidationSummary

__all__ = [
    "KEY_LENGTH",
    "LOCAL_PACKAGE_FILE",
    "MANIFEST_FILE",
    "InvalidManifest",
    "Manifest",
    "TensorDescription",
    "ValidationSummary",
    "artifact_key",
    "commit_manifest",
    "key_document",
    "manifest_relpath",
    "package_relpath",
    "read_manifest",
    "write_manifest",
]
