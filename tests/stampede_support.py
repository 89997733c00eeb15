"""Controlled computes and observable waits for the stampede tests (threads, tasks, processes)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from tsot.stampede import Timing

BOUND = 30.0  # seconds a test waits for something that must happen; only reached on a failure


class Gate:
    """A compute that blocks until ``release()``; counts its calls. ``mode`` "async" makes it a
    coroutine function (for AsyncStorage), "sync" a plain one (threads)."""

    def __init__(self, mode: str, value: str = "v") -> None:
        self.mode = mode
        self.value = value
        self.calls = 0
        self._lock = threading.Lock()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def _enter(self) -> str:
        with self._lock:
            self.calls += 1
            return f"{self.value}{self.calls}"

    @property
    def fn(self) -> Callable[[], Any]:
        if self.mode == "sync":

            def compute() -> str:
                out = self._enter()
                assert self._released.wait(BOUND), "the gate was never released"
                return out

            return compute

        async def acompute() -> str:
            out = self._enter()
            deadline = time.monotonic() + BOUND
            while not self._released.is_set():
                assert time.monotonic() < deadline, "the gate was never released"
                await asyncio.sleep(0.001)
            return out

        return acompute


class Waiters:
    """Sleeps for ``Timing`` that record who waits (a thread or a task), then yield briefly."""

    def __init__(self, on_wait: Callable[[], None] | None = None) -> None:
        self.seen: set[int] = set()
        self.count = 0
        self._lock = threading.Lock()
        self._on_wait = on_wait

    def _saw(self, who: int) -> None:
        with self._lock:
            self.seen.add(who)
            self.count += 1
        if self._on_wait is not None:
            self._on_wait()

    def sleep(self, seconds: float) -> None:
        self._saw(threading.get_ident())
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self._saw(id(asyncio.current_task()))
        await asyncio.sleep(seconds)

    def timing(self, clock: Callable[[], float], **more: Any) -> Timing:
        return Timing(clock=clock, sleep=self.sleep, asleep=self.asleep, **more)

    def until(self, distinct: int) -> None:
        """Return once ``distinct`` callers have waited (fail after BOUND seconds)."""
        eventually(lambda: len(self.seen) >= distinct, f"{distinct} waiters")


def eventually(done: Callable[[], bool], what: str) -> None:
    """Poll ``done()`` until it holds; fail naming ``what`` after BOUND seconds."""
    deadline = time.monotonic() + BOUND
    while not done():
        assert time.monotonic() < deadline, f"never saw {what} in {BOUND:.0f} s"
        time.sleep(0.002)


def process_reader(
    url: str, namespace: str, barrier: Any, computes: Any, waiting: Any, release: Any, out: Any
) -> None:
    """One process of the cross-process lease test: open a Storage, meet the others at the
    barrier, read the hot key through get_or_compute, put the value on ``out``."""
    from tsot import Storage

    waited: list[bool] = []

    def sleep(seconds: float) -> None:
        if not waited:
            waited.append(True)
            with waiting.get_lock():
                waiting.value += 1
        time.sleep(0.002)

    def compute() -> str:
        with computes.get_lock():
            computes.value += 1
        assert release.wait(BOUND), "the gate was never released"
        return "computed once"

    with Storage.from_url(url, namespace=namespace, secret=SECRET) as storage:
        barrier.wait(BOUND)
        out.put(storage.get_or_compute("hot", compute, 60, timing=Timing(sleep=sleep)))


SECRET = "stampede-test-secret-0123456789"
