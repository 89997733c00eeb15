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
from ..errors import ConfigurationError, ValueTooLarge, WrongType
from ..ints import format_int
from ..keys import shown
from .base import TTL_MISSING, TTL_PERSISTENT, DirectAsync, shared
from .glob import matcher

Clock = Callable[[], float]


def _as_stored(data: Any, key: bytes) -> Any:
    """``get``'s decoder: what is stored, as it is."""
    return data


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

    def load(self, key: bytes, default: Any, decode: Callable[[Any, bytes], Any]) -> Any:
        """The value of ``key`` decoded by ``decode`` (a LocalCodec's), or ``default`` if it is
        absent or expired: every read's path (``get`` is this without decoding), so ``_live``
        is written out. A str is stored as itself (tsot.inprocess) and returned as it is."""
        lock = self._lock
        lock.acquire()
        try:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return default
            deadline = entry[1]
            if deadline is not None and deadline <= self.clock():
                self._remove(key, entry)
                self.misses += 1
                return default
            self.hits += 1
            self._data.move_to_end(key)
            data = entry[0]
        finally:
            lock.release()
        if type(data) is str:
            return data
        value = decode(data, key)
        return default if value is MISS else value

    # the Backend protocol
    def get(self, key: bytes) -> bytes | None:
        return self.load(key, None, _as_stored)  # type: ignore[no-any-return]

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
        self.put(key, value, None if ttl_ms is None else ttl_ms / 1000.0)

    def put(self, key: bytes, value: Any, seconds: float | None) -> None:
        """``set`` with the TTL in seconds (None: never expires): the write of tsot_django's
        MemoryCache, whose timeouts are seconds already."""
        deadline = None if seconds is None else self.clock() + seconds
        lock = self._lock
        lock.acquire()
        try:
            old = self._data.get(key)
            if old is None or self.max_bytes is not None:
                self._put(key, value, deadline)
            else:  # _put's commonest case written out: a new value for a key, no bytes bound
                self._bytes += len(value) - len(old[0])  # (the number of entries stays)
                old[0] = value
                old[1] = deadline
                self._data.move_to_end(key)
        finally:
            lock.release()

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
