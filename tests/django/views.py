"""Views of the request-level tests: each counts its own executions, so tests can tell a page
served from the cache (the count does not move) from one rendered again."""

from __future__ import annotations

import itertools
from collections import Counter

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page

runs: Counter[str] = Counter()
"""How many times each view (or template fragment) really ran."""

_fragment_numbers = itertools.count(1)


def low_level_counter(request: HttpRequest, alias: str) -> JsonResponse:
    """The low-level API inside a request: add, incr, get_or_set, get_many."""
    cache = caches[alias]
    cache.add("hits", 0, timeout=None)
    hits = cache.incr("hits")
    greeting = cache.get_or_set("greeting", lambda: f"hello from {alias}", timeout=60)
    seen = cache.get_many(["hits", "greeting", "absent"])
    return JsonResponse({"hits": hits, "greeting": greeting, "seen": sorted(seen)})


async def async_counter(request: HttpRequest, alias: str) -> JsonResponse:
    """The async API inside an async view."""
    cache = caches[alias]
    await cache.aadd("ahits", 0, timeout=None)
    hits = await cache.aincr("ahits")
    greeting = await cache.aget_or_set("agreeting", lambda: f"async {alias}", timeout=60)
    return JsonResponse({"hits": hits, "greeting": greeting})


@cache_page(60)
def cached_page(request: HttpRequest) -> HttpResponse:
    runs["cached_page"] += 1
    return HttpResponse(f"rendered {runs['cached_page']} times")


def plain_page(request: HttpRequest) -> HttpResponse:
    runs["plain_page"] += 1
    return HttpResponse(f"rendered {runs['plain_page']} times")


def fragment(request: HttpRequest) -> HttpResponse:
    def bump() -> int:
        runs["fragment"] += 1
        return next(_fragment_numbers)

    context = {"user_id": request.GET.get("user", "anon"), "bump": bump}
    return render(request, "fragment.html", context)


def session_counter(request: HttpRequest) -> JsonResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JsonResponse({"n": request.session["n"], "key": request.session.session_key})
