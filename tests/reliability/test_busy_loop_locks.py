"""asyncio lock extensions on a busy loop end when they were asked to (PEXPIREAT), as every
other async write does (tests/reliability/test_busy_loop.py), on real servers."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tsot import AsyncStorage, LockNotOwnedError, Storage

pytestmark = pytest.mark.server

TTL = 3.0
HELD = 1.0
"""Seconds the loop is kept busy while the extension waits to go out."""

SERVERS = {
    "redis": ("redis_url", {}),
    "cluster": ("redis_cluster_url", {}),
    "redis-local": ("redis_url", {"local_cache": True}),
}


def held_store(kind: str, request: pytest.FixtureRequest) -> AsyncStorage:
    fixture, options = SERVERS[kind]
    url = request.getfixturevalue(fixture)
    return AsyncStorage.from_url(url, namespace=f"lockheld{uuid.uuid4().hex[:8]}", **options)


async def held_back(call: object) -> object:
    """Run ``call`` (a coroutine) to its first await, keep the loop busy for HELD, then finish."""
    task = asyncio.create_task(call)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the task ran to its first await: its command is queued
    time.sleep(HELD)  # the loop is busy: nothing goes out meanwhile
    return await task


@pytest.mark.parametrize("kind", list(SERVERS))
@pytest.mark.parametrize("how", ["extend", "reacquire"])
async def test_a_held_back_lock_extension_ends_when_it_was_asked_to(
    kind: str, how: str, request: pytest.FixtureRequest
) -> None:
    store = held_store(kind, request)
    lock = store.lock("job", timeout=TTL)
    assert await lock.acquire()
    await store.store("warm", 1)  # every connection open: a connect is not what is tested
    if how == "extend":
        await held_back(lock.extend(TTL, replace_ttl=True))
    else:
        await held_back(lock.reacquire())
    left = await store.ttl("job")
    # relative PEXPIRE would leave about TTL; the deadline of the call leaves TTL - HELD
    assert left is not None and 0 < left <= TTL - HELD + 0.05, left
    assert await lock.owned()
    await lock.release()


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_an_extension_whose_deadline_passed_on_the_way_reports_the_lock_lost(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Asked to last 0.2 s more, delivered after HELD: the lock is gone, not extended."""
    store = held_store(kind, request)
    lock = store.lock("short", timeout=TTL)
    assert await lock.acquire()
    with pytest.raises(LockNotOwnedError):
        await held_back(lock.extend(0.2, replace_ttl=True))
    assert await store.ttl("short") is None
    assert not await lock.locked()


def test_sync_extension_stays_relative(request: pytest.FixtureRequest) -> None:
    """The sync API sends the TTL as asked (PEXPIRE): nothing holds a sync command back."""
    store = Storage.from_url(request.getfixturevalue("redis_url"), namespace="lockrel")
    name = f"sync{uuid.uuid4().hex[:6]}"
    lock = store.lock(name, timeout=TTL)
    assert lock.acquire()
    assert lock.extend(TTL, replace_ttl=True)
    left = store.ttl(name)
    assert left is not None and left > TTL - 0.5, left
    lock.release()
