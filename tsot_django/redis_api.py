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
from typing import Any, TypeVar

from tsot import AsyncLock, Lock
from tsot.integration import glob_escape, ms_timeout, redis_ttl, seconds_until

from .ops import CacheOps, Call, Op, translate_error, twins
from .stores import Stores

T = TypeVar("T")


class RedisApi(CacheOps):
    """The django-redis methods; ``TsotCache`` provides the drivers and the storages."""

    _stores: Stores

    def _run(self, op: Op[T]) -> T:
        raise NotImplementedError

    async def _arun(self, op: Op[T]) -> T:
        raise NotImplementedError

    # -- TTLs (the operations have the methods' parameters: ``twins`` makes the methods) --------
    def op_ttl(self, key: Any, version: int | None = None) -> Op[int | None]:
        """Seconds left (Redis's rounding); None if ``key`` never expires; 0 if it is missing."""
        return redis_ttl((yield self._ttl_call(key, version)), ms=False)

    def op_pttl(self, key: Any, version: int | None = None) -> Op[int | None]:
        """Milliseconds left; None if ``key`` never expires; 0 if it is missing."""
        return redis_ttl((yield self._ttl_call(key, version)), ms=True)

    def _ttl_call(self, key: Any, version: int | None) -> Call:
        return Call("ttl", (self.tsot_key(key, version),), read=True)

    def op_expire(self, key: Any, timeout: Any, version: int | None = None) -> Op[bool]:
        """A new timeout in seconds (Django's TTL table: None never expires, <= 0 deletes);
        False if ``key`` is missing."""
        return bool((yield self._expire_call(key, self.tsot_ttl(timeout), version)))

    def op_pexpire(self, key: Any, timeout: Any, version: int | None = None) -> Op[bool]:
        """``expire`` with the timeout in milliseconds (or a timedelta)."""
        return bool((yield self._expire_call(key, self.tsot_ttl(ms_timeout(timeout)), version)))

    def op_expire_at(self, key: Any, when: Any, version: int | None = None) -> Op[bool]:
        """Expire at ``when``: a Unix time in seconds or a datetime (past: deleted)."""
        return bool((yield self._expire_call(key, seconds_until(when, 1), version)))

    def op_pexpire_at(self, key: Any, when: Any, version: int | None = None) -> Op[bool]:
        """Expire at ``when``: a Unix time in milliseconds or a datetime."""
        return bool((yield self._expire_call(key, seconds_until(when, 1000), version)))

    def _expire_call(self, key: Any, ttl: Any, version: int | None) -> Call:
        return Call("expire", (self.tsot_key(key, version), ttl))

    def op_persist(self, key: Any, version: int | None = None) -> Op[bool]:
        """Remove the timeout; True if there was one (as Redis's PERSIST): False for a missing
        key or one without TTL."""
        k = self.tsot_key(key, version)
        left = yield Call("ttl", (k,))
        if left is None or math.isinf(left):
            return False
        return bool((yield Call("persist", (k,))))

    ttl, attl = twins(op_ttl)
    pttl, apttl = twins(op_pttl)
    expire, aexpire = twins(op_expire)
    pexpire, apexpire = twins(op_pexpire)
    expire_at, aexpire_at = twins(op_expire_at)
    pexpire_at, apexpire_at = twins(op_pexpire_at)
    persist, apersist = twins(op_persist)

    # -- listing keys (memcached: tsot.NotSupportedError) -------------------------------------
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

    def op_keys(self, search: str, version: int | None = None) -> Op[list[str]]:
        """The keys matching the glob ``search`` in this cache's KEY_PREFIX and version."""
        found = yield Call("keys", (self.key_pattern(search, version),), read=True)
        return [self.reverse_key(k, version) for k in found]

    def op_delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        itersize: int | None = None,
    ) -> Op[int]:
        """Delete the keys matching ``pattern``; how many were deleted."""
        tsot_pattern = self.key_pattern(pattern, version, prefix)
        return (yield Call("delete_pattern", (tsot_pattern,), {"itersize": itersize}))  # type: ignore[no-any-return]

    keys, akeys = twins(op_keys)
    delete_pattern, adelete_pattern = twins(op_delete_pattern)

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

    # -- locks --------------------------------------------------------------------------------
    def lock(self, key: Any, version: int | None = None, *args: Any, **kwargs: Any) -> Lock:
        """A lock with redis-py's interface and fencing tokens (``tsot.locks.Lock``); the
        arguments after ``version`` are ``Storage.lock``'s (``timeout``, ``sleep``,
        ``blocking``, ``blocking_timeout``, ``thread_local``)."""
        return self._stores.sync[0].lock(self.tsot_key(key, version), *args, **kwargs)

    def alock(self, key: Any, version: int | None = None, *args: Any, **kwargs: Any) -> AsyncLock:
        """``async with cache.alock("job", timeout=10): ...`` (call it inside the event loop);
        the arguments are ``lock``'s."""
        storages = self._stores.for_loop(asyncio.get_running_loop())
        return storages[0].lock(self.tsot_key(key, version), *args, **kwargs)
