"""An asyncio wait bounded by the server's time: the time the event loop was busy is not counted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

TICKS = 8
"""Checks per timeout: each one that comes late adds its lateness (a busy loop) to the deadline."""


async def within(aw: Awaitable[T], timeout: float | None) -> T:
    """Await ``aw``; raise ``asyncio.TimeoutError`` (cancelling it) once ``timeout`` seconds
    have passed, not counting the time other tasks kept the event loop busy meanwhile.

    ``asyncio.wait_for`` counts that time: a connect that the server accepted during a loop
    stall longer than the timeout fails, because its timer runs before the task that would
    finish the connection. Here a timer that fires late moves the deadline by its lateness,
    so only time the loop was free to see the server's answer counts. A server that never
    answers still ends the wait after ``timeout`` (plus under one check's lateness).
    """
    if timeout is None:
        return await aw
    loop = asyncio.get_running_loop()
    fut = asyncio.ensure_future(aw)
    step = timeout / TICKS
    deadline = loop.time() + timeout
    try:
        while True:
            due = min(deadline, loop.time() + step)
            done, _ = await asyncio.wait((fut,), timeout=max(0.0, due - loop.time()))
            if done:
                return fut.result()
            now = loop.time()
            deadline += max(0.0, now - due)  # the check came late: the loop was busy
            if now >= deadline:
                raise asyncio.TimeoutError
    except BaseException:
        if not fut.done():
            fut.cancel()
            await asyncio.wait((fut,))  # let it close what it opened, as wait_for does
        raise
