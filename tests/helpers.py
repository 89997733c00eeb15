"""Small test utilities shared by every suite: a fake clock, a sync proxy over AsyncStorage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


class FakeClock:
    """A clock the tests move by hand (seconds); thread-safe enough for reading."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
