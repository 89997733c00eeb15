"""Values a cache writer plants behind tsot's back, read through Django and Flask on Redis.

Foreign and corrupt bytes are misses (never a 500), also with FAIL_OPEN; a planted page or
fragment (an unsigned str) is never served when the adapter signs every value, which it does by
default on a network store with a secret.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import zlib
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.template import Context, Template
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from tsot.codec import MISS, Codec

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("every_warning")]

SCRIPT = b"s<script>steal()</script>"
POISON = {
    "foreign": b"foo",
    "bad-utf8": b"s\xff",
    "bad-float": b"fnot-a-float",
    "truncated-pickle": b"p" + pickle.dumps({"a": [1, 2, 3]})[:-4],
    "z-bad-utf8": b"z" + zlib.compress(b"s\xff\xfe"),
    "zstd": Codec(compression="zstd", compress_threshold=0).encode("x" * 200),
    "lz4": Codec(compression="lz4", compress_threshold=0).encode("x" * 200),
    "zip-bomb": b"z" + zlib.compress(b"b" + b"\x00" * (2 << 20)),
}


@pytest.fixture(autouse=True)
def _no_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers without the zstd and lz4 extras (the Z and L payloads then need a missing one)."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)


def _only_key(raw: redis.Redis[bytes], pattern: str) -> bytes:
    keys = raw.keys(pattern)
    assert len(keys) == 1, keys
    return keys[0]


def _django(url: str, unique: str, **options: Any) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "tsot_django.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": unique,
            "OPTIONS": {"namespace": "ns", "max_value_size": 1 << 20, **options},
        }
    }


@pytest.mark.parametrize("fail_open", [False, True])
@pytest.mark.parametrize("kind", sorted(POISON))
def test_django_reads_poison_as_misses(
    raw: redis.Redis[bytes], url: str, unique: str, kind: str, fail_open: bool
) -> None:
    with override_settings(CACHES=_django(url, unique, FAIL_OPEN=fail_open)):
        cache = caches["default"]
        cache.set("k", {"legit": 1})
        final = _only_key(raw, f"ns:{unique}:*")
        raw.set(final, POISON[kind])
        assert cache.get("k") is None
        assert cache.get("k", "default") == "default"
        assert cache.get_many(["k"]) == {}
        assert cache.get_or_set("k", "fresh") == "fresh"  # add() keeps the poison: Django's rule
        assert asyncio.run(cache.aget("k", "d")) == "d"
        assert asyncio.run(cache.aget_many(["k"])) == {}
        assert asyncio.run(cache.aget_or_set("k", "fresh")) == "fresh"
        assert cache.storage.stats()["undecodable"] >= 4


@pytest.mark.parametrize("kind", sorted(POISON))
def test_flask_reads_poison_as_misses(
    raw: redis.Redis[bytes], url: str, unique: str, kind: str
) -> None:
    site = _flask_site(url, unique)
    with site.app.app_context():
        site.cache.set("k", {"legit": 1})
        raw.set(_only_key(raw, f"{unique}:*"), POISON[kind])
        assert site.cache.get("k") is None
        assert site.cache.get_many("k") == [None]
    assert site.client.get("/page").get_data() == b"page 1"
    raw.set(_only_key(raw, f"{unique}:*view*"), POISON[kind])
    assert site.client.get("/page").get_data() == b"page 2"  # re-rendered, not a 500


class _Site:
    def __init__(self, app: Any, cache: Any) -> None:
        self.app, self.cache, self.client = app, cache, app.test_client()
        self.renders = 0


def _flask_site(url: str, unique: str, **options: Any) -> _Site:
    from flask import Flask
    from flask_caching import Cache

    app = Flask("poison")
    app.config.update(
        SECRET_KEY="flask-secret-key-of-32-bytes-ok!",
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=url,
        CACHE_KEY_PREFIX=unique,
        CACHE_OPTIONS={"max_value_size": 1 << 20, **options},
    )
    cache = Cache(app)
    site = _Site(app, cache)

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        site.renders += 1
        return f"page {site.renders}"

    return site


def test_flask_pages_cannot_be_replaced(raw: redis.Redis[bytes], url: str, unique: str) -> None:
    """With a SECRET_KEY on Redis, a cached page is signed: a planted page is a miss."""
    site = _flask_site(url, unique)
    assert site.client.get("/page").get_data() == b"page 1"
    key = _only_key(raw, f"{unique}:*")
    assert raw.get(key)[:1] == b"h"  # type: ignore[index]
    raw.set(key, SCRIPT)
    assert site.client.get("/page").get_data() == b"page 2"
    assert site.client.get("/page").get_data() == b"page 2"  # and the real one is cached again


def test_flask_sign_objects_is_the_explicit_opt_out(
    raw: redis.Redis[bytes], url: str, unique: str
) -> None:
    site = _flask_site(url, unique, sign="objects")
    assert site.client.get("/page").get_data() == b"page 1"
    key = _only_key(raw, f"{unique}:*")
    assert raw.get(key)[:1] == b"s"  # type: ignore[index]


def test_django_fragments_cannot_be_replaced(
    raw: redis.Redis[bytes], url: str, unique: str
) -> None:
    template = Template("{% load cache %}{% cache 500 frag %}{{ value }}{% endcache %}")
    with override_settings(CACHES=_django(url, unique)):
        assert template.render(Context({"value": "real"})) == "real"
        key = _only_key(raw, f"ns:{unique}:*template.cache.frag*")
        assert raw.get(key)[:1] == b"h"  # type: ignore[index]
        raw.set(key, SCRIPT)
        assert template.render(Context({"value": "again"})) == "again"
    # the opt-out: fragments are pickled SafeStrings (signed), but a planted str is served
    with override_settings(CACHES=_django(url, unique + "o", SIGN="objects")):
        assert template.render(Context({"value": "plain"})) == "plain"
        raw.set(_only_key(raw, f"ns:{unique}o:*template.cache.frag*"), SCRIPT)
        assert template.render(Context({"value": "plain"})) == "<script>steal()</script>"


def test_miss_logs_never_show_whole_keys(
    raw: redis.Redis[bytes], url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tsot")
    session = "s3ss10nk3y" * 4
    with override_settings(CACHES=_django(url, unique)):
        caches["default"].set(session, 1)
        raw.set(_only_key(raw, f"ns:{unique}:*"), b"foo")
        assert caches["default"].get(session) is None
    logged = [r.getMessage() for r in caplog.records if r.name == "tsot"]
    assert logged and all(session not in m for m in logged), logged


_TAGS = [bytes([t]) for t in b"sbfpjmzZLh-0123456789"]
_ANY_BYTES = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(_TAGS), st.binary(max_size=200)).map(lambda t: t[0] + t[1]),
    st.binary(max_size=200).map(lambda b: b"z" + zlib.compress(b)),
)


@pytest.mark.parametrize("signing", [True, False])
def test_django_reads_any_bytes_as_a_miss_or_their_value(
    raw: redis.Redis[bytes], url: str, unique: str, signing: bool
) -> None:
    with override_settings(CACHES=_django(url, unique, SIGNING=signing)):
        cache = caches["default"]
        cache.set("k", 1)
        final = _only_key(raw, f"ns:{unique}:*")
        codec = cache.storage.codec

        @settings(max_examples=60, deadline=None)
        @given(data=_ANY_BYTES)
        def check(data: bytes) -> None:
            raw.set(final, data)
            expected = codec.decode(data, final)
            want = "<d>" if expected is MISS else expected
            assert cache.get("k", "<d>") == want
            assert cache.get_many(["k"]) == ({} if want == "<d>" else {"k": want})
            assert asyncio.run(cache.aget("k", "<d>")) == want
            raw.set(final, data)
            got = cache.get_or_set("k", "fresh")
            assert got == (want if expected is not MISS else "fresh")

        check()


@pytest.mark.parametrize("secret", ["flask-secret-key-of-32-bytes-ok!", None])
def test_flask_reads_any_bytes_as_a_miss_or_their_value(
    raw: redis.Redis[bytes], url: str, unique: str, secret: str | None
) -> None:
    site = _flask_site(url, unique, secret=secret)
    with site.app.app_context():
        site.cache.set("k", 1)
        final = _only_key(raw, f"{unique}:*")
        codec = site.cache.cache.storage.codec

        @settings(max_examples=60, deadline=None)
        @given(data=_ANY_BYTES)
        def check(data: bytes) -> None:
            raw.set(final, data)
            expected = codec.decode(data, final)
            want = None if expected is MISS else expected
            assert site.cache.get("k") == want
            assert site.cache.get_many("k") == [want]

        check()
