"""Helpers of the Django suite: one CACHES configuration per tsot_django class and storage kind."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import FakeClock, pass_time
from tsot import Storage, parse_url
from tsot.config import backend_class


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    """A customized cache key function (Django's tests use the same one)."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def server_url(request: pytest.FixtureRequest, fixture: str) -> str:
    """The URL a tests/servers fixture returns (a server the fixtures started)."""
    return str(request.getfixturevalue(fixture))


def _query(url: str) -> dict[str, Any]:
    return dict(parse_url(url).query)


def _memory_name(url: str) -> tuple[Any, dict[str, Any]]:
    return parse_url(url).hosts[0][0], _query(url)


def _as_url(url: str) -> tuple[Any, dict[str, Any]]:
    return url, {}


def _redis_list(url: str) -> tuple[Any, dict[str, Any]]:
    return [url.partition("?")[0]], _query(url)


def _redis_local(url: str) -> tuple[Any, dict[str, Any]]:
    """RedisCache with its local cache on (hits served from process memory, tracked)."""
    return [url.partition("?")[0]], {**_query(url), "LOCAL_CACHE": True}


def _memcached(url: str) -> tuple[Any, dict[str, Any]]:
    hosts = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parse_url(url).hosts]
    return ";".join(hosts), _query(url)


def _rocksdb_path(url: str) -> tuple[Any, dict[str, Any]]:
    loc = parse_url(url)
    return (loc.hosts[0][0] if loc.hosts else "") + loc.path, _query(url)


@dataclass(frozen=True)
class Kind:
    """A tsot_django class on a storage kind; ``location`` turns a tsot URL into its LOCATION
    (plus OPTIONS taken from the URL query). ``fixture`` names the server fixture (None: memory).
    """

    id: str
    backend: str
    storage: str
    fixture: str | None
    location: Callable[[str], tuple[Any, dict[str, Any]]]


KINDS = {
    k.id: k
    for k in (
        Kind("memory", "tsot_django.MemoryCache", "memory", None, _memory_name),
        Kind("tsot-memory", "tsot_django.TsotCache", "memory", None, _as_url),
        Kind("redis", "tsot_django.RedisCache", "redis", "redis_url", _redis_list),
        Kind("tsot-redis", "tsot_django.TsotCache", "redis", "redis_url", _as_url),
        Kind("redis-local", "tsot_django.RedisCache", "redis", "redis_url", _redis_local),
        Kind("memcached", "tsot_django.MemcachedCache", "memcached", "memcached_url", _memcached),
        Kind("tsot-memcached", "tsot_django.TsotCache", "memcached", "memcached_url", _as_url),
        Kind("rocksdb", "tsot_django.RocksDBCache", "rocksdb", "rocksdb_url", _rocksdb_path),
        Kind("tsot-rocksdb", "tsot_django.TsotCache", "rocksdb", "rocksdb_url", _as_url),
    )
}
PER_STORAGE = ["memory", "redis", "memcached", "rocksdb"]
"""The per-kind classes, one per storage kind (for the request-level suites)."""


class Env:
    """CACHES settings for one kind on a fresh namespace; moves (or waits for) time."""

    def __init__(self, kind: Kind, url: str, clock: FakeClock) -> None:
        self.kind = kind
        self.url = url
        self.clock = clock
        self.namespace = f"dj{uuid.uuid4().hex[:12]}"
        self.uses_clock = any(o.name == "clock" for o in backend_class(kind.storage).OPTIONS)

    def options(self, **extra: Any) -> dict[str, Any]:
        location_options = self.kind.location(self.url)[1]
        options: dict[str, Any] = {**location_options, "NAMESPACE": self.namespace}
        if self.uses_clock:
            options["clock"] = self.clock
        options.update(extra)
        return options

    def entry(self, options: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """One CACHES entry on this kind's location and namespace."""
        return {
            "BACKEND": self.kind.backend,
            "LOCATION": self.kind.location(self.url)[0],
            "OPTIONS": self.options(**(options or {})),
            **params,
        }

    def caches_setting(self, **params: Any) -> dict[str, dict[str, Any]]:
        """Django's test aliases (tests/cache/tests.py), all sharing one location and namespace."""
        return {
            "default": self.entry(**params),
            "prefix": self.entry(KEY_PREFIX=f"cacheprefix{uuid.uuid4().hex[:6]}", **params),
            "v2": self.entry(VERSION=2, **params),
            "custom_key": self.entry(KEY_FUNCTION=custom_key_func, **params),
            "custom_key2": self.entry(
                KEY_FUNCTION="tests.django.support.custom_key_func", **params
            ),
        }

    def storage(self) -> Storage:
        """A plain tsot Storage on the same location and namespace (to inspect TTLs)."""
        opts: dict[str, Any] = {"namespace": self.namespace}
        if self.uses_clock:
            opts["clock"] = self.clock
        return Storage.from_url(self.url, **opts)

    def ttl(self, cache: Any, key: str) -> float | None:
        """Seconds left for ``key`` of ``cache`` (inf: never expires; None: missing)."""
        with self.storage() as s:
            return s.ttl(cache.make_key(key))

    def pass_time(self, seconds: float, done: Callable[[], bool]) -> None:
        """Let ``seconds`` pass (the clock moves, or real time is polled), then require done()."""
        pass_time(self.clock if self.uses_clock else None, seconds, done)


def close_to(value: float | None, expected: float, slack: float | None = None) -> bool:
    """``value`` (a ttl in seconds) is within ``slack`` seconds below ``expected``, or less
    than a second above it (memcached keeps whole seconds and rounds a fraction up).

    The default slack is 2 s, and 5 s past 30 days, where memcached holds an absolute Unix
    time and tsot reports up to 2 s less (docs/backends/memcached.md).
    """
    if value is None:
        return False
    if math.isinf(expected):
        return math.isinf(value)
    if slack is None:
        slack = 2.0 if expected <= 30 * 86400 else 5.0
    return expected - slack <= value < math.floor(expected) + 1
