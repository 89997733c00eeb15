"""Stampede protection behind Django's APIs: get_or_set, cache_page and the cache middleware, on
one tsot_django class per storage kind, sync (threads) and async (tasks, no thread hop)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory, override_settings
from django.utils.cache import get_cache_key

from tests.django.support import Env
from tests.stampede_support import BOUND, Gate, Waiters, eventually
from tsot import readthrough
from tsot_django import TsotCache, cache_page, middleware
from tsot_django.middleware import (
    HEADER_LIST_FACTOR,
    CacheMiddleware,
    FetchFromCacheMiddleware,
    UpdateCacheMiddleware,
    _Recorder,
)

N = 32


@pytest.fixture
def cache(storage_env: Env) -> Iterator[TsotCache]:
    entry = storage_env.entry()
    if storage_env.kind.storage == "redis":  # 32 threads and a request's worth each
        entry["OPTIONS"]["socket_connect_timeout"] = 20
    with override_settings(CACHES={"default": entry}, CACHE_MIDDLEWARE_KEY_PREFIX="st"):
        default = caches["default"]
        assert isinstance(default, TsotCache)
        yield default
        default.clear()


@pytest.fixture
def waiters(monkeypatch: pytest.MonkeyPatch) -> Waiters:
    """Waits of the read-throughs (real clock), observable by the test."""
    w = Waiters()
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", w.timing(time.time))
    return w


def _in_threads(call: Callable[[], Any], gate: Gate, waiters: Waiters | None) -> list[Any]:
    """``N`` concurrent calls released together; ``gate`` opens once N - 1 of them wait."""
    barrier = threading.Barrier(N)

    def one() -> Any:
        barrier.wait(BOUND)
        return call()

    with ThreadPoolExecutor(N) as pool:
        futures = [pool.submit(one) for _ in range(N)]
        try:
            if waiters is not None:
                eventually(lambda: len(waiters.seen) >= N - 1, f"{N - 1} waiters")
            eventually(lambda: gate.calls >= 1, "the first compute")
        finally:
            gate.release()
        return [f.result(BOUND) for f in futures]


def test_get_or_set_computes_once_for_concurrent_misses(cache: TsotCache, waiters: Waiters) -> None:
    gate = Gate("sync")
    results = _in_threads(lambda: cache.get_or_set("report", gate.fn, 60), gate, waiters)
    assert results == ["v1"] * N
    assert gate.calls == 1
    assert cache.get("report") == "v1"


async def test_aget_or_set_computes_once_for_concurrent_misses(
    cache: TsotCache, waiters: Waiters
) -> None:
    gate = Gate("async")
    calls = [asyncio.ensure_future(cache.aget_or_set("report", gate.fn, 60)) for _ in range(N)]
    try:
        while len(waiters.seen) < N - 1 or gate.calls < 1:
            await asyncio.sleep(0.002)
    finally:
        gate.release()
    assert await asyncio.gather(*calls) == ["v1"] * N
    assert gate.calls == 1


def _page_view(gate: Gate) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(gate.fn())

    return view


def test_cache_page_renders_an_expired_page_once(cache: TsotCache, waiters: Waiters) -> None:
    gate = Gate("sync", "page")
    view = cache_page(60)(_page_view(gate))
    gate.release()
    first = view(RequestFactory().get("/report/"))  # learns the page's key
    assert first.content == b"page1"
    gate = Gate("sync", "again")
    gate.release()
    view = cache_page(60)(_page_view(gate))
    cache.clear()  # the page and its Vary list are gone: a first visit again
    assert view(RequestFactory().get("/report/")).content == b"again1"
    cache.delete(_page_keys_for(cache, "/report/", ""))  # only the page expired: the lease works
    gate2 = Gate("sync", "hot")
    view2 = cache_page(60)(_page_view(gate2))
    responses = _in_threads(lambda: view2(RequestFactory().get("/report/")), gate2, waiters)
    assert {r.content for r in responses} == {b"hot1"}
    assert gate2.calls == 1
    assert "max-age=60" in responses[0]["Cache-Control"]


async def test_cache_page_on_a_coroutine_view_stays_on_the_loop(
    cache: TsotCache, waiters: Waiters
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    gate = Gate("async", "apage")
    calls: list[int] = []

    @cache_page(60)
    async def view(request: HttpRequest) -> HttpResponse:
        threads.append(threading.get_ident())
        calls.append(1)
        if len(calls) == 1:
            return HttpResponse("learned")
        return HttpResponse(await gate.fn())

    assert (await view(AsyncRequestFactory().get("/a/"))).content == b"learned"
    hit = await view(AsyncRequestFactory().get("/a/"))
    assert hit.content == b"learned"
    assert "Age" in hit
    assert calls == [1]
    key = get_cache_key(AsyncRequestFactory().get("/a/"), "", "GET", cache=cache)
    assert key is not None
    await cache.adelete(key)  # the page expired; its Vary list is still known
    pending = [asyncio.ensure_future(view(AsyncRequestFactory().get("/a/"))) for _ in range(N)]
    try:
        while len(waiters.seen) < N - 1 or gate.calls < 1:
            await asyncio.sleep(0.002)
    finally:
        gate.release()
    responses = await asyncio.gather(*pending)
    assert {r.content for r in responses} == {b"apage1"}
    assert gate.calls == 1
    assert set(threads) == {loop_thread}  # every render ran on the event loop's thread


def test_an_uncacheable_page_is_rendered_every_time_and_frees_the_lease(
    cache: TsotCache,
) -> None:
    renders: list[int] = []

    def view(request: HttpRequest) -> HttpResponse:
        renders.append(1)
        response = HttpResponse(f"r{len(renders)}")
        if len(renders) > 1:
            response["Cache-Control"] = "private"
        return response

    middleware = CacheMiddleware(view, page_timeout=60)
    middleware(RequestFactory().get("/p/"))  # cached, key learned
    cache.delete(_page_keys_for(cache, "/p/"))
    assert middleware(RequestFactory().get("/p/")).content == b"r2"
    assert middleware(RequestFactory().get("/p/")).content == b"r3"  # not stored, no lease
    assert len(renders) == 3


def _page_keys_for(cache: TsotCache, path: str, prefix: str = "st") -> str:
    """The key Django made for a GET of ``path``, from its Vary list (cache_page: prefix "")."""
    key = get_cache_key(RequestFactory().get(path), prefix, "GET", cache=cache)
    assert key is not None
    return key


def test_two_part_middleware_renders_a_missing_page_once(
    cache: TsotCache, waiters: Waiters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "sleep", waiters.sleep)
    gate = Gate("sync", "two")
    handler = UpdateCacheMiddleware(FetchFromCacheMiddleware(_page_view(gate)))
    gate.release()
    assert handler(RequestFactory().get("/two/")).content == b"two1"
    assert handler(RequestFactory().get("/two/")).content == b"two1"  # a hit
    cache.delete(_page_keys_for(cache, "/two/"))
    gate2 = Gate("sync", "again")
    handler = UpdateCacheMiddleware(FetchFromCacheMiddleware(_page_view(gate2)))
    responses = _in_threads(lambda: handler(RequestFactory().get("/two/")), gate2, waiters)
    assert {r.content for r in responses} == {b"again1"}
    assert gate2.calls == 1
    assert not cache.has_key(_page_keys_for(cache, "/two/") + ":tsot-render")


async def test_two_part_middleware_async(cache: TsotCache) -> None:
    gate = Gate("async", "two")
    threads: list[int] = []

    async def view(request: HttpRequest) -> HttpResponse:
        threads.append(threading.get_ident())
        return HttpResponse(await gate.fn())

    from asgiref.sync import markcoroutinefunction

    handler = UpdateCacheMiddleware(FetchFromCacheMiddleware(markcoroutinefunction(view)))
    gate.release()
    assert (await handler(AsyncRequestFactory().get("/two/"))).content == b"two1"
    assert (await handler(AsyncRequestFactory().get("/two/"))).content == b"two1"
    assert gate.calls == 1
    assert set(threads) == {threading.get_ident()}


def test_the_vary_list_outlives_the_page(cache: TsotCache) -> None:
    middleware = CacheMiddleware(lambda request: HttpResponse("x"), page_timeout=60)
    middleware(RequestFactory().get("/vary/"))
    probe = _Recorder()  # learns the key of the URL's Vary list, as the async path does
    get_cache_key(RequestFactory().get("/vary/"), "st", "GET", cache=cast(Any, probe))
    assert probe.key is not None
    list_ttl = cache.storage.ttl(cache.make_key(probe.key))
    page_ttl = cache.storage.ttl(cache.make_key(_page_keys_for(cache, "/vary/")))
    assert list_ttl is not None and list_ttl > 60 * (HEADER_LIST_FACTOR - 1)
    # (plus the page's refresh window, its render time; memcached keeps entries 1 s past
    # their TTL for its whole-second clock, and rounds the rest up: docs/stampede.md)
    assert page_ttl is not None and page_ttl <= 62


def test_concurrent_first_visits_render_once(
    cache: TsotCache, waiters: Waiters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "sleep", waiters.sleep)
    gate = Gate("sync", "first")
    view = cache_page(60)(_page_view(gate))
    responses = _in_threads(lambda: view(RequestFactory().get("/first/")), gate, waiters)
    assert {r.content for r in responses} == {b"first1"}
    assert gate.calls == 1


async def test_concurrent_first_visits_render_once_async(
    cache: TsotCache, waiters: Waiters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "asleep", waiters.asleep)
    gate = Gate("async", "afirst")

    @cache_page(60)
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(await gate.fn())

    pending = [asyncio.ensure_future(view(AsyncRequestFactory().get("/af/"))) for _ in range(N)]
    try:
        while len(waiters.seen) < N - 1 or gate.calls < 1:
            await asyncio.sleep(0.002)
    finally:
        gate.release()
    responses = await asyncio.gather(*pending)
    assert {r.content for r in responses} == {b"afirst1"}
    assert gate.calls == 1


def test_a_first_visit_writes_the_page_before_its_vary_list(
    cache: TsotCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiters of a first visit poll for the Vary list and then read the page through the lease:
    a list written before its page would send each of them to render it again."""
    written: list[str] = []
    real_set = cache.set

    def recording_set(key: Any, value: Any, timeout: Any = None, version: Any = None) -> None:
        written.append(str(key))
        real_set(key, value, timeout, version)

    real_entry = readthrough.store_entry

    def recording_entry(storage: Any, key: Any, *args: Any) -> None:
        written.append(str(key))  # a first render's page: stored as an entry
        real_entry(storage, key, *args)

    monkeypatch.setattr(cache, "set", recording_set)
    monkeypatch.setattr(readthrough, "store_entry", recording_entry)
    gate = Gate("sync", "order")
    gate.release()
    view = cache_page(60)(_page_view(gate))
    assert view(RequestFactory().get("/order/")).content == b"order1"
    pages = [i for i, k in enumerate(written) if "cache_page" in k]
    lists = [i for i, k in enumerate(written) if "cache_header" in k]
    assert pages and lists and max(pages) < min(lists), written


@pytest.mark.parametrize("run", ["sync", "async"])
def test_a_first_visit_stores_the_page_with_its_render_time(
    cache: TsotCache, monkeypatch: pytest.MonkeyPatch, run: str
) -> None:
    # the first render is stored as the read-through's entry (soft expiry, render time), so
    # the page's first expiry is refreshed early like every later one, not a hard miss
    from tests.helpers import FakeClock
    from tsot.stampede import Timing

    clock = FakeClock()
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", Timing(clock=clock))

    def render(request: HttpRequest) -> HttpResponse:
        clock.advance(3.0)  # the render takes 3 s
        return HttpResponse(b"page")

    async def arender(request: HttpRequest) -> HttpResponse:
        return render(request)

    if run == "sync":
        response = cache_page(60)(render)(RequestFactory().get("/first/"))
    else:
        view = cache_page(60)(arender)
        response = asyncio.run(view(AsyncRequestFactory().get("/first/")))
    assert response.content == b"page"
    storage = cache.storage
    k = storage._keys.make(cache.tsot_key(_page_keys_for(cache, "/first/", ""), None))
    data = storage.backend.get(k)
    assert data is not None
    entry = storage.codec.decode_entry(data, k)
    assert isinstance(entry, tuple)
    _, soft_ms, delta_ms = entry
    assert delta_ms == 3000
    assert soft_ms == round(clock.now * 1000) + 60_000
