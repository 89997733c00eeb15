"""Fixtures of the Flask suite: one Flask-Caching config per tsot_flask class and storage kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

from tests.helpers import FakeClock, pass_time
from tsot import parse_url
from tsot.config import backend_class
from tsot_flask import TsotCache


def server_url(request: pytest.FixtureRequest, fixture: str) -> str:
    """The URL a tests/servers fixture returns (a server the fixtures started)."""
    return str(request.getfixturevalue(fixture))


def _has_clock(scheme: str) -> bool:
    return any(o.name == "clock" for o in backend_class(scheme).OPTIONS)


def _query_options(url: str) -> dict[str, Any]:
    """A fixture URL's query options, to pass through CACHE_OPTIONS when the URL is rebuilt."""
    return dict(parse_url(url).query)


def _hostports(url: str) -> list[str]:
    loc = parse_url(url)
    return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in loc.hosts]


@dataclass(frozen=True)
class Kind:
    """One way to configure a tsot_flask class: ``config(url, prefix)`` gives the CACHE_* keys.

    ``fixture`` names the server fixture giving ``url`` (None: in-process memory). ``shared``
    is True when two configs with the same ``url`` see the same data.
    """

    id: str
    cache_type: str
    storage: str
    fixture: str | None
    config: Callable[[str, str], dict[str, Any]]
    shared: bool = True


def _memory(url: str, prefix: str) -> dict[str, Any]:
    return {"CACHE_TYPE": "tsot_flask.MemoryCache", "CACHE_KEY_PREFIX": prefix}


def _tsot(url: str, prefix: str) -> dict[str, Any]:
    return {"CACHE_TYPE": "tsot_flask.TsotCache", "CACHE_TSOT_URL": url, "CACHE_KEY_PREFIX": prefix}


def _redis_url(url: str, prefix: str) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "tsot_flask.RedisCache",
        "CACHE_REDIS_URL": url.partition("?")[0],
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_OPTIONS": _query_options(url),
    }


def _redis_host(url: str, prefix: str) -> dict[str, Any]:
    loc = parse_url(url)
    ((host, port),) = loc.hosts
    config = {
        "CACHE_TYPE": "tsot_flask.RedisCache",
        "CACHE_REDIS_HOST": host,
        "CACHE_REDIS_PORT": port or 6379,
        "CACHE_REDIS_DB": int(loc.path.strip("/") or 0),
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_OPTIONS": _query_options(url),
    }
    if loc.password:
        config["CACHE_REDIS_PASSWORD"] = loc.password
    return config


def _memcached(url: str, prefix: str) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "tsot_flask.MemcachedCache",
        "CACHE_MEMCACHED_SERVERS": _hostports(url),
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_OPTIONS": _query_options(url),
    }


def _rocksdb(url: str, prefix: str) -> dict[str, Any]:
    loc = parse_url(url)
    path = (loc.hosts[0][0] if loc.hosts else "") + loc.path
    return {
        "CACHE_TYPE": "tsot_flask.RocksDBCache",
        "CACHE_DIR": path,
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_OPTIONS": _query_options(url),
    }


KINDS = {
    k.id: k
    for k in (
        Kind("memory", "MemoryCache", "memory", None, _memory, shared=False),
        Kind("tsot-memory", "TsotCache", "memory", None, _tsot),
        Kind("redis", "RedisCache", "redis", "redis_url", _redis_url),
        Kind("redis-host", "RedisCache", "redis", "redis_url", _redis_host),
        Kind("tsot-redis", "TsotCache", "redis", "redis_url", _tsot),
        Kind("tsot-redis-sentinel", "TsotCache", "redis", "redis_sentinel_url", _tsot),
        Kind("tsot-redis-cluster", "TsotCache", "redis", "redis_cluster_url", _tsot),
        Kind("memcached", "MemcachedCache", "memcached", "memcached_url", _memcached),
        Kind("tsot-memcached", "TsotCache", "memcached", "memcached_url", _tsot),
        Kind("rocksdb", "RocksDBCache", "rocksdb", "rocksdb_url", _rocksdb),
        Kind("tsot-rocksdb", "TsotCache", "rocksdb", "rocksdb_url", _tsot),
    )
}
PER_STORAGE = ["memory", "redis", "memcached", "rocksdb"]
"""One class per storage kind: the per-kind classes, for the Flask app suite."""
SHARED = ["tsot-memory", "tsot-redis", "tsot-memcached", "tsot-rocksdb"]
"""Configs where two apps can point at the same location, for the isolation suite."""


class Harness:
    """Builds Flask apps with Flask-Caching on one kind; moves (or waits for) time."""

    def __init__(self, kind: Kind, url: str, clock: FakeClock) -> None:
        self.kind = kind
        self.url = url
        self.clock = clock
        self.uses_clock = _has_clock(kind.storage)

    def config(self, prefix: str | None = None, **extra: Any) -> dict[str, Any]:
        """The CACHE_* keys for a fresh prefix (or ``prefix``), with ``extra`` on top."""
        config = self.kind.config(self.url, prefix or f"f{uuid.uuid4().hex[:10]}_")
        if self.uses_clock:
            config["CACHE_OPTIONS"] = {**config.get("CACHE_OPTIONS", {}), "clock": self.clock}
        options = {**config.get("CACHE_OPTIONS", {}), **extra.pop("CACHE_OPTIONS", {})}
        config.update(extra)
        if options:
            config["CACHE_OPTIONS"] = options
        return config

    def app(self, prefix: str | None = None, **extra: Any) -> tuple[Flask, Cache]:
        """A Flask app with one Cache on this kind; DEBUG so cache errors are not swallowed."""
        app = Flask(f"flask_test_{uuid.uuid4().hex[:6]}")
        app.config.update(DEBUG=True, **self.config(prefix, **extra))
        return app, Cache(app)

    def backend(self, prefix: str | None = None, **extra: Any) -> TsotCache:
        """The backend object Flask-Caching builds through ``factory`` for a fresh app."""
        app, cache = self.app(prefix, **extra)
        with app.app_context():
            backend = cache.cache
        assert isinstance(backend, TsotCache)
        return backend

    def pass_time(self, seconds: float, done: Callable[[], bool]) -> None:
        """Let ``seconds`` pass (the clock moves, or real time is polled), then require done()."""
        pass_time(self.clock if self.uses_clock else None, seconds, done)

    def ttl(self, seconds: int) -> int:
        """A TTL for a test: long under a fake clock, 1 s on real time (kept short)."""
        return seconds if self.uses_clock else 1


def make_harness(request: pytest.FixtureRequest, kind_id: str) -> Harness:
    kind = KINDS[kind_id]
    if kind.fixture is None:
        url = f"memory://flask-{uuid.uuid4().hex}"
    else:
        url = server_url(request, kind.fixture)
    clock: FakeClock = request.getfixturevalue("clock")
    return Harness(kind, url, clock)


@pytest.fixture(params=list(KINDS))
def every_class(request: pytest.FixtureRequest) -> Harness:
    """Every tsot_flask class on every storage kind it supports."""
    return make_harness(request, request.param)


@pytest.fixture(params=PER_STORAGE)
def per_storage(request: pytest.FixtureRequest) -> Harness:
    """The per-kind class of each storage kind."""
    return make_harness(request, request.param)


@pytest.fixture(params=SHARED)
def shared_location(request: pytest.FixtureRequest) -> Harness:
    """TsotCache on a location two apps can share, on each storage kind."""
    return make_harness(request, request.param)
