"""Small test utilities shared by every suite: a fake clock, a sync proxy over AsyncStorage."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any


class FakeClock:
    """A clock the tests move by hand (seconds); thread-safe enough for reading."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pass_time(clock: FakeClock | None, seconds: float, done: Callable[[], bool]) -> None:
    """Let ``seconds`` pass, then require ``done()``.

    With an injectable clock, the clock moves and ``done()`` must hold at once. On a server
    (real time, ``clock`` None), poll ``done()`` for at most ``seconds`` + 3 s: memcached counts
    expiry in whole seconds, so a 1 s TTL can take almost 2 s to end.
    """
    if clock is not None:
        clock.advance(seconds)
        assert done()
        return
    deadline = time.monotonic() + seconds + 3.0
    while not done():
        assert time.monotonic() < deadline, f"still not done after {seconds + 3:.0f}s"
        time.sleep(0.05)


WAIT = 10.0
"""The most a test waits for a server event (an invalidation, a failover step); a healthy run
takes milliseconds."""


def until(check: Callable[[], Any], what: str, seconds: float = WAIT) -> Any:
    """Poll ``check`` until it returns something true, and return that; fail naming ``what``
    after ``seconds``. For events that arrive on another connection: bounded, never a fixed
    sleep."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not seen within {seconds:g}s"
        time.sleep(0.002)


class LoopThread:
    """An event loop running in its own thread; ``run`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        # as asyncio.run does: lets loop-bound resources (connection pools) close on the loop
        self.run(self.loop.shutdown_asyncgens(), timeout=10)
        self.run(asyncio.sleep(0))  # one more turn: transports closed above finish closing
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class SyncView:
    """Calls an AsyncStorage's coroutine methods on a LoopThread, so one suite tests both APIs.

    Calls from many threads run concurrently on the one loop, as asyncio tasks would.
    """

    def __init__(self, target: Any, loop: LoopThread) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return self._loop.run(result)
            return result

        return call

    def __repr__(self) -> str:
        return f"SyncView({self._target!r})"
