"""A server that is up but refuses writes: WriteRefused, never an outage.

Three real refusals: Redis full (``maxmemory 1`` + ``noeviction``: ``OOM``), an ACL user without
write rights (``NOPERM``), and memcached without eviction (``-M``) and little memory ("out of
memory storing object"). Without fail_open the write raises WriteRefused; with it the write is
reported and skipped, and the breaker stays closed: reads keep reaching the server (before,
one refused write opened the breaker and every read missed although the server served).
Checked through the core (sync and asyncio), Django (sync and ``a*``) and Flask.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.servers.memcached import start_memcached
from tests.servers.proc import Server
from tests.servers.redis import start_single
from tsot import AsyncStorage, BackendUnavailable, Storage, WriteRefused
from tsot_django import TsotCache

pytestmark = pytest.mark.server

BIG = b"x" * 300_000  # memcached: every refused write is this size (its slab class is full)


@dataclass
class Refusing:
    """A server, the URL that can read and write ``seed`` keys, and the URL tsot uses after
    ``refuse()`` (the same one, except for the ACL case: a user that may only read)."""

    name: str
    url: str
    refused_url: str
    refuse: Callable[[], None]
    value: Any = BIG


def _redis_client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


@pytest.fixture(params=["redis-oom", "redis-noperm", "memcached-full"])
def refusing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Refusing]:
    kind = request.param
    server: Server
    if kind.startswith("redis"):
        server = start_single(tmp_path / "redis", "--maxmemory-policy", "noeviction")
        url = f"redis://127.0.0.1:{server.port}/0"
        client = _redis_client(server.port)
        if kind == "redis-oom":
            case = Refusing(kind, url, url, lambda: client.config_set("maxmemory", 1), "v")
        else:
            client.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read")
            reader = f"redis://reader:pw@127.0.0.1:{server.port}/0"
            case = Refusing(kind, url, reader, lambda: None, "v")
    else:
        server = start_memcached(tmp_path, "full", "-M", "-m", "2")
        url = f"memcached://127.0.0.1:{server.port}"

        def fill() -> None:
            store = Storage.from_url(url, namespace="filler", compression="none")
            for i in range(64):
                try:
                    store.store_raw(f"fill{i}", BIG)
                except WriteRefused:
                    return
            raise AssertionError("memcached -M -m 2 never refused a write")

        case = Refusing(kind, url, url, fill)
    try:
        yield case
    finally:
        server.stop()


def seed_then_refuse(case: Refusing, namespace: str) -> None:
    Storage.from_url(case.url, namespace=namespace).store("seed", "kept")
    case.refuse()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_refused_write_raises_write_refused(refusing: Refusing, mode: str) -> None:
    seed_then_refuse(refusing, "raise")

    async def run() -> None:
        store = AsyncStorage.from_url(refusing.refused_url, namespace="raise")
        with pytest.raises(WriteRefused, match="refused") as caught:
            await store.store("new", refusing.value)
        assert not isinstance(caught.value, BackendUnavailable)
        assert "pw" not in str(caught.value)
        with pytest.raises(WriteRefused):
            await store.store_many({"a": refusing.value, "b": refusing.value})
        with pytest.raises(WriteRefused):
            await store.add("new", refusing.value)
        assert await store.load("seed") == "kept"

    if mode == "async":
        asyncio.run(run())
        return
    store = Storage.from_url(refusing.refused_url, namespace="raise")
    with pytest.raises(WriteRefused, match="refused") as caught:
        store.store("new", refusing.value)
    assert not isinstance(caught.value, BackendUnavailable)
    assert "pw" not in str(caught.value)
    with pytest.raises(WriteRefused):
        store.store_many({"a": refusing.value, "b": refusing.value})
    with pytest.raises(WriteRefused):
        store.add("new", refusing.value)
    if refusing.name.startswith("redis"):
        with pytest.raises(WriteRefused):
            store.incr("counter")
    assert store.load("seed") == "kept"
    assert store.load_many(["new", "a", "b"]) == {}  # nothing half-written


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fail_open_reports_a_refused_write_and_keeps_reading(
    refusing: Refusing, mode: str, every_warning: None, caplog: pytest.LogCaptureFixture
) -> None:
    seed_then_refuse(refusing, "open")
    opts: dict[str, Any] = {"namespace": "open", "fail_open": True, "probe_interval": 60}

    async def run() -> dict[str, Any]:
        store = AsyncStorage.from_url(refusing.refused_url, **opts)
        await store.store("new", refusing.value)  # reported, not raised
        assert await store.load("seed") == "kept"  # the breaker did not open: a hit
        return await store.stats()

    with caplog.at_level(logging.WARNING, logger="tsot"):
        if mode == "async":
            stats = asyncio.run(run())
        else:
            store = Storage.from_url(refusing.refused_url, **opts)
            store.store("new", refusing.value)
            assert store.load("seed") == "kept"
            stats = store.stats()
    assert stats["refused_writes"] >= 1 and stats["skipped_writes"] == 0
    assert stats["short_circuited"] == 0
    assert any("refused set" in r.getMessage() for r in caplog.records), caplog.text
    assert all("pw@" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("refusing", ["redis-noperm"], indirect=True)
def test_fail_open_refused_invalidation_raises(refusing: Refusing) -> None:
    """Only an ACL refuses a delete (Redis and memcached delete when full)."""
    seed_then_refuse(refusing, "inv")
    store = Storage.from_url(refusing.refused_url, namespace="inv", fail_open=True)
    with pytest.raises(WriteRefused, match="NOPERM"):
        store.delete("seed")
    assert store.load("seed") == "kept"
    opted = Storage.from_url(
        refusing.refused_url, namespace="inv", fail_open=True, fail_open_invalidation=True
    )
    assert opted.delete("seed") is False and opted.stats()["refused_writes"] >= 1


async def test_django_fail_open_refused_writes_sync_and_async(refusing: Refusing) -> None:
    backend = "tsot_django.TsotCache"
    setting = {
        "default": {
            "BACKEND": backend,
            "LOCATION": refusing.refused_url,
            "KEY_PREFIX": "dj",
            "OPTIONS": {"FAIL_OPEN": True, "probe_interval": 60},
        },
        "seed": {"BACKEND": backend, "LOCATION": refusing.url, "KEY_PREFIX": "dj"},
    }
    with override_settings(CACHES=setting):
        caches["seed"].set("seed", "kept")
        refusing.refuse()
        cache = caches["default"]
        assert isinstance(cache, TsotCache)
        cache.set("new", refusing.value)  # no error: reported
        assert cache.get("seed") == "kept"
        await cache.aset("new", refusing.value)
        assert await cache.aget("seed") == "kept"
        assert cache.storage.stats()["refused_writes"] >= 2


def test_flask_fail_open_refused_writes(refusing: Refusing) -> None:
    from flask import Flask
    from flask_caching import Cache

    seeder = Flask("seed")
    seeder.config.update(CACHE_TYPE="tsot_flask.TsotCache", CACHE_TSOT_URL=refusing.url)
    seed = Cache(seeder)
    app = Flask("refused")
    app.config.update(
        CACHE_TYPE="tsot_flask.TsotCache",
        CACHE_TSOT_URL=refusing.refused_url,
        CACHE_OPTIONS={"fail_open": True, "probe_interval": 60},
    )
    cache = Cache(app)
    with seeder.app_context():
        seed.set("seed", "kept")
    refusing.refuse()
    with app.app_context():
        assert cache.set("new", refusing.value) is True
        assert cache.get("seed") == "kept"
