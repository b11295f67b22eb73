"""A keyed work queue: at most one reconcile per object at a time, bursts coalesced.

Kopf delivers one event per change of the CR and of each child; a compile finishing
can produce a dozen within a second. The queue folds them: a key already waiting is
not queued twice, and a key that changes while being reconciled is reconciled once
more afterwards (the "dirty" set), so the last state is always seen. Failures are
retried with growing delays; success resets them.

Delayed runs ("look again in 30 s", a failure's backoff) are deadlines, not extra
runs: a key has at most one pending, at the earliest time asked for (an earlier
request replaces it, a later one is dropped), and any run of the key settles it, since
that run asks again if it still needs to. One timer per request would let them pile up:
each run spawns a timer whose run spawns the next, so every resync of a model with a
lasting problem started one more endless chain, and the load grew with uptime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Hashable], Awaitable[None]],
        *,
        concurrency: int = 4,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
    ) -> None:
        self._work = work
        self._concurrency = concurrency
        self._backoff = tuple(backoff)
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        # key -> its one pending delayed run (TimerHandle.when() is when it is due)
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Run `key` within `delay` seconds: at that time unless it runs sooner anyway."""
        loop = asyncio.get_running_loop()
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)  # coalesces with a queued run, or marks a running key dirty

        self._timers[key] = loop.call_later(delay, fire)

    def _settle_delayed(self, key: Hashable) -> None:
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending.cancel()

    def __len__(self) -> int:
        return len(self._waiting) + len(self._active)

    async def run(self) -> None:
        """Process keys until cancelled."""
        workers = [asyncio.create_task(self._worker(), name=f"reconcile-worker-{i}") for i in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._waiting.discard(key)
            self._active.add(key)
            self._settle_delayed(key)
            try:
                await self._work(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempt = self._failures.get(key, 0)
                self._failures[key] = attempt + 1
                delay = self._backoff[min(attempt, len(self._backoff) - 1)]
                # The first failure of a streak carries the traceback; the retries say only
                # what failed. During an apiserver outage every model fails on every retry,
                # and a traceback each time would bury the log.
                log.error(
                    "reconcile of %s failed (attempt %d); retrying in %.0fs%s",
                    key,
                    attempt + 1,
                    delay,
                    "" if attempt == 0 else f": {error!r}",
                    exc_info=attempt == 0,
                )
                self.add_after(key, delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
