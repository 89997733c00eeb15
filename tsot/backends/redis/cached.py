"""``local_cache=true``: the Redis backend decorated with a coherent in-process cache.

Only a storage that asks for it is wrapped, so the plain backend's paths stay as they are.
Reads look in the process-wide ``LocalStore`` of the URL and namespace first; a miss reads
``GET`` and ``PTTL`` in one round trip and keeps the value under the coherence rules of
``redis.local``. Every write drops the key locally before it is sent and again after its reply,
so this process reads its own writes and a read that overlapped a write keeps nothing
(``delete_if`` and ``expire_if`` count as writes; ``scan`` lists keys on the server). The
listeners of ``redis.tracking`` apply everyone else's writes. Sync and asyncio share the store
and the listeners; the steps they share are the functions below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from ..base import drop_shared, shared, shared_keys
from .config import RedisConfig
from .local import LocalSettings, LocalStore, Ticket
from .tracking import Tracking

Notify = Callable[..., None]
"""``notify(kind, operation, **fields)``: where an observed local cache reports (the storage's
event hub; a backend never imports tsot.events)."""


def tracking(cfg: RedisConfig, s: LocalSettings, prefix: bytes) -> Tracking:
    """The process's listeners and store for this URL and namespace (per process: a forked
    child starts its own)."""
    return shared(("redis-local", cfg.key, prefix), lambda: Tracking(cfg, prefix, LocalStore(s)))


def close_all() -> None:
    """Stop every listener of this process and forget their stores (tests, shutdown hooks)."""
    for key in shared_keys():
        if key[0] == "redis-local":
            hub = drop_shared(key)
            if hub is not None:
                hub.close()


def _split(store: LocalStore, keys: Sequence[bytes]) -> tuple[list[bytes | None], list[int]]:
    """Local values of ``keys`` (None where missing) and the positions to read from the server."""
    found = [store.lookup(k) for k in keys]
    return found, [i for i, v in enumerate(found) if v is None]


def _merge(
    store: LocalStore,
    keys: Sequence[bytes],
    found: list[bytes | None],
    todo: list[int],
    replies: Sequence[tuple[bytes | None, int]],
    ticket: Ticket | None,
) -> list[bytes | None]:
    for i, (value, pttl) in zip(todo, replies, strict=True):
        store.fill(keys[i], value, pttl, ticket)
        found[i] = value
    return found


class _LocalCached:
    """What the twins share: the wrapped backend, the store, and the steps around each
    operation's one call to the server (``_local`` before a read; ``_split``, ``_merge``)."""

    __slots__ = ("_b", "_hub", "_s", "name")
    _kind: ClassVar[str]  # the twin's name, in its repr
    _observed: ClassVar[str]  # the twin's class in ``redis.observed``

    def __init__(self, backend: Any, hub: Tracking) -> None:
        self._b = backend
        self._hub = hub
        self._s = hub.store
        self.name = backend.name

    def __repr__(self) -> str:
        return f"<{self._kind} {self.name}>"

    def with_events(self, notify: Notify) -> Any:
        """This backend reporting local-cache activity to ``notify`` (``redis.observed``)."""
        from . import observed

        return getattr(observed, self._observed)(self._b, self._hub, notify)

    def _local(self, keys: Sequence[bytes]) -> tuple[list[bytes | None], list[int]]:
        """get_many's local look-ups: the values (None where missing) and the positions to read
        from the server."""
        return _split(self._s, keys)


class LocalCachedSync(_LocalCached):
    """The sync backend protocol: local reads first, the wrapped Redis backend otherwise."""

    __slots__ = ()
    _kind, _observed = "LocalCachedSync", "ObservedLocalSync"

    def get(self, key: bytes) -> bytes | None:
        s = self._s
        value = s.lookup(key)
        if value is not None:
            return value
        return self._read(key)

    def local_reader(
        self,
        owner: Any,
        keys: Mapping[Any, bytes],
        decode: Callable[[bytes, bytes], Any],
        general: Callable[..., Any],
        outer: Any = None,
    ) -> Callable[..., Any]:
        """A ``get(key, default=None, version=None)`` (Django's cache API) that answers a local
        hit in one Python call (``LocalStore.reader``); everything else goes to ``general``
        with the same arguments, as does every call once ``owner`` (a Storage on this
        backend, or on ``outer``, a fail-open guard around it) no longer calls it directly (a
        listener instruments it, or it is closed)."""
        return self._s.reader(owner, self if outer is None else outer, keys, decode, general)

    def _read(self, key: bytes) -> bytes | None:
        s = self._s
        ticket = s.begin()
        value, pttl = self._b.get_ttl([key])[0]
        s.fill(key, value, pttl, ticket)
        return value  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found, todo = self._local(keys)
        return self._read_many(keys, found, todo) if todo else found

    def _read_many(
        self, keys: Sequence[bytes], found: list[bytes | None], todo: list[int]
    ) -> list[bytes | None]:
        ticket = self._s.begin()
        replies = self._b.get_ttl([keys[i] for i in todo])
        return _merge(self._s, keys, found, todo, replies, ticket)

    def _write(self, keys: Sequence[bytes], name: str, *args: Any) -> Any:
        drop = self._s.drop
        drop(keys)
        try:
            return getattr(self._b, name)(*args)
        finally:
            drop(keys)

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._write((key,), "set", key, value, ttl_ms)

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        self._write([k for k, _ in items], "set_many", items, ttl_ms)

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._write((key,), "add", key, value, ttl_ms)  # type: ignore[no-any-return]

    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._write((key,), "replace", key, value, ttl_ms)  # type: ignore[no-any-return]

    def delete(self, key: bytes) -> bool:
        return self._write((key,), "delete", key)  # type: ignore[no-any-return]

    def delete_many(self, keys: Sequence[bytes]) -> int:
        return self._write(keys, "delete_many", keys)  # type: ignore[no-any-return]

    def exists(self, key: bytes) -> bool:
        return self._b.exists(key)  # type: ignore[no-any-return]

    def ttl(self, key: bytes) -> int:
        return self._b.ttl(key)  # type: ignore[no-any-return]

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return self._write((key,), "expire", key, ttl_ms)  # type: ignore[no-any-return]

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return self._write((key,), "incr", key, delta, create)  # type: ignore[no-any-return]

    def clear(self, prefix: bytes) -> None:
        self._s.flush()
        try:
            self._b.clear(prefix)
        finally:
            self._s.flush()

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        return self._b.scan(prefix, pattern, count)  # type: ignore[no-any-return]

    def delete_if(self, key: bytes, value: bytes) -> bool:
        return self._write((key,), "delete_if", key, value)  # type: ignore[no-any-return]

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._write((key,), "expire_if", key, value, ttl_ms)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to release: the store and its listeners serve the whole process."""

    def stats(self) -> Mapping[str, int | None]:
        """The server's counters and the local ones. Raises BackendUnavailable while the server
        is unreachable, as without the local cache (under fail_open: None counters); the local
        activity goes on being reported through the event hook (``redis.observed``)."""
        return {**self._b.stats(), **self._s.stats()}


class LocalCachedAsync(_LocalCached):
    """The asyncio twin of ``LocalCachedSync`` over the same store and listeners."""

    __slots__ = ()
    _kind, _observed = "LocalCachedAsync", "ObservedLocalAsync"

    async def get(self, key: bytes) -> bytes | None:
        s = self._s
        value = s.lookup(key)
        if value is not None:
            return value
        return await self._read(key)

    async def _read(self, key: bytes) -> bytes | None:
        s = self._s
        ticket = s.begin()
        value, pttl = (await self._b.get_ttl([key]))[0]
        s.fill(key, value, pttl, ticket)
        return value  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found, todo = self._local(keys)
        return await self._read_many(keys, found, todo) if todo else found

    async def _read_many(
        self, keys: Sequence[bytes], found: list[bytes | None], todo: list[int]
    ) -> list[bytes | None]:
        ticket = self._s.begin()
        replies = await self._b.get_ttl([keys[i] for i in todo])
        return _merge(self._s, keys, found, todo, replies, ticket)

    async def _write(self, keys: Sequence[bytes], name: str, *args: Any) -> Any:
        drop = self._s.drop
        drop(keys)
        try:
            return await getattr(self._b, name)(*args)
        finally:
            drop(keys)

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        await self._write((key,), "set", key, value, ttl_ms)

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        await self._write([k for k, _ in items], "set_many", items, ttl_ms)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._write((key,), "add", key, value, ttl_ms)  # type: ignore[no-any-return]

    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._write(  # type: ignore[no-any-return]
            (key,), "replace", key, value, ttl_ms
        )

    async def delete(self, key: bytes) -> bool:
        return await self._write((key,), "delete", key)  # type: ignore[no-any-return]

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._write(keys, "delete_many", keys)  # type: ignore[no-any-return]

    async def exists(self, key: bytes) -> bool:
        return await self._b.exists(key)  # type: ignore[no-any-return]

    async def ttl(self, key: bytes) -> int:
        return await self._b.ttl(key)  # type: ignore[no-any-return]

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return await self._write((key,), "expire", key, ttl_ms)  # type: ignore[no-any-return]

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return await self._write((key,), "incr", key, delta, create)  # type: ignore[no-any-return]

    async def clear(self, prefix: bytes) -> None:
        self._s.flush()
        try:
            await self._b.clear(prefix)
        finally:
            self._s.flush()

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]:
        return self._b.scan(prefix, pattern, count)  # type: ignore[no-any-return]

    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return await self._write((key,), "delete_if", key, value)  # type: ignore[no-any-return]

    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._write((key,), "expire_if", key, value, ttl_ms)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Nothing to release: the store and its listeners serve the whole process."""

    async def stats(self) -> Mapping[str, int | None]:
        """See ``LocalCachedSync.stats``."""
        return {**(await self._b.stats()), **self._s.stats()}
