"""The backend conformance suite, run on every tsot_flask class and storage kind.

``TestGenericCache`` ports Flask-Caching's ``GenericCacheTests`` (tests/test_backend_cache.py);
``TestCachelibCommon`` ports cachelib's ``CommonTests``, ``ClearTests`` and ``HasTests``
(tests/common.py, clear.py, has.py). The sleeps of the originals are replaced by moving the
injected clock, or by bounded polling on a server's real time. The other classes pin the
semantics those suites leave open: docs/architecture.md#ttl (Flask-Caching column), return values,
atomicity.
"""

from __future__ import annotations

import math
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.flask.conftest import Harness
from tsot import WrongType
from tsot_flask import TsotCache


@pytest.fixture
def c(every_class: Harness) -> TsotCache:
    return every_class.backend()


class TestGenericCache:
    """Flask-Caching's GenericCacheTests, test for test."""

    def test_generic_get_dict(self, c: TsotCache) -> None:
        assert c.set("a", "a")
        assert c.set("b", "b")
        d = c.get_dict("a", "b")
        assert "a" in d
        assert d["a"] == "a"
        assert "b" in d
        assert d["b"] == "b"

    def test_generic_set_get(self, c: TsotCache) -> None:
        for i in range(3):
            assert c.set(str(i), i * i)
        for i in range(3):
            result = c.get(str(i))
            assert result == i * i, result

    def test_generic_get_set(self, c: TsotCache) -> None:
        assert c.set("foo", ["bar"])
        assert c.get("foo") == ["bar"]

    def test_generic_get_many(self, c: TsotCache) -> None:
        assert c.set("foo", ["bar"])
        assert c.set("spam", "eggs")
        assert c.get_many("foo", "spam") == [["bar"], "eggs"]

    def test_generic_set_many(self, c: TsotCache) -> None:
        assert c.set_many({"foo": "bar", "spam": ["eggs"]})
        assert c.get("foo") == "bar"
        assert c.get("spam") == ["eggs"]

    def test_generic_add(self, c: TsotCache) -> None:
        # sanity check that add() works like set()
        assert c.add("foo", "bar")
        assert c.get("foo") == "bar"
        assert not c.add("foo", "qux")
        assert c.get("foo") == "bar"

    def test_generic_delete(self, c: TsotCache) -> None:
        assert c.add("foo", "bar")
        assert c.get("foo") == "bar"
        assert c.delete("foo")
        assert c.get("foo") is None

    def test_generic_delete_many(self, c: TsotCache) -> None:
        assert c.add("foo", "bar")
        assert c.add("spam", "eggs")
        assert c.delete_many("foo", "spam")
        assert c.get("foo") is None
        assert c.get("spam") is None

    def test_generic_inc_dec(self, c: TsotCache) -> None:
        assert c.set("foo", 1)
        assert c.inc("foo") == c.get("foo") == 2
        assert c.dec("foo") == c.get("foo") == 1
        assert c.delete("foo")

    def test_generic_true_false(self, c: TsotCache) -> None:
        assert c.set("foo", True)
        assert c.get("foo") in (True, 1)
        assert c.set("bar", False)
        assert c.get("bar") in (False, 0)
        # stricter than the original: the exact type comes back
        assert c.get("foo") is True
        assert c.get("bar") is False

    def test_generic_timeout(self, c: TsotCache, every_class: Harness) -> None:
        c.set("foo", "bar", 0)
        assert c.get("foo") == "bar"
        c.set("baz", "qux", 1)
        assert c.get("baz") == "qux"
        # the original sleeps 3 s; here the clock moves, or real time is polled (bounded)
        every_class.pass_time(3, lambda: c.get("baz") is None)
        # timeout of zero means no timeout
        assert c.get("foo") == "bar"
        assert c.get("baz") is None  # tsot guarantees deletes on every backend

    def test_generic_has(self, c: TsotCache) -> None:
        assert c.has("foo") in (False, 0)
        assert c.has("spam") in (False, 0)
        assert c.set("foo", "bar")
        assert c.has("foo") in (True, 1)
        assert c.has("spam") in (False, 0)
        c.delete("foo")
        assert c.has("foo") in (False, 0)
        assert c.has("spam") in (False, 0)

    def test_generic_get_bytes(self, c: TsotCache) -> None:
        assert c.set("foo", b"bar")
        assert c.get("foo") == b"bar"


SAMPLE_NUMBERS = [0, 10, 1024000, 9, 5000000000000, 99, 738, 2000000]
SAMPLE_PAIRS: dict[str, Any] = {
    "128": False,
    "beef": True,
    "crevettes": {},
    "1024": "spam",
    "bacon": "eggs",
    "sausage": 2048,
    "3072": [],
    "brandy": [{}, "fried eggs"],
    "lobster": ["baked beans", [512]],
    "4096": {"sauce": [], 256: "truffle"},
}


class TestCachelibCommon:
    """cachelib's CommonTests, ClearTests and HasTests (its sample data included)."""

    def test_set_get(self, c: TsotCache) -> None:
        for k, v in SAMPLE_PAIRS.items():
            assert c.set(k, v)
            assert c.get(k) == v

    def test_set_get_many(self, c: TsotCache) -> None:
        result = c.set_many(SAMPLE_PAIRS)
        assert result == list(SAMPLE_PAIRS.keys())
        values = c.get_many(*SAMPLE_PAIRS)
        assert values == list(SAMPLE_PAIRS.values())

    def test_get_dict(self, c: TsotCache) -> None:
        c.set_many(SAMPLE_PAIRS)
        d = c.get_dict(*SAMPLE_PAIRS)
        assert d == SAMPLE_PAIRS

    def test_delete(self, c: TsotCache) -> None:
        for k, v in SAMPLE_PAIRS.items():
            c.set(k, v)
            assert c.delete(k)
            assert not c.get(k)
            assert not c.has(k)

    def test_delete_many(self, c: TsotCache) -> None:
        c.set_many(SAMPLE_PAIRS)
        result = c.delete_many(*SAMPLE_PAIRS)
        assert result == list(SAMPLE_PAIRS.keys())
        assert not any(c.get_many(*SAMPLE_PAIRS))

    def test_delete_many_ignore_errors(self, c: TsotCache) -> None:
        c.set("bacon", "spam")
        c.delete_many("eggs", "bacon")
        assert c.get("bacon") is None

    def test_add(self, c: TsotCache) -> None:
        c.set_many(SAMPLE_PAIRS)
        for k in SAMPLE_PAIRS:
            assert not c.add(k, "updated")
        assert c.get_many(*SAMPLE_PAIRS) == list(SAMPLE_PAIRS.values())
        for k, v in SAMPLE_PAIRS.items():
            assert c.add(f"{k}-new", v)
            assert c.get(f"{k}-new") == v

    def test_inc_dec(self, c: TsotCache) -> None:
        for n in SAMPLE_NUMBERS:
            assert not c.get(f"{n}-key-inc")
            assert c.inc(f"{n}-key-inc", n) == n
            assert c.get(f"{n}-key-inc") == n
            assert c.dec(f"{n}-key-dec", n) == -n
            assert c.get(f"{n}-key-dec") == -n
            assert c.dec(f"{n}-key-inc", 5) == n - 5

    def test_expiration(self, c: TsotCache, every_class: Harness) -> None:
        for k, v in SAMPLE_PAIRS.items():
            c.set(f"{k}-t0", v, timeout=0)
            c.set(f"{k}-t1", v, timeout=1)
        # the original sleeps 4 s
        every_class.pass_time(4, lambda: not any(c.has(f"{k}-t1") for k in SAMPLE_PAIRS))
        for k, v in SAMPLE_PAIRS.items():
            assert c.get(f"{k}-t0") == v
            assert not c.get(f"{k}-t1")

    def test_clear(self, c: TsotCache) -> None:
        assert c.set_many(SAMPLE_PAIRS)
        assert c.clear()
        assert not any(c.get_many(*SAMPLE_PAIRS))

    def test_has(self, c: TsotCache) -> None:
        assert c.set_many(SAMPLE_PAIRS)
        for k in SAMPLE_PAIRS:
            assert c.has(k)
        assert not c.has("unknown")


def remaining(c: TsotCache, key: str) -> float | None:
    """Seconds left on ``key`` as the storage reports it (inf = never expires)."""
    return c.storage.ttl(key)


class TestTimeoutTable:
    """The Flask-Caching column of docs/architecture.md#ttl, read from the stored TTL (no wait)."""

    def test_none_means_the_default_timeout(self, every_class: Harness) -> None:
        c = every_class.backend(CACHE_DEFAULT_TIMEOUT=120)
        assert c.default_timeout == 120
        c.set("k", "v")
        c.set("k2", "v", None)
        c.add("k3", "v")
        c.set_many({"k4": "v"})
        for key in ("k", "k2", "k3", "k4"):
            left = remaining(c, key)
            assert left is not None and 110 < left <= 120, (key, left)

    def test_zero_means_never_expires(self, c: TsotCache) -> None:
        c.set("k", "v", 0)
        c.add("k2", "v", 0)
        c.set_many({"k3": "v"}, 0)
        c.set("k4", "v", timedelta(0))
        for key in ("k", "k2", "k3", "k4"):
            assert remaining(c, key) == math.inf, key

    def test_default_timeout_zero_means_never_expires(self, every_class: Harness) -> None:
        c = every_class.backend(CACHE_DEFAULT_TIMEOUT=0)
        c.set("k", "v")
        assert remaining(c, "k") == math.inf

    def test_positive_seconds_and_timedelta(self, c: TsotCache) -> None:
        c.set("k", "v", 50)
        c.set("k2", "v", timedelta(minutes=1))
        c.add("k3", "v", 40)
        left = remaining(c, "k")
        assert left is not None and 40 < left <= 50
        left = remaining(c, "k2")
        assert left is not None and 50 < left <= 60
        left = remaining(c, "k3")
        assert left is not None and 30 < left <= 40

    def test_negative_expires_now(self, c: TsotCache) -> None:
        assert c.set("k", "old")
        assert c.set("k", "new", -1)  # cachelib's set returns True here too
        assert c.get("k") is None and not c.has("k")
        assert c.add("gone", "v", -5)  # absent, so add "succeeds" and stores nothing
        assert not c.has("gone")
        c.set("kept", "v")
        assert not c.add("kept", "other", -1)
        assert c.get("kept") == "v"
        c.set_many({"a": 1, "b": 2})
        assert c.set_many({"a": 3, "b": 4}, -1) == ["a", "b"]
        assert c.get_many("a", "b") == [None, None]

    @pytest.mark.parametrize("bad", [True, "60", [1], object()])
    def test_bad_timeout_is_a_type_error(self, c: TsotCache, bad: Any) -> None:
        with pytest.raises(TypeError, match="timeout"):
            c.set("k", "v", bad)
        with pytest.raises(TypeError, match="timeout"):
            c.add("k", "v", bad)
        assert not c.has("k")


class TestReturnValues:
    """The cachelib contract's return values, including the cases its suites do not try."""

    def test_get_miss_is_none(self, c: TsotCache) -> None:
        assert c.get("missing") is None
        assert c.get_many() == []
        assert c.get_many("missing", "missing") == [None, None]
        assert c.get_dict("missing") == {"missing": None}

    def test_none_value_is_stored(self, c: TsotCache) -> None:
        # Flask-Caching's cache_none=True relies on has() telling a stored None from a miss
        assert c.set("n", None)
        assert c.get("n") is None
        assert c.has("n")

    def test_delete_missing_is_false(self, c: TsotCache) -> None:
        assert c.delete("missing") is False
        c.set("k", 1)
        assert c.delete("k") is True
        assert c.delete("k") is False

    def test_delete_many_returns_every_key_now_absent(self, c: TsotCache) -> None:
        # cachelib 0.17: "Keys that do not exist are considered successfully deleted"
        c.set("a", 1)
        assert c.delete_many("a", "never-set") == ["a", "never-set"]
        assert c.delete_many() == []
        assert c.delete_many("a") == ["a"]

    def test_set_many_returns_the_keys_set(self, c: TsotCache) -> None:
        assert c.set_many({}) == []
        assert c.set_many({"x": 1, "y": "two", "z": [3]}) == ["x", "y", "z"]
        assert c.get_many("x", "y", "z") == [1, "two", [3]]

    def test_set_many_writes_nothing_when_one_value_cannot_be_encoded(self, c: TsotCache) -> None:
        with pytest.raises(ValueError, match=r"lambda|pickle|serialize"):
            c.set_many({"good": 1, "bad": lambda: None})
        assert not c.has("good")

    def test_clear_returns_true_even_when_empty(self, c: TsotCache) -> None:
        assert c.clear() is True
        assert c.clear() is True

    def test_types_round_trip_exactly(self, c: TsotCache) -> None:
        values: dict[str, Any] = {
            "int": 7,
            "neg": -3,
            "big": 2**80,
            "float": 1.5,
            "str": "héllo",
            "bytes": b"\x00\xff",
            "tuple": (1, "a"),
            "set": {1, 2},
            "dict": {"nested": [1, {"x": None}]},
        }
        c.set_many(values)
        for key, value in values.items():
            got = c.get(key)
            assert got == value and type(got) is type(value), key

    def test_stored_value_is_a_copy(self, c: TsotCache) -> None:
        value = [1, 2]
        c.set("list", value)
        value.append(3)
        got = c.get("list")
        assert got == [1, 2]
        got.append(4)
        assert c.get("list") == [1, 2]

    def test_awkward_keys(self, c: TsotCache) -> None:
        keys = ["with space", "ключ", "x" * 300, "tab\tand\nnewline", "view//path?a=1"]
        for i, key in enumerate(keys):
            assert c.set(key, i)
        assert c.get_many(*keys) == list(range(len(keys)))
        assert c.delete_many(*keys) == keys
        assert not any(c.has(k) for k in keys)


class TestIncDec:
    def test_missing_key_starts_from_zero(self, c: TsotCache) -> None:
        assert c.inc("n") == 1
        assert c.inc("n", 10) == 11
        assert c.dec("m") == -1
        assert c.dec("m", 4) == -5
        assert c.get("n") == 11 and c.get("m") == -5

    def test_exact_past_64_bits_and_below_zero(self, c: TsotCache) -> None:
        c.set("big", 2**64 - 1)
        assert c.inc("big") == 2**64
        assert c.get("big") == 2**64
        c.set("low", 1)
        assert c.dec("low", 3) == -2
        assert c.inc("low", 2**70) == 2**70 - 2

    def test_inc_keeps_the_timeout(self, c: TsotCache) -> None:
        c.set("n", 5, 100)
        assert c.inc("n") == 6
        left = remaining(c, "n")
        assert left is not None and 90 < left <= 100

    def test_counter_created_by_inc_never_expires(self, c: TsotCache) -> None:
        c.inc("fresh")
        assert remaining(c, "fresh") == math.inf

    def test_inc_of_a_non_integer_raises_and_keeps_the_value(self, c: TsotCache) -> None:
        c.set("s", "text")
        with pytest.raises(WrongType):
            c.inc("s")
        with pytest.raises(TypeError):
            c.dec("s")
        assert c.get("s") == "text"

    def test_concurrent_inc_is_exact_and_one_add_wins(self, c: TsotCache) -> None:
        threads, per_thread = 8, 25
        barrier = threading.Barrier(threads)
        wins: list[bool] = []

        def work() -> None:
            barrier.wait()
            wins.append(c.add("race", threading.get_ident()))
            for _ in range(per_thread):
                c.inc("counter")

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(30)
        assert c.get("counter") == threads * per_thread
        assert wins.count(True) == 1


class TestPrefix:
    def test_clear_removes_only_this_prefix(self, every_class: Harness) -> None:
        mine, other = every_class.backend(), every_class.backend()
        mine.set("k", "mine")
        other.set("k", "other")
        assert mine.clear()
        assert mine.get("k") is None
        assert other.get("k") == "other"

    def test_keys_live_under_the_namespace(self, every_class: Harness) -> None:
        prefix = f"pfx{uuid.uuid4().hex[:8]}_"
        c = every_class.backend(prefix=prefix)
        c.set("k", "v")
        raw = c.storage.backend.get(f"{prefix}:k".encode())
        assert raw is not None and c.storage.codec.decode(raw) == "v"
        assert c.storage.backend.get(f"{prefix}k".encode()) is None
