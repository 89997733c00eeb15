"""The toolbar's own URLs plus one sync and one async page that use the cache."""

from __future__ import annotations

import contextlib

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

PAGE = "<html><body><p>{}</p></body></html>"


def sync_page(request: HttpRequest) -> HttpResponse:
    cache.set("page:a", 1)
    return HttpResponse(PAGE.format((cache.get("page:a"), cache.get("page:none"))))


async def async_page(request: HttpRequest) -> HttpResponse:
    await cache.aset("page:b", 2)
    found = await cache.aget_many(["page:b", "page:none"])
    # Django's rule for a missing key: incr raises; a call that raised is not listed (as the
    # panel does for the sync methods)
    with contextlib.suppress(ValueError):
        await cache.aincr("page:none")
    return HttpResponse(PAGE.format(found))


urlpatterns = [
    path("sync/", sync_page),
    path("async/", async_page),
    path("__debug__/", include("debug_toolbar.urls")),
]
