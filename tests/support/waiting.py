"""Deadline-bound waiting for a condition that another process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls `probe` until it returns a truthy value (returned) or `timeout` seconds pass.

    Exceptions listed in `ignore` count as "not yet"; the last one is named in the
    timeout message so a failure says what was still wrong.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except ignore as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
