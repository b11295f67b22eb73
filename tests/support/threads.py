"""Client threads for load tests that fail loudly.

An exception raised in a thread only prints a traceback, and a thread still running
after `join(timeout)` is silently forgotten, with the requests it had in flight never
accounted for. ClientThreads collects the first and fails the test on both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any


class ClientThreads:
    """`count` threads running `target(index)`; joined (and checked) on leaving a `with`."""

    def __init__(self, target: Callable[..., Any], count: int, *, timeout: float, name: str = "client",
                 args: Callable[[int], Iterable[Any]] = lambda index: (index,)) -> None:  # fmt: skip
        self.timeout = timeout
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._run, args=(target, tuple(args(i)), f"{name} {i}"), name=f"{name}-{i}", daemon=True
            )
            for i in range(count)
        ]

    def _run(self, target: Callable[..., Any], args: tuple[Any, ...], label: str) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by join(), in the test's thread
            with self._lock:
                self.errors.append(f"{label}: {exc!r}")

    def start(self) -> ClientThreads:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        """Waits up to `timeout` seconds in all; fails naming threads still running, then
        the first errors the threads raised."""
        deadline = time.monotonic() + self.timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, (
            f"{len(alive)} of {len(self._threads)} client threads still running after {self.timeout} s: {alive[:5]}"
        )
        assert not self.errors, f"{len(self.errors)} client threads failed: {self.errors[:5]}"

    def __enter__(self) -> ClientThreads:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.join()
        # Otherwise the body's own failure is the one to report; the threads are daemons.
