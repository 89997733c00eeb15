"""django-redis's extra methods on every tsot_django class and storage kind, sync and async:
the return values django-redis documents (ttl None = never expires, 0 = missing; keys scoped
to KEY_PREFIX and version; set nx/xx; incr ignore_key_check; redis-py-style locks)."""

from __future__ import annotations

import inspect
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.django.support import Env
from tsot import LockError, LockNotOwnedError, NotSupportedError
from tsot_django import TsotCache


def lists_keys(env: Env) -> bool:
    return env.kind.storage != "memcached"


def test_ttl_and_pttl(cache: TsotCache) -> None:
    assert cache.ttl("missing") == 0
    assert cache.pttl("missing") == 0
    cache.set("forever", 1, timeout=None)
    assert cache.ttl("forever") is None
    assert cache.pttl("forever") is None
    cache.set("k", 1, timeout=100)
    assert 98 <= cache.ttl("k") <= 100
    assert 98_000 <= cache.pttl("k") <= 100_000
    assert type(cache.ttl("k")) is int and type(cache.pttl("k")) is int


def test_expire_family(cache: TsotCache) -> None:
    assert cache.expire("missing", 10) is False
    cache.set("k", 1, timeout=None)
    assert cache.expire("k", 50) is True
    assert 48 <= cache.ttl("k") <= 50
    assert cache.pexpire("k", 20_000) is True
    assert 18 <= cache.ttl("k") <= 20
    assert cache.pexpire("k", timedelta(seconds=30)) is True
    assert 28 <= cache.ttl("k") <= 30
    assert cache.expire_at("k", int(time.time()) + 70) is True
    assert 67 <= cache.ttl("k") <= 70
    assert cache.pexpire_at("k", int(time.time() * 1000) + 40_000) is True
    assert 37 <= cache.ttl("k") <= 40
    assert cache.expire_at("k", datetime.now(timezone.utc) + timedelta(seconds=90)) is True
    assert 87 <= cache.ttl("k") <= 90
    assert cache.expire("k", None) is True
    assert cache.ttl("k") is None
    assert cache.expire_at("k", int(time.time()) - 10) is True  # in the past: deleted
    assert cache.get("k") is None
    with pytest.raises(TypeError, match="Unix time"):
        cache.expire_at("k", "tomorrow")


def test_persist(cache: TsotCache) -> None:
    assert cache.persist("missing") is False
    cache.set("k", 1, timeout=100)
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.persist("k") is False  # no timeout left to remove, as Redis's PERSIST
    assert cache.get("k") == 1


def test_set_nx_xx(cache: TsotCache) -> None:
    assert cache.set("k", "a", nx=True) is True
    assert cache.set("k", "b", nx=True) is False
    assert cache.get("k") == "a"
    assert cache.set("absent", "x", xx=True) is False
    assert cache.has_key("absent") is False
    assert cache.set("k", "c", xx=True) is True
    assert cache.get("k") == "c"
    assert cache.set("k", "d") is None  # Django's plain set is unchanged
    with pytest.raises(ValueError, match="not both"):
        cache.set("k", "e", nx=True, xx=True)


def test_set_xx_is_one_atomic_replace(cache: TsotCache) -> None:
    """``xx=True`` is one ``replace`` call (``SET XX`` on Redis), not ``exists`` then a store
    that would write back a key deleted in between; a timeout <= 0 deletes the key if it
    exists and says whether it did, as django-redis does."""
    op = cache.op_set("k", "v", 100, None, False, True)
    call = next(op)
    assert (call.method, call.read) == ("replace", False)
    with pytest.raises(StopIteration) as stop:
        op.send(False)
    assert stop.value.value is False
    assert cache.set("absent", "x", xx=True) is False
    assert cache.has_key("absent") is False
    cache.set("k", "old")
    assert cache.set("k", "new", timeout=0, xx=True) is True
    assert cache.has_key("k") is False
    assert cache.set("k", "new", timeout=0, xx=True) is False
    assert cache.has_key("k") is False


async def test_aset_xx_writes_only_over_a_present_key(cache: TsotCache) -> None:
    assert await cache.aset("absent", "x", xx=True) is False
    assert await cache.ahas_key("absent") is False
    await cache.aset("k", "old", timeout=None)
    assert await cache.aset("k", "new", timeout=100, xx=True) is True
    assert await cache.aget("k") == "new"
    assert 98 <= await cache.attl("k") <= 100


def test_incr_ignore_key_check(cache: TsotCache) -> None:
    with pytest.raises(ValueError):
        cache.incr("n")
    assert cache.incr("n", 5, ignore_key_check=True) == 5
    assert cache.incr("n", 2, ignore_key_check=True) == 7
    assert cache.ttl("n") is None


def test_keys_iter_keys_delete_pattern(cache: TsotCache, env: Env) -> None:
    if not lists_keys(env):
        with pytest.raises(NotSupportedError, match="memcached"):
            cache.keys("*")
        with pytest.raises(NotSupportedError):
            cache.delete_pattern("*")
        return
    cache.set_many({"user:1": 1, "user:2": 2, "other": 3})
    caches["v2"].set("user:3", 3)
    caches["prefix"].set("user:4", 4)
    assert sorted(cache.keys("user:*")) == ["user:1", "user:2"]
    assert sorted(cache.keys("*")) == ["other", "user:1", "user:2"]
    assert cache.keys("user:*", version=2) == ["user:3"]
    assert caches["prefix"].keys("*") == ["user:4"]
    assert caches["custom_key"].keys("*") == []
    assert sorted(cache.iter_keys("user:*", itersize=1)) == ["user:1", "user:2"]
    assert cache.delete_pattern("user:*", itersize=1) == 2
    assert cache.keys("*") == ["other"]
    assert caches["v2"].get("user:3") == 3
    assert cache.delete_pattern("user:*", version=2) == 1
    assert caches["prefix"].get("user:4") == 4
    assert cache.delete_pattern("*", prefix=caches["prefix"].key_prefix) == 1
    assert caches["prefix"].get("user:4") is None
    assert cache.get("other") == 3


def test_key_prefix_with_glob_characters_is_literal(env: Env) -> None:
    if not lists_keys(env):
        pytest.skip("memcached cannot list keys")
    with override_settings(
        CACHES={
            "default": env.entry(KEY_PREFIX="p[1]*"),
            "near": env.entry(KEY_PREFIX="p1xx"),
        }
    ):
        star, near = caches["default"], caches["near"]
        star.set("a", 1)
        near.set("a", 2)
        assert star.keys("*") == ["a"]
        assert star.delete_pattern("*") == 1
        assert near.get("a") == 2
        near.clear()


def test_lock(cache: TsotCache) -> None:
    with cache.lock("job", timeout=30) as held:
        assert held.owned() and held.locked()
        other = cache.lock("job", timeout=30)
        assert other.acquire(blocking=False) is False
        assert 0 < cache.ttl("job") <= 30
    assert not cache.lock("job").locked()
    first = cache.lock("job", timeout=30)
    fence = first.acquire(blocking=False)
    cache.delete("job")  # as if it expired
    second = cache.lock("job", timeout=30)
    assert second.acquire(blocking=False) > fence
    with pytest.raises(LockNotOwnedError):
        first.release()
    assert second.owned()
    second.release()
    with pytest.raises(LockError):
        second.release()


async def test_async_twins(cache: TsotCache, env: Env) -> None:
    assert await cache.attl("missing") == 0
    assert await cache.aset("k", 1, timeout=100, nx=True) is True
    assert await cache.aset("k", 2, nx=True) is False
    assert await cache.aset("k", 3, timeout=100, xx=True) is True
    assert 98 <= await cache.attl("k") <= 100
    assert 98_000 <= await cache.apttl("k") <= 100_000
    assert await cache.aexpire("k", 50) is True
    assert await cache.apexpire("k", 40_000) is True
    assert await cache.aexpire_at("k", int(time.time()) + 70) is True
    assert await cache.apexpire_at("k", int(time.time() * 1000) + 60_000) is True
    assert 57 <= await cache.attl("k") <= 60
    assert await cache.apersist("k") is True
    assert await cache.attl("k") is None
    assert await cache.aincr("n", 4, ignore_key_check=True) == 4
    if lists_keys(env):
        assert sorted(await cache.akeys("*")) == ["k", "n"]
        assert sorted([k async for k in cache.aiter_keys("*", itersize=1)]) == ["k", "n"]
        assert await cache.adelete_pattern("n*") == 1
    else:
        with pytest.raises(NotSupportedError):
            await cache.akeys("*")
    lock = cache.alock("job", timeout=30)
    async with lock:
        assert await lock.owned()
        assert await cache.alock("job").acquire(blocking=False) is False
    assert not await lock.locked()


def test_every_method_has_its_async_twin() -> None:
    names = ["ttl", "pttl", "expire", "pexpire", "expire_at", "pexpire_at", "persist"]
    names += ["keys", "iter_keys", "delete_pattern", "lock"]
    for name in names:
        assert callable(getattr(TsotCache, "a" + name)), name
    for name in names:
        assert getattr(TsotCache, name).__doc__, name


def test_made_twins_keep_the_operation_signature_and_docstring() -> None:
    for name in ["add", "delete", "incr", "ttl", "pexpire", "delete_pattern", "incr_version"]:
        sync, async_ = getattr(TsotCache, name), getattr(TsotCache, "a" + name)
        assert sync.__name__ == name and async_.__name__ == "a" + name
        assert sync.__doc__ and async_.__doc__ == sync.__doc__, name
        assert inspect.signature(sync) == inspect.signature(async_), name
        assert inspect.iscoroutinefunction(async_) and not inspect.iscoroutinefunction(sync)
    assert list(inspect.signature(TsotCache.add).parameters) == [
        "self",
        "key",
        "value",
        "timeout",
        "version",
    ]
