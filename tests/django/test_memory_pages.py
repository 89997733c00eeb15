"""Pages in process memory: a cached HttpResponse is kept as a snapshot and each hit rebuilds
it (tsot.inprocess.snapshot), the response pickle would give, never the one another hit got."""

from __future__ import annotations

import pickle
import uuid

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.utils.cache import patch_response_headers
from django.views.decorators.cache import cache_page

from tsot.inprocess import Rebuilt
from tsot_django import MemoryCache


def _response() -> HttpResponse:
    response = HttpResponse("<p>page</p>", headers={"X-Kind": "page"})
    response.set_cookie("seen", "1", max_age=60, httponly=True)
    patch_response_headers(response, 300)
    return response


def _state(response: HttpResponse) -> tuple[object, ...]:
    return (
        type(response),
        response.status_code,
        response.content,
        sorted(response.items()),
        response.cookies.output(),
        sorted(vars(response)),
    )


def test_a_response_is_rebuilt_as_unpickling_gives_it_and_never_shared() -> None:
    cache = MemoryCache(f"pages-{uuid.uuid4().hex}", {})
    original = _response()
    cache.set("page", original)
    assert type(cache._only.backend.get(cache._only._keys.make(cache.make_key("page")))) is Rebuilt
    want = _state(pickle.loads(pickle.dumps(original)))
    original["X-Kind"] = "changed after the write"
    original.cookies["seen"]["max-age"] = 1
    original.write(b"more")
    first = cache.get("page")
    assert _state(first) == want
    first["Age"] = "12"  # what FetchFromCacheMiddleware does to a hit
    first.cookies["seen"]["path"] = "/elsewhere"
    first.write(b"appended by a reader")
    second = cache.get("page")
    assert _state(second) == want and second is not first
    assert second.headers is not first.headers and second.cookies is not first.cookies
    assert second._container is not first._container  # type: ignore[attr-defined]


def test_cache_page_serves_the_rebuilt_response() -> None:
    renders = []

    def view(request: HttpRequest) -> HttpResponse:
        renders.append(request)
        return HttpResponse(f"<p>render {len(renders)}</p>")

    pages = {"BACKEND": "tsot_django.MemoryCache", "LOCATION": f"pages-{uuid.uuid4().hex}"}
    with override_settings(CACHES={**settings.CACHES, "pages": pages}):
        cached = cache_page(300, cache="pages", key_prefix=uuid.uuid4().hex)(view)
        factory = RequestFactory()
        hits = [cached(factory.get("/p")) for _ in range(3)]
        assert type(caches["pages"]) is MemoryCache
    assert [hit.content for hit in hits] == [b"<p>render 1</p>"] * 3 and len(renders) == 1
    assert hits[1] is not hits[2] and hits[1].headers is not hits[2].headers
