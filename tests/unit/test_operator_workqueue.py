"""The operator's work queue (trtaoti.operator.workqueue), on a virtual clock.

The event loop here keeps its own time: whenever every task is waiting, it jumps
straight to the next timer instead of sleeping (the idea of trio's autojump clock).
Minutes of queue time take milliseconds, timers fire in a fixed order, and nothing
waits on a real sleep; a test that deadlocks fails at its virtual deadline.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Hashable

import pytest

from trtaoti.operator.workqueue import WorkQueue

KEY = ("ns", "model")


class _JumpingSelector:
    """Polls without blocking; where the loop would sleep, moves the clock instead."""

    def __init__(self, selector: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._selector = selector
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        ready = self._selector.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is scheduled")
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str):
        return getattr(self._selector, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _JumpingSelector(self._selector, self)

    def time(self) -> float:
        return self.now


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(asyncio.wait_for(scenario(), timeout=3600))


class Recorder:
    """A reconcile stand-in: records the (virtual) time of each run of each key."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, Hashable]] = []
        self.queue: WorkQueue | None = None
        self.hook: Callable[[Hashable], Awaitable[None]] | None = None

    async def __call__(self, key: Hashable) -> None:
        self.runs.append((asyncio.get_running_loop().time(), key))
        if self.hook is not None:
            await self.hook(key)

    def times(self, key: Hashable = KEY) -> list[float]:
        return [t for t, k in self.runs if k == key]


async def started(queue: WorkQueue) -> asyncio.Task[None]:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- coalescing --------------------------------------------------------------------


def test_adds_while_a_key_waits_make_one_run():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work, concurrency=4)
        for _ in range(10):
            queue.add(KEY)
        queue.add(("ns", "other"))
        task = await started(queue)
        await asyncio.sleep(60)
        assert work.times() == [0.0]
        assert work.times(("ns", "other")) == [0.0]
        await stop(task)

    run(scenario)


def test_adds_while_a_key_runs_fold_into_one_rerun_after_it():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work, concurrency=4)

        async def slow_first_run(key: Hashable) -> None:
            if len(work.runs) == 1:
                for _ in range(10):  # a burst of events while the reconcile is busy
                    queue.add(key)
                await asyncio.sleep(5)

        work.hook = slow_first_run
        queue.add(KEY)
        task = await started(queue)
        await asyncio.sleep(60)
        # Never two at once: the re-run starts when the first ends, and only one.
        assert work.times() == [0.0, 5.0]
        assert len(queue) == 0
        await stop(task)

    run(scenario)


# --- delayed runs ------------------------------------------------------------------


def test_many_retry_requests_leave_one_pending_run():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)
        task = await started(queue)
        for i in range(100):  # 100 "look again later", each for a later time than the first
            queue.add_after(KEY, 30 + i)
        await asyncio.sleep(600)
        assert work.times() == [30.0]
        await stop(task)

    run(scenario)


def test_an_earlier_retry_replaces_a_later_one():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)
        task = await started(queue)
        queue.add_after(KEY, 60)
        queue.add_after(KEY, 5)
        queue.add_after(KEY, 30)
        await asyncio.sleep(600)
        assert work.times() == [5.0]
        await stop(task)

    run(scenario)


def test_any_run_settles_a_pending_retry():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)
        task = await started(queue)
        queue.add_after(KEY, 30)
        await asyncio.sleep(10)
        queue.add(KEY)  # an event: this run asks again itself if it still needs to
        await asyncio.sleep(600)
        assert work.times() == [10.0]
        await stop(task)

    run(scenario)


def test_a_retry_due_while_its_key_runs_is_the_dirty_rerun():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)

        async def first_run_asks_and_lingers(key: Hashable) -> None:
            if len(work.runs) == 1:
                queue.add_after(key, 1)
                queue.add(key)  # an event during the run too: still one re-run
                await asyncio.sleep(10)

        work.hook = first_run_asks_and_lingers
        queue.add(KEY)
        task = await started(queue)
        await asyncio.sleep(600)
        assert work.times() == [0.0, 10.0]
        await stop(task)

    run(scenario)


def test_retries_do_not_pile_up_under_a_resync():
    """The issue's numbers: a model whose reconcile always says "look again in 30 s"
    (a missing Secret), a 10 s resync; reconciles per 30 s must stay flat, not grow
    4, 6, 9, ... with uptime."""

    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)

        async def retry_later(key: Hashable) -> None:
            # Reconciles take varying time (fixed here), so retries do not line up with resyncs.
            await asyncio.sleep(0.1 + (len(work.runs) * 0.37) % 1.5)
            queue.add_after(key, 30)  # what handlers.reconcile does with the reconciler's answer

        async def resync() -> None:
            while True:
                await asyncio.sleep(10)
                queue.add(KEY)

        work.hook = retry_later
        queue.add(KEY)
        task = await started(queue)
        resyncing = asyncio.create_task(resync())
        await asyncio.sleep(360 - 0.5)  # stop between two resyncs
        resyncing.cancel()
        per_window = [sum(1 for t in work.times() if w * 30 <= t < (w + 1) * 30) for w in range(12)]
        assert per_window == [3] + [3] * 11, per_window  # one per resync; the retry never comes due
        await stop(task)

    run(scenario)


def test_retries_come_due_when_nothing_else_runs_the_key():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)

        async def retry_later(key: Hashable) -> None:
            queue.add_after(key, 30)

        work.hook = retry_later
        queue.add(KEY)
        task = await started(queue)
        await asyncio.sleep(100)
        assert work.times() == [0.0, 30.0, 60.0, 90.0]
        await stop(task)

    run(scenario)


def test_stopping_the_queue_cancels_pending_retries():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work)
        task = await started(queue)
        queue.add_after(KEY, 30)
        await stop(task)
        await asyncio.sleep(600)
        assert work.runs == []

    run(scenario)


# --- failures ----------------------------------------------------------------------


def test_failures_back_off_up_to_the_last_delay_and_success_resets_it():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work, backoff=(1, 2, 5))
        outcomes = iter([False, False, False, False, True, False, True])

        async def scripted(key: Hashable) -> None:
            if not next(outcomes):
                raise RuntimeError("apiserver said no")

        work.hook = scripted
        queue.add(KEY)
        task = await started(queue)
        await asyncio.sleep(100)
        assert work.times() == [0, 1, 3, 8, 13]  # +1, +2, +5, +5 (the last delay repeats)
        queue.add(KEY)  # after a success the next failure starts from the first delay
        await asyncio.sleep(100)
        assert work.times()[5:] == [100, 101]
        await stop(task)

    run(scenario)


def test_a_failure_streak_logs_one_traceback(caplog: pytest.LogCaptureFixture):
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work, backoff=(1, 2))
        outcomes = iter([False, False, False, True, False, True])

        async def scripted(key: Hashable) -> None:
            if not next(outcomes):
                raise ConnectionRefusedError("apiserver down")

        work.hook = scripted
        queue.add(KEY)
        task = await started(queue)
        await asyncio.sleep(100)
        queue.add(KEY)  # a new streak after the success
        await asyncio.sleep(100)
        await stop(task)

    with caplog.at_level("ERROR", logger="trtaoti.operator.workqueue"):
        run(scenario)
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert [bool(r.exc_info) for r in failures] == [True, False, False, True]
    assert "ConnectionRefusedError('apiserver down')" in failures[1].getMessage()
    assert "(attempt 3); retrying in 2s" in failures[2].getMessage()


def test_a_failing_key_does_not_hold_up_others():
    async def scenario() -> None:
        work = Recorder()
        queue = WorkQueue(work, concurrency=1, backoff=(10,))

        async def first_fails(key: Hashable) -> None:
            if key == KEY and len(work.times()) == 1:
                raise RuntimeError("boom")

        work.hook = first_fails
        queue.add(KEY)
        queue.add(("ns", "other"))
        task = await started(queue)
        await asyncio.sleep(60)
        assert work.times(("ns", "other")) == [0.0]
        assert work.times() == [0.0, 10.0]
        await stop(task)

    run(scenario)
