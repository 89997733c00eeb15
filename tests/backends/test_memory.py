"""The memory backend's own rules: LRU bounds, byte bounds, sharing by name, privacy."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.helpers import FakeClock
from tsot import AsyncStorage, Storage, ValueTooLarge
from tsot.backends.memory import MemoryStore


def test_lru_evicts_least_recently_used() -> None:
    s = Storage.new_imc(max_entries=3)
    for k in "abc":
        s.store(k, k)
    assert s.load("a") == "a"  # a is now the most recent
    s.store("d", "d")
    assert s.load_many(["a", "b", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    s.store("c", "c2")  # a write also refreshes
    s.store("e", "e")
    assert sorted(s.load_many(["a", "c", "d", "e"])) == ["c", "d", "e"]


def test_max_bytes_bound_and_too_large() -> None:
    s = Storage.new_imc(max_bytes=1000)
    for i in range(20):
        s.store(f"k{i}", b"x" * 100)
    assert s.backend.size_bytes <= 1000  # type: ignore[attr-defined]
    assert s.load(f"k{19}") == b"x" * 100
    assert s.load("k0") is None
    s.store("keep", "v")
    with pytest.raises(ValueTooLarge, match="k-big"):
        s.store("k-big", b"y" * 2000)
    assert s.load("keep") == "v"


def test_sweep_drops_expired_entries_before_live_ones() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=4, clock=clock)
    store.set(b"live-old", b"1", None)  # the least recently used, but alive
    for i in range(3):
        store.set(f"short{i}".encode(), b"1", 1000)
    clock.advance(2)
    store._evictions = store.max_entries - 1  # the next eviction is the amortised sweep
    store.set(b"new", b"1", None)
    assert store.get(b"live-old") == b"1"  # the expired ones went instead
    assert len(store) == 2


def test_named_tables_are_shared_and_private_ones_are_not() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    a = Storage.from_url(f"memory://{name}")
    b = Storage.from_url(f"memory://{name}")
    a.store("k", 1)
    assert b.load("k") == 1
    assert Storage.from_url(f"memory://other-{name}").load("k") is None
    p, q = Storage.new_imc(), Storage.new_imc()
    p.store("k", 1)
    assert q.load("k") is None


def test_async_uses_the_same_table_without_threads() -> None:
    name = f"async-{uuid.uuid4().hex}"
    Storage.from_url(f"memory://{name}").store("k", "sync")

    async def read() -> object:
        import threading

        before = threading.active_count()
        value = await AsyncStorage.from_url(f"memory://{name}").load("k")
        assert threading.active_count() == before
        return value

    assert asyncio.run(read()) == "sync"


def test_stats_count_hits_and_misses() -> None:
    s = Storage.new_imc()
    s.store("k", 1)
    s.load("k")
    s.load_many(["k", "nope"])
    s.load("nope")
    assert s.stats() | {"url": None} == {
        "url": None,
        "namespace": "",
        "hits": 2,
        "misses": 2,
        "keys": 1,
        "memory_bytes": 2,  # key "k" and the int's one decimal byte
        "evictions": None,
        "clients": None,
        "undecodable": 0,
    }
