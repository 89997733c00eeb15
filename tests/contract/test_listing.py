"""Listing keys (``keys``, ``iter_keys``, ``delete_pattern``) on every backend, sync and async.

Memcached cannot list keys: there every listing call raises NotSupportedError at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.registry import Target
from tests.contract.test_contract import need_clock
from tsot import ConfigurationError, NotSupportedError


def listed(store: Any, pattern: str = "*", **kw: Any) -> list[str]:
    """``iter_keys`` collected: an AsyncStorage (seen through SyncView) gives an async iterator."""
    found = store.iter_keys(pattern, **kw)
    if hasattr(found, "__aiter__"):

        async def collect() -> list[str]:
            return [k async for k in found]

        return store._loop.run(collect())  # type: ignore[no-any-return]
    return list(found)


def lists(target: Target) -> bool:
    return not target.url.startswith("memcached")


@pytest.fixture
def listing(target: Target) -> None:
    if not lists(target):
        pytest.skip("memcached cannot list keys (test_memcached_refuses_listing)")


@pytest.mark.usefixtures("listing")
def test_keys_lists_this_namespace_only(opener: Any) -> None:
    a, other = opener(), opener()
    a.store_many({"user:1": 1, "user:2": "two", "item:1": b"x"})
    a.store(b"raw:\xc3\xa9", 1)
    other.store("user:3", 3)
    assert sorted(a.keys()) == ["item:1", "raw:é", "user:1", "user:2"]
    assert sorted(a.keys("user:*")) == ["user:1", "user:2"]
    assert sorted(listed(a, "user:*")) == ["user:1", "user:2"]
    assert other.keys() == ["user:3"]


@pytest.mark.usefixtures("listing")
def test_glob_syntax_is_redis(store: Any) -> None:
    store.store_many({k: 1 for k in ("a1", "b1", "c1", "ab", "a*", "a\\b", "A1")})
    assert sorted(store.keys("?1")) == ["A1", "a1", "b1", "c1"]
    assert sorted(store.keys("[ab]1")) == ["a1", "b1"]
    assert sorted(store.keys("[^ab]1")) == ["A1", "c1"]
    assert sorted(store.keys("[a-b]?")) == ["a*", "a1", "ab", "b1"]
    assert store.keys("a\\*") == ["a*"]
    assert store.keys("nothing*") == []


@pytest.mark.usefixtures("listing")
def test_namespace_with_glob_characters_is_a_literal(opener: Any) -> None:
    star, plain = opener("ns*[x"), opener("nsab[x")
    star.clear(), plain.clear()
    star.store("k", 1)
    plain.store("k", 2)
    assert star.keys() == ["k"]
    assert star.delete_pattern("*") == 1
    assert plain.keys() == ["k"]
    assert plain.load("k") == 2


@pytest.mark.usefixtures("listing")
def test_iter_keys_pages_through_everything(store: Any) -> None:
    wanted = {f"k{i:03d}" for i in range(57)}
    store.store_many(dict.fromkeys(wanted, 0))
    got = listed(store, "k*", itersize=5)
    assert set(got) == wanted
    assert set(store.keys()) == wanted


@pytest.mark.usefixtures("listing")
def test_delete_pattern_removes_only_matches(store: Any) -> None:
    store.store_many({**{f"s:{i}": i for i in range(23)}, "keep": 1, "s": 2})
    assert store.delete_pattern("s:*", itersize=4) == 23
    assert sorted(store.keys()) == ["keep", "s"]
    assert store.load("keep") == 1
    assert store.delete_pattern("s:*") == 0
    assert store.delete_pattern() == 2
    assert store.keys() == []


@pytest.mark.usefixtures("listing")
def test_expired_keys_are_not_listed(target: Target, store: Any) -> None:
    need_clock(target)
    store.store("short", 1, ttl=1)
    store.store("long", 1, ttl=100)
    assert target.advance is not None
    target.advance(2)
    assert store.keys() == ["long"]
    assert store.delete_pattern("*") == 1


@pytest.mark.usefixtures("listing")
@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda s: s.keys(3), "pattern"),
        (lambda s: listed(s, "*", itersize=0), "itersize"),
        (lambda s: s.delete_pattern("*", itersize=True), "itersize"),
    ],
)
def test_bad_arguments_are_named(store: Any, call: Any, what: str) -> None:
    store.store("k", 1)
    with pytest.raises(ConfigurationError, match=what):
        call(store)
    assert store.load("k") == 1


def test_memcached_refuses_listing(target: Target, store: Any) -> None:
    if lists(target):
        pytest.skip("only memcached cannot list keys")
    store.store("k", 1)
    for call in (store.keys, lambda: store.iter_keys("*"), store.delete_pattern):
        with pytest.raises(NotSupportedError, match=r"clear\(\)"):
            call()
    assert store.load("k") == 1
