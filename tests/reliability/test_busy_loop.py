"""asyncio on a busy event loop: a read timeout measures the server, not the loop, and a TTL
counts from the call, not from when the loop got round to writing it.

Async views block their loop now and then (a sync ORM call, template rendering, a CPU-heavy
step). Requests queued meanwhile against a healthy server must not fail because the loop, not
the server, was slow: the tests block the loop for three read timeouts with requests in flight
(queued and not yet written, or written and not yet read) and require every one to succeed.
A frozen server still fails them at the timeout: ``test_stalled_server_times_out_then_recovers``
(tests/backends/test_redis_pipeline.py) and ``test_stopped_server_fails_every_waiter_at_the_
timeout`` (tests/backends/test_memcached_pipeline.py) keep that.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.memcached import start_memcached
from tests.servers.proc import Server, wait_for
from tests.servers.redis import REDIS, start_single, url_of
from tsot import AsyncStorage, BackendUnavailable

pytestmark = pytest.mark.server

TIMEOUT = 0.3
STALL = 3 * TIMEOUT
REQUESTS = 32


def busy_loop() -> None:
    """Blocking work on the event loop's thread: nothing else runs meanwhile."""
    time.sleep(STALL)


def open_store(scheme: str, request: pytest.FixtureRequest) -> AsyncStorage:
    """A store on the shared healthy server with a short read timeout and no retries (a false
    timeout must not be hidden by a second attempt)."""
    options: dict[str, Any] = {"namespace": f"busy{uuid.uuid4().hex[:10]}", "retries": 0}
    if scheme == "redis":
        url = request.getfixturevalue("redis_url")
        options["socket_timeout"] = TIMEOUT
    else:
        url = request.getfixturevalue("memcached_url")
        options["timeout"] = TIMEOUT
    return AsyncStorage.from_url(url, **options)


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
@pytest.mark.parametrize("stall_at", ["before the write", "after the write"])
async def test_a_busy_loop_is_not_a_server_timeout(
    scheme: str, stall_at: str, request: pytest.FixtureRequest
) -> None:
    store = open_store(scheme, request)
    await store.store_many({f"k{i}": i for i in range(REQUESTS)})  # connected, warm

    reads = [asyncio.create_task(store.load(f"k{i}")) for i in range(REQUESTS)]
    writes = [asyncio.create_task(store.store(f"w{i}", i)) for i in range(REQUESTS)]
    await asyncio.sleep(0)  # every task ran to its first await: all requests are queued
    if stall_at == "after the write":
        await asyncio.sleep(0)  # one more turn: the queued requests went out in one write
    busy_loop()
    results = await asyncio.gather(*reads, *writes, return_exceptions=True)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {len(results)} failed, first: {failures[0]!r}"
    assert results[:REQUESTS] == list(range(REQUESTS))
    assert await store.load_many([f"w{i}" for i in range(REQUESTS)]) == {
        f"w{i}": i for i in range(REQUESTS)
    }


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
async def test_a_loop_busy_again_and_again_never_fails_a_request(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    """The issue's shape: tasks that each read, block the loop, then write, many turns in a row
    (each stall shorter than the timeout, together far longer)."""
    store = open_store(scheme, request)
    await store.store("warm", 0)

    async def view(i: int) -> int:
        value = await store.load(f"v{i % 4}")
        if value is None:
            time.sleep(TIMEOUT / 4)  # the 'compute' step, blocking
            value = i
            await store.store(f"v{i % 4}", value, ttl=60)
        return int(value)

    results = await asyncio.gather(*(view(i) for i in range(REQUESTS)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {len(results)} failed, first: {failures[0]!r}"


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
async def test_a_connection_opened_during_a_busy_loop_is_not_a_connect_timeout(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    """The first requests start a connection, then the loop is busy for three connect timeouts:
    the server accepted at once, so every request must succeed."""
    url = request.getfixturevalue(f"{scheme}_url")
    option = "socket_connect_timeout" if scheme == "redis" else "connect_timeout"
    store = AsyncStorage.from_url(
        url, namespace=f"conn{uuid.uuid4().hex[:10]}", retries=0, **{option: TIMEOUT}
    )  # this test's own event loop: no connection yet
    reads = [asyncio.create_task(store.load(f"k{i}")) for i in range(8)]
    await asyncio.sleep(0)  # the first read is connecting
    busy_loop()
    results = await asyncio.gather(*reads, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {len(results)} failed, first: {failures[0]!r}"
    assert results == [None] * 8


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[Server]:
    server = start_single(tmp_path / "redis")
    yield server
    server.signal(signal.SIGCONT)
    server.stop()


BIG = 24 * 1024 * 1024
"""A value the socket takes in many pieces: Redis answers only once the last byte is in."""
BIG_TIMEOUT = 0.5  # moving 24 MB on a loaded 2-core machine: room for the server's share of CPU


async def test_a_big_redis_write_on_a_busy_loop_is_not_a_timeout(
    own_redis_server: Server,
) -> None:
    store = AsyncStorage.from_url(
        url_of(own_redis_server, REDIS), namespace="big", socket_timeout=BIG_TIMEOUT, retries=0
    )
    await store.store("warm", 0)
    write = asyncio.create_task(store.store_raw("big", b"x" * BIG))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the write has begun; most of it waits in the transport
    time.sleep(3 * BIG_TIMEOUT)
    await write
    assert len(await store.load_raw("big") or b"") == BIG


async def test_a_big_redis_write_to_a_frozen_server_still_times_out(
    own_redis_server: Server,
) -> None:
    store = AsyncStorage.from_url(
        url_of(own_redis_server, REDIS), namespace="big", socket_timeout=BIG_TIMEOUT, retries=0
    )
    await store.store("warm", 0)
    own_redis_server.signal(signal.SIGSTOP)
    with pytest.raises(BackendUnavailable, match="Timeout reading"):
        await store.store_raw("big", b"x" * BIG)


# -- TTLs count from the call --------------------------------------------------------------------

TTL = 4.0
HELD = 2.0
"""Seconds the loop is kept busy while the writes wait to go out."""


def deadline_store(scheme: str, request: pytest.FixtureRequest) -> AsyncStorage:
    fixture = {"redis": "redis_url", "cluster": "redis_cluster_url", "memcached": "memcached_url"}
    url = request.getfixturevalue(fixture[scheme])
    return AsyncStorage.from_url(url, namespace=f"held{uuid.uuid4().hex[:10]}")


@pytest.mark.parametrize("scheme", ["redis", "cluster", "memcached"])
async def test_a_write_held_back_by_a_busy_loop_expires_as_if_sent_at_the_call(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    """Writes queued, then the loop is busy for HELD seconds before they go out: each one's TTL
    still counts from the call, so HELD seconds of it are gone when it reaches the server."""
    store = deadline_store(scheme, request)
    await store.store("expire-me", "v")  # connected, generation known; no TTL yet
    # every Cluster node connected too: a connect on a busy loop is not what this test is about
    await store.store_many({f"warm{i}": i for i in range(64)})

    calls = [
        store.load("busy"),  # memcached writes an idle connection's first request at once
        store.store("set", "v", ttl=TTL),
        store.add("add", "v", ttl=TTL),
        store.store_many({"many1": 1, "many2": 2}, ttl=TTL),
        store.expire("expire-me", TTL),
    ]
    tasks = [asyncio.create_task(call) for call in calls]
    await asyncio.sleep(0)  # every call ran to its first await: the writes are queued
    time.sleep(HELD)  # the loop is busy: nothing goes out meanwhile
    await asyncio.gather(*tasks)

    # Redis keeps milliseconds (PXAT); memcached counts whole seconds and reports the middle
    # of its one-second window (remaining - 0.5 s), so HELD whole seconds must be gone.
    limit = TTL - HELD + (0.0 if scheme != "memcached" else -0.5) + 0.01
    for key in ("set", "add", "many1", "many2", "expire-me"):
        left = await store.ttl(key)
        assert left is not None and 0 < left <= limit, (key, left)


@pytest.mark.parametrize("scheme", ["redis", "cluster", "memcached"])
async def test_a_write_asked_for_after_the_busy_spell_keeps_its_whole_ttl(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    """Two writes go out together after one busy turn: the one asked for before the blocking
    work loses that time, the one asked for after it keeps its whole TTL (each counts from its
    own call, not from the first request of the write)."""
    store = deadline_store(scheme, request)
    await store.store_many({f"warm{i}": i for i in range(64)})  # connected (every node)

    async def after_blocking_work() -> None:
        time.sleep(HELD)  # a task's blocking step, in the same loop turn
        await store.store("late", "v", ttl=TTL)

    tasks = [
        asyncio.create_task(store.load("busy")),  # memcached: the connection is busy
        asyncio.create_task(store.store("early", "v", ttl=TTL)),
        asyncio.create_task(after_blocking_work()),
    ]
    await asyncio.gather(*tasks)
    early, late = await store.ttl("early"), await store.ttl("late")
    assert early is not None and early <= TTL - HELD + 0.01, early
    assert late is not None and late >= TTL - 1.5, late  # memcached: whole seconds, a tick


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
async def test_the_first_writes_of_a_new_connection_count_from_the_call(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    """No connection yet (memcached: nor a known namespace generation, so the full operation
    runs: connect, read the generation, then write); the loop is busy meanwhile."""
    store = deadline_store(scheme, request)  # this test's own event loop: nothing open yet
    calls = [
        store.store("set", "v", ttl=TTL),
        store.store_many({"many1": 1, "many2": 2}, ttl=TTL),
        store.add("add", "v", ttl=TTL),
    ]
    tasks = [asyncio.create_task(call) for call in calls]
    await asyncio.sleep(0)  # every call has started (connecting)
    time.sleep(HELD)
    await asyncio.gather(*tasks)
    limit = TTL - HELD + (0.0 if scheme != "memcached" else -0.5) + 0.01
    for key in ("set", "many1", "many2", "add"):
        left = await store.ttl(key)
        assert left is not None and 0 < left <= limit, (key, left)


@pytest.fixture
def own_memcached(tmp_path: Path) -> Iterator[Server]:
    server = start_memcached(tmp_path, "held")
    yield server
    server.signal(signal.SIGCONT)
    server.stop()


async def test_memcached_writes_held_back_by_back_pressure_count_from_the_call(
    own_memcached: Server,
) -> None:
    """Requests that waited unwritten behind ``max_inflight`` (the server was frozen) lose the
    whole seconds they waited. (The ones written before the freeze are not checked: memcached
    reads them before its clock catches up with the freeze.)"""
    store = AsyncStorage.from_url(
        f"memcached://127.0.0.1:{own_memcached.port}",
        namespace=f"bp{uuid.uuid4().hex[:10]}",
        max_inflight=4,
        timeout=30,  # the freeze is not a timeout here
    )
    await store.store("warm", 0)  # connected, generation known
    own_memcached.signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{own_memcached.pid}/task")
    wait_for(
        lambda: all(
            (t / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
            for t in tasks.iterdir()
        ),
        10,
        "memcached to stop",
    )
    writes = [asyncio.create_task(store.store(f"k{i}", i, ttl=TTL)) for i in range(8)]
    await asyncio.sleep(HELD)  # the loop is free; the server holds the first writes
    own_memcached.signal(signal.SIGCONT)
    await asyncio.gather(*writes)

    lefts = [await store.ttl(f"k{i}") for i in range(8)]
    assert lefts[-1] is not None and lefts[-1] <= TTL - HELD - 0.5 + 0.01, lefts  # held back
