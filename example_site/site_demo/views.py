"""Views: a cache_page'd slow page, a {% cache %} fragment, a session counter, an async view
using aget/aset/aincr, a live stats page per cache alias and /metrics for Prometheus."""

from __future__ import annotations

import itertools
import time
from typing import Any

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


def _live(stats: dict[str, Any]) -> dict[str, Any]:
    """Hit ratio and mean latency of the reads this process made (the hook's counters)."""
    reads = [v for k, v in stats.get("operations", {}).items() if k in ("get", "get_many")]
    hits, misses = sum(r["hits"] for r in reads), sum(r["misses"] for r in reads)
    calls, seconds = sum(r["calls"] for r in reads), sum(r["seconds"] for r in reads)
    return {
        "hit_ratio": hits / (hits + misses) if hits + misses else None,
        "read_ms": seconds / calls * 1000 if calls else None,
        "reads": calls,
    }


def stats(request: HttpRequest) -> HttpResponse:
    """Per alias: the backend's counters and, live, this process's hit ratio and latency."""
    rows = []
    for alias in settings.CACHES:
        found = caches[alias].storage.stats()  # type: ignore[attr-defined]
        rows.append({"alias": alias, **found, **_live(found)})
    if request.GET.get("format") == "json":
        return JsonResponse({"caches": rows})
    return render(request, "stats.html", {"rows": rows})


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format of the default registry (metrics=prometheus feeds it)."""
    try:
        import prometheus_client
    except ImportError:
        return HttpResponse("prometheus_client is not installed\n", status=501)
    return HttpResponse(
        prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )


def _masked(url: str) -> str:
    from tsot import mask_url

    return mask_url(url)
