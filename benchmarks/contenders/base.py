"""The contender model and the adapters that give every cache one call shape (Django's).

Adapters bind the cache's own methods wherever the shapes already match, so a measured call is
the cache's call and nothing more; only Flask's ``get_many(*keys)`` needs a small wrapper.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

TTL = 300
"""Seconds; every write in every scenario expires after this (Django's default TIMEOUT)."""

Role = Literal["raw", "peer", "tsot", "ref"]
"""raw: the limit; peer: other caches; tsot: ours; ref: shown for reference, never a baseline."""


@dataclass(frozen=True)
class Api:
    """Django-shaped cache calls; ``is_async`` means each returns an awaitable."""

    get: Callable[..., Any]
    set: Callable[..., Any]
    add: Callable[..., Any]
    delete: Callable[..., Any]
    incr: Callable[..., Any]
    get_many: Callable[..., Any]
    set_many: Callable[..., Any]
    is_async: bool = False


@dataclass
class FlaskBench:
    """A Flask app with one Flask-Caching ``Cache`` and a ``@cached`` page at ``/<run>``."""

    app: Any
    cache: Any
    renders: list[int]


@dataclass
class Contender:
    """One row of a table: a name, its role and the ways a scenario can reach it.

    ``api`` is called once per thread (Django hands each thread its own cache object);
    ``aapi`` gives the asyncio form. A factory that raises makes the row "not available".
    """

    name: str
    role: Role
    api: Callable[[], Api] | None = None
    aapi: Callable[[], Api] | None = None
    django_alias: str | None = None
    flask: Callable[[], FlaskBench] | None = None


@dataclass
class Kind:
    """A storage kind: its contenders and the Django CACHES aliases they need."""

    name: str
    title: str
    contenders: list[Contender]
    async_contenders: list[Contender] = field(default_factory=list)
    memory_contenders: list[Contender] = field(default_factory=list)
    caches: dict[str, dict[str, Any]] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)


# -- raw clients: the least any cache must do (ints as decimal, everything else pickled) -------


def dumps(value: object) -> bytes:
    if type(value) is int:
        return str(value).encode()
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def loads(data: bytes | None) -> Any:
    if data is None:
        return None
    # A pickle starts with the PROTO opcode; testing it costs less than Django's try-int-first.
    return pickle.loads(data) if data[:1] == b"\x80" else int(data)


# -- frameworks and tsot's core ---------------------------------------------------------------


def django(name: str, role: Role, alias: str) -> Contender:
    """A Django cache alias, sync and async (Django's own ``a*`` methods or the backend's)."""

    def api() -> Api:
        from django.core.cache import caches

        c = caches[alias]
        return Api(c.get, c.set, c.add, c.delete, c.incr, c.get_many, c.set_many)

    def aapi() -> Api:
        from django.core.cache import caches

        c = caches[alias]
        return Api(c.aget, c.aset, c.aadd, c.adelete, c.aincr, c.aget_many, c.aset_many, True)

    return Contender(name, role, api=api, aapi=aapi, django_alias=alias)


def flask(name: str, role: Role, config: dict[str, Any]) -> Contender:
    """A Flask-Caching ``Cache`` configured with ``config`` (one app per contender)."""

    @functools.cache
    def bench() -> FlaskBench:
        from flask import Flask
        from flask_caching import Cache

        app = Flask(f"bench-{name}")
        app.config.update(SECRET_KEY="bench-not-secret", CACHE_DEFAULT_TIMEOUT=TTL, **config)
        cache = Cache(app)
        renders = [0]

        @app.route("/<run>")
        @cache.cached(timeout=TTL)
        def page(run: str) -> str:
            renders[0] += 1
            return "<p>" + "cached page " * 50 + "</p>"

        return FlaskBench(app, cache, renders)

    def api() -> Api:
        c = bench().cache

        def get_many(keys: list[str]) -> list[Any]:
            return c.get_many(*keys)  # type: ignore[no-any-return]

        return Api(c.get, c.set, c.add, c.delete, c.cache.inc, get_many, c.set_many)

    return Contender(name, role, api=api, flask=bench)


SIGNING_SECRET = "benchmark-signing-secret-32-bytes"
"""The secret of the signing rows (``signing``): only its length matters to the cost."""


def core(url: str, label: str = "", **options: Any) -> list[Contender]:
    """tsot's ``Storage`` and ``AsyncStorage`` on ``url`` (TTL 300 s like the others); ``label``
    is added to both names (rows of the same storage with other options)."""

    @functools.cache
    def storage() -> Any:
        from tsot import Storage

        return Storage.from_url(url, default_ttl=TTL, **options)

    def api() -> Api:
        s = storage()
        return Api(s.load, s.store, s.add, s.delete, s.incr, s.load_many, s.store_many)

    def aapi() -> Api:
        from tsot import AsyncStorage

        s = AsyncStorage.from_url(url, default_ttl=TTL, **options)
        return Api(s.load, s.store, s.add, s.delete, s.incr, s.load_many, s.store_many, True)

    return [
        Contender(f"tsot Storage{label}", "tsot", api=api),
        Contender(f"tsot AsyncStorage{label}", "tsot", aapi=aapi),
    ]


def signing(url: str) -> list[Contender]:
    """What signing costs: ``Storage`` rows with a secret, signing serialized objects only (the
    core default; the signature covers the stored key) and everything but ints (``sign="all"``,
    the adapters' default on Redis and memcached). Compare with the unsigned "tsot Storage"."""
    return [
        *core(url, ", signed objects", secret=SIGNING_SECRET)[:1],
        *core(url, ", sign=all", secret=SIGNING_SECRET, sign="all")[:1],
    ]
