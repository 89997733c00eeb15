"""Redis: redis-py + hiredis (the limit), Django's RedisCache, django-redis, Flask-Caching, tsot.

django-vcache (a Rust driver) and django-valkey (valkey-py) need Python >= 3.12 (the django61
lock has them): run the benchmark with ``.venv-dj61/bin/python -m benchmarks``; elsewhere their
rows say "not available".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import TTL, Api, Contender, Kind, core, django, dumps, flask, loads, signing


class RawRedis:
    """redis-py on a plain connection pool (hiredis parses replies when installed)."""

    def __init__(self, client: Any) -> None:
        self.r = client

    def api(self) -> Api:
        r = self.r

        def get(key: str) -> Any:
            return loads(r.get(key))

        def set(key: str, value: Any) -> None:
            r.set(key, dumps(value), ex=TTL)

        def add(key: str, value: Any) -> bool:
            return bool(r.set(key, dumps(value), ex=TTL, nx=True))

        def delete(key: str) -> bool:
            return bool(r.delete(key))

        def incr(key: str, delta: int = 1) -> int:
            return int(r.incrby(key, delta))

        def get_many(keys: list[str]) -> dict[str, Any]:
            return {k: loads(v) for k, v in zip(keys, r.mget(keys), strict=True) if v is not None}

        def set_many(mapping: Mapping[str, Any]) -> None:
            pipe = r.pipeline(transaction=False)
            for k, v in mapping.items():
                pipe.set(k, dumps(v), ex=TTL)
            pipe.execute()

        return Api(get, set, add, delete, incr, get_many, set_many)

    def aapi(self) -> Api:
        """The same calls on ``redis.asyncio`` (``self.r`` is then an asyncio client)."""
        r = self.r

        async def get(key: str) -> Any:
            return loads(await r.get(key))

        async def set(key: str, value: Any) -> None:
            await r.set(key, dumps(value), ex=TTL)

        async def add(key: str, value: Any) -> bool:
            return bool(await r.set(key, dumps(value), ex=TTL, nx=True))

        async def delete(key: str) -> bool:
            return bool(await r.delete(key))

        async def incr(key: str, delta: int = 1) -> int:
            return int(await r.incrby(key, delta))

        async def get_many(keys: list[str]) -> dict[str, Any]:
            return {
                k: loads(v) for k, v in zip(keys, await r.mget(keys), strict=True) if v is not None
            }

        async def set_many(mapping: Mapping[str, Any]) -> None:
            pipe = r.pipeline(transaction=False)
            for k, v in mapping.items():
                pipe.set(k, dumps(v), ex=TTL)
            await pipe.execute()

        return Api(get, set, add, delete, incr, get_many, set_many, True)


LOCAL = "tsot_django RedisCache, local_cache"
MEMORY_REF = "tsot_django MemoryCache (reference)"
"""In the Redis table so that the local cache's targets compare rows of one run."""


def redis_kind(where: str, _tmp: Path) -> Kind:
    url = f"redis://{where}/0"

    @functools.cache
    def raw() -> RawRedis:
        import redis

        return RawRedis(redis.Redis(connection_pool=redis.ConnectionPool.from_url(url)))

    def raw_async() -> Api:
        import redis.asyncio

        return RawRedis(redis.asyncio.Redis.from_url(url)).aapi()

    caches: dict[str, dict[str, Any]] = {
        "redis-django": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        "redis-django-redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url},
        "redis-tsot": {"BACKEND": "tsot_django.RedisCache", "LOCATION": url},
        "redis-tsot-local": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": f"{url}?local_cache=1",
        },
        "redis-tsot-memory": {"BACKEND": "tsot_django.MemoryCache", "LOCATION": "bench-redis-ref"},
        # pickle, like every other contender (django-vcache defaults to msgpack)
        "redis-vcache": {
            "BACKEND": "django_vcache.backend.ValkeyCache",
            "LOCATION": url.replace("redis://", "valkey://", 1),
            "OPTIONS": {"SERIALIZER": "pickle"},
        },
        "redis-valkey": {"BACKEND": "django_valkey.cache.ValkeyCache", "LOCATION": url},
        "redis-valkey-async": {  # another URL: django-valkey keeps one pool per URL, and a
            "BACKEND": "django_valkey.async_cache.cache.AsyncValkeyCache",  # sync one won't do
            "LOCATION": url.replace("redis://", "valkey://", 1),
        },
    }
    sync_raw = Contender("redis-py + hiredis", "raw", api=lambda: raw().api())
    dj_redis = django("Django RedisCache", "peer", "redis-django")
    dj_django_redis = django("django-redis", "peer", "redis-django-redis")
    dj_vcache = django("django-vcache", "peer", "redis-vcache")
    dj_valkey = django("django-valkey", "peer", "redis-valkey")
    # django-valkey's async methods live on their own backend class (the sync one's are Django's
    # thread-pool defaults)
    dj_valkey_async = django("django-valkey", "peer", "redis-valkey-async")
    dj_valkey_async.api = None
    tsot_core, tsot_async = core(url)
    dj_tsot = django("tsot_django RedisCache", "tsot", "redis-tsot")
    contenders = [
        sync_raw,
        dj_redis,
        dj_django_redis,
        dj_vcache,
        dj_valkey,
        flask("Flask-Caching RedisCache", "peer",
              {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}),
        tsot_core,
        tsot_async,
        *signing(url),
        dj_tsot,
        flask("tsot_flask RedisCache", "tsot",
              {"CACHE_TYPE": "tsot_flask.RedisCache", "CACHE_REDIS_URL": url}),
        django(LOCAL, "tsot", "redis-tsot-local"),
        django(MEMORY_REF, "ref", "redis-tsot-memory"),
    ]  # fmt: skip
    async_contenders = [
        Contender("redis.asyncio", "raw", aapi=raw_async),
        Contender("redis-py + hiredis, one caller (reference)", "ref", api=sync_raw.api),
        dj_redis,
        dj_django_redis,
        dj_vcache,
        dj_valkey_async,
        tsot_async,
        dj_tsot,
    ]
    return Kind("redis", "Redis", contenders, async_contenders=async_contenders, caches=caches)
