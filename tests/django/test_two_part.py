"""UpdateCacheMiddleware + FetchFromCacheMiddleware read a known page through the core
read-through: early refresh and grace, with the refresh rendered by the request that wins the
lease while the others are served the current page. An injected clock, no sleeps: a request
made from inside the rendering view stands for a concurrent one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import markcoroutinefunction
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory, override_settings
from django.utils.cache import get_cache_key

from tests.django.support import Env
from tests.helpers import FakeClock
from tsot import readthrough
from tsot.stampede import Timing
from tsot_django import TsotCache
from tsot_django.middleware import FetchFromCacheMiddleware, UpdateCacheMiddleware

SECONDS = 600  # CACHE_MIDDLEWARE_SECONDS
GRACE = 30.0
RENDER = 2.0  # seconds each render takes on the injected clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", Timing(clock=c, random=lambda: 0.5))
    return c


@pytest.fixture
def cache(storage_env: Env, clock: FakeClock) -> Iterator[TsotCache]:
    entry = storage_env.entry({"grace": GRACE})
    with override_settings(
        CACHES={"default": entry},
        CACHE_MIDDLEWARE_KEY_PREFIX="tp",
        CACHE_MIDDLEWARE_SECONDS=SECONDS,
    ):
        default = caches["default"]
        assert isinstance(default, TsotCache)
        yield default
        default.clear()


class Site:
    """A view behind the two-part middleware; ``during`` runs inside the next render."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.renders = 0
        self.private = False
        self.during: Callable[[], Any] | None = None
        self.seen_during: list[bytes] = []
        self.handler = UpdateCacheMiddleware(FetchFromCacheMiddleware(self.view))

    def view(self, request: HttpRequest) -> HttpResponse:
        self.renders += 1
        self.clock.advance(RENDER)
        during, self.during = self.during, None
        if during is not None:
            self.seen_during.append(during())
        response = HttpResponse(f"r{self.renders}")
        if self.private:
            response["Cache-Control"] = "private"
        return response

    def get(self) -> bytes:
        return bytes(self.handler(RequestFactory().get("/tp/")).content)


def _expire_plain_page(cache: TsotCache) -> None:
    """Drop the page the first visit stored with Django's plain set; its Vary list stays."""
    key = get_cache_key(RequestFactory().get("/tp/"), "tp", "GET", cache=cache)
    assert key is not None
    cache.delete(key)


def test_early_refresh_is_rendered_by_one_request_while_others_get_the_page(
    cache: TsotCache, clock: FakeClock
) -> None:
    site = Site(clock)
    assert site.get() == b"r1"  # first visit: Django's path, learns the Vary list
    _expire_plain_page(cache)
    assert site.get() == b"r2"  # a miss of a known page: read through, stored as an entry
    assert site.get() == b"r2" and site.renders == 2  # a hit
    clock.advance(SECONDS - 1.0)  # one second left, the render takes two: XFetch refreshes
    site.during = site.get  # a request arriving while the refresh renders
    assert site.get() == b"r3"  # the request that won the lease renders inline
    assert site.seen_during == [b"r2"]  # the other was served the current page at once
    assert site.get() == b"r3" and site.renders == 3


def test_grace_serves_the_expired_page_while_one_request_renders(
    cache: TsotCache, clock: FakeClock
) -> None:
    site = Site(clock)
    site.get()
    _expire_plain_page(cache)
    assert site.get() == b"r2"
    clock.advance(SECONDS + GRACE / 2)  # past the TTL, within grace
    site.during = site.get
    assert site.get() == b"r3"
    assert site.seen_during == [b"r2"]  # stale within grace, not a wait
    clock.advance(SECONDS + GRACE + 1)  # past grace: a miss, rendered again
    assert site.get() == b"r4"


def test_a_refresh_that_is_not_cacheable_keeps_the_page_and_backs_off(
    cache: TsotCache, clock: FakeClock
) -> None:
    site = Site(clock)
    site.get()
    _expire_plain_page(cache)
    assert site.get() == b"r2"
    clock.advance(SECONDS + GRACE / 2)
    site.private = True  # the refresh's response may not be cached: the lease is kept 1 s
    assert site.get() == b"r3"
    site.private = False
    assert site.get() == b"r2"  # within grace, the lease still taken: the old page
    assert site.renders == 3


def test_a_miss_that_is_not_cacheable_frees_the_lease(cache: TsotCache, clock: FakeClock) -> None:
    site = Site(clock)
    site.get()
    _expire_plain_page(cache)
    site.private = True
    assert site.get() == b"r2"  # not stored; the lease is given back
    site.private = False
    assert site.get() == b"r3"  # renders at once, no wait for a lease
    assert site.get() == b"r3"


async def test_async_early_refresh_is_rendered_by_one_request(
    cache: TsotCache, clock: FakeClock
) -> None:
    renders: list[int] = []
    during: list[Any] = []
    seen: list[bytes] = []

    async def view(request: HttpRequest) -> HttpResponse:
        renders.append(1)
        clock.advance(RENDER)
        if during:
            seen.append((await handler(AsyncRequestFactory().get("/tp/"))).content)
            during.clear()
        return HttpResponse(f"r{len(renders)}")

    handler = UpdateCacheMiddleware(FetchFromCacheMiddleware(markcoroutinefunction(view)))

    async def get() -> bytes:
        return bytes((await handler(AsyncRequestFactory().get("/tp/"))).content)

    assert await get() == b"r1"
    key = get_cache_key(AsyncRequestFactory().get("/tp/"), "tp", "GET", cache=cache)
    assert key is not None
    await cache.adelete(key)
    assert await get() == b"r2"
    assert await get() == b"r2"
    clock.advance(SECONDS - 1.0)
    during.append(True)
    assert await get() == b"r3"
    assert seen == [b"r2"]
    assert await get() == b"r3" and len(renders) == 3
