"""``within``: a wait bounded by the server's time, not by the time the event loop was busy."""

from __future__ import annotations

import asyncio
import time

import pytest

from tsot.backends.loop_lag import within


async def connect(answer: asyncio.Future[str]) -> str:
    """Like ``loop.create_connection``: a few more loop turns after the socket is ready."""
    reply = await answer
    for _ in range(3):
        await asyncio.sleep(0)
    return reply


async def test_an_answer_that_came_while_the_loop_was_busy_is_taken() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    # the server answers at once, but other work keeps the loop busy for four timeouts before
    # the connection can be finished (asyncio.wait_for raises TimeoutError here)
    loop.call_later(0.01, answer.set_result, "connected")
    waiting = asyncio.ensure_future(within(connect(answer), 0.05))
    await asyncio.sleep(0)  # the wait has started
    time.sleep(0.2)
    assert await waiting == "connected"


async def test_no_answer_ends_at_the_timeout_and_cancels_the_wait() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(asyncio.TimeoutError):
        await within(never, 0.05)
    assert never.cancelled()


async def test_errors_and_results_pass_through_and_none_waits_without_bound() -> None:
    async def fails() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError, match="refused"):
        await within(fails(), 1.0)

    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    assert await within(value(), None) == 7
    assert await within(value(), 1.0) == 7


async def test_cancelling_the_caller_cancels_what_it_waited_for() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(within(never, 10.0))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert never.cancelled()
