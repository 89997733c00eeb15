"""Django-facing errors name the key as Django makes it (KEY_PREFIX:VERSION:key, as Django's own
CacheKeyWarning does), never tsot's namespaced bytes key."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test import override_settings

from tsot import ValueTooLarge, WrongType


@pytest.fixture(params=["memory", "redis_url"])
def cache(request: pytest.FixtureRequest) -> Iterator[BaseCache]:
    location = (
        "memory://django-error-keys"
        if request.param == "memory"
        else request.getfixturevalue(request.param)
    )
    setting = {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": location,
            "KEY_PREFIX": "myapp",
            "OPTIONS": {"NAMESPACE": "myapp", "MAX_VALUE_SIZE": 1000},
        }
    }
    with override_settings(CACHES=setting):
        yield caches["default"]
        caches["default"].clear()


def shows_django_key(exc: BaseException, key: str) -> None:
    text = str(exc)
    assert f"'myapp:1:{key}'" in text, text
    assert "myapp:myapp" not in text, text
    assert not re.search(r"(?<!\w)b'", text), text  # no bytes literal


def test_incr_of_a_float(cache: BaseCache) -> None:
    cache.set("flt", 1.5)
    with pytest.raises(WrongType) as info:
        cache.incr("flt")
    shows_django_key(info.value, "flt")


async def test_aincr_of_a_string(cache: BaseCache) -> None:
    await cache.aset("text", "abc")
    with pytest.raises(WrongType) as info:
        await cache.aincr("text")
    shows_django_key(info.value, "text")


def test_oversized_value(cache: BaseCache) -> None:
    with pytest.raises(ValueTooLarge) as info:
        cache.set("big", "x" * 5000)
    shows_django_key(info.value, "big")
    with pytest.raises(ValueTooLarge) as info:
        cache.set_many({"ok": 1, "huge": "y" * 5000})
    shows_django_key(info.value, "huge")
    assert cache.get("ok") is None  # nothing was written
