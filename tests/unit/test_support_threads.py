"""The load tests' thread helper fails on what a plain join() would let pass."""

from __future__ import annotations

import threading

import pytest

from support.threads import ClientThreads


def test_every_thread_runs_with_its_index():
    seen: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with lock:
            seen.append(index)

    with ClientThreads(client, 5, timeout=10):
        pass
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_an_exception_in_a_thread_fails_the_test():
    def client(index: int) -> None:
        assert index != 2, "wrong logits"

    failed = r"1 client threads failed: \[\"client 2: AssertionError\('wrong logits"
    with pytest.raises(AssertionError, match=failed), ClientThreads(client, 3, timeout=10):
        pass


def test_a_thread_still_running_after_the_timeout_fails_the_test():
    release = threading.Event()
    try:
        alive = r"1 of 2 client threads still running after 0.2 s: \['client-1'\]"
        with (
            pytest.raises(AssertionError, match=alive),
            ClientThreads(lambda index: index == 1 and release.wait(30), 2, timeout=0.2),
        ):
            pass
    finally:
        release.set()
