"""django-redis's extra cache methods on every tsot Django cache: ``ttl``, ``pttl``,
``expire``, ``pexpire``, ``expire_at``, ``pexpire_at``, ``persist``, ``keys``, ``iter_keys``,
``delete_pattern``, ``lock``, and their ``a*`` twins (django-redis has no async API; the names
follow Django's ``a`` prefix). Same signatures and return values as django-redis; the
operations are I/O-free generators like ``ops``, run by the cache's sync or async driver.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from tsot import AsyncLock, AsyncStorage, Lock, Storage
from tsot.integration import glob_escape, redis_ttl, seconds_until

from .ops import CacheOps, Call, Op, translate_error
from .stores import Stores

T = TypeVar("T")


class RedisApi(CacheOps):
    """The django-redis methods; ``TsotCache`` provides the drivers and the storages."""

    _stores: Stores

    def _run(self, op: Op[T]) -> T:
        raise NotImplementedError

    async def _arun(self, op: Op[T]) -> T:
        raise NotImplementedError

    # -- operations ---------------------------------------------------------------------------
    def op_ttl(self, key: Any, version: int | None, ms: bool) -> Op[int | None]:
        """django-redis's ``ttl``/``pttl``: None = never expires, 0 = missing, else the time
        left (whole seconds rounded as Redis's TTL does, or milliseconds)."""
        return redis_ttl((yield Call("ttl", (self.tsot_key(key, version),), read=True)), ms)

    def op_expire(self, key: Any, ttl: Any, version: int | None) -> Op[bool]:
        return bool((yield Call("expire", (self.tsot_key(key, version), ttl))))

    def op_persist(self, key: Any, version: int | None) -> Op[bool]:
        """True only if a TTL was removed (False for a missing key or one without TTL)."""
        k = self.tsot_key(key, version)
        left = yield Call("ttl", (k,))
        if left is None or math.isinf(left):
            return False
        return bool((yield Call("persist", (k,))))

    def op_set_if(
        self, key: Any, value: Any, timeout: Any, version: int | None, nx: bool, xx: bool
    ) -> Op[bool]:
        """``set(..., nx=True)`` is ``add``; ``xx=True`` writes only over an existing key."""
        if nx and xx:
            raise ValueError("set() takes nx=True or xx=True, not both")
        k, ttl = self.tsot_key(key, version), self.tsot_ttl(timeout)
        if nx:
            return bool((yield Call("add", (k, value, ttl))))
        if not (yield Call("exists", (k,))):
            return False
        yield Call("store", (k, value, ttl))
        return True

    def op_incr_create(self, key: Any, delta: int, version: int | None) -> Op[int]:
        """``incr(..., ignore_key_check=True)``: a missing key starts from 0, atomically."""
        return (yield Call("incr", (self.tsot_key(key, version), delta)))  # type: ignore[no-any-return]

    def key_pattern(self, pattern: str, version: int | None, prefix: str | None = None) -> str:
        """The tsot pattern for a django-redis search: KEY_PREFIX and version literal."""
        if not isinstance(pattern, str):
            raise TypeError(f"key pattern must be a str, not {type(pattern).__name__}")
        prefix = self.key_prefix if prefix is None else prefix
        version = self.version if version is None else version
        return self.key_func(pattern, glob_escape(prefix), glob_escape(str(version)))  # type: ignore[no-any-return]

    def reverse_key(self, made: str, version: int | None) -> str:
        """The caller's key for a made key: without KEY_PREFIX and version (django-redis's
        ``reverse_key``; a custom KEY_FUNCTION keeps what follows its second ``:``)."""
        head = self.make_key("", version=version)
        if made.startswith(head):
            return made[len(head) :]
        return made.split(":", 2)[-1]

    def op_keys(self, search: str, version: int | None) -> Op[list[str]]:
        found = yield Call("keys", (self.key_pattern(search, version),), read=True)
        return [self.reverse_key(k, version) for k in found]

    def op_delete_pattern(
        self, pattern: str, version: int | None, prefix: str | None, itersize: int | None
    ) -> Op[int]:
        tsot_pattern = self.key_pattern(pattern, version, prefix)
        return (yield Call("delete_pattern", (tsot_pattern,), {"itersize": itersize}))  # type: ignore[no-any-return]

    # -- TTLs ---------------------------------------------------------------------------------
    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds left (Redis's rounding); None if ``key`` never expires; 0 if it is missing."""
        return self._run(self.op_ttl(key, version, ms=False))

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        """See ``ttl``."""
        return await self._arun(self.op_ttl(key, version, ms=False))

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """Milliseconds left; None if ``key`` never expires; 0 if it is missing."""
        return self._run(self.op_ttl(key, version, ms=True))

    async def apttl(self, key: Any, version: int | None = None) -> int | None:
        """See ``pttl``."""
        return await self._arun(self.op_ttl(key, version, ms=True))

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """A new timeout in seconds (Django's TTL table: None never expires, <= 0 deletes);
        False if ``key`` is missing."""
        return self._run(self.op_expire(key, self.tsot_ttl(timeout), version))

    async def aexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """See ``expire``."""
        return await self._arun(self.op_expire(key, self.tsot_ttl(timeout), version))

    def pexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """``expire`` with the timeout in milliseconds (or a timedelta)."""
        return self._run(self.op_expire(key, self.tsot_ttl(_ms_ttl(timeout)), version))

    async def apexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """See ``pexpire``."""
        return await self._arun(self.op_expire(key, self.tsot_ttl(_ms_ttl(timeout)), version))

    def expire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """Expire at ``when``: a Unix time in seconds or a datetime (past: deleted)."""
        return self._run(self.op_expire(key, seconds_until(when, 1), version))

    async def aexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """See ``expire_at``."""
        return await self._arun(self.op_expire(key, seconds_until(when, 1), version))

    def pexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """Expire at ``when``: a Unix time in milliseconds or a datetime."""
        return self._run(self.op_expire(key, seconds_until(when, 1000), version))

    async def apexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """See ``pexpire_at``."""
        return await self._arun(self.op_expire(key, seconds_until(when, 1000), version))

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove the timeout; True if there was one (as Redis's PERSIST)."""
        return self._run(self.op_persist(key, version))

    async def apersist(self, key: Any, version: int | None = None) -> bool:
        """See ``persist``."""
        return await self._arun(self.op_persist(key, version))

    # -- listing keys (memcached: tsot.NotSupportedError) -------------------------------------
    def keys(self, search: str, version: int | None = None) -> list[str]:
        """The keys matching the glob ``search`` in this cache's KEY_PREFIX and version."""
        return self._run(self.op_keys(search, version))

    async def akeys(self, search: str, version: int | None = None) -> list[str]:
        """See ``keys``."""
        return await self._arun(self.op_keys(search, version))

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """``keys`` as an iterator, fetched ``itersize`` at a time (a key may repeat on Redis)."""
        storage = Stores.pick(self._stores.sync, True)
        try:
            found = storage.iter_keys(self.key_pattern(search, version), itersize=itersize)
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps
        return (self.reverse_key(k, version) for k in found)

    def aiter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> AsyncIterator[str]:
        """``async for key in cache.aiter_keys("user:*")``."""
        pattern = self.key_pattern(search, version)
        return self._aiter_keys(pattern, itersize, version)

    async def _aiter_keys(
        self, pattern: str, itersize: int | None, version: int | None
    ) -> AsyncIterator[str]:
        storage = Stores.pick(self._stores.for_loop(asyncio.get_running_loop()), True)
        async for k in storage.iter_keys(pattern, itersize=itersize):
            yield self.reverse_key(k, version)

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        itersize: int | None = None,
    ) -> int:
        """Delete the keys matching ``pattern``; how many were deleted."""
        return self._run(self.op_delete_pattern(pattern, version, prefix, itersize))

    async def adelete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        itersize: int | None = None,
    ) -> int:
        """See ``delete_pattern``."""
        return await self._arun(self.op_delete_pattern(pattern, version, prefix, itersize))

    # -- locks --------------------------------------------------------------------------------
    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> Lock:
        """A lock with redis-py's interface and fencing tokens (``tsot.locks.Lock``)."""
        storage: Storage = self._stores.sync[0]
        k = self.tsot_key(key, version)
        return storage.lock(k, timeout, sleep, blocking, blocking_timeout, thread_local)

    def alock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> AsyncLock:
        """``async with cache.alock("job", timeout=10): ...`` (call it inside the event loop)."""
        storage: AsyncStorage = self._stores.for_loop(asyncio.get_running_loop())[0]
        k = self.tsot_key(key, version)
        return storage.lock(k, timeout, sleep, blocking, blocking_timeout, thread_local)


def _ms_ttl(timeout: Any) -> Any:
    """A pexpire timeout: milliseconds (numbers) as seconds; None, DEFAULT and timedelta kept."""
    if timeout is None or timeout is DEFAULT_TIMEOUT or isinstance(timeout, timedelta):
        return timeout
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return timeout / 1000
    return timeout  # the core refuses it, naming the value
