"""Lifecycle: a closed Storage raises, an exhausted pool waits ``pool_timeout`` on every
backend, and RocksDB database options are compared by value (the clock too)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, override_settings

from tests.helpers import FakeClock
from tsot import AsyncStorage, BackendUnavailable, Storage, StorageClosed
from tsot.backends.memcached.transport_sync import Pool

pytestmark = pytest.mark.server

SLACK = 1.5  # what a loaded 2-core machine may add to a bound


# -- close() -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["redis_url", "memcached_url", "rocksdb_url"])
def test_a_closed_storage_raises_storage_closed(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    url: str = request.getfixturevalue(fixture)
    store = Storage.from_url(url, namespace="closing", fail_open=True)
    store.store("k", 1)
    store.close()
    for call in (lambda: store.load("k"), lambda: store.delete("k"), store.stats):
        with pytest.raises(StorageClosed, match="is closed"):
            call()
    assert Storage.from_url(url, namespace="closing").load("k") == 1  # the pool stays shared

    async def run() -> None:
        async with AsyncStorage.from_url(url, namespace="closing") as astore:
            assert await astore.load("k") == 1
        with pytest.raises(StorageClosed):
            await astore.store("k", 2)
        with pytest.raises(StorageClosed):
            await astore.load_many(["k"])

    asyncio.run(run())


# -- one pool policy: wait up to pool_timeout, then a clear error -------------------------------


def test_exhausted_memcached_pool_waits_pool_timeout_then_names_it(memcached_url: str) -> None:
    store = Storage.from_url(memcached_url, namespace="pool", max_pool_size=1, pool_timeout=0.3)
    store.store("k", 1)
    pool: Pool = store.backend.loc.sync.pools[0]  # type: ignore[attr-defined]
    held = pool.get()
    assert held is not None
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"pool_timeout=0\.3 s \(max_pool_size\)"):
            store.load("k")
        waited = time.monotonic() - started
        assert 0.3 <= waited <= 0.3 + SLACK, waited
    finally:
        pool.idle.append(held)
    assert store.load("k") == 1


def test_a_waiting_caller_gets_the_connection_given_back(memcached_url: str) -> None:
    """Given back while a caller waits: the caller gets it (before, it was refused at once)."""
    store = Storage.from_url(memcached_url, namespace="pool2", max_pool_size=1, pool_timeout=30)
    store.store("k", "v")
    pool: Pool = store.backend.loc.sync.pools[0]  # type: ignore[attr-defined]
    held = pool.get()
    assert held is not None
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(store.load("k")))
    waiter.start()
    deadline = time.monotonic() + 10
    while waiter.is_alive() and pool._cond._waiters == 0:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the caller never waited"
        time.sleep(0.001)
    assert not got  # still waiting: the only connection is held
    pool.idle.append(held)
    waiter.join(10)
    assert got == ["v"]
    assert pool._open == 1  # it reused the connection given back, opened none


def test_memcached_pool_timeout_defaults_to_timeout(memcached_url: str) -> None:
    store = Storage.from_url(memcached_url, namespace="pt", timeout=0.7)
    assert store.backend.loc.sync.pools[0].pool_timeout == 0.7  # type: ignore[attr-defined]


# -- RocksDB options by value ----------------------------------------------------------------------


def test_rocksdb_clock_compared_by_value(tmp_path: Path) -> None:
    """Two reads of ``clock.now`` are two bound-method objects of one clock: the same clock."""

    class Clock:
        def __init__(self) -> None:
            self.t = 1_000_000.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    url = f"rocksdb://{tmp_path / 'db'}"
    first = Storage.from_url(url, clock=clock.now)
    first.store("k", 1, ttl=10)

    async def run() -> Any:
        return await AsyncStorage.from_url(url, clock=clock.now).load("k")

    assert asyncio.run(run()) == 1
    clock.t += 11
    assert first.load("k") is None  # the one clock drives both
    with pytest.raises(Exception, match="other 'clock'"):
        Storage.from_url(url, clock=Clock().now).load("k")  # another clock object: another clock


def test_django_async_cache_middleware_on_rocksdb_with_a_clock(tmp_path: Path) -> None:
    """Two CACHES entries on one RocksDB directory, each reading ``clock.now`` (as settings
    modules do), the page cache middleware on one of them, requests on the async path."""
    clock = FakeClock()

    class Clock:
        def now(self) -> float:
            return clock()

    shared = Clock()
    location = str(tmp_path / "pages")
    entry = {"BACKEND": "tsot_django.RocksDBCache", "LOCATION": location}
    setting = {
        "CACHES": {
            "default": {**entry, "OPTIONS": {"clock": shared.now}},
            "pages": {**entry, "OPTIONS": {"namespace": "pages", "clock": shared.now}},
        },
        "CACHE_MIDDLEWARE_ALIAS": "pages",
        "CACHE_MIDDLEWARE_SECONDS": 60,
        "MIDDLEWARE": [
            "django.middleware.cache.UpdateCacheMiddleware",
            "django.middleware.cache.FetchFromCacheMiddleware",
        ],
        "ROOT_URLCONF": "tests.reliability.site",
    }

    async def run() -> list[Any]:
        caches["default"].set("page", "from the default cache")
        client = AsyncClient()
        first = await client.get("/apage/")
        second = await client.get("/apage/")
        return [first.status_code, first.json(), second.json()]

    with override_settings(**setting):
        assert asyncio.run(run()) == [200, {"hit": True}, {"hit": True}]


def test_exhausted_redis_pool_waits_pool_timeout_then_names_it(redis_url: str) -> None:
    """As on memcached: the error names both options, so the reader knows what to raise (a
    batch of several commands takes a pooled connection; single commands share one)."""
    store = Storage.from_url(redis_url, namespace="pool", max_connections=1, pool_timeout=0.3)
    store.store("k", 1)
    pool = store.backend._t._pool  # type: ignore[attr-defined]
    held = pool.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"pool_timeout=0\.3 s \(max_connections\)"):
            store.store_many({"a": 1, "b": 2}, ttl=30)
        waited = time.monotonic() - started
        assert 0.3 <= waited <= 0.3 + SLACK, waited
    finally:
        pool.release(held)
    store.store_many({"a": 1, "b": 2}, ttl=30)
    assert store.load_many(["a", "b", "k"]) == {"a": 1, "b": 2, "k": 1}
