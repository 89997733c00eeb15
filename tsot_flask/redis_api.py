"""django-redis's extra methods on the Flask-Caching backends, reached as ``cache.cache.ttl(key)``
(Flask-Caching's ``Cache`` keeps the backend in ``cache.cache``). Timeouts follow Flask-Caching's
table (None = the default, 0 = never expires, < 0 = expire now); results follow django-redis
(``ttl``: None = never expires, 0 = missing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from tsot import Lock, Storage
from tsot.integration import ms_timeout, redis_ttl, seconds_until

from .timeouts import CoreTTL, Timeout


class RedisApi:
    """The methods; ``TsotCache`` provides ``storage`` and ``_ttl`` (Flask timeout -> tsot)."""

    storage: Storage

    def _ttl(self, timeout: Timeout) -> CoreTTL:
        raise NotImplementedError

    def ttl(self, key: str) -> int | None:
        """Seconds left (rounded as Redis's TTL); None if ``key`` never expires; 0 if missing."""
        return redis_ttl(self.storage.ttl(key), ms=False)

    def pttl(self, key: str) -> int | None:
        """Milliseconds left; None if ``key`` never expires; 0 if it is missing."""
        return redis_ttl(self.storage.ttl(key), ms=True)

    def expire(self, key: str, timeout: Timeout) -> bool:
        """A new timeout in seconds (Flask-Caching's table); False if ``key`` is missing."""
        return self.storage.expire(key, self._ttl(timeout))

    def pexpire(self, key: str, timeout: int | float | timedelta | None) -> bool:
        """``expire`` with the timeout in milliseconds (or a timedelta)."""
        return self.storage.expire(key, self._ttl(ms_timeout(timeout)))

    def expire_at(self, key: str, when: Any) -> bool:
        """Expire at ``when``: a Unix time in seconds or a datetime (past: deleted)."""
        return self.storage.expire(key, seconds_until(when, 1))

    def pexpire_at(self, key: str, when: Any) -> bool:
        """Expire at ``when``: a Unix time in milliseconds or a datetime."""
        return self.storage.expire(key, seconds_until(when, 1000))

    def persist(self, key: str) -> bool:
        """Remove the timeout; True if there was one (as Redis's PERSIST)."""
        left = self.storage.ttl(key)
        return left is not None and left != float("inf") and self.storage.persist(key)

    def keys(self, pattern: str = "*") -> list[str]:
        """The keys of this cache's prefix matching the glob ``pattern`` (not on memcached:
        tsot.NotSupportedError)."""
        return self.storage.keys(pattern)

    def iter_keys(self, pattern: str = "*", itersize: int | None = None) -> Iterator[str]:
        """``keys`` as an iterator, fetched ``itersize`` at a time."""
        return self.storage.iter_keys(pattern, itersize=itersize)

    def delete_pattern(self, pattern: str = "*", itersize: int | None = None) -> int:
        """Delete the keys matching ``pattern``; how many were deleted."""
        return self.storage.delete_pattern(pattern, itersize=itersize)

    def lock(self, key: str, *args: Any, **kwargs: Any) -> Lock:
        """A lock with redis-py's interface and fencing tokens (``tsot.Lock``); the arguments
        after ``key`` are ``Storage.lock``'s (``timeout``, ``sleep``, ``blocking``,
        ``blocking_timeout``, ``thread_local``)."""
        return self.storage.lock(key, *args, **kwargs)
