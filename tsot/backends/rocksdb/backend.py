"""RocksDB backend (``rocksdb:///abs/path``, ``rocksdb://relative/path``) through rocksdict.

Each value is stored as an 8-byte big-endian deadline (ms since the Unix epoch, 0 = never) and
the payload; see docs/backends/rocksdb.md for the format, durability, locking and limits.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ...codec import decode_int
from ...config import Location, Option
from ...errors import ConfigurationError, TsotError, require
from ...ints import format_int
from ..base import TTL_MISSING, TTL_PERSISTENT, DirectAsync, drop_shared, shared
from ..glob import matcher
from .handle import (
    HEADER,
    HEADER_SIZE,
    MIN_DISK_BYTES,
    NO_DEADLINE,
    DBConfig,
    Handle,
    successor,
    translate,
)

_unpack = HEADER.unpack_from
SCAN_BATCH = 1000
"""Keys examined per iterator by ``scan`` when the caller gives no ``itersize``."""
T = TypeVar("T")


class RocksDBStore:
    """The Backend protocol over one shared database handle; ``sync_writes`` is per store."""

    __slots__ = ("_db", "_get", "_h", "_wopt", "sync_writes")

    def __init__(self, handle: Handle, sync_writes: bool) -> None:
        self._h = handle
        self._db = handle.db
        self._get = handle.db.get
        self.sync_writes = sync_writes
        self._wopt = handle.sync_write if sync_writes else handle.fast_write

    @property
    def handle(self) -> Handle:
        return self._h

    def _fail(self, exc: Exception) -> TsotError:
        return translate(exc, self._h.path)

    def _live(self, raw: bytes | None) -> bytes | None:
        """``raw`` if it holds a live value, else None."""
        if raw is None:
            return None
        deadline = _unpack(raw)[0]
        if deadline and deadline <= self._h.now_ms():
            return None
        return raw

    def _drop(self, key: bytes) -> None:
        """Delete ``key`` if it is (still) expired."""
        try:
            self._h.drop_expired([key])
        except Exception as exc:
            raise self._fail(exc) from exc

    def _read(self, key: bytes) -> bytes | None:
        """The live stored bytes (header included) of ``key``; an expired entry is deleted."""
        try:
            raw = self._get(key)
            if raw is None:
                return None
            deadline = _unpack(raw)[0]
            if deadline and deadline <= self._h.now_ms():
                self._h.drop_expired([key])
                return None
        except Exception as exc:
            raise self._fail(exc) from exc
        return raw  # type: ignore[no-any-return]

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The payload of ``key``, or None if absent or expired."""
        # The hot path, inlined: a value without a deadline needs no clock and no unpacking.
        h = self._h
        try:
            raw = self._get(key)
        except Exception as exc:
            raise self._fail(exc) from exc
        if raw is None:
            h.misses += 1
            return None
        if not raw.startswith(NO_DEADLINE) and _unpack(raw)[0] <= h.clock() * 1000:
            self._drop(key)
            h.misses += 1
            return None
        h.hits += 1
        return raw[HEADER_SIZE:]  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Payloads in the order of ``keys`` (None where absent), read by one multi-get."""
        h = self._h
        try:
            raws = self._get(list(keys))
            now = h.now_ms()
            out: list[bytes | None] = []
            expired: list[bytes] = []
            for key, raw in zip(keys, raws, strict=True):
                if raw is None:
                    out.append(None)
                    continue
                deadline = _unpack(raw)[0]
                if deadline and deadline <= now:
                    expired.append(key)
                    out.append(None)
                else:
                    out.append(raw[HEADER_SIZE:])
            if expired:
                h.drop_expired(expired)
        except Exception as exc:
            raise self._fail(exc) from exc
        found = len(out) - out.count(None)
        h.hits += found
        h.misses += len(out) - found
        return out

    def exists(self, key: bytes) -> bool:
        return self._read(key) is not None

    def ttl(self, key: bytes) -> int:
        """Remaining ms, TTL_PERSISTENT or TTL_MISSING."""
        raw = self._read(key)
        if raw is None:
            return TTL_MISSING
        deadline: int = _unpack(raw)[0]
        if not deadline:
            return TTL_PERSISTENT
        return max(1, deadline - self._h.now_ms())

    # -- writes (each holds the key's stripe lock; see Handle) ------------------------------

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        h = self._h
        h.check_size(key, value)
        data = (NO_DEADLINE if ttl_ms is None else HEADER.pack(h.now_ms() + ttl_ms)) + value
        try:
            with h.lock(key):
                self._db.put(key, data, self._wopt)
        except Exception as exc:
            raise self._fail(exc) from exc

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        """Write every item in one atomic write batch."""
        h = self._h
        for key, value in items:  # all checked before anything is written
            h.check_size(key, value)
        header = h.header(ttl_ms)
        try:
            batch = h.new_batch()
            for key, value in items:
                batch.put(key, header + value)
            with h.locked([key for key, _ in items]):
                self._db.write(batch, self._wopt)
        except TsotError:
            raise
        except Exception as exc:
            raise self._fail(exc) from exc

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._put_if(key, value, ttl_ms, False)

    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._put_if(key, value, ttl_ms, True)

    def _put_if(self, key: bytes, value: bytes, ttl_ms: int | None, live: bool) -> bool:
        """Write ``key`` only if it holds a live value (``live``: replace) or not (add); the
        check and the write under the key's stripe lock, which every writer of this process
        holds (RocksDB lets one process open the directory), so no write comes in between."""
        h = self._h
        h.check_size(key, value)
        try:
            with h.lock(key):
                if (self._live(self._get(key)) is not None) is not live:
                    return False
                self._db.put(key, h.header(ttl_ms) + value, self._wopt)
                return True
        except Exception as exc:
            raise self._fail(exc) from exc

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; True if it held a live value."""
        try:
            with self._h.lock(key):
                raw = self._get(key)
                if raw is None:
                    return False
                self._db.delete(key, self._wopt)
                return self._live(raw) is not None
        except Exception as exc:
            raise self._fail(exc) from exc

    def delete_many(self, keys: Sequence[bytes]) -> int:
        """Remove the keys in one write batch; return how many held live values."""
        h = self._h
        unique = list(dict.fromkeys(keys))
        try:
            with h.locked(unique):
                batch = h.new_batch()
                count = 0
                for key, raw in zip(unique, self._get(unique), strict=True):
                    if raw is not None:
                        batch.delete(key)
                        count += self._live(raw) is not None
                if len(batch):
                    self._db.write(batch, self._wopt)
                return count
        except Exception as exc:
            raise self._fail(exc) from exc

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        """Give ``key`` a new deadline (None = never); False if it does not exist."""
        h = self._h
        try:
            with h.lock(key):
                raw = self._live(self._get(key))
                if raw is None:
                    return False
                self._db.put(key, h.header(ttl_ms) + raw[HEADER_SIZE:], self._wopt)
                return True
        except Exception as exc:
            raise self._fail(exc) from exc

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        """Add ``delta`` under the key's stripe lock (exact for any int); the deadline is kept."""
        h = self._h
        try:
            with h.lock(key):
                raw = self._live(self._get(key))
                if raw is None:
                    if not create:
                        return None
                    self._db.put(key, NO_DEADLINE + format_int(delta), self._wopt)
                    return delta
                value = decode_int(raw[HEADER_SIZE:], key) + delta
                new = format_int(value)  # too many digits: SerializationError, nothing written
                self._db.put(key, raw[:HEADER_SIZE] + new, self._wopt)
                return value
        except TsotError:
            raise
        except Exception as exc:
            raise self._fail(exc) from exc

    def clear(self, prefix: bytes) -> None:
        """Range-delete ``[prefix, successor(prefix))``; every key when ``prefix`` is empty."""
        try:
            end = successor(prefix)
            if end is None:  # no successor: delete up to just past the current last key
                it = self._db.iter()
                it.seek_to_last()
                if not it.valid():
                    return
                end = it.key() + b"\x00"
                del it
            self._db.delete_range(prefix, end, self._wopt)
        except Exception as exc:
            raise self._fail(exc) from exc

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        """The matching live keys, in key order, ``count`` (default SCAN_BATCH) per iterator.

        Each batch uses a fresh iterator (as the purge does), so a long walk pins nothing and
        the caller may delete what it got between batches.
        """
        return self._scan(prefix, matcher(pattern), count or SCAN_BATCH)

    def _scan(self, prefix: bytes, match: Callable[[bytes], bool], count: int) -> Iterator[bytes]:
        start, cursor = len(prefix), prefix
        first = True
        while True:
            batch: list[bytes] = []
            try:
                it = self._db.iter()
                it.seek(cursor)
                if not first and it.valid() and it.key() == cursor:
                    it.next()  # the previous batch ended on this key
                now, seen = self._h.now_ms(), 0
                while it.valid() and seen < count:
                    key = it.key()
                    if not key.startswith(prefix):
                        break
                    deadline = _unpack(it.value())[0]
                    if (not deadline or deadline > now) and match(key[start:]):
                        batch.append(key)
                    cursor, seen = key, seen + 1
                    it.next()
                more = it.valid() and seen == count
                del it
            except Exception as exc:
                raise self._fail(exc) from exc
            first = False
            yield from batch
            if not more:
                return

    def delete_if(self, key: bytes, value: bytes) -> bool:
        try:
            with self._h.lock(key):
                raw = self._live(self._get(key))
                if raw is None or raw[HEADER_SIZE:] != value:
                    return False
                self._db.delete(key, self._wopt)
                return True
        except Exception as exc:
            raise self._fail(exc) from exc

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        h = self._h
        try:
            with h.lock(key):
                raw = self._live(self._get(key))
                if raw is None or raw[HEADER_SIZE:] != value:
                    return False
                self._db.put(key, h.header(ttl_ms) + value, self._wopt)
                return True
        except Exception as exc:
            raise self._fail(exc) from exc

    def stats(self) -> dict[str, int | None]:
        """Hits and misses of this process's reads; ``keys`` is RocksDB's estimate."""
        return self._h.stats()

    def close(self) -> None:
        """Nothing to release: the database handle is shared by the whole process."""


class ThreadedWritesAsync(DirectAsync):
    """Reads on the event loop; writes in a worker thread, because each one waits for fsync."""

    __slots__ = ()

    @staticmethod
    async def _off(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        await self._off(self.sync.set, key, value, ttl_ms)

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        await self._off(self.sync.set_many, items, ttl_ms)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._off(self.sync.add, key, value, ttl_ms)

    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._off(self.sync.replace, key, value, ttl_ms)

    async def delete(self, key: bytes) -> bool:
        return await self._off(self.sync.delete, key)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._off(self.sync.delete_many, keys)

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return await self._off(self.sync.expire, key, ttl_ms)

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return await self._off(self.sync.incr, key, delta, create)

    async def clear(self, prefix: bytes) -> None:
        await self._off(self.sync.clear, prefix)

    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return await self._off(self.sync.delete_if, key, value)

    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._off(self.sync.expire_if, key, value, ttl_ms)


class RocksDBBackend:
    """``rocksdb:///abs/path`` or ``rocksdb://relative/path`` (relative to the working directory).

    One database handle per directory per process (``tsot.backends.base.shared``), shared by
    every Storage and thread; ``Storage.close()`` leaves it open. Another process opening the
    same directory gets StorageLocked.
    """

    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option(
            "sync_writes",
            bool,
            False,
            "fsync the write-ahead log before a write returns (survives power loss, ~100x slower "
            "writes); off, acknowledged writes still survive a crash of the process.",
        ),
        Option(
            "block_cache_size",
            int,
            32 << 20,
            "Bytes of RAM caching uncompressed table blocks (0 = no cache).",
            minimum=0,
        ),
        Option(
            "block_compression",
            str,
            "lz4",
            "Compression of RocksDB table blocks on disk.",
            choices=("none", "snappy", "lz4", "zstd"),
        ),
        Option(
            "max_disk_bytes",
            int,
            None,
            "Approximate bound on the directory's size; the oldest writes are dropped first.",
            minimum=MIN_DISK_BYTES,
            nullable=True,
        ),
        Option(
            "purge_interval",
            float,
            60.0,
            "Seconds between background passes that delete expired entries (none = off).",
            minimum=0.001,
            nullable=True,
        ),
        Option(
            "clock",
            object,
            None,
            "Callable returning Unix seconds (tests inject one).",
            nullable=True,
        ),
    )

    @staticmethod
    def path_of(location: Location) -> str:
        """The absolute directory a ``rocksdb://`` location names (not yet resolved)."""
        where = f"rocksdb URL {location.masked!r}"
        if location.username is not None or location.password is not None:
            raise ConfigurationError(f"{where} must not contain a user or password")
        if len(location.hosts) > 1 or any(port is not None for _, port in location.hosts):
            raise ConfigurationError(
                f"{where} must be rocksdb:///absolute/path or rocksdb://relative/path"
            )
        raw = (location.hosts[0][0] if location.hosts else "") + location.path
        if not raw.strip("/"):
            raise ConfigurationError(f"{where} names no directory")
        return os.path.abspath(raw)

    @staticmethod
    def _config(options: Mapping[str, Any]) -> DBConfig:
        clock = options["clock"] or time.time
        if not callable(clock):
            raise ConfigurationError(
                f"option 'clock' must be callable, not {clock!r}", option="clock"
            )
        return DBConfig(
            block_cache_size=options["block_cache_size"],
            block_compression=options["block_compression"],
            max_disk_bytes=options["max_disk_bytes"],
            purge_interval=options["purge_interval"],
            clock=clock,
        )

    @classmethod
    def handle(cls, location: Location, options: Mapping[str, Any]) -> Handle:
        """The process's handle on the location's directory, opened on first use."""
        config = cls._config(options)
        path = cls.path_of(location)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise translate(exc, path) from exc
        real = os.path.realpath(path)
        handle = shared(("rocksdb", real), lambda: Handle(real, config))
        if handle.closed:  # closed by close_database(): reopen for the new user
            drop_shared(("rocksdb", real))
            handle = shared(("rocksdb", real), lambda: Handle(real, config))
        differ = handle.config.differences(config)
        if differ:
            raise ConfigurationError(
                f"RocksDB database {real} is already open in this process with other "
                f"{', '.join(map(repr, differ))}; every Storage on one directory must pass the "
                "same database options",
                option=differ[0],
            )
        return handle

    @classmethod
    def check(cls, location: Location, options: Mapping[str, Any]) -> None:
        """Check the configuration without opening the directory (open does, on first use,
        so a process that never uses the Storage never takes the database's lock)."""
        cls.path_of(location)
        cls._config(options)
        require("rocksdict", "rocksdict", "rocksdb", "The rocksdb:// backend")

    @classmethod
    def open(cls, location: Location, options: Mapping[str, Any], prefix: bytes) -> RocksDBStore:
        return RocksDBStore(cls.handle(location, options), options["sync_writes"])

    @classmethod
    def open_async(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> DirectAsync:
        """Direct calls on the loop (microseconds); writes go to a thread when each one fsyncs."""
        store = cls.open(location, options, prefix)
        return ThreadedWritesAsync(store) if store.sync_writes else DirectAsync(store)


def close_database(path: str) -> bool:
    """Close this process's handle on the directory ``path``; False if none was open.

    Stores still holding the handle then raise BackendUnavailable; a new Storage reopens it.
    Another process may open the directory once this returns.
    """
    handle = drop_shared(("rocksdb", os.path.realpath(path)))
    if handle is None:
        return False
    handle.close()
    return True
