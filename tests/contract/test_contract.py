"""The one contract suite: every backend (tests/contract/registry.py), sync and async."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.contract.registry import Target
from tsot import (
    AsyncStorage,
    ConfigurationError,
    InvalidKey,
    SerializationError,
    Storage,
    WrongType,
)
from tsot.backends.base import STATS_KEYS

BIG = 2**64 + 5


def expire_by_time(target: Target, store: Any, key: str, seconds: float) -> None:
    """Let ``seconds`` pass for the backend: move its clock, or poll a real server (bounded)."""
    if target.advance is not None:
        target.advance(seconds + 0.001)
        return
    deadline = time.monotonic() + seconds + 5
    while store.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)


def need_clock(target: Target) -> None:
    if target.advance is None:
        pytest.skip("runs on backends with an injectable clock; real-time expiry has its own test")


# -- round trips ------------------------------------------------------------------------------

ROUND_TRIP = [
    "123",
    123,
    b"123",
    True,
    False,
    1.5,
    -7,
    0,
    None,
    "",
    b"",
    "żółw ☃ \x00",
    [1, "a", (2, 3)],
    {"nested": {"list": [1, 2.5, None], "bytes": b"\xff"}},
    {1, 2, 3},
    2**100,
    -(2**80),
    float("inf"),
    (),
    frozenset({"a"}),
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_store_load_exact_type(store: Any, value: Any) -> None:
    store.store("k", value)
    got = store.load("k", default="<missing>")
    assert got == value
    assert type(got) is type(value)


def test_nan_round_trip(store: Any) -> None:
    store.store("nan", float("nan"))
    assert math.isnan(store.load("nan"))


def test_load_missing_returns_default(store: Any) -> None:
    assert store.load("nope") is None
    assert store.load("nope", default=42) == 42


def test_stored_object_is_a_copy(store: Any) -> None:
    value = {"list": [1, 2]}
    store.store("obj", value)
    value["list"].append(3)
    assert store.load("obj") == {"list": [1, 2]}
    got = store.load("obj")
    got["list"].append(9)
    assert store.load("obj") == {"list": [1, 2]}


def test_typed_forms(store: Any) -> None:
    store.store_string("s", "123")
    store.store_raw("b", b"123")
    store.store_int("i", 123)
    assert store.load_string("s") == "123"
    assert store.load_raw("b") == b"123"
    assert store.load_int("i") == 123
    assert store.load_int("missing", 7) == 7
    with pytest.raises(WrongType, match="'s'"):
        store.load_int("s")
    with pytest.raises(WrongType):
        store.load_string("b")
    with pytest.raises(WrongType):
        store.load_raw("i")
    with pytest.raises(WrongType):
        store.store_string("x", b"bytes")
    with pytest.raises(WrongType):
        store.store_int("x", True)
    with pytest.raises(WrongType):
        store.store_raw("x", "str")
    assert not store.exists("x")


def test_bytes_and_str_keys_are_the_same_key(store: Any) -> None:
    store.store("ключ", 1)
    assert store.load("ключ".encode()) == 1


def test_overwrite(store: Any) -> None:
    store.store("k", "a")
    store.store("k", {"b": 2})
    assert store.load("k") == {"b": 2}


def test_large_value(store: Any) -> None:
    value = b"x" * 500_000
    store.store("big", value)
    assert store.load("big") == value


# -- add, delete, exists ----------------------------------------------------------------------


def test_add(store: Any) -> None:
    assert store.add("k", "first") is True
    assert store.add("k", "second") is False
    assert store.load("k") == "first"


def test_replace(store: Any) -> None:
    assert store.replace("k", "first") is False  # absent: nothing written
    assert not store.exists("k")
    assert store.load("k") is None
    store.store("k", "old")
    assert store.load("k") == "old"  # read once (the Redis local cache keeps it)
    assert store.replace("k", {"new": 1}) is True
    assert store.load("k") == {"new": 1}  # the local copy was dropped
    assert store.replace("k", "newer") is True
    assert store.load("k") == "newer"
    store.delete("k")
    assert store.replace("k", "back") is False  # a deleted key is not written back
    assert not store.exists("k")


def test_replace_replaces_the_ttl(store: Any) -> None:
    store.store("k", "v", ttl=None)
    assert store.replace("k", "w", ttl=100) is True
    assert 98 <= store.ttl("k") <= 100
    assert store.replace("k", "x", ttl=None) is True
    assert store.ttl("k") == math.inf
    assert store.replace("k", "y", ttl=timedelta(minutes=2)) is True
    assert 118 <= store.ttl("k") <= 120
    assert store.load("k") == "y"


def test_delete_and_exists(store: Any) -> None:
    assert store.delete("k") is False
    store.store("k", 1)
    assert store.exists("k")
    assert store.delete("k") is True
    assert not store.exists("k")
    assert store.load("k") is None


# -- TTL table --------------------------------------------------------------------------------


def test_ttl_none_never_expires(store: Any, target: Target) -> None:
    store.store("k", "v", ttl=None)
    assert store.ttl("k") == math.inf
    if target.advance is not None:
        target.advance(10 * 365 * 86400)
    assert store.load("k") == "v"


def test_ttl_zero_and_negative_delete(store: Any) -> None:
    for ttl in (0, -1, -0.5, timedelta(seconds=-3)):
        store.store("k", "old")
        store.store("k", "new", ttl=ttl)
        assert store.load("k") is None, ttl
        assert not store.exists("k")


def test_ttl_values_are_reported(store: Any) -> None:
    store.store("int", 1, ttl=100)
    store.store("float", 1, ttl=50.5)
    store.store("td", 1, ttl=timedelta(minutes=2))
    store.store("month", 1, ttl=40 * 86400)
    assert 98 <= store.ttl("int") <= 100
    assert 48 <= store.ttl("float") <= 50.5
    assert 118 <= store.ttl("td") <= 120
    assert 40 * 86400 - 5 <= store.ttl("month") <= 40 * 86400
    assert store.ttl("missing") is None


def test_ttl_expiry(store: Any, target: Target) -> None:
    need_clock(target)
    store.store("short", "v", ttl=1.5)
    store.store("long", "v", ttl=timedelta(days=31))
    target.advance(1.0)
    assert store.load("short") == "v"
    target.advance(0.6)
    assert store.load("short") is None
    assert not store.exists("short")
    assert store.ttl("short") is None
    assert store.load("long") == "v"
    target.advance(31 * 86400)
    assert store.load("long") is None


def test_ttl_expiry_real_time(store: Any, target: Target) -> None:
    """The one real-time expiry test (a server backend cannot have its clock moved)."""
    if target.advance is not None:
        pytest.skip("covered with the injected clock")
    store.store("short", "v", ttl=0.5)
    assert store.load("short") == "v"
    expire_by_time(target, store, "short", 0.5)
    assert store.load("short") is None
    assert store.replace("short", "w") is False  # expired: absent for replace too
    assert not store.exists("short")


def test_default_ttl_option(opener: Callable[..., Any], target: Target) -> None:
    store = opener(default_ttl=100)
    store.store("k", 1)
    assert 98 <= store.ttl("k") <= 100
    store.store("forever", 1, ttl=None)
    assert store.ttl("forever") == math.inf


def test_expire_and_persist(store: Any, target: Target) -> None:
    assert store.expire("missing", 10) is False
    assert store.persist("missing") is False
    store.store("k", "v")
    assert store.expire("k", 60) is True
    assert 58 <= store.ttl("k") <= 60
    assert store.persist("k") is True
    assert store.ttl("k") == math.inf
    assert store.expire("k", timedelta(seconds=30)) is True
    assert 28 <= store.ttl("k") <= 30
    assert store.expire("k", None) is True
    assert store.ttl("k") == math.inf
    assert store.expire("k", 0) is True
    assert not store.exists("k")


def test_add_respects_expired_value(store: Any, target: Target) -> None:
    need_clock(target)
    store.store("k", "old", ttl=1)
    target.advance(2)
    assert store.add("k", "new") is True
    assert store.load("k") == "new"


def test_add_with_zero_ttl_stores_nothing(store: Any) -> None:
    assert store.add("k", "v", ttl=0) is True
    assert not store.exists("k")
    store.store("k", "v")
    assert store.add("k", "w", ttl=0) is False
    assert store.load("k") == "v"


def test_replace_treats_an_expired_value_as_absent(store: Any, target: Target) -> None:
    need_clock(target)
    store.store("k", "old", ttl=1)
    assert store.replace("k", "new", ttl=10) is True
    target.advance(2)
    assert store.load("k") == "new"  # the new TTL, not the old one
    target.advance(9)
    assert store.replace("k", "newer") is False
    assert not store.exists("k")
    assert store.load("k") is None


def test_replace_with_zero_ttl_deletes_an_existing_key(store: Any) -> None:
    for ttl in (0, -1, timedelta(seconds=-3)):
        assert store.replace("k", "v", ttl=ttl) is False, ttl  # absent: nothing to delete
        assert not store.exists("k")
        store.store("k", "old")
        assert store.replace("k", "new", ttl=ttl) is True, ttl  # stored expired: gone
        assert not store.exists("k")
        assert store.load("k") is None


def test_bad_ttl(store: Any) -> None:
    for bad in (float("nan"), "10", True, [1]):
        with pytest.raises(ConfigurationError, match="ttl"):
            store.store("k", "v", ttl=bad)
    assert not store.exists("k")


# -- incr / decr ------------------------------------------------------------------------------


def test_incr_missing_creates(store: Any) -> None:
    assert store.incr("n") == 1
    assert store.incr("n", 10) == 11
    assert store.decr("n", 20) == -9
    assert store.load("n") == -9
    assert store.decr("m") == -1


def test_incr_without_create(store: Any) -> None:
    with pytest.raises(KeyError):
        store.incr("missing", create=False)
    assert not store.exists("missing")
    store.store("n", 5)
    assert store.incr("n", create=False) == 6


def test_incr_negative_values(store: Any) -> None:
    store.store("n", -5)
    assert store.incr("n", 3) == -2
    assert store.incr("n", 2) == 0
    assert store.decr("n", 1) == -1
    assert store.load_int("n") == -1


def test_incr_past_64_bits(store: Any) -> None:
    store.store("n", 2**63 - 1)
    assert store.incr("n") == 2**63
    assert store.incr("n", 2**64) == 2**63 + 2**64
    store.store("m", -(2**63))
    assert store.decr("m") == -(2**63) - 1
    store.store("b", BIG)
    assert store.incr("b", -BIG) == 0
    store.store("u", 2**64 - 1)
    assert store.incr("u") == 2**64
    assert store.load("u") == 2**64


def test_incr_non_integer(store: Any) -> None:
    for value in ("12", b"12", 1.5, {"a": 1}, True):
        store.store("x", value)
        with pytest.raises(WrongType, match="not an integer"):
            store.incr("x")
        assert store.load("x") == value
    store.store("n", 1)
    with pytest.raises(WrongType):
        store.incr("n", 1.5)
    assert store.load("n") == 1


def test_incr_keeps_ttl(store: Any) -> None:
    store.store("n", 1, ttl=100)
    store.incr("n")
    assert 98 <= store.ttl("n") <= 100


# -- many -------------------------------------------------------------------------------------


def test_many(store: Any) -> None:
    data = {f"k{i}": i if i % 2 else f"v{i}" for i in range(50)}
    store.store_many(data)
    got = store.load_many([*data, "absent"])
    assert got == data
    assert "absent" not in got
    assert store.delete_many(["k1", "k2", "absent"]) == 2
    assert store.load_many(["k1", "k2", "k3"]) == {"k3": 3}
    assert store.load_many([]) == {}
    store.store_many({})
    assert store.delete_many([]) == 0


def test_many_with_ttl(store: Any, target: Target) -> None:
    store.store_many({"a": 1, "b": 2}, ttl=60)
    assert 58 <= store.ttl("a") <= 60
    store.store_many({"a": 1, "b": 2}, ttl=0)
    assert store.load_many(["a", "b"]) == {}


def test_many_keeps_key_types(store: Any) -> None:
    store.store_many({"s": 1, b"b": 2})
    assert store.load_many(["s", b"b"]) == {"s": 1, b"b": 2}


# -- namespaces and clear ---------------------------------------------------------------------


def test_clear_only_this_namespace(opener: Callable[..., Any]) -> None:
    a, b = opener(), opener()
    a.store_many({f"k{i}": i for i in range(30)})
    b.store_many({f"k{i}": -i for i in range(30)})
    assert a.load("k3") == 3 and b.load("k3") == -3
    a.clear()
    assert a.load_many([f"k{i}" for i in range(30)]) == {}
    assert b.load_many([f"k{i}" for i in range(30)]) == {f"k{i}": -i for i in range(30)}
    a.store("again", 1)
    assert a.load("again") == 1


@pytest.mark.parametrize("inner", [":b", ":", "::", ":b:", "*", "[ab]?\\", "%"])
def test_namespaces_cannot_collide(opener: Callable[..., Any], inner: str) -> None:
    """Namespace ``a`` + key ``b:c`` and namespace ``a:b`` + key ``c`` are different keys.

    Before namespaces were escaped both were the final key ``a:b:c`` on memory, Redis and
    RocksDB, and ``clear()`` on ``a`` removed ``a:b``'s keys. ``inner`` extends the outer
    namespace; ``key`` is the outer key that spelled the same bytes as the nested key ``c``.
    """
    outer = opener()
    nested = opener(namespace=outer.namespace + inner)
    key = (inner + ":c")[1:] if inner.startswith(":") else "c"
    outer.store(key, "outer")
    nested.store("c", "nested")
    assert (outer.load(key), nested.load("c")) == ("outer", "nested")
    outer.clear()
    assert (outer.load(key), nested.load("c")) == (None, "nested")
    outer.store(key, "outer again")
    nested.clear()
    assert (outer.load(key), nested.load("c")) == ("outer again", None)


def test_errors_never_show_a_whole_key(store: Any) -> None:
    """A WrongType names the key by its start only: keys often hold session ids."""
    session = "session:" + "5f0c9e8d7b6a5f4e3d2c1b0a99887766"
    store.store(session, "not a number")
    with pytest.raises(WrongType) as info:
        store.incr(session)
    text = str(info.value)
    assert "session:5f0c9e8d" in text and session not in text, text


def test_escaped_namespace_lookalikes_stay_apart(opener: Callable[..., Any]) -> None:
    """``a:b`` is stored as ``a%3Ab``; the namespace literally named ``a%3Ab`` is not that."""
    base = opener().namespace
    colon, percent = opener(namespace=base + ":b"), opener(namespace=base + "%3Ab")
    colon.store("k", "colon")
    percent.store("k", "percent")
    assert (colon.load("k"), percent.load("k")) == ("colon", "percent")
    colon.clear()
    assert (colon.load("k"), percent.load("k")) == (None, "percent")


def test_context_manager(target: Target, mode: str) -> None:
    if mode == "sync":
        with Storage.from_url(target.url, **target.options, namespace="cm-sync") as s:
            s.store("k", 1)
            assert s.load("k") == 1
            s.clear()
        return

    async def use() -> Any:
        async with AsyncStorage.from_url(target.url, **target.options, namespace="cm") as s:
            await s.store("k", 1)
            value = await s.load("k")
            await s.clear()
            return value

    assert asyncio.run(use()) == 1


# -- concurrency ------------------------------------------------------------------------------


def _run_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_concurrent_incr_is_exact(store: Any) -> None:
    _run_threads(8, lambda i: [store.incr("counter") for _ in range(1000)])
    assert store.load("counter") == 8000


def test_concurrent_add_one_wins(store: Any) -> None:
    for round_ in range(5):
        results = _run_threads(8, lambda i, r=round_: store.add(f"lock{r}", i))
        assert results.count(True) == 1
        assert store.load(f"lock{round_}") == results.index(True)


def test_replace_never_writes_back_a_deleted_key(store: Any) -> None:
    """Writers replace a key while one thread deletes it: once the delete went through no
    replace may bring the key back (``exists`` then ``set`` would, when the delete falls
    between the two), and each writer sees the key absent from its first False on."""
    for round_ in range(3):
        key = f"contended{round_}"
        store.store(key, -1)

        def work(i: int, key: str = key) -> list[bool]:
            if i == 0:
                deadline = time.monotonic() + 10
                while store.load(key) == -1 and time.monotonic() < deadline:
                    pass  # delete while the writers are replacing
                assert store.delete(key) is True
                return []
            return [store.replace(key, i) for _ in range(100)]

        results = _run_threads(6, work)
        for answers in results[1:]:
            first_false = answers.index(False) if False in answers else len(answers)
            assert True not in answers[first_false:], answers
        assert not store.exists(key)
        assert store.load(key) is None


# -- bad input --------------------------------------------------------------------------------


def test_unpicklable_value(store: Any) -> None:
    store.store("k", "kept")
    with pytest.raises(SerializationError, match="lock"):
        store.store("k", threading.Lock())
    assert store.load("k") == "kept"
    with pytest.raises(SerializationError):
        store.store_many({"a": 1, "b": threading.Lock()})
    assert not store.exists("a")
    with pytest.raises(SerializationError):
        store.add("new", lambda: 1)
    assert not store.exists("new")


@pytest.mark.parametrize(
    "key",
    [None, 1, 1.5, ("a",), object(), "\ud800"],
    ids=["None", "int", "float", "tuple", "object", "lone-surrogate"],
)
def test_bad_keys(store: Any, key: Any) -> None:
    with pytest.raises(InvalidKey):
        store.store(key, "v")
    with pytest.raises(InvalidKey):
        store.load(key)
    with pytest.raises(InvalidKey):
        store.store_many({"good": 1, key: 2})
    assert not store.exists("good")


def test_odd_but_valid_keys(store: Any) -> None:
    keys = ["with space", "tab\there", "new\nline", "ctrl\x01", "x" * 300, "ünï", b"\x00\xff", ""]
    for i, key in enumerate(keys):
        store.store(key, i)
    for i, key in enumerate(keys):
        assert store.load(key) == i, key
    assert store.load_many(keys) == {k: i for i, k in enumerate(keys)}


def test_bad_options(target: Target, mode: str) -> None:
    with pytest.raises(ConfigurationError, match="no_such_option"):
        Storage.from_url(target.url, **target.options, no_such_option=1)
    with pytest.raises(ConfigurationError, match="serializer"):
        Storage.from_url(target.url, **target.options, serializer="yaml")
    with pytest.raises(ConfigurationError, match="compress_threshold"):
        Storage.from_url(target.url, **target.options, compress_threshold="many")


# -- codec options on every backend -----------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"serializer": "json"},
        {"serializer": "msgpack"},
        {"compression": "zlib", "compress_threshold": 10},
        {"compression": "zstd", "compress_threshold": 10},
        {"compression": "lz4", "compress_threshold": 10},
        {"secret": "contract-s3cret-16b"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_codec_options(opener: Callable[..., Any], options: dict[str, Any]) -> None:
    store = opener(**options)
    value = {"text": "x" * 200, "n": [1, 2, 3]}
    store.store("obj", value)
    store.store("s", "y" * 500)
    store.store("b", b"z" * 500)
    store.store("i", 5)
    assert store.load("obj") == value
    assert store.load("s") == "y" * 500
    assert store.load("b") == b"z" * 500
    assert store.incr("i") == 6


def test_signed_values_from_another_secret_are_misses(
    opener: Callable[..., Any], target: Target
) -> None:
    if "in_process" in target.caps:
        pytest.skip("process memory is never signed (tests/backends/test_memory.py)")
    writer = opener(secret="secret-number-one")
    reader = opener(namespace=writer.namespace, secret="secret-number-two")
    rotated = opener(namespace=writer.namespace, secret=["secret-number-two", "secret-number-one"])
    unsigned = opener(namespace=writer.namespace)
    writer.store("obj", {"a": 1})
    writer.store("s", "plain strings are not signed")
    assert reader.load("obj") is None
    assert reader.load("s") == "plain strings are not signed"
    assert rotated.load("obj") == {"a": 1}
    unsigned.store("obj2", {"b": 2})
    assert writer.load("obj2") is None


def test_stats(store: Any, target: Target) -> None:
    before = store.stats()
    local = {k for k in before if k.startswith("local_")}  # with local_cache=true only
    assert set(before) - local == {"url", "namespace", *STATS_KEYS, "undecodable"}
    assert before["namespace"] == store.namespace
    assert before["undecodable"] == 0
    store.store("k", 1)
    store.load("k")
    store.load("absent")
    after = store.stats()
    for name in ("hits", "misses", "keys"):
        if before[name] is not None:
            assert after[name] >= before[name] + 1, name
    if "server" in target.caps:  # a server reports its own counters, never None
        assert None not in (after["hits"], after["misses"], after["keys"], after["clients"])
