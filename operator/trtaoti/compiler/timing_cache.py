"""TensorRT's timing cache, per GPU product and TensorRT version, in object storage.

TensorRT times candidate kernels ("tactics") for every layer while it builds an
engine; the timing cache keeps those measurements, so a later build of the same
layers on the same GPU skips them (upstream reports 34.6 s -> 7.7 s). Timings are
only valid for the GPU and the TensorRT release that measured them, and
Torch-TensorRT's own engine cache leaves both out of its key, so the namespace is
ours, beside the artifacts:

    <storage.uri>/timing-caches/<GPU product>/tensorrt-<version>/<sha256>.cache

Objects are named by their content and never rewritten: a compile downloads the
newest one (verified against the sha256 in its name), hands it to Torch-TensorRT,
and uploads the cache it ends with as a new object. Two compiles on one product at
once each add their own object; neither can tear or overwrite the other's, and the
next compile starts from the newest. Only the newest KEEP objects stay. A cache is
an optimisation: every storage failure here is reported and the compile goes on
without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trtaoti.compiler.progress import step
from trtaoti.storage import StorageError, Store, file_sha256

PREFIX = "timing-caches"
KEEP = 3
_NAME = re.compile(r"^(?P<sha256>[0-9a-f]{64})\.cache$")
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimingCache:
    store: Store
    gpu_product: str
    tensorrt_version: str

    @property
    def prefix(self) -> str:
        return f"{PREFIX}/{_segment(self.gpu_product)}/tensorrt-{_segment(self.tensorrt_version)}"

    def _entries(self) -> list[tuple[datetime, str, str]]:
        """(last modified, relpath, sha256) of the stored caches, newest first."""
        entries = []
        for relpath in self.store.list(self.prefix):
            match = _NAME.match(relpath.rsplit("/", 1)[-1])
            if match:
                modified = self.store.head(relpath).last_modified or _OLDEST
                entries.append((modified, relpath, match["sha256"]))
        return sorted(entries, reverse=True)

    def fetch(self, local: Path) -> str | None:
        """Downloads the newest cache to `local`; returns its sha256, or None (no cache)."""
        try:
            for _, relpath, sha256 in self._entries():
                try:
                    self.store.download_file(relpath, local, expected_sha256=sha256)
                except StorageError as exc:  # deleted meanwhile by a writer's pruning, or damaged
                    step(f"timing cache {self.store.uri_of(relpath)} skipped: {exc}")
                    continue
                step(f"timing cache: {self.store.uri_of(relpath)}")
                return sha256
        except StorageError as exc:
            step(f"timing cache unavailable ({exc}); building without one")
            return None
        step(f"timing cache: none yet under {self.store.uri_of(self.prefix)}/")
        return None

    def publish(self, local: Path, fetched: str | None) -> str | None:
        """Uploads `local` as a new cache object when the build changed it; returns the
        new object's relpath. Older objects beyond KEEP are removed."""
        if not local.is_file() or local.stat().st_size == 0:
            return None
        sha256 = file_sha256(local)
        if sha256 == fetched:
            return None
        relpath = f"{self.prefix}/{sha256}.cache"
        try:
            self.store.upload_file(local, relpath)
        except StorageError as exc:
            step(f"timing cache not saved ({exc})")
            return None
        step(f"timing cache saved: {self.store.uri_of(relpath)}")
        try:
            for _, old, _ in self._entries()[KEEP:]:
                self.store.delete(old)
        except StorageError as exc:  # another writer pruning the same objects
            step(f"older timing caches not pruned ({exc})")
        return relpath


def _segment(value: str) -> str:
    """A product or version as one path segment."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", value).strip("-") or "unknown"
