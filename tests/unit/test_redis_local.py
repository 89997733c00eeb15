"""The Redis local cache's table (I/O-free): coherence rules, deadlines, LRU bounds, settings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot.backends.redis import local as redis_local
from tsot.backends.redis.local import LocalSettings, LocalStore
from tsot.errors import ConfigurationError


def make(
    clock: FakeClock,
    max_entries: int = 100,
    max_bytes: int = 1 << 20,
    ttl: float | None = None,
    live: bool = True,
) -> LocalStore:
    store = LocalStore(LocalSettings(max_entries, max_bytes, ttl, clock))
    store.set_live(live)
    return store


def read(store: LocalStore, key: bytes, value: bytes | None, pttl: int = -1) -> None:
    """A server read with nothing in between: begin, reply, fill."""
    store.fill(key, value, pttl, store.begin())


def test_a_filled_value_is_served_locally(clock: FakeClock) -> None:
    store = make(clock)
    assert store.lookup(b"k") is None
    read(store, b"k", b"v")
    assert store.lookup(b"k") == b"v"
    assert store.stats()["local_hits"] == 1
    assert store.stats()["local_misses"] == 1


def test_nothing_is_kept_while_tracking_is_down(clock: FakeClock) -> None:
    store = make(clock, live=False)
    assert store.begin() is None
    read(store, b"k", b"v")
    assert store.lookup(b"k") is None


def test_going_down_empties_the_table_and_refuses_reads_in_flight(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"a", b"1")
    ticket = store.begin()
    store.set_live(False)
    assert store.lookup(b"a") is None
    store.set_live(True)  # back up before the reply arrived: the reply still predates it
    store.fill(b"b", b"2", -1, ticket)
    assert store.lookup(b"b") is None
    assert store.stats()["local_refused"] == 1


def test_an_invalidation_removes_the_key(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"a", b"1")
    read(store, b"b", b"2")
    store.invalidate([b"a"])
    assert store.lookup(b"a") is None
    assert store.lookup(b"b") == b"2"
    assert store.stats()["local_invalidations"] == 1


def test_a_read_in_flight_during_its_keys_invalidation_keeps_nothing(clock: FakeClock) -> None:
    store = make(clock)
    ticket = store.begin()  # GET sent ...
    store.invalidate([b"k"])  # ... another client writes k, the invalidation arrives ...
    store.fill(b"k", b"old", -1, ticket)  # ... then the (older) reply
    assert store.lookup(b"k") is None


def test_a_read_in_flight_during_another_keys_invalidation_is_kept(clock: FakeClock) -> None:
    store = make(clock)
    ticket = store.begin()
    store.invalidate([b"other"])
    store.fill(b"k", b"v", -1, ticket)
    assert store.lookup(b"k") == b"v"


def test_a_read_older_than_the_remembered_invalidations_keeps_nothing(clock: FakeClock) -> None:
    store = make(clock)
    ticket = store.begin()
    store.invalidate([b"k"])
    store.invalidate([b"x%d" % i for i in range(5000)])  # k's record is forgotten
    store.fill(b"k", b"old", -1, ticket)
    assert store.lookup(b"k") is None


def test_a_flush_empties_and_refuses_reads_in_flight(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"a", b"1")
    ticket = store.begin()
    store.flush()
    store.fill(b"b", b"2", -1, ticket)
    assert store.lookup(b"a") is None
    assert store.lookup(b"b") is None
    assert store.stats()["local_flushes"] == 1


def test_own_writes_drop_the_key_and_refuse_reads_in_flight(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"k", b"1")
    ticket = store.begin()
    store.drop([b"k"])
    assert store.lookup(b"k") is None
    store.fill(b"k", b"1", -1, ticket)
    assert store.lookup(b"k") is None
    assert store.stats()["local_invalidations"] == 0  # counted only for the server's messages


def test_entries_never_outlive_the_server_ttl(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"k", b"v", pttl=1500)
    clock.advance(1.499)
    assert store.lookup(b"k") == b"v"
    clock.advance(0.001)
    assert store.lookup(b"k") is None


def test_the_ttl_counts_from_before_the_read_was_sent(clock: FakeClock) -> None:
    store = make(clock)
    ticket = store.begin()
    clock.advance(1.0)  # the round trip
    store.fill(b"k", b"v", 1500, ticket)
    clock.advance(0.5)
    assert store.lookup(b"k") is None


def test_a_missing_or_absent_value_is_not_kept(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"k", None, pttl=-2)
    read(store, b"j", b"v", pttl=-2)  # deleted between GET and PTTL
    assert store.stats()["local_entries"] == 0


def test_local_ttl_caps_every_entry(clock: FakeClock) -> None:
    store = make(clock, ttl=5.0)
    read(store, b"forever", b"v")
    read(store, b"long", b"v", pttl=60_000)
    read(store, b"short", b"v", pttl=2_000)
    clock.advance(2.0)
    assert store.lookup(b"short") is None
    assert store.lookup(b"forever") == b"v"
    clock.advance(3.0)
    assert store.lookup(b"forever") is None
    assert store.lookup(b"long") is None


def test_lru_by_entries(clock: FakeClock) -> None:
    store = make(clock, max_entries=3)
    for k in (b"a", b"b", b"c"):
        read(store, k, b"v")
    assert store.lookup(b"a") == b"v"  # a is now the most recent
    read(store, b"d", b"v")
    assert store.lookup(b"b") is None
    assert [store.lookup(k) for k in (b"a", b"c", b"d")] == [b"v"] * 3
    assert store.stats()["local_entries"] == 3


def test_lru_by_bytes(clock: FakeClock) -> None:
    store = make(clock, max_bytes=30)
    read(store, b"a", b"x" * 9)  # 10 bytes with its key
    read(store, b"b", b"x" * 9)
    read(store, b"c", b"x" * 9)
    read(store, b"d", b"x" * 9)
    assert store.lookup(b"a") is None
    assert store.stats()["local_bytes"] == 30
    read(store, b"e", b"x" * 40)  # larger than the whole table: never kept
    assert store.lookup(b"e") is None
    assert store.stats()["local_entries"] == 3


def test_refilling_a_key_replaces_its_size(clock: FakeClock) -> None:
    store = make(clock)
    read(store, b"k", b"x" * 10)
    read(store, b"k", b"y" * 3)
    assert store.stats()["local_bytes"] == 4
    assert store.lookup(b"k") == b"yyy"


def _options(**given: Any) -> dict[str, Any]:
    base = {o.name: o.default for o in redis_local.OPTIONS}
    base["read_from_replicas"] = False
    return {**base, **given}


def test_settings_off_by_default() -> None:
    assert redis_local.settings(_options(), "redis://h") is None


def test_settings_refuse_replica_reads() -> None:
    with pytest.raises(ConfigurationError, match="read_from_replicas"):
        redis_local.settings(_options(local_cache=True, read_from_replicas=True), "redis://h")


def test_settings_refuse_a_clock_that_is_not_callable() -> None:
    with pytest.raises(ConfigurationError, match="local_clock"):
        redis_local.settings(_options(local_cache=True, local_clock=3), "redis://h")


def test_settings_carry_the_options(clock: FakeClock) -> None:
    s = redis_local.settings(
        _options(local_cache=True, local_max_entries=7, local_ttl=2.5, local_clock=clock), "x"
    )
    assert s == LocalSettings(7, 64 * 1024 * 1024, 2.5, clock)


class _Owner:
    """What a reader checks on each call: whether the Storage still calls the backend."""

    def __init__(self, backend: object) -> None:
        self._b = backend


def _reader(store: LocalStore, decoded: list[bytes]) -> Any:
    """A reader over ``store`` whose keys are their own names and whose codec records what it
    decodes (bytes ``s...`` decode to the str after the tag, anything else to a list)."""

    def decode(raw: bytes, key: bytes) -> Any:
        decoded.append(key)
        return raw[1:].decode() if raw[:1] == b"s" else [raw]

    backend = object()
    keys = {name: name.encode() for name in ("a", "b", "c", "d")}
    return store.reader(_Owner(backend), backend, keys, decode, lambda *a: ("general", a))


def test_the_reader_serves_hits_and_leaves_the_rest_to_the_general_path(
    clock: FakeClock,
) -> None:
    store = make(clock, ttl=10)
    decoded: list[bytes] = []
    get = _reader(store, decoded)
    assert get("a") == ("general", ("a", None, None))  # not in the table: a miss
    assert get("zz", "d") == ("general", ("zz", "d", None))  # a key the adapter never made
    read(store, b"a", b"sA")
    read(store, b"b", b"pickled")
    assert (get("a"), get("a"), get("a")) == ("A", "A", "A")
    assert decoded == [b"a"]  # a str is decoded once per stored bytes object
    assert get("b") == [b"pickled"] and get("b") is not get("b")  # mutable: decoded every time
    read(store, b"a", b"sA2")  # a refill: new bytes, decoded again
    assert get("a") == "A2" and decoded.count(b"a") == 2
    assert store.stats()["local_hits"] == 7  # a three times, b three, a once more
    clock.advance(11)  # past the local deadline: the general path reads the server
    assert get("a") == ("general", ("a", None, None))


def test_what_the_reader_remembers_is_bounded_by_the_tables_bytes(clock: FakeClock) -> None:
    store = make(clock, max_bytes=1000)
    decoded: list[bytes] = []
    get = _reader(store, decoded)
    for name in ("a", "b", "c"):
        read(store, name.encode(), b"s" + name.encode() * 199)  # 200 bytes each
    for name in ("a", "b", "a", "b"):
        get(name)
    assert decoded == [b"a", b"b"]  # 800 bytes remembered (value and bytes, 400 each)
    get("c")  # 1200 > 1000: forgotten whole, then c remembered
    get("a")
    assert decoded == [b"a", b"b", b"c", b"a"]
