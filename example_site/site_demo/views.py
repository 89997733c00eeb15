"""Views: a cache_page'd slow page, a {% cache %} fragment, a session counter, an async view
using aget/aset/aincr, and a stats page per cache alias."""

from __future__ import annotations

import itertools
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page

_renders = itertools.count(1)  # counts real renders in this process; cached hits don't move it
_fragment_renders = itertools.count(1)


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "index.html", {"url": _masked(settings.TSOT_URL)})


@cache_page(60)
def slow_page(request: HttpRequest) -> HttpResponse:
    time.sleep(0.3)  # stands in for a slow query; the cached copy skips it
    return render(request, "slow.html", {"render": next(_renders), "at": time.time()})


def fragment(request: HttpRequest) -> HttpResponse:
    topic = request.GET.get("topic", "news")
    return render(
        request,
        "fragment.html",
        {"topic": topic, "count": lambda: next(_fragment_renders), "at": time.time()},
    )


def counter(request: HttpRequest) -> HttpResponse:
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    return render(request, "counter.html", {"visits": visits})


async def async_view(request: HttpRequest) -> JsonResponse:
    try:
        hits = await cache.aincr("async:hits")  # atomic on the server, no thread hop
    except ValueError:  # Django's rule: incr of a missing key raises
        await cache.aadd("async:hits", 0, None)
        hits = await cache.aincr("async:hits")
    greeting = await cache.aget("async:greeting")
    if greeting is None:
        greeting = f"stored at {time.time():.3f}"
        await cache.aset("async:greeting", greeting, 60)
    return JsonResponse({"hits": hits, "greeting": greeting})


def stats(request: HttpRequest) -> HttpResponse:
    rows = []
    for alias in settings.CACHES:
        backend = caches[alias]
        rows.append({"alias": alias, **backend.storage.stats()})  # type: ignore[attr-defined]
    if request.GET.get("format") == "json":
        return JsonResponse({"caches": rows})
    return render(request, "stats.html", {"rows": rows})


def _masked(url: str) -> str:
    from tsot import mask_url

    return mask_url(url)
