"""In-process memory backend: a thread-safe LRU table with absolute deadlines from a clock."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from ..codec import MISS, decode_int
from ..config import Location, Option
from ..errors import ConfigurationError, TsotError, ValueTooLarge, WrongType
from ..ints import format_int
from ..keys import shown
from ..ttl import FOREVER_SECONDS as FOREVER
from .base import TTL_MISSING, TTL_PERSISTENT, DirectAsync, shared
from .glob import matcher

Clock = Callable[[], float]


def _seconds_here(timeout: Any) -> bool:
    """True for a timeout ``MemoryStore.writer`` writes itself: None (never expires) or an int
    of seconds that ``Storage.store`` would keep as it is (above 0, below a hundred years)."""
    return timeout is None or (type(timeout) is int and 0 < timeout < FOREVER)


class MemoryStore:
    """One table: ``key -> [value, deadline]``; LRU order; bounded by entries and bytes.

    ``deadline`` is an absolute time on ``clock`` (seconds) or None. Expired entries are never
    returned; they are dropped when read, when touched by a write, and before live entries when
    room is needed. Values are bytes, so a caller mutating an object after storing it changes
    nothing stored.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._data: OrderedDict[bytes, list[Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._evictions = 0

    # internal helpers run with the lock held
    def _live(self, key: bytes) -> list[Any] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        deadline = entry[1]
        if deadline is not None and deadline <= self.clock():
            self._remove(key, entry)
            return None
        return entry

    def _remove(self, key: bytes, entry: list[Any]) -> None:
        del self._data[key]
        self._bytes -= len(key) + len(entry[0])

    def _deadline(self, ttl_ms: int | None) -> float | None:
        return None if ttl_ms is None else self.clock() + ttl_ms / 1000.0

    def _put(self, key: bytes, value: bytes, deadline: float | None) -> None:
        size = len(key) + len(value)
        max_bytes = self.max_bytes
        if max_bytes is not None and size > max_bytes:
            raise ValueTooLarge(
                f"value for key {shown(key)} is {len(value)} bytes; this memory store holds at "
                f"most {max_bytes} bytes (max_bytes)"
            )
        data = self._data
        old = data.get(key)
        if old is not None:
            self._bytes += size - len(key) - len(old[0])
            old[0] = value
            old[1] = deadline
            data.move_to_end(key)
        else:
            data[key] = [value, deadline]
            self._bytes += size
        if len(data) > self.max_entries or (max_bytes is not None and self._bytes > max_bytes):
            self._make_room()

    def _make_room(self) -> None:
        """Evict until within bounds: expired entries first, then least recently used ones.

        Finding expired entries means a full scan, so it runs at most once per
        ``max_entries`` evictions (amortised O(1) per write); in between, the LRU end goes.
        """
        data = self._data
        self._evictions += 1
        if self._evictions >= self.max_entries:
            self._evictions = 0
            now = self.clock()
            for key in [k for k, e in data.items() if e[1] is not None and e[1] <= now]:
                self._remove(key, data[key])
        while len(data) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            key, entry = data.popitem(last=False)
            self._bytes -= len(key) + len(entry[0])

    # the Backend protocol
    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return entry[0]  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._lock:
            out: list[bytes | None] = []
            for key in keys:
                entry = self._live(key)
                if entry is None:
                    out.append(None)
                else:
                    self._data.move_to_end(key)
                    out.append(entry[0])
            found = len(out) - out.count(None)
            self.hits += found
            self.misses += len(out) - found
            return out

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        with self._lock:
            self._put(key, value, self._deadline(ttl_ms))

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        with self._lock:
            if self.max_bytes is not None:
                for key, value in items:  # check all first: nothing half-written
                    if len(key) + len(value) > self.max_bytes:
                        self._put(key, value, None)  # raises ValueTooLarge
            deadline = self._deadline(ttl_ms)
            for key, value in items:
                self._put(key, value, deadline)

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._put(key, value, self._deadline(ttl_ms))
            return True

    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        with self._lock:
            if self._live(key) is None:  # absent or expired (``_live`` drops an expired entry)
                return False
            self._put(key, value, self._deadline(ttl_ms))
            return True

    def delete(self, key: bytes) -> bool:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            self._remove(key, entry)
            return True

    def delete_many(self, keys: Sequence[bytes]) -> int:
        with self._lock:
            count = 0
            for key in keys:
                entry = self._live(key)
                if entry is not None:
                    self._remove(key, entry)
                    count += 1
            return count

    def exists(self, key: bytes) -> bool:
        with self._lock:
            return self._live(key) is not None

    def ttl(self, key: bytes) -> int:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return TTL_MISSING
            if entry[1] is None:
                return TTL_PERSISTENT
            return max(0, math.ceil((float(entry[1]) - self.clock()) * 1000))

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            entry[1] = self._deadline(ttl_ms)
            return True

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                if not create:
                    return None
                self._put(key, format_int(delta), None)
                return delta
            if type(entry[0]) is not bytes:  # a value kept as an object (tsot.inprocess)
                raise WrongType(f"value of key {shown(key)} is not an integer")
            value = decode_int(entry[0], key) + delta
            self._put(key, format_int(value), entry[1])  # too many digits: nothing written
            return value

    def clear(self, prefix: bytes) -> None:
        with self._lock:
            if not prefix:
                self._data.clear()
                self._bytes = 0
                return
            for key in [k for k in self._data if k.startswith(prefix)]:
                self._remove(key, self._data[key])

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        """The matching live keys, listed under the lock in one pass (``count`` is not needed:
        nothing crosses a network). The order of use is left as it was."""
        match, start = matcher(pattern), len(prefix)
        with self._lock:
            now = self.clock()
            found = [
                key
                for key, (_, deadline) in self._data.items()
                if key.startswith(prefix)
                and (deadline is None or deadline > now)
                and match(key[start:])
            ]
        return iter(found)

    def delete_if(self, key: bytes, value: bytes) -> bool:
        with self._lock:
            entry = self._live(key)
            if entry is None or entry[0] != value:
                return False
            self._remove(key, entry)
            return True

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        with self._lock:
            entry = self._live(key)
            if entry is None or entry[0] != value:
                return False
            entry[1] = self._deadline(ttl_ms)
            return True

    # one-call reads and writes for an adapter (tsot_django's MemoryCache)
    def reader(
        self,
        owner: Any,
        keys: Mapping[Any, bytes],
        decode: Callable[[Any, bytes], Any],
        general: Callable[..., Any],
    ) -> Callable[..., Any]:
        """A ``get(key, default=None, version=None)`` (Django's cache API) that does in one
        Python call what ``owner`` (a Storage on this table) does in several: the key is
        looked up in ``keys`` (``key`` itself for version None, else ``(key, version)``; the
        adapter fills it), the entry read under the lock as ``get`` reads it, the value
        decoded by ``decode`` (its LocalCodec's). Any key not in ``keys``, and every call
        once ``owner`` no longer calls this table directly (``owner._b``: a listener
        instruments it, or it is closed), goes to ``general`` with the same arguments. The
        table's clock and bounds are read once: they never change."""
        data, lock, clock, table = self._data, self._lock, self.clock, self  # fixed for life

        def get(key: Any, default: Any = None, version: Any = None) -> Any:
            k = keys.get(key if version is None else (key, version)) if type(key) is str else None
            if k is None or owner._b is not table:
                return general(key, default, version)
            lock.acquire()
            try:
                entry = data.get(k)
                if entry is None:
                    table.misses += 1
                    return default
                deadline = entry[1]
                if deadline is not None and deadline <= clock():
                    table._remove(k, entry)
                    table.misses += 1
                    return default
                table.hits += 1
                data.move_to_end(k)
                value = entry[0]
            finally:
                lock.release()
            if type(value) is str:  # stored as itself (tsot.inprocess)
                return value
            value = decode(value, k)
            return default if value is MISS else value

        return get

    def writer(
        self,
        owner: Any,
        keys: Mapping[Any, bytes],
        encode: Callable[[Any, bytes], Any],
        str_chars: int,
        marker: object,
        default_ttl: Any,
        general: Callable[..., Any],
    ) -> Callable[..., Any]:
        """A ``set(key, value, timeout=marker, version=None, nx=False, xx=False)`` (Django's
        cache API with django-redis's ``nx``/``xx``) in one Python call, as ``reader``: a
        timeout of ``marker`` is ``default_ttl``; only None (never expires) and an int of
        seconds below a hundred years are written here, as ``Storage.store`` would (a str
        shorter than ``str_chars`` as itself, anything else through ``encode``); every other
        call, and any error, goes to ``general`` (which raises naming the key; nothing was
        written)."""
        data, lock, clock, bounded, table = self._data, self._lock, self.clock, self.max_bytes, self
        default_here = _seconds_here(default_ttl)

        def put(
            key: Any,
            value: Any,
            timeout: Any = marker,
            version: Any = None,
            nx: bool = False,
            xx: bool = False,
        ) -> Any:
            k = keys.get(key if version is None else (key, version)) if type(key) is str else None
            if timeout is marker:
                timeout = default_ttl
                here = default_here
            else:  # _seconds_here written out
                here = timeout is None or (type(timeout) is int and 0 < timeout < FOREVER)
            if k is None or not here or nx or xx or owner._b is not table:
                return general(key, value, timeout, version, nx, xx)
            stored = value
            if type(value) is not str or len(value) >= str_chars:
                try:
                    stored = encode(value, k)
                except TsotError:
                    return general(key, value, timeout, version, nx, xx)
            deadline = None if timeout is None else clock() + timeout
            lock.acquire()
            try:
                old = data.get(k)
                if old is None or bounded is not None:
                    table._put(k, stored, deadline)
                else:  # _put's commonest case written out: a new value for a key, no bytes bound
                    table._bytes += len(stored) - len(old[0])  # (the number of entries stays)
                    old[0] = stored
                    old[1] = deadline
                    data.move_to_end(k)
                return None
            except TsotError:  # ValueTooLarge (max_bytes): nothing written
                pass
            finally:
                lock.release()
            return general(key, value, timeout, version, nx, xx)

        return put

    def stats(self) -> dict[str, int | None]:
        """Hits and misses of reads since the table was made, the number of entries and their
        size in bytes (keys and values)."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "keys": len(self._data),
                "memory_bytes": self._bytes,
            }

    def close(self) -> None:
        """Nothing to release: the table lives as long as the process (or the private Storage)."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes


class MemoryBackend:
    """``memory://`` (the process-wide default table), ``memory://NAME`` (a named one)."""

    IN_PROCESS: ClassVar[bool] = True
    """Values may be kept as objects, unsigned (tsot.inprocess): nothing outside the process
    writes to a table."""

    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option(
            "max_entries",
            int,
            10_000,
            "Most entries kept; least recently used go first.",
            minimum=1,
        ),
        Option(
            "max_bytes", int, None, "Most bytes (keys + values) kept.", minimum=1, nullable=True
        ),
        Option(
            "clock", object, None, "Callable returning seconds (tests inject one).", nullable=True
        ),
    )

    @staticmethod
    def _store(options: Mapping[str, Any]) -> MemoryStore:
        return MemoryStore(
            max_entries=options["max_entries"],
            max_bytes=options["max_bytes"],
            clock=options["clock"] or time.monotonic,
        )

    @classmethod
    def _name(cls, location: Location) -> str:
        if location.path.strip("/") or len(location.hosts) > 1:
            raise ConfigurationError(
                f"memory URL {location.masked!r} must be memory:// or memory://NAME"
            )
        return location.hosts[0][0] if location.hosts else "default"

    @classmethod
    def open(cls, location: Location, options: Mapping[str, Any], prefix: bytes) -> MemoryStore:
        return shared(("memory", cls._name(location)), lambda: cls._store(options))

    @classmethod
    def open_async(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> DirectAsync:
        return DirectAsync(cls.open(location, options, prefix))

    @classmethod
    def private(cls, options: Mapping[str, Any]) -> MemoryStore:
        """A store that belongs to one Storage only (``Storage.new_imc``)."""
        return cls._store(options)
