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
from collections.abc import Awaitable, Callable
from typing import Any, cast

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
from tsot.readthrough import Deferred

from .ops import CacheOps

Render = Callable[[HttpRequest], HttpResponseBase]
ARender = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
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


class _Pages:
    """Django's rules for which response is cached, for how long and under which key."""

    cache_alias: str
    cache_timeout: float
    key_prefix: str
    page_timeout: float | None

    @property
    def cache(self) -> BaseCache:
        from django.core.cache import caches

        return caches[self.cache_alias]

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

    def lookup_key(self, request: HttpRequest, method: str = "GET") -> str | None:
        return get_cache_key(request, self.key_prefix, method, cache=self.cache)

    async def alookup_key(self, request: HttpRequest, method: str = "GET") -> str | None:
        probe = _Recorder()
        get_cache_key(
            request, self.key_prefix, method, cache=cast(Any, probe)
        )  # learns the list's key
        assert probe.key is not None
        headers = await self.cache.aget(probe.key)
        if headers is None:
            return None
        return get_cache_key(request, self.key_prefix, method, cache=cast(Any, _Recorder(headers)))

    def store(
        self, request: HttpRequest, response: HttpResponseBase, took: float | None = None
    ) -> Any:
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
            if took is not None and isinstance(cache, CacheOps):
                tkey, ttl = cache.tsot_key(found[0], None), cache.tsot_ttl(found[1])
                readthrough.store_entry(_storage(cache), tkey, _rendered(response), ttl, took)
            else:
                cache.set(found[0], _rendered(response), found[1])
            cache.set(*recorder.stored)
        return found

    async def astore(
        self, request: HttpRequest, response: HttpResponseBase, took: float | None = None
    ) -> Any:
        recorder = _Recorder()
        found = self.storable(request, response, recorder)
        if found is not None:
            assert recorder.stored is not None
            cache: Any = self.cache
            page = _rendered(response)
            if took is not None and isinstance(cache, CacheOps):  # page, then list
                tkey, ttl = cache.tsot_key(found[0], None), cache.tsot_ttl(found[1])
                await readthrough.astore_entry(_astorage(cache), tkey, page, ttl, took)
            else:
                await cache.aset(found[0], page, found[1])
            await cache.aset(*recorder.stored)
        return found

    def page(self, request: HttpRequest, key: str, response: HttpResponseBase) -> Any:
        """The response to store under ``key`` (the compute of the read-through); raises
        _NotStored when it is not cacheable under ``key``."""
        cache = self.cache
        found = self.storable(request, response, cache)
        if found is None:
            raise _NotStored(response)
        if found != (key, self.read_timeout):
            cache.set(found[0], _rendered(response), found[1])  # its own Vary key or max-age
            raise _NotStored(response)
        return _rendered(response)

    async def apage(self, request: HttpRequest, key: str, response: HttpResponseBase) -> Any:
        recorder = _Recorder()
        found = self.storable(request, response, recorder)
        if found is None:
            raise _NotStored(response)
        assert recorder.stored is not None
        await self.cache.aset(*recorder.stored)
        if found != (key, self.read_timeout):
            await self.cache.aset(found[0], _rendered(response), found[1])
            raise _NotStored(response)
        return _rendered(response)

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
        key = self.lookup_key(request)
        if key is None:  # first visit: one request learns the Vary key, the others wait
            key, lease = self._first_visit(request)
            if key is None:
                try:
                    clock = readthrough.DEFAULT_TIMING.clock
                    start = clock()
                    response = _next(self, request)
                    # the Vary list outlives the page
                    self.store(request, response, max(0.0, clock() - start))
                    return response
                finally:
                    if lease is not None:
                        self.cache.delete(lease)
        rendered: list[bool] = []

        def render() -> Any:
            rendered.append(True)
            return self.page(request, key, _next(self, request))

        try:
            response = self.cache.get_or_set(key, render, self.read_timeout)
        except _NotStored as not_stored:
            return not_stored.response
        return response if rendered else _with_age(response)

    def _first_visit(self, request: HttpRequest) -> tuple[str | None, str | None]:
        """Wait for the first render of a URL (its Vary list): ``(page key, None)`` once
        known, ``(None, lease)`` to render it with the lease, ``(None, None)`` after
        lease_timeout."""
        cache = self.cache
        steps = _first_visit_steps(_list_key(request, self.key_prefix), _lease_timeout(cache))
        try:
            step = next(steps)
            while True:
                reply: Any = None
                op, arg = step
                if op == "add":
                    reply = cache.add(arg, 1, _lease_timeout(cache))
                elif op == "lookup":
                    reply = self.lookup_key(request)
                elif op == "delete":
                    cache.delete(arg)
                else:
                    sleep(arg)
                step = steps.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _afirst_visit(self, request: HttpRequest) -> tuple[str | None, str | None]:
        cache = self.cache
        steps = _first_visit_steps(_list_key(request, self.key_prefix), _lease_timeout(cache))
        try:
            step = next(steps)
            while True:
                reply: Any = None
                op, arg = step
                if op == "add":
                    reply = await cache.aadd(arg, 1, _lease_timeout(cache))
                elif op == "lookup":
                    reply = await self.alookup_key(request)
                elif op == "delete":
                    await cache.adelete(arg)
                else:
                    await asleep(arg)
                step = steps.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def __acall__(self, request: HttpRequest) -> Any:
        cache = self.cache
        key = await self.alookup_key(request) if request.method == "GET" else None
        if request.method == "GET" and key is None and isinstance(cache, CacheOps):
            key, lease = await self._afirst_visit(request)
            if key is None:
                try:
                    clock = readthrough.DEFAULT_TIMING.clock
                    start = clock()
                    response = await _next(self, request)
                    await self.astore(request, response, max(0.0, clock() - start))
                    return response
                finally:
                    if lease is not None:
                        await cache.adelete(lease)
        if key is None or not isinstance(cache, CacheOps):
            return await self._aplain(request)
        rendered: list[bool] = []

        async def render() -> Any:
            rendered.append(True)
            return await self.apage(request, key, await _next(self, request))

        try:
            response = await cache.aget_or_set(key, render, self.read_timeout)
        except _NotStored as not_stored:
            return not_stored.response
        return response if rendered else _with_age(response)

    async def _aplain(self, request: HttpRequest) -> Any:
        """Django's fetch-then-update, awaited (HEAD, a first visit, a non-tsot cache)."""
        if request.method not in ("GET", "HEAD"):
            return await _next(self, request)
        for method in ("GET", "HEAD") if request.method == "HEAD" else ("GET",):
            key = await self.alookup_key(request, method)
            response = await self.cache.aget(key) if key is not None else None
            if response is not None:
                return _with_age(response)
        response = await _next(self, request)
        await self.astore(request, response)
        return response


sleep: Callable[[float], None] = time.sleep
"""How the two-part middleware waits between polls (tests observe it)."""
asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

LEASE_SUFFIX = ":tsot-render"
"""The lease of the two-part middleware: a key next to the page's, added by the request that
renders it."""


def _lease_timeout(cache: BaseCache) -> float:
    storage = getattr(cache, "storage", None)
    policy = getattr(storage, "policy", None)
    return float(getattr(policy, "lease_timeout", 10.0))


def _fetch_steps(key: str, lease_timeout: float) -> Any:
    """The wait of FetchFromCacheMiddleware on a miss, as steps for a sync or async driver:
    yields ``("add", lease)``, ``("get", key)``, ``("delete", lease)``, ``("sleep", seconds)``;
    returns the cached
    response, or None with the lease taken (this request renders) or after lease_timeout."""
    lease = key + LEASE_SUFFIX
    deadline = time.monotonic() + lease_timeout
    pause = 0.005
    while True:
        if (yield ("add", lease)):
            # the renderer before us may have stored its page and freed the lease after our
            # read: read again before rendering
            response = yield ("get", key)
            if response is None:
                return None
            yield ("delete", lease)
            return response
        response = yield ("get", key)
        if response is not None or time.monotonic() >= deadline:
            return response
        yield ("sleep", pause)
        pause = min(pause * 2, 0.05)


def _list_key(request: HttpRequest, key_prefix: str) -> str:
    """The key of the URL's Vary header list (Django's helpers make it; we only read it)."""
    probe = _Recorder()
    get_cache_key(request, key_prefix, "GET", cache=cast(Any, probe))
    assert probe.key is not None
    return probe.key


def _first_visit_steps(list_key: str, lease_timeout: float) -> Any:
    """The wait of a first visit, as steps: yields ``("add", lease)``, ``("lookup", None)``
    (the page key, None while the Vary list is unknown), ``("delete", lease)``,
    ``("sleep", seconds)``; returns
    ``(page key, None)``, ``(None, lease)`` (this request renders) or ``(None, None)``."""
    lease = list_key + LEASE_SUFFIX
    deadline = time.monotonic() + lease_timeout
    pause = 0.005
    while True:
        if (yield ("add", lease)):
            key = yield ("lookup", None)  # the renderer before us may have just finished
            if key is None:
                return None, lease
            yield ("delete", lease)
            return key, None
        key = yield ("lookup", None)
        if key is not None:
            return key, None
        if time.monotonic() >= deadline:
            return None, None
        yield ("sleep", pause)
        pause = min(pause * 2, 0.05)


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
        cache = self.cache
        if request.method == "GET" and isinstance(cache, CacheOps):
            key = self.lookup_key(request)
            if key is not None:  # a known page: read through (lease, early refresh, grace)
                tkey, ttl = cache.tsot_key(key, None), cache.tsot_ttl(_middleware_seconds())
                return _begun(request, key, *readthrough.begin(_storage(cache), tkey, ttl))
        response = super().process_request(request)
        key = self._waits(request, response)
        if key is None:
            return response
        cache = self.cache
        steps = _fetch_steps(key, _lease_timeout(cache))
        try:
            step = next(steps)
            while True:
                reply: Any
                op, arg = step
                if op == "add":
                    reply = cache.add(arg, 1, _lease_timeout(cache))
                elif op == "get":
                    reply = cache.get(arg)
                elif op == "delete":
                    reply = cache.delete(arg)
                else:
                    sleep(arg)
                    reply = None
                step = steps.send(reply)
        except StopIteration as stop:
            return self._waited(request, key, stop.value)

    async def __acall__(self, request: HttpRequest) -> Any:
        return await self.aprocess_request(request) or await _next(self, request)

    async def aprocess_request(self, request: HttpRequest) -> Any:
        """``process_request`` on the cache's async API."""
        if request.method not in ("GET", "HEAD"):
            request._cache_update_cache = False  # type: ignore[attr-defined]
            return None
        cache = self.cache
        if request.method == "GET" and isinstance(cache, CacheOps):
            key = await self.alookup_key(request)
            if key is not None:  # a known page: read through (lease, early refresh, grace)
                tkey, ttl = cache.tsot_key(key, None), cache.tsot_ttl(_middleware_seconds())
                return _begun(request, key, *await readthrough.abegin(_astorage(cache), tkey, ttl))
        response = None
        for method in ("GET", "HEAD") if request.method == "HEAD" else ("GET",):
            key = await self.alookup_key(request, method)
            if key is None:
                break
            response = await cache.aget(key)
            if response is not None:
                request._cache_update_cache = False  # type: ignore[attr-defined]
                return _with_age(response)
        request._cache_update_cache = True  # type: ignore[attr-defined]
        key = await self.alookup_key(request) if request.method == "GET" else None
        if key is None:
            return None
        steps = _fetch_steps(key, _lease_timeout(cache))
        try:
            step = next(steps)
            while True:
                reply: Any
                op, arg = step
                if op == "add":
                    reply = await cache.aadd(arg, 1, _lease_timeout(cache))
                elif op == "get":
                    reply = await cache.aget(arg)
                elif op == "delete":
                    reply = await cache.adelete(arg)
                else:
                    await asleep(arg)
                    reply = None
                step = steps.send(reply)
        except StopIteration as stop:
            return self._waited(request, key, stop.value)

    def _waits(self, request: HttpRequest, response: Any) -> str | None:
        """The key a missed GET of a known page waits on (None: nothing to wait for)."""
        if response is not None or request.method != "GET":
            return None
        if not getattr(request, "_cache_update_cache", False):
            return None
        return self.lookup_key(request)

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
            return self._finish(request, response, *pending)
        try:
            return super().process_response(request, response)
        finally:
            lease = getattr(request, "_tsot_lease", None)
            if lease is not None:
                self.cache.delete(lease)

    async def __acall__(self, request: HttpRequest) -> Any:
        response = await _next(self, request)
        return await self.aprocess_response(request, response)

    def _finish(self, request: HttpRequest, response: Any, key: str, d: Deferred) -> Any:
        """Store the page FetchFromCacheMiddleware's read-through waits for, or give it up
        (not cacheable, or under another key: stored as Django would)."""
        cache = cast(Any, self.cache)
        storage = _storage(cache)
        found = None
        try:
            if getattr(request, "_cache_update_cache", False):
                found = self.storable(request, response, cache)
        finally:
            if found is not None and found[0] == key:
                readthrough.finish(storage, d, _rendered(response), cache.tsot_ttl(found[1]))
            else:
                readthrough.abandon(storage, d)
        if found is not None and found[0] != key:
            cache.set(found[0], _rendered(response), found[1])
        return response

    async def _afinish(self, request: HttpRequest, response: Any, key: str, d: Deferred) -> Any:
        cache = cast(Any, self.cache)
        storage = _astorage(cache)
        recorder = _Recorder()
        found = None
        try:
            if getattr(request, "_cache_update_cache", False):
                found = self.storable(request, response, recorder)
            if found is not None:
                assert recorder.stored is not None
                await cache.aset(*recorder.stored)  # the Vary list
        finally:
            if found is not None and found[0] == key:
                await readthrough.afinish(storage, d, _rendered(response), cache.tsot_ttl(found[1]))
            else:
                await readthrough.aabandon(storage, d)
        if found is not None and found[0] != key:
            await cache.aset(found[0], _rendered(response), found[1])
        return response

    async def aprocess_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        """``process_response`` on the cache's async API."""
        pending = _pending(request)
        if pending is not None:
            return await self._afinish(request, response, *pending)
        try:
            if getattr(request, "_cache_update_cache", False):
                await self.astore(request, response)
            return response
        finally:
            lease = getattr(request, "_tsot_lease", None)
            if lease is not None:
                await self.cache.adelete(lease)


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
