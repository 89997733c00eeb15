"""RedisCache with LOCAL_CACHE: a local hit of a str key seen before is served in one call
(``LocalStore.reader``), with the same values, signatures, stats, events and coherence as the
general path, which takes every miss and every call once anything stands between the Storage
and the local cache. Against a real Redis; invalidations are awaited (bounded), never slept on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import FakeClock, until
from tests.servers.redis import REDIS, start_single, url_of
from tsot import StorageClosed
from tsot.backends.redis.cached import close_all
from tsot.events import Event
from tsot.integration import direct_calls
from tsot_django import RedisCache, TsotCache

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _stop_listeners() -> Iterator[None]:
    yield
    close_all()


def _cache(url: str, namespace: str | None = None, **options: Any) -> RedisCache:
    return RedisCache(
        url,
        {
            "OPTIONS": {
                "LOCAL_CACHE": True,
                "NAMESPACE": namespace or f"ld{uuid.uuid4().hex[:12]}",
                **options,
            }
        },
    )


def _warm(cache: TsotCache, *keys: str) -> None:
    """Read each key until a read is a local hit: the first one is general (the key is
    remembered) and fills the local table once tracking is live; from then on the key takes
    the direct path."""
    for key in keys:
        until(lambda k=key: _served_locally(cache, k), f"{key!r} served locally")  # type: ignore[misc]
    assert cache.__dict__.get("get") is not None, "no direct get installed"
    assert all(key in cache._finals for key in keys)


def _served_locally(cache: TsotCache, key: str) -> bool:
    hits = _local(cache)[0]
    cache.get(key)
    return _local(cache)[0] > hits


def _server_key(cache: TsotCache, key: str) -> bytes:
    assert cache._table_key is not None
    return cache._table_key(cache.make_key(key))


def _local(cache: TsotCache) -> tuple[int, int]:
    stats = cache.storage.stats()
    return stats["local_hits"], stats["local_misses"]


def test_a_local_hit_is_direct_and_counted_as_a_hit(redis_url: str) -> None:
    cache = _cache(redis_url)
    assert "get" in cache.__dict__  # until the first call: the storage opens on first use
    cache.set("k", "v")
    _warm(cache, "k")
    before = _local(cache)
    assert [cache.get("k") for _ in range(3)] == ["v", "v", "v"]
    hits, misses = _local(cache)
    assert (hits - before[0], misses - before[1]) == (3, 0)
    assert cache.get("absent", "dflt") == "dflt"  # a miss: the general path reads the server
    assert _local(cache)[1] == misses + 1


def test_another_clients_write_reaches_a_direct_key(redis_url: str) -> None:
    namespace = f"ld{uuid.uuid4().hex[:12]}"
    cache, other = _cache(redis_url, namespace), _cache(redis_url, namespace, LOCAL_TTL=60)
    cache.set("k", "old")
    _warm(cache, "k")
    assert cache.get("k") == "old"
    other.set("k", "new")  # the same key, written by another storage (its own connection)
    until(lambda: cache.get("k") == "new", "the invalidation of k")
    cache.set("k", "mine")  # its own write: read back at once
    assert cache.get("k") == "mine"


def test_immutable_values_are_decoded_once_and_mutable_ones_on_every_hit(redis_url: str) -> None:
    cache = _cache(redis_url)
    cache.set("s", "text")
    cache.set("d", {"a": [1]})
    _warm(cache, "s", "d")
    assert cache.get("s") is cache.get("s")  # the same bytes: the value they decoded to
    got = cache.get("d")
    got["a"].append(2)  # a caller's change never reaches the next reader
    assert cache.get("d") == {"a": [1]} and cache.get("d") is not cache.get("d")
    cache.set("s", "other")
    assert cache.get("s") == "other"


def test_a_value_written_behind_the_caches_back_is_checked_on_a_direct_key(
    redis_url: str,
) -> None:
    cache = _cache(redis_url)
    cache.set("k", "v")
    _warm(cache, "k")
    undecodable = cache.storage.stats()["undecodable"]
    raw = redis.Redis.from_url(redis_url)
    try:  # someone with access to the server writes bytes that are not a signed value
        raw.set(_server_key(cache, "k"), b"p" + b"\x80\x04N.")
    finally:
        raw.close()
    until(lambda: cache.get("k", "refused") == "refused", "the refusal of the forged value")
    assert cache.get("k", "refused") == "refused"
    assert cache.storage.stats()["undecodable"] > undecodable


def test_a_local_deadline_on_the_injected_clock_sends_the_read_to_the_server(
    redis_url: str,
) -> None:
    clock = FakeClock()
    cache = _cache(redis_url, LOCAL_TTL=5, LOCAL_CLOCK=clock)
    cache.set("k", "v")
    _warm(cache, "k")
    hits, misses = _local(cache)
    assert cache.get("k") == "v" and _local(cache) == (hits + 1, misses)
    clock.advance(6)
    assert cache.get("k") == "v"  # past the local deadline: read again from the server
    assert _local(cache) == (hits + 1, misses + 1)
    assert cache.get("k") == "v" and _local(cache) == (hits + 2, misses + 1)


def test_a_listener_attached_later_sees_the_reads_of_direct_keys(redis_url: str) -> None:
    cache = _cache(redis_url)
    cache.set("k", "v")
    _warm(cache, "k")
    seen: list[Event] = []
    detach = cache.storage.listen(seen.append)
    try:
        assert cache.get("k") == "v"
    finally:
        detach()
    assert ("op", "get") in [(e.kind, e.operation) for e in seen]


def test_versions_and_prefixes_stay_apart_on_the_direct_path(redis_url: str) -> None:
    namespace = f"ld{uuid.uuid4().hex[:12]}"
    one = _cache(redis_url, namespace)
    two = RedisCache(
        redis_url,
        {"KEY_PREFIX": "p", "OPTIONS": {"LOCAL_CACHE": True, "NAMESPACE": namespace}},
    )
    one.set("k", "v1")
    one.set("k", "v2", version=2)
    two.set("k", "p1")
    for cache in (one, two):
        _warm(cache, "k")
        cache.get("k", version=2)
    assert (one.get("k"), one.get("k", version=2), one.get("k", version=3)) == ("v1", "v2", None)
    assert two.get("k") == "p1"


def test_fail_open_serves_local_hits_directly_and_an_outage_as_a_miss(tmp_path: Path) -> None:
    server = start_single(tmp_path / "srv")
    try:
        cache = _cache(url_of(server, REDIS), FAIL_OPEN=True, SOCKET_TIMEOUT=1)
        cache.set("k", "v")
        _warm(cache, "k")
        assert cache.get("k") == "v"
        server.kill()  # tracking goes down with it: the local table empties
        until(lambda: cache.get("k", "missed") == "missed", "the outage read as a miss")
    finally:
        server.stop()


def test_a_get_kept_from_before_the_first_call_is_sent_on_once(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tsot_django.cache as module

    decided: list[object] = []

    def counted(*args: Any) -> Any:
        decided.append(args[0])
        return direct_calls(*args)

    monkeypatch.setattr(module, "direct_calls", counted)
    for options in ({"LOCAL_CACHE": True}, {}):  # with a local cache, and a plain storage
        cache = RedisCache(
            redis_url, {"OPTIONS": {**options, "NAMESPACE": f"ld{uuid.uuid4().hex[:12]}"}}
        )
        get = cache.get  # kept before the storage opened (``get = cache.get`` at import)
        cache.set("k", "v")
        assert [get("k") for _ in range(5)] == ["v"] * 5
        assert get("absent", "d") == "d" and cache.get("k") == "v"
        assert len(decided) == 1, "the kept get decided again"
        if options:
            until(lambda g=get, c=cache: _served_locally_by(c, g), "a kept get served locally")  # type: ignore[misc]
        decided.clear()


def _served_locally_by(cache: TsotCache, get: Callable[..., Any]) -> bool:
    hits = _local(cache)[0]
    get("k")
    return _local(cache)[0] > hits


def test_a_closed_storage_is_not_read_behind_its_back(redis_url: str) -> None:
    cache = _cache(redis_url)
    cache.set("k", "v")
    _warm(cache, "k")
    cache.storage.close()
    with pytest.raises(StorageClosed):
        cache.get("k")
