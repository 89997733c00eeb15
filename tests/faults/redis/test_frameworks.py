"""Lost replies through Django's cache and Flask-Caching: the same at-most-once rule."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.faults.redis.conftest import FAST, Proxied
from tsot import OutcomeUnknown

pytestmark = pytest.mark.server


def django_caches(url: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": url,
            "KEY_PREFIX": uuid.uuid4().hex[:8],
            "OPTIONS": {k: v for k, v in FAST.items()},
        }
    }


def test_django_incr_and_add_with_a_lost_reply(proxied: Proxied) -> None:
    with override_settings(CACHES=django_caches(proxied.url)):
        cache = caches["default"]
        cache.set("n", 99)
        assert cache.incr("n") == 100  # Django's incr needs the key: the script, now loaded
        fault = proxied.proxy.drop_reply(match=b"EVALSHA")
        with pytest.raises(OutcomeUnknown):
            cache.incr("n")
        assert fault.hits == 1
        assert cache.get("n") == 101  # applied once; the old code sent it twice (102)
        proxied.proxy.drop_reply(match=b"NX")
        with pytest.raises(OutcomeUnknown):
            cache.add("lock", "me")
        assert cache.get("lock") == "me"  # taken by this call; never "False while mine"


async def test_django_async_incr_with_a_lost_reply(proxied: Proxied) -> None:
    with override_settings(CACHES=django_caches(proxied.url)):
        cache = caches["default"]
        await cache.aset("n", 99)
        assert await cache.aincr("n") == 100
        proxied.proxy.drop_reply(match=b"EVALSHA")
        with pytest.raises(OutcomeUnknown):
            await cache.aincr("n")
        assert await cache.aget("n") == 101


def test_flask_inc_and_add_with_a_lost_reply(proxied: Proxied) -> None:
    from flask import Flask
    from flask_caching import Cache

    app = Flask(f"faults_{uuid.uuid4().hex[:8]}")
    app.config.update(
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=proxied.url,
        CACHE_KEY_PREFIX=uuid.uuid4().hex[:8],
        CACHE_OPTIONS=dict(FAST),
    )
    cache = Cache(app)
    with app.app_context():
        cache.set("n", 100)
        proxied.proxy.drop_reply(match=b"INCRBY")
        with pytest.raises(OutcomeUnknown):
            cache.cache.inc("n")  # the backend's inc (Flask-Caching's Cache has none)
        assert cache.get("n") == 101
        proxied.proxy.drop_reply(match=b"NX")
        with pytest.raises(OutcomeUnknown):
            cache.add("lock", "me")
        assert cache.get("lock") == "me"
