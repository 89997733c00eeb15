"""django-debug-toolbar's real CachePanel records every call on a tsot cache, a* ones too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

pytest.importorskip("debug_toolbar")


@pytest.fixture(params=["TsotCache", "MemoryCache"])
def toolbar_site(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test project with the toolbar installed (its app config patches Django's caches),
    on a memory table through TsotCache and through MemoryCache (whose get and set of a key
    seen before are bound on the instance); the class name."""
    name = f"djdt-{uuid.uuid4().hex}"
    location = f"memory://{name}" if request.param == "TsotCache" else name
    cache = {"BACKEND": f"tsot_django.{request.param}", "LOCATION": location}
    # two steps: Django installs apps (whose ready() reads settings) before the other values
    with (
        override_settings(
            STATIC_URL="/static/",
            DEBUG=True,
            INTERNAL_IPS=["127.0.0.1"],
            CACHES={"default": cache, "second": {**cache, "KEY_PREFIX": "2"}},
        ),
        override_settings(
            INSTALLED_APPS=[
                *settings.INSTALLED_APPS,
                "django.contrib.staticfiles",
                "debug_toolbar",
            ]
        ),
    ):
        yield request.param


def _panel() -> tuple[Any, Any]:
    from debug_toolbar.toolbar import DebugToolbar

    request = RequestFactory().get("/")
    toolbar = DebugToolbar(request, lambda r: HttpResponse("ok"))
    return toolbar.get_panel_by_id("CachePanel"), request


def test_the_panel_lists_sync_and_async_calls(toolbar_site: str) -> None:
    cache = caches["default"]  # open before the request: patched by enable_instrumentation
    panel, request = _panel()
    panel.enable_instrumentation()
    try:
        cache.set("a", 1)
        assert cache.get("a") == 1
        assert cache.get("missing") is None
        # django-redis extras (the TTL rounds to 299 once half a second has passed: a loaded host)
        assert cache.ttl("a") in (299, 300) and cache.keys("a*") == ["a"]
        second = caches["second"]  # opened during the request: patched when created

        async def run() -> None:
            await cache.aset("b", 2)
            assert await cache.aget("b") == 2
            assert await cache.aget("nope", "dflt") == "dflt"
            assert await cache.aget_many(["a", "b", "c"]) == {"a": 1, "b": 2}
            assert await cache.aget_or_set("c", 3) == 3  # one call: its inner calls not listed
            assert await second.aincr("n", 5) if await second.aadd("n", 0) else False
            assert await cache.apersist("a") is True
            assert [k async for k in cache.aiter_keys("b*")] == ["b"]
            async with cache.alock("job", timeout=5):
                pass

        asyncio.run(run())
    finally:
        panel.disable_instrumentation()
    panel.generate_stats(request, HttpResponse("ok"))
    stats = panel.get_stats()
    names = [(c["name"], c["backend"]) for c in stats["calls"]]
    assert names == [
        ("set", f"default ({toolbar_site})"),
        ("get", f"default ({toolbar_site})"),
        ("get", f"default ({toolbar_site})"),
        ("ttl", f"default ({toolbar_site})"),
        ("keys", f"default ({toolbar_site})"),
        ("aset", f"default ({toolbar_site})"),
        ("aget", f"default ({toolbar_site})"),
        ("aget", f"default ({toolbar_site})"),
        ("aget_many", f"default ({toolbar_site})"),
        ("aget_or_set", f"default ({toolbar_site})"),
        ("aadd", f"second ({toolbar_site})"),
        ("aincr", f"second ({toolbar_site})"),
        ("apersist", f"default ({toolbar_site})"),
        ("aiter_keys", f"default ({toolbar_site})"),
        ("alock", f"default ({toolbar_site})"),
    ]
    # get a: hit, missing: miss; aget b: hit, nope: miss; aget_many 2 of 3; aget_or_set: hit
    assert (stats["hits"], stats["misses"]) == (5, 3)
    assert stats["counts"]["aget"] == 2 and stats["counts"]["get"] == 2
    assert stats["calls"][6]["args"] == ("b",)
    # after the request: no recording, the methods still work
    assert cache.get("a") == 1
    assert len(panel.calls) == 15


@pytest.mark.usefixtures("toolbar_site")
def test_a_cache_the_toolbar_never_touched_is_untouched() -> None:
    cache = caches["default"]
    assert not hasattr(cache, "_djdt_panel")
    assert "aget" not in vars(cache)  # the class's own method, no wrapper


@pytest.fixture
def toolbar_requests(toolbar_site: str) -> Iterator[str]:
    """The toolbar's middleware in front of tests/django/toolbar_site's pages."""
    with override_settings(
        MIDDLEWARE=["debug_toolbar.middleware.DebugToolbarMiddleware"],
        ROOT_URLCONF="tests.django.toolbar_site.urls",
        DEBUG_TOOLBAR_CONFIG={"SHOW_TOOLBAR_CALLBACK": lambda request: True},
        TEMPLATES=[{**settings.TEMPLATES[0], "APP_DIRS": True}],  # the toolbar's templates
    ):
        yield toolbar_site


def _last_cache_panel() -> Any:
    from debug_toolbar.store import get_store

    store = get_store()
    request_id = list(store.request_ids())[-1]
    return store.panel(request_id, "CachePanel")


def test_requests_through_the_toolbar_middleware(toolbar_requests: str) -> None:
    from django.test import AsyncClient, Client

    assert Client().get("/sync/").status_code == 200
    stats = _last_cache_panel()
    assert [c["name"] for c in stats["calls"]] == ["set", "get", "get"]
    assert (stats["hits"], stats["misses"]) == (1, 1)

    response = asyncio.run(AsyncClient().get("/async/"))
    assert response.status_code == 200
    stats = _last_cache_panel()
    assert [(c["name"], c["backend"]) for c in stats["calls"]] == [
        ("aset", f"default ({toolbar_requests})"),
        ("aget_many", f"default ({toolbar_requests})"),
    ]
    assert (stats["hits"], stats["misses"]) == (1, 1)
