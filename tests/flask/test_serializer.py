"""CACHE_SERIALIZER (Flask-Caching 2.5) and a callable CACHE_KEY_PREFIX (cachelib's key_prefix).

The behaviour Flask-Caching's and cachelib's own tests expect, written for tsot: the configured
serializer (a class or an instance) is the one that dumps and loads; cachelib's JSON serializer
stores JSON; ints stay atomic; and a serializer that could unpickle never sees unsigned bytes.
"""

from __future__ import annotations

import json
import pickle
import uuid
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

from tests.flask.apps import needs_flask_caching_25
from tsot import ConfigurationError, SerializationError

if needs_flask_caching_25.mark.args[0]:  # older releases (and their cachelib) lack it all
    pytest.skip(needs_flask_caching_25.mark.kwargs["reason"], allow_module_level=True)

from cachelib.serializers import (
    BaseSerializer,
    JSONSerializer,
    RedisSerializer,
)

SECRET = "flask-serializer-tests-secret-0123456789"


class Counting(BaseSerializer):
    """A custom serializer (JSON inside) that counts its calls."""

    def __init__(self) -> None:
        self.dumped = 0
        self.loaded = 0

    def dumps(self, value: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
        self.dumped += 1
        return json.dumps(value).encode()

    def loads(self, bvalue: bytes) -> Any:
        self.loaded += 1
        return json.loads(bvalue)


def make(**config: Any) -> tuple[Cache, Flask]:
    app = Flask(f"ser_{uuid.uuid4().hex[:6]}")
    app.config.update(config)
    return Cache(app), app


def memory(**config: Any) -> dict[str, Any]:
    return {"CACHE_TYPE": "tsot_flask.MemoryCache", **config}


@pytest.mark.parametrize("given", [Counting, Counting()], ids=["class", "instance"])
def test_custom_serializer_dumps_and_loads_every_value(given: Any) -> None:
    cache, app = make(**memory(CACHE_SERIALIZER=given))
    with app.app_context():
        serializer = cache.cache.serializer
        assert isinstance(serializer, Counting)
        if not isinstance(given, type):
            assert serializer is given  # the instance itself, as Flask-Caching passes it
        cache.set("a", {"x": [1, 2]})
        cache.set_many({"b": "two", "c": [3]})
        assert cache.add("d", {"y": None})
        assert serializer.dumped == 4
        assert cache.get("a") == {"x": [1, 2]}
        assert cache.get_many("b", "c", "missing") == ["two", [3], None]
        assert serializer.loaded == 3
        assert cache.get("missing") is None


def test_custom_serializer_keeps_ints_atomic() -> None:
    cache, app = make(**memory(CACHE_SERIALIZER=Counting))
    with app.app_context():
        cache.set("n", 5)
        assert cache.cache.inc("n", 2) == 7
        assert cache.cache.dec("n") == 6
        assert cache.get("n") == 6
        assert cache.cache.serializer.dumped == 0  # ints are never serialized


def test_cachelib_json_serializer_is_tsot_json(redis_url: str) -> None:
    cache, app = make(
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=redis_url,
        CACHE_SERIALIZER=JSONSerializer,
        CACHE_KEY_PREFIX=f"json{uuid.uuid4().hex[:6]}",
        SECRET_KEY=SECRET,
    )
    with app.app_context():
        storage = cache.cache.storage
        assert storage.codec.serializer == "json"
        cache.set("t", (1, "a"))
        assert cache.get("t") == [1, "a"]  # JSON has no tuples: what cachelib's JSON gives too
        with pytest.raises(SerializationError):
            cache.set("s", {1, 2})  # not JSON: refused, not stored as something else


@pytest.mark.parametrize("pickling", [BaseSerializer, RedisSerializer])
def test_cachelib_pickle_serializers_change_nothing(pickling: type) -> None:
    cache, app = make(**memory(CACHE_SERIALIZER=pickling))
    with app.app_context():
        assert type(cache.cache.storage).__name__ == "Storage"  # tsot's own signed pickles
        cache.set("o", {"k": b"v"})
        assert cache.get("o") == {"k": b"v"}


def test_serializer_contradicting_cache_options_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"CACHE_SERIALIZER.*set only one"):
        make(**memory(CACHE_SERIALIZER=JSONSerializer, CACHE_OPTIONS={"serializer": "pickle"}))


def test_flask_cachings_own_check_of_the_setting() -> None:
    with pytest.raises(ValueError, match="BaseSerializer"):
        make(**memory(CACHE_SERIALIZER="json"))


def test_custom_serializer_on_a_shared_store_needs_signing(redis_url: str) -> None:
    config = {
        "CACHE_TYPE": "tsot_flask.RedisCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_SERIALIZER": Counting,
    }
    with pytest.raises(ConfigurationError, match=r"CACHE_SERIALIZER.*SECRET_KEY") as info:
        make(**config)
    assert "Counting" in str(info.value)
    with pytest.raises(ConfigurationError, match="CACHE_SERIALIZER"):
        make(**config, SECRET_KEY=SECRET, CACHE_OPTIONS={"sign": "objects"})


def test_planted_bytes_never_reach_a_custom_loads(redis_url: str) -> None:
    import redis

    prefix = f"plant{uuid.uuid4().hex[:6]}"
    cache, app = make(
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=redis_url,
        CACHE_SERIALIZER=Counting,
        CACHE_KEY_PREFIX=prefix,
        SECRET_KEY=SECRET,
    )
    with app.app_context():
        cache.set("good", {"ok": True})
        assert cache.get("good") == {"ok": True}
        serializer = cache.cache.serializer
        loaded = serializer.loaded
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"{prefix}:evil", b"b" + json.dumps({"planted": 1}).encode())  # unsigned bytes
        assert cache.get("evil") is None
        assert serializer.loaded == loaded  # the forged value was refused before loads()
        raw.close()


def test_callable_key_prefix_is_asked_on_every_call(redis_url: str) -> None:
    tenant = {"name": "a"}
    cache, app = make(
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=lambda: f"tenant-{tenant['name']}-{run}",
        SECRET_KEY=SECRET,
    )
    run = uuid.uuid4().hex[:6]
    with app.app_context():
        cache.set("k", "for a")
        tenant["name"] = "b"
        assert cache.get("k") is None
        cache.set("k", "for b")
        cache.clear()  # only the current prefix
        assert cache.get("k") is None
        tenant["name"] = "a"
        assert cache.get("k") == "for a"
        tenant["name"] = 3  # type: ignore[assignment]
    import redis

    raw = redis.Redis.from_url(redis_url)
    assert raw.exists(f"tenant-a-{run}:k")  # the prefix is the key's namespace
    raw.close()


def test_callable_key_prefix_must_return_a_str() -> None:
    cache, app = make(**memory(CACHE_KEY_PREFIX=lambda: 42))
    with app.app_context(), pytest.raises(ConfigurationError, match=r"CACHE_KEY_PREFIX.*int"):
        cache.get("k")


def test_callable_prefix_and_serializer_together() -> None:
    current = {"p": "x"}
    cache, app = make(**memory(CACHE_KEY_PREFIX=lambda: current["p"], CACHE_SERIALIZER=Counting))
    with app.app_context():
        cache.set("k", [1])
        current["p"] = "y"
        assert cache.get("k") is None
        current["p"] = "x"
        assert cache.get("k") == [1]
        assert cache.cache.serializer.loaded == 1
