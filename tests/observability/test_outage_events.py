"""The events of an outage under fail_open, sync and async: the failing call, one breaker change,
the skips, and the breaker closing when the server is back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.servers.proc import Server
from tsot import AsyncStorage, Storage
from tsot.events import Event

pytestmark = pytest.mark.server


def _summary(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.kind == "op":
            out.append(("op", e.operation, e.hits, e.error))
        else:
            out.append((e.kind, e.operation, dict(e.fields)))
    return out


EXPECTED = [
    ("op", "set", None, None),
    ("op", "get", 1, None),
    # the server is killed
    ("op", "get", None, "BackendUnavailable"),
    ("breaker", "get", {"state": "open", "error": "BackendUnavailable"}),
    ("skip", "get", {"reason": "outage", "counter": "outage_misses"}),
    ("skip", "set", {"reason": "short_circuited", "counter": "skipped_writes"}),
    ("skip", "delete", {"reason": "short_circuited", "counter": None}),  # raised, not skipped
]


def test_sync(redis_to_stop: Server) -> None:
    url = f"redis://127.0.0.1:{redis_to_stop.port}/0"
    store = Storage.from_url(url, fail_open=True, secret=None, namespace="out")
    seen: list[Event] = []
    store.listen(seen.append)
    store.store("k", "v")
    assert store.load("k") == "v"
    redis_to_stop.kill()
    assert store.load("k") is None
    store.store("k", "w")
    with pytest.raises(Exception, match="circuit open"):
        store.delete("k")
    assert _summary(seen) == EXPECTED
    assert seen[2].source.system == "redis" and seen[2].source.port == redis_to_stop.port


def test_async_and_recovery(redis_to_stop: Server) -> None:
    url = f"redis://127.0.0.1:{redis_to_stop.port}/0"
    seen: list[Event] = []

    async def outage() -> None:
        store = AsyncStorage.from_url(url, fail_open=True, secret=None, namespace="aout")
        store.listen(seen.append)
        await store.store("k", "v")
        assert await store.load("k") == "v"
        redis_to_stop.kill()
        assert await store.load("k") is None
        await store.store("k", "w")
        with pytest.raises(Exception, match="circuit open"):
            await store.delete("k")
        await store.close()

    asyncio.run(outage())
    assert _summary(seen) == EXPECTED

    seen.clear()

    async def back() -> None:  # probe_interval=0: the first call probes the returned server
        store = AsyncStorage.from_url(
            url, fail_open=True, secret=None, namespace="aout", probe_interval=0
        )
        store.listen(seen.append)
        redis_to_stop.kill()
        assert await store.load("k") is None  # opens this interval's breaker
        redis_to_stop.start()
        assert await store.load("k") is None  # the probe succeeds: a plain miss
        await store.close()

    asyncio.run(back())
    assert _summary(seen)[-2:] == [
        ("op", "get", 0, None),
        ("breaker", "get", {"state": "closed"}),
    ]
