"""Drop-in replacements of Django's cache middleware, with stampede protection and a native
asyncio path (docs/stampede.md#django).

``CacheMiddleware`` (and ``tsot_django.cache_page``, built on it) serves a GET through the
cache's ``get_or_set`` read-through: on a TsotCache one request renders a missing or expiring
page while the others wait for it (or get the current one, refreshed early, or a stale one
within ``grace``). ``UpdateCacheMiddleware`` / ``FetchFromCacheMiddleware`` (the two-part form)
keep Django's split: Fetch begins the same read-through (``tsot.readthrough.begin``) and the
request that must render (a miss, or the early or stale refresh it won) carries it to Update,
which stores the page or gives the lease up; that refresh is rendered by its own request, as
the page can only be rendered by a request's pass through the middleware between the two.
Under ASGI each runs as a coroutine on the cache's async API: no thread hop. Which
responses are cached, their headers and keys are Django's (``django.utils.cache`` helpers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple, TypeVar, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.cache import BaseCache
from django.http import HttpRequest, HttpResponseBase
from django.middleware import cache as django_cache
from django.utils.cache import (
    get_cache_key,
    get_max_age,
    has_vary_header,
    learn_cache_key,
    patch_response_headers,
    patch_vary_headers,
)
from django.utils.http import parse_http_date_safe

from tsot import AsyncStorage, Storage, readthrough
from tsot.integration import Steps, adrive, drive
from tsot.readthrough import Deferred

from .ops import CacheOps

T = TypeVar("T")
HEADER_LIST_FACTOR = 10
"""The Vary header list of a URL is kept this many page timeouts: a page that expires still
has its key, so the next request for it takes the read-through (and its lease)."""


class _NotStored(Exception):
    """The rendered response is not to be stored under the requested key."""

    def __init__(self, response: HttpResponseBase) -> None:
        super().__init__("response not cached under this key")
        self.response = response


class _Recorder:
    """Stands in for the cache in Django's key helpers, so that the async path does their one
    ``get`` or ``set`` itself, awaited."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.key: str | None = None
        self.stored: tuple[str, Any, Any] | None = None

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        self.key = key
        return default if self.answer is None else self.answer

    def set(self, key: str, value: Any, timeout: Any = None, version: int | None = None) -> None:
        self.stored = (key, value, timeout)


def _next(middleware: Any, request: HttpRequest) -> Any:
    """The response of the rest of the chain (a coroutine under ASGI)."""
    return middleware.get_response(request)


def _with_age(response: Any) -> Any:
    """A cached response with its Age header, as Django's FetchFromCacheMiddleware sets it."""
    max_age = get_max_age(response)
    if max_age is not None and (expires := parse_http_date_safe(response["Expires"])) is not None:
        response["Age"] = max(0, max_age - (expires - int(time.time())))
    return response


def _rendered(response: HttpResponseBase) -> HttpResponseBase:
    render = getattr(response, "render", None)
    if callable(render) and not getattr(response, "is_rendered", True):
        render()  # a TemplateResponse from a decorated view: render it before caching it
    return response


class _Do(NamedTuple):
    """One I/O step of a middleware flow. ``on`` says what does it: ``"cache"`` (the cache's
    method ``name``, or ``"a" + name`` awaited), ``"readthrough"`` (the ``tsot.readthrough``
    function ``name`` or ``"a" + name`` on the cache's primary storage), ``"sleep"``, or
    ``"next"`` (the rest of the chain on ``args[0]``, the request)."""

    on: str
    name: str
    args: tuple[Any, ...]


Flow = Generator[_Do, Any, T]
"""A middleware operation, I/O-free: it yields ``_Do`` steps and receives their results (or has
their exceptions thrown in); ``_Pages.run`` drives it sync, ``_Pages.arun`` awaited."""


def _get(key: str, default: Any = None) -> _Do:
    return _Do("cache", "get", (key, default))


def _set(key: str, value: Any, timeout: Any) -> _Do:
    return _Do("cache", "set", (key, value, timeout))


def _render(request: HttpRequest) -> _Do:
    return _Do("next", "", (request,))


class _Pages:
    """Django's rules for which response is cached, for how long and under which key, and the
    flows of the middlewares below with their two drivers."""

    cache_alias: str
    cache_timeout: float
    key_prefix: str
    page_timeout: float | None
    get_response: Callable[[HttpRequest], Any]

    @property
    def cache(self) -> BaseCache:
        from django.core.cache import caches

        return caches[self.cache_alias]

    # -- drivers: the only difference between the sync and the ASGI middleware -------------
    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` with sync calls (the core's sync driver)."""
        return drive(self._calls(flow, False))

    async def arun(self, flow: Flow[T]) -> T:
        """Drive ``flow`` on the cache's async API, awaiting each step (the core's asyncio
        driver)."""
        return await adrive(self._calls(flow, True))

    def _calls(self, flow: Flow[T], aio: bool) -> Steps[T]:
        """``flow``'s steps as the core drivers' calls; each result (or exception, a
        cancellation too) goes back into ``flow``."""
        try:
            step = next(flow)
            while True:
                try:
                    reply = yield self._resolve(step, aio)
                except GeneratorExit:
                    raise  # closed: ``flow`` can yield no more
                except BaseException as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _resolve(self, step: _Do, aio: bool) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """What does ``step`` (a coroutine function when ``aio``) and its arguments."""
        on, name, args = step
        if on == "cache":
            if name == "get_or_set":  # its default is a flow: driven the same way
                key, flow, timeout = args
                run = self.arun if aio else self.run
                args = (key, lambda: run(flow()), timeout)
            return getattr(self.cache, "a" + name if aio else name), args
        if on == "readthrough":
            storage = _astorage(self.cache) if aio else _storage(self.cache)
            return getattr(readthrough, "a" + name if aio else name), (storage, *args)
        if on == "sleep":
            return (asleep if aio else sleep), args
        return self.get_response, args  # "next": a coroutine function under ASGI

    # -- flows -----------------------------------------------------------------------------
    def storable(self, request: HttpRequest, response: HttpResponseBase, cache: Any) -> Any:
        """``(key, timeout)`` to store a cacheable ``response`` under (headers patched as
        Django's UpdateCacheMiddleware does), or None; ``cache`` receives the Vary list."""
        if response.streaming or response.status_code not in (200, 304):
            return None
        if response.cookies and has_vary_header(response, "Cookie"):
            return None
        cache_control = response.get("Cache-Control", "").lower()
        if cache_control and any(d in cache_control for d in ("private", "no-cache", "no-store")):
            return None
        if has_vary_header(response, "*"):
            return None
        timeout = self.page_timeout
        if timeout is None:
            timeout = get_max_age(response)
            if timeout is None:
                timeout = self.cache_timeout
            elif timeout == 0:
                return None
        patch_response_headers(response, cast(Any, timeout))
        if request.headers.get("Authorization") and "public" not in cache_control:
            patch_vary_headers(response, ("Authorization",))
        if not timeout or response.status_code != 200:
            return None
        key = learn_cache_key(
            request, response, timeout * HEADER_LIST_FACTOR, self.key_prefix, cache=cache
        )
        return key, timeout

    def lookup(self, request: HttpRequest, method: str = "GET") -> Flow[str | None]:
        """The page key of ``request`` (Django's ``get_cache_key``), None while its URL's Vary
        list is unknown."""
        probe = _Recorder()
        get_cache_key(request, self.key_prefix, method, cache=cast(Any, probe))  # the list's key
        assert probe.key is not None
        headers = yield _get(probe.key)
        if headers is None:
            return None
        return get_cache_key(request, self.key_prefix, method, cache=cast(Any, _Recorder(headers)))

    def store(
        self, request: HttpRequest, response: HttpResponseBase, took: float | None = None
    ) -> Flow[Any]:
        """Store a cacheable ``response`` (Django's UpdateCacheMiddleware); its key or None.
        On a TsotCache, a page rendered in ``took`` seconds is stored as the read-through's
        entry (``tsot.readthrough.store_entry``), so its first expiry is refreshed early too.

        The page is written before its Vary list (Django writes the list first): a first visit's
        waiters poll for the list, and must find the page once they see it, or each would
        render it again through the read-through."""
        recorder = _Recorder()
        found = self.storable(request, response, recorder)
        if found is not None:
            assert recorder.stored is not None
            cache: Any = self.cache
            page = _rendered(response)
            if took is not None and isinstance(cache, CacheOps):
                tkey, ttl = cache.tsot_key(found[0], None), cache.tsot_ttl(found[1])
                yield _Do("readthrough", "store_entry", (tkey, page, ttl, took))
            else:
                yield _set(found[0], page, found[1])
            yield _set(*recorder.stored)
        return found

    def page(self, request: HttpRequest, key: str, response: HttpResponseBase) -> Flow[Any]:
        """The response to store under ``key`` (the compute of the read-through), after its
        Vary list; raises _NotStored when it is not cacheable under ``key``."""
        recorder = _Recorder()
        found = self.storable(request, response, recorder)
        if found is None:
            raise _NotStored(response)
        assert recorder.stored is not None
        yield _set(*recorder.stored)
        if found != (key, self.read_timeout):
            yield _set(found[0], _rendered(response), found[1])  # its own Vary key or max-age
            raise _NotStored(response)
        return _rendered(response)

    def lease_or_wait(self, lease: str, look: Callable[[], Flow[Any]]) -> Flow[tuple[Any, bool]]:
        """Wait for what ``look`` finds (None while absent) unless this request takes
        ``lease``: ``(found, False)``; ``(None, True)``: the lease is taken and ``look`` still
        finds nothing (this request renders); ``(None, False)`` after lease_timeout."""
        lease_timeout = _lease_timeout(self.cache)
        deadline = time.monotonic() + lease_timeout
        pause = 0.005
        while True:
            if (yield _Do("cache", "add", (lease, 1, lease_timeout))):
                found = yield from look()  # the renderer before us may have just finished
                if found is None:
                    return None, True
                yield _Do("cache", "delete", (lease,))
                return found, False
            found = yield from look()
            if found is not None or time.monotonic() >= deadline:
                return found, False
            yield _Do("sleep", "", (pause,))
            pause = min(pause * 2, 0.05)

    @property
    def read_timeout(self) -> float:
        """The timeout a page is read through with (before its max-age is known)."""
        return self.cache_timeout if self.page_timeout is None else self.page_timeout


class CacheMiddleware(_Pages, django_cache.CacheMiddleware):
    """Django's CacheMiddleware with stampede protection and a coroutine path under ASGI.

    A GET whose key is known (its URL was cached before) is read through ``get_or_set``: on a
    TsotCache one request renders a missing page, hot pages are refreshed early and stale ones
    served within ``grace``. Other requests, and pages whose max-age or Vary key differs from
    the middleware's, are handled as Django does.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):  # get_response is a coroutine function (ASGI)
            return self.__acall__(request)
        if request.method != "GET":
            return super().__call__(request)
        return self.run(self.serve(request))

    async def __acall__(self, request: HttpRequest) -> Any:
        if request.method != "GET":
            return await self.arun(self.plain(request))
        return await self.arun(self.serve(request))

    def serve(self, request: HttpRequest) -> Flow[Any]:
        """A GET: a first visit waits for (or renders) the page that learns its Vary key; a
        known page is read through."""
        key = yield from self.lookup(request)
        if key is None:  # first visit: one request learns the Vary key, the others wait
            lease = _list_key(request, self.key_prefix) + LEASE_SUFFIX
            key, took = yield from self.lease_or_wait(lease, lambda: self.lookup(request))
            if key is None:
                try:
                    clock = readthrough.DEFAULT_TIMING.clock
                    start = clock()
                    response = yield _render(request)
                    # the Vary list outlives the page
                    yield from self.store(request, response, max(0.0, clock() - start))
                    return response
                finally:
                    if took:
                        yield _Do("cache", "delete", (lease,))
        rendered: list[bool] = []

        def render() -> Flow[Any]:
            rendered.append(True)
            return (yield from self.page(request, key, (yield _render(request))))

        try:
            response = yield from self.read_through(key, render)
        except _NotStored as not_stored:
            return not_stored.response
        return response if rendered else _with_age(response)

    def read_through(self, key: str, render: Callable[[], Flow[Any]]) -> Flow[Any]:
        """The page under ``key``, rendered by ``render`` if missing: a TsotCache's
        ``get_or_set`` (stampede-protected); on another cache Django's ``get_or_set`` algorithm
        (get, add, get), step by step (its ``aget_or_set`` would store a coroutine)."""
        if isinstance(self.cache, CacheOps):
            return (yield _Do("cache", "get_or_set", (key, render, self.read_timeout)))
        found = yield _get(key, _MISSING)
        if found is not _MISSING:
            return found
        page = yield from render()
        yield _Do("cache", "add", (key, page, self.read_timeout))
        return (yield _get(key, page))

    def plain(self, request: HttpRequest) -> Flow[Any]:
        """Django's fetch-then-update (a HEAD or another method under ASGI; the sync middleware
        leaves them to Django's own)."""
        if request.method not in ("GET", "HEAD"):
            return (yield _render(request))
        for method in ("GET", "HEAD") if request.method == "HEAD" else ("GET",):
            key = yield from self.lookup(request, method)
            response = (yield _get(key)) if key is not None else None
            if response is not None:
                return _with_age(response)
        response = yield _render(request)
        yield from self.store(request, response)
        return response


sleep: Callable[[float], None] = time.sleep
"""How the two-part middleware waits between polls (tests observe it)."""
asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

LEASE_SUFFIX = ":tsot-render"
"""The lease of the two-part middleware: a key next to the page's, added by the request that
renders it."""
_MISSING = object()


def _lease_timeout(cache: BaseCache) -> float:
    storage = getattr(cache, "storage", None)
    policy = getattr(storage, "policy", None)
    return float(getattr(policy, "lease_timeout", 10.0))


def _list_key(request: HttpRequest, key_prefix: str) -> str:
    """The key of the URL's Vary header list (Django's helpers make it; we only read it)."""
    probe = _Recorder()
    get_cache_key(request, key_prefix, "GET", cache=cast(Any, probe))
    assert probe.key is not None
    return probe.key


class FetchFromCacheMiddleware(_Pages, django_cache.FetchFromCacheMiddleware):
    """Django's FetchFromCacheMiddleware; on a TsotCache a GET of a known page is read through
    (lease, early refresh, grace): one request renders a missing page and the others wait for
    it, at most ``lease_timeout`` seconds; a page near expiry or stale within grace is served
    to all but the one request that won its refresh, which renders it. Awaited under ASGI. Use
    with tsot's UpdateCacheMiddleware, which stores the page and gives the lease back."""

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.process_request(request) or _next(self, request)

    def process_request(self, request: HttpRequest) -> Any:
        return self.run(self.fetch(request))

    async def __acall__(self, request: HttpRequest) -> Any:
        return await self.aprocess_request(request) or await _next(self, request)

    async def aprocess_request(self, request: HttpRequest) -> Any:
        """``process_request`` on the cache's async API."""
        return await self.arun(self.fetch(request))

    def fetch(self, request: HttpRequest) -> Flow[Any]:
        """Django's ``process_request``; a known page on a TsotCache is read through, and a
        missed GET waits for the request that renders it (or renders it, with the lease)."""
        if request.method not in ("GET", "HEAD"):
            request._cache_update_cache = False  # type: ignore[attr-defined]
            return None
        cache = self.cache
        if request.method == "GET" and isinstance(cache, CacheOps):
            key = yield from self.lookup(request)
            if key is not None:  # a known page: read through (lease, early refresh, grace)
                tkey, ttl = cache.tsot_key(key, None), cache.tsot_ttl(_middleware_seconds())
                begun = yield _Do("readthrough", "begin", (tkey, ttl))
                return _begun(request, key, *begun)
        for method in ("GET", "HEAD") if request.method == "HEAD" else ("GET",):
            key = yield from self.lookup(request, method)
            if key is None:
                break
            response = yield _get(key)
            if response is not None:
                request._cache_update_cache = False  # type: ignore[attr-defined]
                return _with_age(response)
        request._cache_update_cache = True  # type: ignore[attr-defined]
        key = (yield from self.lookup(request)) if request.method == "GET" else None
        if key is None:
            return None
        response, _ = yield from self.lease_or_wait(key + LEASE_SUFFIX, lambda: self._page(key))
        return self._waited(request, key, response)

    @staticmethod
    def _page(key: str) -> Flow[Any]:
        return (yield _get(key))

    @staticmethod
    def _waited(request: HttpRequest, key: str, response: Any) -> Any:
        if response is None:  # this request renders; UpdateCacheMiddleware frees the lease
            request._tsot_lease = key + LEASE_SUFFIX  # type: ignore[attr-defined]
            return None
        request._cache_update_cache = False  # type: ignore[attr-defined]
        return _with_age(response)


class UpdateCacheMiddleware(_Pages, django_cache.UpdateCacheMiddleware):
    """Django's UpdateCacheMiddleware; finishes the read-through FetchFromCacheMiddleware began
    (stores the page with its render time, or gives the lease up when the response is not
    cacheable under that key). Awaited under ASGI."""

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.process_response(request, _next(self, request))

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        pending = _pending(request)
        if pending is not None:
            return self.run(self.finish(request, response, *pending))
        try:
            return super().process_response(request, response)
        finally:
            lease = getattr(request, "_tsot_lease", None)
            if lease is not None:
                self.cache.delete(lease)

    async def __acall__(self, request: HttpRequest) -> Any:
        response = await _next(self, request)
        return await self.aprocess_response(request, response)

    async def aprocess_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        """``process_response`` on the cache's async API."""
        pending = _pending(request)
        if pending is not None:
            return await self.arun(self.finish(request, response, *pending))
        try:
            if getattr(request, "_cache_update_cache", False):
                await self.arun(self.store(request, response))
            return response
        finally:
            lease = getattr(request, "_tsot_lease", None)
            if lease is not None:
                await self.cache.adelete(lease)

    def finish(self, request: HttpRequest, response: Any, key: str, d: Deferred) -> Flow[Any]:
        """Store the page FetchFromCacheMiddleware's read-through waits for, or give it up
        (not cacheable, or under another key: stored as Django would)."""
        cache = cast(Any, self.cache)
        recorder = _Recorder()
        found = None
        try:
            if getattr(request, "_cache_update_cache", False):
                found = self.storable(request, response, recorder)
            if found is not None:
                assert recorder.stored is not None
                yield _set(*recorder.stored)  # the Vary list
        finally:
            if found is not None and found[0] == key:
                ttl = cache.tsot_ttl(found[1])
                yield _Do("readthrough", "finish", (d, _rendered(response), ttl))
            else:
                yield _Do("readthrough", "abandon", (d,))
        if found is not None and found[0] != key:
            yield _set(found[0], _rendered(response), found[1])
        return response


def _middleware_seconds() -> Any:
    """CACHE_MIDDLEWARE_SECONDS, the TTL a read-through begins with (Update stores the page
    with the one it computes from the response)."""
    from django.conf import settings

    return settings.CACHE_MIDDLEWARE_SECONDS


def _storage(cache: Any) -> Storage:
    """The primary Storage of a TsotCache."""
    return cache.storage  # type: ignore[no-any-return]


def _astorage(cache: Any) -> AsyncStorage:
    """The primary AsyncStorage of a TsotCache on the running loop."""
    return cache._stores.for_loop(asyncio.get_running_loop())[0]  # type: ignore[no-any-return]


def _begun(request: HttpRequest, key: str, value: Any, d: Deferred | None) -> Any:
    """FetchFromCacheMiddleware's answer to ``readthrough.begin``: the cached page, or None
    (this request renders; UpdateCacheMiddleware finishes the read-through)."""
    if d is None:
        request._cache_update_cache = False  # type: ignore[attr-defined]
        return _with_age(value)
    request._cache_update_cache = True  # type: ignore[attr-defined]
    request._tsot_deferred = (key, d)  # type: ignore[attr-defined]
    return None


def _pending(request: HttpRequest) -> tuple[str, Deferred] | None:
    """The read-through FetchFromCacheMiddleware began for ``request`` (taken: once)."""
    pending = getattr(request, "_tsot_deferred", None)
    if pending is not None:
        del request._tsot_deferred  # type: ignore[attr-defined]
    return pending


def cache_page(timeout: float, *, cache: str | None = None, key_prefix: str | None = None) -> Any:
    """Django's ``cache_page`` on tsot's CacheMiddleware: stampede-protected, and a coroutine
    view stays a coroutine (no thread hop)."""

    def decorator(view: Any) -> Any:
        from functools import wraps

        options: dict[str, Any] = {
            "page_timeout": timeout,
            "cache_alias": cache,
            "key_prefix": key_prefix,
        }
        if iscoroutinefunction(view):

            @wraps(view)
            async def awrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                async def render(req: HttpRequest) -> Any:
                    return await view(req, *args, **kwargs)

                return await CacheMiddleware(markcoroutinefunction(render), **options)(request)

            return awrapper

        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return CacheMiddleware(lambda req: view(req, *args, **kwargs), **options)(request)

        return wrapper

    return decorator
