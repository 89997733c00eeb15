"""Django's own cache tests (BaseCacheTests in django/tests/cache/tests.py), on every class.

Ported test by test; where Django sleeps, time moves through the injected clock (memory,
RocksDB) or is polled for a bounded while (servers). Tests of Django internals (culling
arithmetic, mocks of a client class) are replaced by tests of the same promise.
"""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any
from zlib import compress, decompress

import pytest
from django.core.cache import CacheKeyWarning, caches
from django.test import override_settings

from tests.django.models import Poll, expensive_calculation
from tests.django.support import Env, close_to
from tsot_django import TsotCache

KEY_ERRORS_WITH_MEMCACHED_MSG = (
    "Cache key contains characters that will cause errors if used with memcached: %r"
)


def f() -> int:
    return 42


class C:
    def m(n: int) -> int:  # type: ignore[misc]  # Django's fixture, kept as it is
        return 24


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError()


def test_simple(cache: TsotCache) -> None:
    cache.set("key", "value")
    assert cache.get("key") == "value"


def test_default_used_when_none_is_set(cache: TsotCache) -> None:
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add(cache: TsotCache) -> None:
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_prefix(cache: TsotCache) -> None:
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


def test_non_existent(cache: TsotCache) -> None:
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_get_many(cache: TsotCache) -> None:
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}


def test_delete(cache: TsotCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"


def test_delete_nonexistent(cache: TsotCache) -> None:
    assert cache.delete("nonexistent_key") is False


def test_has_key(cache: TsotCache) -> None:
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True


def test_in(cache: TsotCache) -> None:
    cache.set("hello2", "goodbye2")
    assert "hello2" in cache
    assert "goodbye2" not in cache
    cache.set("null", None)
    assert "null" in cache


def test_incr(cache: TsotCache) -> None:
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.get("answer") == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.incr("null")


def test_decr(cache: TsotCache) -> None:
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.get("answer") == 32
    assert cache.decr("answer", -10) == 42
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.decr("null")


def test_incr_missing_key_message_and_nothing_created(cache: TsotCache) -> None:
    with pytest.raises(ValueError, match="not found"):
        cache.incr("ghost")
    assert cache.has_key("ghost") is False


def test_incr_keeps_timeout(cache: TsotCache, env: Env) -> None:
    # LocMemCacheTests.test_incr_decr_timeout: incr/decr do not modify the expiry time.
    cache.set("value", 1, timeout=cache.default_timeout * 10)  # type: ignore[operator]
    assert cache.incr("value") == 2
    assert cache.decr("value") == 1
    assert close_to(env.ttl(cache, "value"), cache.default_timeout * 10)  # type: ignore[operator]


def test_close(cache: TsotCache) -> None:
    assert hasattr(cache, "close")
    cache.close()
    cache.set("after-close", 1)  # pools are process-wide: the cache keeps working
    assert cache.get("after-close") == 1


def test_data_types(cache: TsotCache) -> None:
    tests = {
        "string": "this is a string",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": f,
        "class": C,
    }
    for key, value in tests.items():
        cache.set(key, value)
        assert cache.get(key) == value, key
        assert type(cache.get(key)) is type(value), key


@pytest.mark.django_db
def test_cache_read_for_model_instance(cache: TsotCache) -> None:
    expensive_calculation.num_runs = 0  # type: ignore[attr-defined]
    Poll.objects.all().delete()
    my_poll = Poll.objects.create(question="Well?")
    assert Poll.objects.count() == 1
    pub_date = my_poll.pub_date
    cache.set("question", my_poll)
    cached_poll = cache.get("question")
    assert cached_poll.pub_date == pub_date
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_cache_write_for_model_instance_with_deferred(cache: TsotCache) -> None:
    expensive_calculation.num_runs = 0  # type: ignore[attr-defined]
    Poll.objects.all().delete()
    Poll.objects.create(question="What?")
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]
    defer_qs = Poll.objects.defer("question")
    assert defer_qs.count() == 1
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]
    cache.set("deferred_queryset", defer_qs)
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_cache_read_for_model_instance_with_deferred(cache: TsotCache) -> None:
    expensive_calculation.num_runs = 0  # type: ignore[attr-defined]
    Poll.objects.all().delete()
    Poll.objects.create(question="What?")
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]
    defer_qs = Poll.objects.defer("question")
    assert defer_qs.count() == 1
    cache.set("deferred_queryset", defer_qs)
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]
    cached = cache.get("deferred_queryset")
    assert [p.question for p in cached] == ["What?"]
    assert expensive_calculation.num_runs == 1  # type: ignore[attr-defined]


def test_expiration(cache: TsotCache, env: Env) -> None:
    cache.set("expire1", "very quickly", 1)
    cache.set("expire2", "very quickly", 1)
    cache.set("expire3", "very quickly", 1)
    assert cache.get("expire1") == "very quickly"
    env.pass_time(2, lambda: not any(cache.has_key(k) for k in ("expire1", "expire2", "expire3")))
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_touch(cache: TsotCache, env: Env) -> None:
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=4) is True
    assert close_to(env.ttl(cache, "expire1"), 4)
    if env.uses_clock:  # Django's sleeps, on the injected clock
        env.clock.advance(2)
        assert cache.has_key("expire1") is True
        env.clock.advance(3)
        assert cache.has_key("expire1") is False
    # touch() works without the timeout argument: the default timeout.
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1") is True
    assert close_to(env.ttl(cache, "expire1"), 300)
    if env.uses_clock:
        env.clock.advance(2)
        assert cache.has_key("expire1") is True
    assert cache.touch("nonexistent") is False


def test_unicode(cache: TsotCache) -> None:
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    for key in stuff:
        assert cache.delete(key) is True
    cache.set_many(stuff)
    for key, value in stuff.items():
        assert cache.get(key) == value


def test_binary_string(cache: TsotCache) -> None:
    value = "value_to_be_compressed"
    compressed_value = compress(value.encode())
    cache.set("binary1", compressed_value)
    compressed_result = cache.get("binary1")
    assert compressed_value == compressed_result
    assert value == decompress(compressed_result).decode()
    assert cache.add("binary1-add", compressed_value) is True
    compressed_result = cache.get("binary1-add")
    assert compressed_value == compressed_result
    assert value == decompress(compressed_result).decode()
    cache.set_many({"binary1-set_many": compressed_value})
    compressed_result = cache.get("binary1-set_many")
    assert compressed_value == compressed_result
    assert value == decompress(compressed_result).decode()


def test_set_many(cache: TsotCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"


def test_set_many_returns_empty_list_on_success(cache: TsotCache) -> None:
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []


def test_set_many_expiration(cache: TsotCache, env: Env) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"}, 1)
    assert cache.get("key1") == "spam"
    env.pass_time(2, lambda: cache.get("key1") is None and cache.get("key2") is None)


def test_set_many_empty_data(cache: TsotCache) -> None:
    assert cache.set_many({}) == []


def test_delete_many(cache: TsotCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    cache.delete_many(["key1", "key2"])
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert cache.get("key3") == "ham"


def test_delete_many_no_keys(cache: TsotCache) -> None:
    assert cache.delete_many([]) is None  # type: ignore[func-returns-value]


def test_clear(cache: TsotCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get("key1") is None
    assert cache.get("key2") is None


def test_long_timeout(cache: TsotCache, env: Env) -> None:
    # memcached's 30-day rule is the backend's business: every class takes long timeouts.
    thirty_days_and_a_second = 60 * 60 * 24 * 30 + 1
    cache.set("key1", "eggs", thirty_days_and_a_second)
    assert cache.get("key1") == "eggs"
    assert close_to(env.ttl(cache, "key1"), thirty_days_and_a_second)
    assert cache.add("key2", "ham", thirty_days_and_a_second) is True
    assert cache.get("key2") == "ham"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, thirty_days_and_a_second)
    assert cache.get("key3") == "sausage"
    assert cache.get("key4") == "lobster bisque"


def test_forever_timeout(cache: TsotCache, env: Env) -> None:
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs"
    assert env.ttl(cache, "key1") == math.inf
    assert cache.add("key2", "ham", None) is True
    assert cache.get("key2") == "ham"
    assert cache.add("key1", "new eggs", None) is False
    assert cache.get("key1") == "eggs"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    assert cache.get("key3") == "sausage"
    assert cache.get("key4") == "lobster bisque"
    assert env.ttl(cache, "key4") == math.inf
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    assert env.ttl(cache, "key5") == math.inf
    if env.uses_clock:
        env.clock.advance(2)
    assert cache.get("key5") == "belgian fries"


def test_zero_timeout(cache: TsotCache) -> None:
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get("key3") is None
    assert cache.get("key4") is None
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=0) is True
    assert cache.get("key5") is None


def test_zero_timeout_removes_an_existing_value(cache: TsotCache) -> None:
    cache.set("key1", "eggs")
    cache.set("key1", "spam", 0)
    assert cache.get("key1") is None
    cache.set("key2", "ham")
    assert cache.add("key2", "spam", 0) is False
    assert cache.get("key2") == "ham"


def test_negative_timeout(cache: TsotCache) -> None:
    cache.set("key1", "eggs", -5)
    assert cache.get("key1") is None
    cache.set("key2", "ham")
    assert cache.touch("key2", -1) is True
    assert cache.has_key("key2") is False


def test_float_timeout(cache: TsotCache, env: Env) -> None:
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"
    assert close_to(env.ttl(cache, "key1"), 100.2)


def test_default_timeout_setting(env: Env) -> None:
    with override_settings(CACHES={"default": env.entry(TIMEOUT=60)}):
        cache = caches["default"]
        cache.set("k", "v")
        assert close_to(env.ttl(cache, "k"), 60)
        cache.set("k", "v", timeout=None)
        assert env.ttl(cache, "k") == math.inf


def test_default_never_expiring_timeout(env: Env) -> None:
    # DefaultNonExpiringCacheKeyTests / #22845: TIMEOUT=None stores forever by default.
    with override_settings(CACHES={"default": env.entry(TIMEOUT=None)}):
        cache = caches["default"]
        cache.set("infinite_foo", "bar")
        assert cache.get("infinite_foo") == "bar"
        assert env.ttl(cache, "infinite_foo") == math.inf
        cache.set("far", "bar", 31536000)
        assert close_to(env.ttl(cache, "far"), 31536000)


def _perform_invalid_key_test(
    cache: TsotCache, key: str, expected_warning: str, key_func: Any = None
) -> None:
    """Every operation warns CacheKeyWarning, with Django's text, for a memcached-unsafe key."""

    def func(key: str, *args: Any) -> str:
        return key

    old_func = cache.key_func
    cache.key_func = key_func or func
    tests: list[tuple[str, list[Any]]] = [
        ("add", [key, 1]),
        ("get", [key]),
        ("set", [key, 1]),
        ("incr", [key]),
        ("decr", [key]),
        ("touch", [key]),
        ("delete", [key]),
        ("get_many", [[key, "b"]]),
        ("set_many", [{key: 1, "b": 2}]),
        ("delete_many", [[key, "b"]]),
    ]
    try:
        for operation, args in tests:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                getattr(cache, operation)(*args)
            messages = [str(w.message) for w in seen if w.category is CacheKeyWarning]
            assert messages == [expected_warning], operation
    finally:
        cache.key_func = old_func


def test_invalid_key_characters(cache: TsotCache) -> None:
    key = "key with spaces and 清"
    _perform_invalid_key_test(cache, key, KEY_ERRORS_WITH_MEMCACHED_MSG % key)
    # ... and the key still works: tsot maps keys memcached cannot take to a digest form.
    cache.key_func = lambda key, *args: key
    with pytest.warns(CacheKeyWarning):
        cache.set(key, "stored")
    with pytest.warns(CacheKeyWarning):
        assert cache.get(key) == "stored"


def test_invalid_key_length(cache: TsotCache) -> None:
    key = ("a" * 250) + "清"
    expected_warning = (
        f"Cache key will cause errors if used with memcached: {key!r} (longer than 250)"
    )
    _perform_invalid_key_test(cache, key, expected_warning)


def test_invalid_with_version_key_length(cache: TsotCache) -> None:
    def key_func(key: str, *args: Any) -> str:
        return key + ":1"

    key = "a" * 249
    expected_warning = (
        f"Cache key will cause errors if used with memcached: {key_func(key)!r} (longer than 250)"
    )
    _perform_invalid_key_test(cache, key, expected_warning, key_func=key_func)


def test_get_many_invalid_key(cache: TsotCache) -> None:
    msg = KEY_ERRORS_WITH_MEMCACHED_MSG % ":1:key with spaces"
    with pytest.warns(CacheKeyWarning) as seen:
        cache.get_many(["key with spaces"])
    assert [str(w.message) for w in seen] == [msg]


def test_cache_versioning_get_set(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert cache.get("answer1", version=1) == 42
    assert cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42
    assert v2.get("answer1", version=2) is None

    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42

    v2.set("answer3", 42)
    assert cache.get("answer3") is None
    assert cache.get("answer3", version=1) is None
    assert cache.get("answer3", version=2) == 42
    assert v2.get("answer3") == 42
    assert v2.get("answer3", version=1) is None
    assert v2.get("answer3", version=2) == 42

    v2.set("answer4", 42, version=1)
    assert cache.get("answer4") == 42
    assert cache.get("answer4", version=1) == 42
    assert cache.get("answer4", version=2) is None
    assert v2.get("answer4") is None
    assert v2.get("answer4", version=1) == 42
    assert v2.get("answer4", version=2) is None


def test_cache_versioning_add(cache: TsotCache) -> None:
    v2 = caches["v2"]
    assert cache.add("answer1", 42, version=2) is True
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42
    assert cache.add("answer1", 37, version=2) is False
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42
    assert cache.add("answer1", 37, version=1) is True
    assert cache.get("answer1", version=1) == 37
    assert cache.get("answer1", version=2) == 42

    assert v2.add("answer2", 42) is True
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.add("answer2", 37) is False
    assert cache.get("answer2", version=1) is None
    assert cache.get("answer2", version=2) == 42
    assert v2.add("answer2", 37, version=1) is True
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 42

    assert v2.add("answer3", 42, version=1) is True
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) is None
    assert v2.add("answer3", 37, version=1) is False
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) is None
    assert v2.add("answer3", 37) is True
    assert cache.get("answer3", version=1) == 42
    assert cache.get("answer3", version=2) == 37


def test_cache_versioning_has_key(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.has_key("answer1") is True
    assert cache.has_key("answer1", version=1) is True
    assert cache.has_key("answer1", version=2) is False
    assert v2.has_key("answer1") is False
    assert v2.has_key("answer1", version=1) is True
    assert v2.has_key("answer1", version=2) is False


def test_cache_versioning_delete(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.delete("answer1") is True
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42

    cache.set("answer2", 37, version=1)
    cache.set("answer2", 42, version=2)
    assert cache.delete("answer2", version=2) is True
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) is None

    cache.set("answer3", 37, version=1)
    cache.set("answer3", 42, version=2)
    assert v2.delete("answer3") is True
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) is None

    cache.set("answer4", 37, version=1)
    cache.set("answer4", 42, version=2)
    assert v2.delete("answer4", version=1) is True
    assert cache.get("answer4", version=1) is None
    assert cache.get("answer4", version=2) == 42


def test_cache_versioning_incr_decr(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.incr("answer1") == 38
    assert cache.get("answer1", version=1) == 38
    assert cache.get("answer1", version=2) == 42
    assert cache.decr("answer1") == 37
    assert cache.get("answer1", version=1) == 37
    assert cache.get("answer1", version=2) == 42

    cache.set("answer2", 37, version=1)
    cache.set("answer2", 42, version=2)
    assert cache.incr("answer2", version=2) == 43
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 43
    assert cache.decr("answer2", version=2) == 42
    assert cache.get("answer2", version=1) == 37
    assert cache.get("answer2", version=2) == 42

    cache.set("answer3", 37, version=1)
    cache.set("answer3", 42, version=2)
    assert v2.incr("answer3") == 43
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) == 43
    assert v2.decr("answer3") == 42
    assert cache.get("answer3", version=1) == 37
    assert cache.get("answer3", version=2) == 42

    cache.set("answer4", 37, version=1)
    cache.set("answer4", 42, version=2)
    assert v2.incr("answer4", version=1) == 38
    assert cache.get("answer4", version=1) == 38
    assert cache.get("answer4", version=2) == 42
    assert v2.decr("answer4", version=1) == 37
    assert cache.get("answer4", version=1) == 37
    assert cache.get("answer4", version=2) == 42


def test_cache_versioning_get_set_many(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set_many({"ford1": 37, "arthur1": 42})
    assert cache.get_many(["ford1", "arthur1"]) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=2) == {}
    assert v2.get_many(["ford1", "arthur1"]) == {}
    assert v2.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}
    assert v2.get_many(["ford1", "arthur1"], version=2) == {}

    cache.set_many({"ford2": 37, "arthur2": 42}, version=2)
    assert cache.get_many(["ford2", "arthur2"]) == {}
    assert cache.get_many(["ford2", "arthur2"], version=1) == {}
    assert cache.get_many(["ford2", "arthur2"], version=2) == {"ford2": 37, "arthur2": 42}
    assert v2.get_many(["ford2", "arthur2"]) == {"ford2": 37, "arthur2": 42}
    assert v2.get_many(["ford2", "arthur2"], version=1) == {}
    assert v2.get_many(["ford2", "arthur2"], version=2) == {"ford2": 37, "arthur2": 42}

    v2.set_many({"ford3": 37, "arthur3": 42})
    assert cache.get_many(["ford3", "arthur3"]) == {}
    assert cache.get_many(["ford3", "arthur3"], version=1) == {}
    assert cache.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}
    assert v2.get_many(["ford3", "arthur3"]) == {"ford3": 37, "arthur3": 42}
    assert v2.get_many(["ford3", "arthur3"], version=1) == {}
    assert v2.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}

    v2.set_many({"ford4": 37, "arthur4": 42}, version=1)
    assert cache.get_many(["ford4", "arthur4"]) == {"ford4": 37, "arthur4": 42}
    assert cache.get_many(["ford4", "arthur4"], version=1) == {"ford4": 37, "arthur4": 42}
    assert cache.get_many(["ford4", "arthur4"], version=2) == {}
    assert v2.get_many(["ford4", "arthur4"]) == {}
    assert v2.get_many(["ford4", "arthur4"], version=1) == {"ford4": 37, "arthur4": 42}
    assert v2.get_many(["ford4", "arthur4"], version=2) == {}


def test_incr_version(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) == 42
    assert cache.get("answer", version=3) is None

    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42

    v2.set("answer2", 42)
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42
    assert v2.get("answer2", version=3) is None

    assert v2.incr_version("answer2") == 3
    assert v2.get("answer2") is None
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) is None
    assert v2.get("answer2", version=3) == 42

    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")

    cache.set("null", None)
    assert cache.incr_version("null") == 2


def test_decr_version(cache: TsotCache) -> None:
    v2 = caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.get("answer") is None
    assert cache.get("answer", version=1) is None
    assert cache.get("answer", version=2) == 42

    assert cache.decr_version("answer", version=2) == 1
    assert cache.get("answer") == 42
    assert cache.get("answer", version=1) == 42
    assert cache.get("answer", version=2) is None

    v2.set("answer2", 42)
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None
    assert v2.get("answer2", version=2) == 42

    assert v2.decr_version("answer2") == 1
    assert v2.get("answer2") is None
    assert v2.get("answer2", version=1) == 42
    assert v2.get("answer2", version=2) is None

    with pytest.raises(ValueError):
        cache.decr_version("does_not_exist", version=2)

    cache.set("null", None, version=2)
    assert cache.decr_version("null", version=2) == 1


def test_custom_key_func(cache: TsotCache) -> None:
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None

    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key"].get("answer2") == 42
    assert caches["custom_key2"].get("answer2") == 42


def test_add_fail_on_pickleerror(cache: TsotCache) -> None:
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable", Unpicklable())
    assert cache.has_key("unpicklable") is False


def test_set_fail_on_pickleerror(cache: TsotCache) -> None:
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())


def test_set_many_fail_on_pickleerror_writes_nothing(cache: TsotCache) -> None:
    with pytest.raises(pickle.PickleError):
        cache.set_many({"fine": 1, "unpicklable": Unpicklable()})
    assert cache.get_many(["fine", "unpicklable"]) == {}


def test_get_or_set(cache: TsotCache) -> None:
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    # Previous get_or_set() stores None in the cache.
    assert cache.get("null", "default") is None


def test_get_or_set_callable(cache: TsotCache) -> None:
    def my_callable() -> str:
        return "value"

    assert cache.get_or_set("mykey", my_callable) == "value"
    assert cache.get_or_set("mykey", my_callable()) == "value"
    assert cache.get_or_set("null", lambda: None) is None
    assert cache.get("null", "default") is None


def test_get_or_set_callable_not_called_on_hit(cache: TsotCache) -> None:
    calls: list[int] = []
    cache.set("hit", "cached")
    assert cache.get_or_set("hit", lambda: calls.append(1)) == "cached"
    assert calls == []


def test_get_or_set_version(cache: TsotCache) -> None:
    msg = "get_or_set() missing 1 required positional argument: 'default'"
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        cache.get_or_set("brian")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        cache.get_or_set("brian", version=1)  # type: ignore[call-arg]
    assert cache.get("brian", version=1) is None
    assert cache.get_or_set("brian", 42, version=1) == 42
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=3) is None


def test_get_or_set_timeout(cache: TsotCache, env: Env) -> None:
    assert cache.get_or_set("timed", "v", timeout=50) == "v"
    assert close_to(env.ttl(cache, "timed"), 50)
    assert cache.get_or_set("zero", "v", timeout=0) == "v"  # returned, not stored
    assert cache.has_key("zero") is False


def test_big_and_negative_integers(cache: TsotCache) -> None:
    big = 2**70
    cache.set("big", big)
    assert cache.incr("big", 5) == big + 5
    cache.set("neg", 3)
    assert cache.decr("neg", 10) == -7
    assert cache.get("neg") == -7


def test_incr_of_a_float_is_a_type_error(cache: TsotCache) -> None:
    # A documented difference from LocMemCache (which adds to any number): incr is atomic on
    # the server, so it takes stored ints only, as Django's Redis and memcached backends do.
    cache.set("pi", 3.14)
    with pytest.raises(TypeError):
        cache.incr("pi")
    assert cache.get("pi") == 3.14
