"""A Django URLconf whose views use the default cache, as a page cache would (outage tests)."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.urls import path

KEY = "page"


def page(request: HttpRequest) -> JsonResponse:
    """Serve the cached copy, or render and cache it; say which."""
    body = cache.get(KEY)
    hit = body is not None
    if not hit:
        body = f"rendered at {time.time()}"
        cache.set(KEY, body, 60)
    return JsonResponse({"hit": hit})


async def apage(request: HttpRequest) -> JsonResponse:
    """``page`` through the native async API (aget/aset)."""
    body = await cache.aget(KEY)
    hit = body is not None
    if not hit:
        body = f"rendered at {time.time()}"
        await cache.aset(KEY, body, 60)
    return JsonResponse({"hit": hit})


urlpatterns = [path("page/", page), path("apage/", apage)]
