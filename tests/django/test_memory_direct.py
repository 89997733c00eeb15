"""MemoryCache's direct get/set (a str key seen before goes straight to the table): the same
keys, TTLs, copies, errors, stats and events as the general path, which takes over whenever
anything stands between the Storage and its table."""

from __future__ import annotations

import threading
import uuid
import warnings
from typing import Any

import pytest
from django.core.cache import CacheKeyWarning

from tests.helpers import FakeClock
from tsot import StorageClosed, ValueTooLarge
from tsot.events import Event
from tsot_django import MemoryCache


def _cache(clock: FakeClock | None = None, **params: Any) -> MemoryCache:
    options = dict(params.pop("OPTIONS", {}))
    if clock is not None:
        options["clock"] = clock
    return MemoryCache(f"direct-{uuid.uuid4().hex}", {"OPTIONS": options, **params})


def _warm(cache: MemoryCache, *keys: str) -> None:
    """One general call per key: from then on the key takes the direct path."""
    for key in keys:
        cache.get(key)
    assert all(key in cache._finals for key in keys)


def test_direct_reads_and_writes_keep_ttls_on_the_injected_clock() -> None:
    clock = FakeClock()
    cache = _cache(clock, TIMEOUT=30)
    _warm(cache, "default", "ten", "never", "zero", "float")
    cache.set("default", "d")  # the cache's TIMEOUT
    cache.set("ten", "t", 10)
    cache.set("never", "n", None)
    cache.set("float", "f", 1.5)  # not an int: the general path, same result
    cache.set("zero", "z", 5)
    cache.set("zero", "z", 0)  # removes the key, as in Django
    assert cache.get("zero") is None
    clock.advance(1.6)
    assert cache.get("float") is None
    assert cache.get("ten") == "t"
    clock.advance(9)
    assert cache.get("ten") is None
    assert cache.get("default") == "d"
    clock.advance(20)
    assert cache.get("default", "gone") == "gone"
    clock.advance(10**9)
    assert cache.get("never") == "n"


def test_direct_reads_count_hits_and_misses_and_refresh_lru_order() -> None:
    cache = _cache(OPTIONS={"MAX_ENTRIES": 2})
    _warm(cache, "a", "b", "c")
    before = cache.storage.stats()
    cache.set("a", "1")
    cache.set("b", "2")
    assert cache.get("a") == "1"  # a is now the most recent
    assert cache.get("c") is None
    after = cache.storage.stats()
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (1, 1)
    cache.set("c", "3")  # one entry must go: the least recently used, b
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("1", "3")


def test_direct_writes_keep_the_table_size_exact() -> None:
    cache = _cache()
    _warm(cache, "k")
    for value in ("x" * 10, "y" * 1000, "z", ["a", "b"], {"deep": [1]}):
        cache.set("k", value)
        assert cache.storage.stats()["memory_bytes"] == sum(
            len(k) + len(e[0])
            for k, e in cache.storage.backend._data.items()  # type: ignore[attr-defined]
        )


def test_direct_reads_copy_what_the_caller_could_change() -> None:
    cache = _cache()
    _warm(cache, "flat", "deep")
    flat, deep = {"a": "1"}, {"a": [1, 2]}
    cache.set("flat", flat)
    cache.set("deep", deep)
    flat["a"] = "changed"
    deep["a"].append(3)
    got = cache.get("deep")
    assert got == {"a": [1, 2]}
    got["a"].append(4)
    assert cache.get("deep") == {"a": [1, 2]} and cache.get("deep") is not cache.get("deep")
    assert cache.get("flat") == {"a": "1"} and cache.get("flat") is not cache.get("flat")


def test_direct_keys_keep_versions_and_prefixes_apart() -> None:
    name = f"direct-{uuid.uuid4().hex}"
    one, two = MemoryCache(name, {}), MemoryCache(name, {"KEY_PREFIX": "p"})
    for cache in (one, two):
        _warm(cache, "k")
        cache.get("k", version=2)
    one.set("k", "v1")
    one.set("k", "v2", version=2)
    two.set("k", "p1")
    assert (one.get("k"), one.get("k", version=2), one.get("k", version=3)) == ("v1", "v2", None)
    assert two.get("k") == "p1"


def test_errors_on_a_direct_key_are_the_general_paths_and_write_nothing() -> None:
    cache = _cache(OPTIONS={"MAX_VALUE_SIZE": 100})
    _warm(cache, "big")
    cache.set("big", "small")
    with pytest.raises(ValueTooLarge, match="big"):
        cache.set("big", "x" * 200)
    with pytest.raises(ValueTooLarge, match="big"):
        cache.set("big", {"a": "x" * 200})
    assert cache.get("big") == "small"


def test_a_key_that_warns_is_never_direct_and_warns_every_time() -> None:
    cache = _cache()
    key = "has space"
    for _ in range(3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache.set(key, "v")
            assert cache.get(key) == "v"
        assert [w.category for w in caught] == [CacheKeyWarning, CacheKeyWarning]
    assert key not in cache._finals


def test_a_listener_attached_later_sees_direct_keys() -> None:
    cache = _cache()
    _warm(cache, "k")
    seen: list[Event] = []
    cache.storage.listen(seen.append)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert [(e.kind, e.operation) for e in seen] == [("op", "set"), ("op", "get")]


def test_a_closed_storage_is_not_read_behind_its_back() -> None:
    cache = _cache()
    _warm(cache, "k")
    cache.set("k", "v")
    cache.storage.close()
    with pytest.raises(StorageClosed):
        cache.get("k")
    with pytest.raises(StorageClosed):
        cache.set("k", "w")


def test_fail_open_keeps_every_call_general() -> None:
    cache = _cache(OPTIONS={"FAIL_OPEN": True})
    cache.set("k", "v")
    assert cache.get("k") == "v" and cache._table_key is None and not cache._finals


def test_a_subclass_that_overrides_get_or_set_is_always_called() -> None:
    calls: list[str] = []

    class Counted(MemoryCache):
        def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
            calls.append("get")
            return super().get(key, default, version)

        def set(self, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append("set")
            return super().set(key, value, *args, **kwargs)

    cache = Counted(f"direct-{uuid.uuid4().hex}", {})
    for _ in range(3):
        cache.set("k", "v")
        assert cache.get("k") == "v"
    assert calls == ["set", "get"] * 3


def test_a_direct_overwrite_takes_the_new_ttl_and_becomes_the_most_recent() -> None:
    clock = FakeClock()
    cache = _cache(clock, OPTIONS={"MAX_ENTRIES": 2})
    _warm(cache, "a", "b", "c")
    cache.set("a", "old", None)
    cache.set("a", "new", 5)  # an overwrite: a deadline again, and a is the most recent
    cache.set("b", "old", 5)
    cache.set("b", "new", 100)
    cache.set("a", "newer", 5)
    cache.set("c", "3", 100)  # one entry must go: b, written before a's last write
    assert cache.get("b") is None  # (a miss changes no order)
    cache.set("b", "back", 100)  # evicts a (c was written after a)
    clock.advance(50)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "back", "3")
    cache.set("c", "short", 5)
    clock.advance(6)
    assert cache.get("c") is None


def test_a_direct_write_over_max_bytes_is_refused_by_the_general_path() -> None:
    cache = _cache(OPTIONS={"MAX_BYTES": 300})
    _warm(cache, "k")
    cache.set("k", "small")
    with pytest.raises(ValueTooLarge, match="memory store holds at most 300 bytes"):
        cache.set("k", "x" * 400)
    assert cache.get("k") == "small"


def test_threads_on_direct_keys_keep_every_count() -> None:
    cache = _cache()
    keys = [f"k{i}" for i in range(8)]
    _warm(cache, *keys)
    before = cache.storage.stats()
    rounds = 500

    def work(n: int) -> None:
        for i in range(rounds):
            key = keys[(n + i) % len(keys)]
            cache.set(key, f"{n}:{i}")
            assert cache.get(key) is not None  # nothing deletes: every read is a hit

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = cache.storage.stats()
    assert after["hits"] - before["hits"] == 8 * rounds
    assert after["misses"] == before["misses"]
    assert after["keys"] == len(keys)
    assert after["memory_bytes"] == sum(
        len(k) + len(e[0])
        for k, e in cache.storage.backend._data.items()  # type: ignore[attr-defined]
    )
