"""Memcached: pymemcache's Client (the limit), PyMemcacheCache, Flask-Caching, tsot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import TTL, Api, Contender, Kind, core, django, dumps, flask, loads


def raw_api(where: str) -> Api:
    """A new pymemcache ``Client`` (one per thread: a Client is one socket, not thread-safe).

    Replies are awaited (``default_noreply=False``) as every cache here does for its writes.
    """
    from pymemcache.client.base import Client

    host, port = where.rsplit(":", 1)
    c = Client((host, int(port)), default_noreply=False)

    def get(key: str) -> Any:
        return loads(c.get(key))

    def set(key: str, value: Any) -> None:
        c.set(key, dumps(value), expire=TTL)

    def add(key: str, value: Any) -> bool:
        return bool(c.add(key, dumps(value), expire=TTL))

    def delete(key: str) -> bool:
        return bool(c.delete(key))

    def incr(key: str, delta: int = 1) -> int:
        return int(c.incr(key, delta))

    def get_many(keys: list[str]) -> dict[str, Any]:
        return {k: loads(v) for k, v in c.get_many(keys).items()}

    def set_many(mapping: Mapping[str, Any]) -> None:
        c.set_many({k: dumps(v) for k, v in mapping.items()}, expire=TTL)

    return Api(get, set, add, delete, incr, get_many, set_many)


def flask_client(where: str) -> Any:
    """Flask-Caching's MemcachedCache takes "a compatible client": pymemcache's pooled one.

    (Its own server-list form needs pylibmc or python-memcached; pymemcache is this project's
    driver, and pooling makes it safe under threads.)
    """
    from pymemcache import serde
    from pymemcache.client.base import PooledClient

    host, port = where.rsplit(":", 1)
    return PooledClient((host, int(port)), serde=serde.pickle_serde, default_noreply=False)


def memcached_kind(where: str, _tmp: Path) -> Kind:
    caches = {
        "memcached-django": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": where,
        },
        "memcached-tsot": {"BACKEND": "tsot_django.MemcachedCache", "LOCATION": where},
    }
    sync_raw = Contender("pymemcache Client", "raw", api=lambda: raw_api(where))
    dj_pymemcache = django("Django PyMemcacheCache", "peer", "memcached-django")
    tsot_core, tsot_async = core(f"memcached://{where}")
    dj_tsot = django("tsot_django MemcachedCache", "tsot", "memcached-tsot")
    contenders = [
        sync_raw,
        dj_pymemcache,
        flask("Flask-Caching MemcachedCache", "peer",
              {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": flask_client(where)}),
        tsot_core,
        tsot_async,
        dj_tsot,
        flask("tsot_flask MemcachedCache", "tsot",
              {"CACHE_TYPE": "tsot_flask.MemcachedCache", "CACHE_MEMCACHED_SERVERS": [where]}),
    ]  # fmt: skip
    async_contenders = [
        Contender("pymemcache Client, one caller (reference)", "ref", api=sync_raw.api),
        dj_pymemcache,
        tsot_async,
        dj_tsot,
    ]
    return Kind(
        "memcached", "Memcached", contenders, async_contenders=async_contenders, caches=caches
    )
