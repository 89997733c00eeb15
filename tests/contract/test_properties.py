"""Hostile and odd input, property-based, on every backend (sync and async).

Each example either round-trips exactly or raises the documented error, leaves nothing
half-written, and never disturbs a canary key stored beside it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsot import ConfigurationError, InvalidKey, SerializationError, ValueTooLarge, WrongType
from tsot.keys import MAX_KEY_BYTES

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CANARY = ("canary", {"untouched": [1, 2, 3]})

keys = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.text(min_size=1, max_size=3).map(lambda s: s * 200),  # long keys (memcached digests them)
)
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
        st.binary(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.tuples(inner, inner),
    ),
    max_leaves=10,
)


@pytest.fixture
def guarded(store: Any) -> Callable[[], None]:
    store.store(*CANARY)

    def check() -> None:
        assert store.load(CANARY[0]) == CANARY[1]

    return check


@SETTINGS
@given(key=keys, value=values)
def test_any_key_any_value_round_trips(
    store: Any, guarded: Callable[[], None], key: Any, value: Any
) -> None:
    store.store(key, value)
    got = store.load(key, default="<missing>")
    assert got == value and type(got) is type(value)
    assert store.load_many([key]) == {key: value}
    assert store.delete(key) is True
    assert store.load(key, default="<missing>") == "<missing>"
    guarded()


@SETTINGS
@given(size=st.integers(min_value=0, max_value=3 * MAX_KEY_BYTES))
def test_key_sizes(store: Any, guarded: Callable[[], None], size: int) -> None:
    key = "k" * size
    final_len = size + len(store.namespace) + 1
    if final_len > MAX_KEY_BYTES:
        with pytest.raises(InvalidKey):
            store.store(key, 1)
    else:
        store.store(key, size)
        assert store.load(key) == size
        store.delete(key)
    guarded()


@pytest.mark.parametrize("size", [0, 1, 100_000, 900_000, 2_000_000, 8_000_000])
def test_value_sizes(store: Any, guarded: Callable[[], None], size: int) -> None:
    value = b"v" * size
    store.store("big", "old")
    try:
        store.store("big", value)
    except ValueTooLarge as exc:
        assert "big" in str(exc)
        assert store.load("big") == "old"  # nothing half-written
    else:
        assert store.load("big") == value
    guarded()


@SETTINGS
@given(
    ttl=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**20), max_value=10**20),
    )
)
def test_any_ttl(store: Any, guarded: Callable[[], None], ttl: float) -> None:
    store.store("t", "old")
    if isinstance(ttl, float) and math.isnan(ttl):
        with pytest.raises(ConfigurationError):
            store.store("t", "new", ttl=ttl)
        assert store.load("t") == "old"
    elif ttl <= 0:
        store.store("t", "new", ttl=ttl)
        assert store.load("t") is None
    else:
        store.store("t", "new", ttl=ttl)
        remaining = store.ttl("t")
        if ttl >= 1:  # shorter ones may already be gone on a real server
            assert store.load("t") == "new"
            assert remaining is not None and remaining > 0
    guarded()


@SETTINGS
@given(stored=values, delta=st.one_of(st.integers(), st.floats(), st.text(), st.none()))
def test_incr_wrong_types(store: Any, guarded: Callable[[], None], stored: Any, delta: Any) -> None:
    store.store("n", stored)
    if type(delta) is not int or type(stored) is not int:
        with pytest.raises(WrongType):
            store.incr("n", delta)
        got = store.load("n", default="<missing>")
        assert got == stored and type(got) is type(stored)
    else:
        assert store.incr("n", delta) == stored + delta
        assert store.load("n") == stored + delta
    guarded()


@pytest.mark.parametrize(
    "bad", [threading.Lock(), lambda: 1, (x for x in ())], ids=["lock", "lambda", "generator"]
)
def test_unpicklable_in_many_writes_nothing(
    store: Any, guarded: Callable[[], None], bad: Any
) -> None:
    with pytest.raises(SerializationError):
        store.store_many({"a": 1, "b": bad, "c": 3})
    assert store.load_many(["a", "b", "c"]) == {}
    guarded()


def _size_limit(target: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    """(largest value size the backend refuses to go past, options that set it) per backend."""
    scheme = target.url.partition("://")[0]
    if scheme == "memory":
        return 200_000, {"max_bytes": 200_000}
    if scheme == "rocksdb":
        return 1 << 20, {"max_disk_bytes": 16 << 20}  # entries up to 1/16 of the disk bound
    if scheme == "memcached":
        return 1 << 20, {}  # the servers' item_size_max (memcached's default, 1 MiB)
    from tsot.backends.redis import commands as redis_ops

    monkeypatch.setattr(redis_ops, "MAX_VALUE_BYTES", 200_000)  # 512 MB for real
    return 200_000, {}


@pytest.mark.parametrize("op", ["store", "store_many", "add"])
def test_values_past_the_backend_limit_are_refused_whole(
    opener: Callable[..., Any], target: Any, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    limit, options = _size_limit(target, monkeypatch)
    store = opener(**options)
    store.store_many({"big": "old", "small": "old"})
    over = b"x" * (limit + 1)
    with pytest.raises(ValueTooLarge, match="big"):
        if op == "store":
            store.store("big", over)
        elif op == "store_many":
            store.store_many({"small": "new", "big": over, "fresh": 1})
        else:
            store.add("big2", over)
    assert store.load_many(["big", "small", "fresh", "big2"]) == {"big": "old", "small": "old"}
    under = b"y" * (limit // 2)
    store.store("big", under)  # half the limit always fits
    assert store.load("big") == under
