"""The shared TensorRT timing cache against a real file:// store: keyed by GPU product
and TensorRT version, content-named, never torn by concurrent writers."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from trtaoti.compiler.timing_cache import KEEP, PREFIX, TimingCache
from trtaoti.storage import open_store

H100, L4 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"


@pytest.fixture
def store(tmp_path):
    return open_store((tmp_path / "store").as_uri())


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_build_starts_empty_then_later_builds_start_from_what_it_saved(store, tmp_path):
    cache = TimingCache(store, H100, "11.1.0.5")
    local = tmp_path / "first.cache"
    assert cache.fetch(local) is None and not local.exists()

    saved = cache.publish(write(local, b"tactic timings of the first build"), fetched=None)
    digest = hashlib.sha256(b"tactic timings of the first build").hexdigest()
    assert saved == f"{PREFIX}/{H100}/tensorrt-11.1.0.5/{digest}.cache"

    again = tmp_path / "second.cache"
    assert cache.fetch(again) == digest
    assert again.read_bytes() == b"tactic timings of the first build"
    # Nothing new learned: nothing written.
    assert cache.publish(again, fetched=digest) is None
    assert store.list(PREFIX) == [saved]


def test_each_gpu_product_and_tensorrt_release_has_its_own_cache(store, tmp_path):
    TimingCache(store, H100, "11.1.0.5").publish(write(tmp_path / "h100", b"h100 timings"), None)
    for other in (TimingCache(store, L4, "11.1.0.5"), TimingCache(store, H100, "11.0.0.2")):
        assert other.fetch(tmp_path / "x.cache") is None


def test_two_concurrent_writers_never_tear_or_overwrite_each_other(store, tmp_path):
    cache = TimingCache(store, H100, "11.1.0.5")
    cache.publish(write(tmp_path / "base", b"base timings"), None)
    contents = {name: f"{name}: ".encode() + bytes(range(256)) * 4096 for name in ("writer-a", "writer-b")}
    start = threading.Barrier(2)
    published: dict[str, str | None] = {}

    def build(name: str) -> None:
        local = tmp_path / f"{name}.cache"
        fetched = cache.fetch(local)
        start.wait()  # both publish at once, from the same base
        published[name] = cache.publish(write(local, contents[name]), fetched)

    threads = [threading.Thread(target=build, args=(name,)) for name in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert all(published.values()) and len(set(published.values())) == 2
    # Both survive whole: each object still hashes to the name it was written under.
    for name, relpath in published.items():
        assert store.get_bytes(relpath) == contents[name]
    fetched = tmp_path / "next.cache"
    assert cache.fetch(fetched) in {hashlib.sha256(c).hexdigest() for c in contents.values()}
    assert fetched.read_bytes() in contents.values()


def test_only_the_newest_caches_are_kept(store, tmp_path):
    cache = TimingCache(store, H100, "11.1.0.5")
    for i in range(KEEP + 2):
        cache.publish(write(tmp_path / f"{i}.cache", f"timings after build {i}".encode()), None)
    assert len(store.list(cache.prefix)) == KEEP


def test_a_damaged_cache_object_is_skipped(store, tmp_path):
    cache = TimingCache(store, H100, "11.1.0.5")
    relpath = cache.publish(write(tmp_path / "good", b"good timings"), None)
    store.put_bytes(relpath, b"bit rot")  # same name, other bytes: fails its own sha256
    local = tmp_path / "fetched.cache"
    assert cache.fetch(local) is None and not local.exists()
