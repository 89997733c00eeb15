"""The backend protocol (sync and async), TTL constants and the process-wide resource registry.

Backends see final keys (bytes, namespace included) and encoded values (bytes). TTLs arrive
normalised by ``tsot.ttl``: ``None`` means no expiry, a positive int is milliseconds. The facade
never passes an already-expired TTL (it deletes instead).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final, Protocol, TypeVar

TTL_PERSISTENT: Final = -1
"""``ttl()`` of a key that never expires."""
TTL_MISSING: Final = -2
"""``ttl()`` of a key that does not exist."""


class Backend(Protocol):
    """Synchronous backend primitives."""

    def get(self, key: bytes) -> bytes | None: ...
    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...
    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None: ...
    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None: ...
    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool: ...
    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        """Store only if ``key`` exists (live), atomically; True if stored. The TTL as ``set``."""
        ...

    def delete(self, key: bytes) -> bool: ...
    def delete_many(self, keys: Sequence[bytes]) -> int: ...
    def exists(self, key: bytes) -> bool: ...
    def ttl(self, key: bytes) -> int:
        """Remaining ms, TTL_PERSISTENT or TTL_MISSING."""
        ...

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        """Set a new TTL (None = persist); False if the key does not exist."""
        ...

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        """Atomically add ``delta`` (any size); None if missing and not ``create``.

        A missing key with ``create`` becomes ``delta`` with no expiry; an existing key keeps its
        TTL. A value that is not a plain decimal integer raises WrongType.
        """
        ...

    def clear(self, prefix: bytes) -> None:
        """Remove every key that starts with ``prefix`` (all keys of this location if empty)."""
        ...

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        """The live final keys that start with ``prefix`` and whose rest matches ``pattern``
        (Redis glob syntax), fetched about ``count`` at a time (None: the backend's default).

        A key present for the whole walk is returned at least once (Redis may repeat one); a key
        written or deleted meanwhile may or may not be. A backend that cannot list its keys
        raises NotSupportedError when called, before iterating.
        """
        ...

    def delete_if(self, key: bytes, value: bytes) -> bool:
        """Delete ``key`` only if it holds exactly ``value``, atomically; True if deleted."""
        ...

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        """Give ``key`` a new TTL only if it holds exactly ``value``, atomically."""
        ...

    def close(self) -> None: ...


class AsyncBackend(Protocol):
    """The same primitives for asyncio, run on the event loop without thread hops."""

    async def get(self, key: bytes) -> bytes | None: ...
    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...
    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None: ...
    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None: ...
    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool: ...
    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool: ...
    async def delete(self, key: bytes) -> bool: ...
    async def delete_many(self, keys: Sequence[bytes]) -> int: ...
    async def exists(self, key: bytes) -> bool: ...
    async def ttl(self, key: bytes) -> int: ...
    async def expire(self, key: bytes, ttl_ms: int | None) -> bool: ...
    async def incr(self, key: bytes, delta: int, create: bool) -> int | None: ...
    async def clear(self, prefix: bytes) -> None: ...
    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]: ...
    async def delete_if(self, key: bytes, value: bytes) -> bool: ...
    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool: ...
    async def close(self) -> None: ...


# -- process-wide resources ------------------------------------------------------------------

R = TypeVar("R")
_shared: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()


def shared(key: tuple[Any, ...], factory: Callable[[], R]) -> R:
    """Return the process-wide resource for ``key``, creating it once (pools, tables, handles).

    The process id is part of the key, so a forked child never reuses its parent's sockets.
    """
    full = (os.getpid(), *key)
    try:
        return _shared[full]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _shared_lock:
        if full not in _shared:
            _shared[full] = factory()
        return _shared[full]  # type: ignore[no-any-return]


def drop_shared(key: tuple[Any, ...]) -> Any:
    """Forget one shared resource and return it (None if absent); the caller closes it."""
    with _shared_lock:
        return _shared.pop((os.getpid(), *key), None)


def shared_keys() -> list[tuple[Any, ...]]:
    with _shared_lock:
        return [k[1:] for k in _shared if k[0] == os.getpid()]


class DirectAsync:
    """The async protocol over a sync backend whose calls never block on I/O (memory).

    Each method calls the sync one directly on the event loop: no thread hop, no await point.
    """

    __slots__ = ("sync",)

    def __init__(self, sync: Backend) -> None:
        self.sync = sync

    async def get(self, key: bytes) -> bytes | None:
        return self.sync.get(key)

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return self.sync.get_many(keys)

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self.sync.set(key, value, ttl_ms)

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        self.sync.set_many(items, ttl_ms)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self.sync.add(key, value, ttl_ms)

    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self.sync.replace(key, value, ttl_ms)

    async def delete(self, key: bytes) -> bool:
        return self.sync.delete(key)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return self.sync.delete_many(keys)

    async def exists(self, key: bytes) -> bool:
        return self.sync.exists(key)

    async def ttl(self, key: bytes) -> int:
        return self.sync.ttl(key)

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return self.sync.expire(key, ttl_ms)

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return self.sync.incr(key, delta, create)

    async def clear(self, prefix: bytes) -> None:
        self.sync.clear(prefix)

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]:
        return aiter_of(self.sync.scan(prefix, pattern, count))

    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return self.sync.delete_if(key, value)

    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self.sync.expire_if(key, value, ttl_ms)

    async def close(self) -> None:
        self.sync.close()

    async def stats(self) -> dict[str, int | None]:
        return backend_stats(self.sync)


async def aiter_of(keys: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A sync iterator of keys (a local backend's scan) as an async one."""
    for key in keys:
        yield key


STATS_KEYS: Final = ("hits", "misses", "keys", "memory_bytes", "evictions", "clients")
"""What ``stats()`` reports, each None when the backend cannot tell: read hits and misses, the
number of keys, the bytes the data takes, the entries evicted to make room, and the open client
connections."""


def backend_stats(backend: object) -> dict[str, int | None]:
    """``backend.stats()`` when it has one (the STATS_KEYS it knows), else None for each.

    ``stats`` is optional in the protocol; a server backend reports the server's counters.
    """
    stats = getattr(backend, "stats", None)
    out: dict[str, int | None] = dict.fromkeys(STATS_KEYS)
    if stats is not None:
        out.update(stats())
    return out


def lazy_names(package: str, names: Sequence[str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of backend package ``package``: each of ``names`` is imported
    from ``<package>.backend`` on first use (then kept in the package), so that importing one
    module of the package imports neither the others nor the driver."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(".backend", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
