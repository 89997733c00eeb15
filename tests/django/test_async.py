"""The async half of Django's cache API, on every class: native, atomic, no thread hop."""

from __future__ import annotations

import asyncio
import inspect
import math
import pickle
import threading
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test import override_settings

from tests.django.support import Env, close_to
from tsot_django import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache

ASYNC_METHODS = [
    "aget",
    "aset",
    "aadd",
    "aget_or_set",
    "atouch",
    "adelete",
    "ahas_key",
    "aincr",
    "adecr",
    "aget_many",
    "aset_many",
    "adelete_many",
    "aclear",
    "aincr_version",
    "adecr_version",
    "aclose",
]


@pytest.mark.parametrize("cls", [TsotCache, RedisCache, MemcachedCache, RocksDBCache, MemoryCache])
@pytest.mark.parametrize("name", ASYNC_METHODS)
def test_every_async_method_is_our_own(cls: type[BaseCache], name: str) -> None:
    # Django's defaults run the sync method in a thread (sync_to_async) or loop over aget/aset.
    method = getattr(cls, name)
    assert method is not getattr(BaseCache, name)
    assert inspect.iscoroutinefunction(method)


async def test_simple_and_types(cache: TsotCache) -> None:
    await cache.aset("key", "value")
    assert await cache.aget("key") == "value"
    values = {"int": 42, "bool": True, "list": [1, 2], "bytes": b"\x00\xff", "none": None}
    for key, value in values.items():
        await cache.aset(key, value)
        assert await cache.aget(key, "default") == value
    assert await cache.aget("does_not_exist") is None
    assert await cache.aget("does_not_exist", "bang!") == "bang!"


async def test_sync_and_async_share_the_data(cache: TsotCache) -> None:
    cache.set("written-sync", {"a": 1})
    assert await cache.aget("written-sync") == {"a": 1}
    await cache.aset("written-async", (1, 2))
    assert cache.get("written-async") == (1, 2)


async def test_aadd(cache: TsotCache) -> None:
    assert await cache.aadd("addkey1", "value") is True
    assert await cache.aadd("addkey1", "newvalue") is False
    assert await cache.aget("addkey1") == "value"
    assert await cache.aadd("zero", "v", 0) is True
    assert await cache.ahas_key("zero") is False


async def test_adelete_and_ahas_key(cache: TsotCache) -> None:
    await cache.aset_many({"key1": "spam", "key2": "eggs"})
    assert await cache.ahas_key("key1") is True
    assert await cache.adelete("key1") is True
    assert await cache.adelete("key1") is False
    assert await cache.ahas_key("key1") is False
    assert await cache.aget("key2") == "eggs"


async def test_aget_many_aset_many_adelete_many(cache: TsotCache) -> None:
    assert await cache.aset_many({"a": "a", "b": "b", "c": None}) == []
    assert await cache.aget_many(["a", "b", "c", "e"]) == {"a": "a", "b": "b", "c": None}
    assert await cache.aget_many(iter(["a", "e"])) == {"a": "a"}
    assert await cache.aget_many([]) == {}
    assert await cache.aset_many({}) == []
    assert await cache.adelete_many(["a", "b"]) is None  # type: ignore[func-returns-value]
    assert await cache.aget_many(["a", "b", "c"]) == {"c": None}
    await cache.adelete_many([])


async def test_aincr_adecr(cache: TsotCache) -> None:
    await cache.aset("answer", 41)
    assert await cache.aincr("answer") == 42
    assert await cache.aincr("answer", 10) == 52
    assert await cache.adecr("answer", 10) == 42
    assert await cache.adecr("answer") == 41
    with pytest.raises(ValueError):
        await cache.aincr("does_not_exist")
    with pytest.raises(ValueError):
        await cache.adecr("does_not_exist")
    assert await cache.ahas_key("does_not_exist") is False
    await cache.aset("null", None)
    with pytest.raises(TypeError):
        await cache.aincr("null")


async def test_aincr_is_atomic_under_gather(cache: TsotCache) -> None:
    # Django's BaseCache.aincr is aget + aset: concurrent tasks lose updates on a server.
    await cache.aset("counter", 0)
    results = await asyncio.gather(*(cache.aincr("counter") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.aget("counter") == 200
    results = await asyncio.gather(*(cache.adecr("counter", 2) for _ in range(50)))
    assert len(set(results)) == 50
    assert await cache.aget("counter") == 100


async def test_aadd_under_gather_has_one_winner(cache: TsotCache) -> None:
    results = await asyncio.gather(*(cache.aadd("lock", i) for i in range(50)))
    assert results.count(True) == 1
    assert await cache.aget("lock") == results.index(True)


async def test_atouch(cache: TsotCache, env: Env) -> None:
    await cache.aset("expire1", "very quickly", timeout=1)
    assert await cache.atouch("expire1", timeout=4) is True
    assert close_to(env.ttl(cache, "expire1"), 4)
    assert await cache.atouch("expire1", timeout=None) is True
    assert env.ttl(cache, "expire1") == math.inf
    assert await cache.atouch("expire1") is True
    assert close_to(env.ttl(cache, "expire1"), 300)
    assert await cache.atouch("expire1", timeout=0) is True
    assert await cache.aget("expire1") is None
    assert await cache.atouch("nonexistent") is False


async def test_aset_timeouts(cache: TsotCache, env: Env) -> None:
    await cache.aset("key1", "eggs", 0)
    assert await cache.aget("key1") is None
    await cache.aset("key2", "ham", None)
    assert env.ttl(cache, "key2") == math.inf
    await cache.aset_many({"key3": "a", "key4": "b"}, 0)
    assert await cache.aget_many(["key3", "key4"]) == {}
    await cache.aset("key5", "spam", 100.2)
    assert close_to(env.ttl(cache, "key5"), 100.2)


async def test_aexpiration(cache: TsotCache, env: Env) -> None:
    await cache.aset("expire1", "very quickly", 1)
    assert await cache.aget("expire1") == "very quickly"
    if env.uses_clock:  # servers: the sync suite waits for real expiry once
        env.clock.advance(2)
        assert await cache.aget("expire1") is None
        assert await cache.aadd("expire1", "newvalue") is True


async def test_aclear(cache: TsotCache) -> None:
    await cache.aset_many({"key1": "spam", "key2": "eggs"})
    await cache.aclear()
    assert await cache.aget_many(["key1", "key2"]) == {}


async def test_aget_or_set(cache: TsotCache) -> None:
    assert await cache.aget_or_set("projector", 42) == 42
    assert await cache.aget("projector") == 42
    assert await cache.aget_or_set("projector", 43) == 42
    assert await cache.aget_or_set("null", None) is None
    assert await cache.aget("null", "default") is None

    calls: list[int] = []

    def my_callable() -> str:
        calls.append(1)
        return "value"

    assert await cache.aget_or_set("mykey", my_callable) == "value"
    assert await cache.aget_or_set("mykey", my_callable) == "value"
    assert calls == [1]
    assert await cache.aget_or_set("brian", 1979, version=2) == 1979
    assert await cache.aget("brian", version=1) is None


async def test_aincr_version_adecr_version(cache: TsotCache) -> None:
    v2 = caches["v2"]
    await cache.aset("answer", 42, version=2)
    assert await cache.aincr_version("answer", version=2) == 3
    assert await cache.aget("answer", version=2) is None
    assert await cache.aget("answer", version=3) == 42
    assert await cache.adecr_version("answer", version=3) == 2
    assert await cache.aget("answer", version=2) == 42
    await v2.aset("answer2", 42)
    assert await v2.aincr_version("answer2") == 3
    assert await v2.aget("answer2", version=3) == 42
    with pytest.raises(ValueError):
        await cache.aincr_version("does_not_exist")
    with pytest.raises(ValueError):
        await cache.adecr_version("does_not_exist", version=2)


async def test_aclose(cache: TsotCache) -> None:
    await cache.aclose()
    await cache.aset("after-close", 1)
    assert await cache.aget("after-close") == 1


async def test_async_pickle_error(cache: TsotCache) -> None:
    class Unpicklable:
        def __getstate__(self) -> Any:
            raise pickle.PickleError()

    with pytest.raises(pickle.PickleError):
        await cache.aset("unpicklable", Unpicklable())


async def test_async_versions_and_prefix(cache: TsotCache) -> None:
    await cache.aset("answer1", 42)
    assert await caches["v2"].aget("answer1") is None
    assert await caches["v2"].aget("answer1", version=1) == 42
    assert await caches["prefix"].ahas_key("answer1") is False
    assert await caches["custom_key"].aget("answer1") is None


def test_no_thread_hop(env: Env) -> None:
    """Every a* method builds its keys (and so runs) on the event loop's own thread."""
    threads: set[int] = set()

    def key_func(key: str, key_prefix: str, version: int) -> str:
        threads.add(threading.get_ident())
        return f"{key_prefix}:{version}:{key}"

    async def every_method(cache: Any) -> None:
        await cache.aset("k", 1)
        await cache.aadd("k2", 1)
        await cache.aget("k")
        await cache.aget_or_set("k3", 3)
        await cache.atouch("k", 10)
        await cache.ahas_key("k")
        await cache.aincr("k")
        await cache.adecr("k")
        await cache.aget_many(["k", "k2"])
        await cache.aset_many({"k4": 4})
        await cache.adelete_many(["k4"])
        await cache.aincr_version("k")
        await cache.adecr_version("k", version=2)
        await cache.adelete("k")
        await cache.aclear()
        await cache.aclose()

    with override_settings(CACHES={"default": env.entry(KEY_FUNCTION=key_func)}):
        cache = caches["default"]
        asyncio.run(every_method(cache))
    assert threads == {threading.get_ident()}


def test_one_backend_instance_on_several_event_loops(env: Env) -> None:
    """Async resources are per event loop: the same instance works from loop after loop."""
    with override_settings(CACHES={"default": env.entry()}):
        cache = caches["default"]

        async def bump() -> int:
            await cache.aadd("loops", 0)
            return int(await cache.aincr("loops"))

        assert [asyncio.run(bump()) for _ in range(3)] == [1, 2, 3]

        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(asyncio.run(bump())))
        worker.start()
        worker.join(30)
        assert seen == [4]
        cache.clear()


async def test_async_reads_count_refused_values_in_the_caches_stats(
    cache: TsotCache, env: Env
) -> None:
    # each event loop has its own AsyncStorage; what they refuse is counted where Django's
    # users look: caches[alias].storage.stats()["undecodable"]
    forged = f"{env.namespace}:{cache.make_key('forged')}".encode()
    with env.storage() as plain:
        plain.backend.set(forged, b"\xff not a tsot value", None)
    before = cache.storage.stats()["undecodable"]
    assert await cache.aget("forged", "refused") == "refused"
    assert await cache.aget_many(["forged"]) == {}
    assert cache.storage.stats()["undecodable"] == before + 2
