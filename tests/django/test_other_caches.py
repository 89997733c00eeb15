"""tsot's cache middleware on a cache that is not tsot's (Django's LocMemCache): the same flow
under WSGI and ASGI (a first visit renders, the next GET is served from the cache with its Age)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory, override_settings

from tsot_django import cache_page

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "other"}


@pytest.fixture(autouse=True)
def locmem() -> Iterator[None]:
    with override_settings(CACHES={"default": LOCMEM}, CACHE_MIDDLEWARE_KEY_PREFIX="oc"):
        yield
        caches["default"].clear()


def test_a_page_is_rendered_once_then_served_from_the_cache() -> None:
    calls: list[int] = []

    @cache_page(60)
    def view(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return HttpResponse(f"page{len(calls)}")

    assert view(RequestFactory().get("/p/")).content == b"page1"
    hit = view(RequestFactory().get("/p/"))
    assert hit.content == b"page1"
    assert "Age" in hit
    assert view(RequestFactory().post("/p/")).content == b"page2"  # not cached: Django's path
    assert calls == [1, 1]


async def test_a_page_is_rendered_once_then_served_from_the_cache_under_asgi() -> None:
    calls: list[int] = []

    @cache_page(60)
    async def view(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return HttpResponse(f"page{len(calls)}")

    assert (await view(AsyncRequestFactory().get("/a/"))).content == b"page1"
    hit = await view(AsyncRequestFactory().get("/a/"))
    assert hit.content == b"page1"
    assert "Age" in hit
    head = await view(AsyncRequestFactory().head("/a/"))
    assert head.content == b"page1"  # a HEAD is answered from the GET's page
    assert (await view(AsyncRequestFactory().post("/a/"))).content == b"page2"
    assert calls == [1, 1]
