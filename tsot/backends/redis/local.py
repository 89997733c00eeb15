"""The Redis local cache's table: LRU by entries and bytes, deadlines, and the coherence state.

I/O-free. The invalidation listeners (``redis.tracking``) call ``invalidate``, ``flush`` and
``set_live``; the backend decorators (``redis.cached``) call ``lookup``, ``begin``, ``fill`` and
``drop``. Coherence rests on three invariants, each kept under one lock:

- entries exist only while tracking is live: going down (or coming back up) empties the table,
  and ``fill`` refuses while it is down;
- every invalidation and flush advances a generation counter; a read samples it (``begin``)
  before it is sent, and its reply is stored only if no invalidation of its key (and no flush)
  happened since, so a reply that was in flight when its invalidation arrived is never kept;
- an entry's deadline is the earlier of the server's TTL (measured from before the read was
  sent, so never later than the server's) and ``local_ttl``.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ...codec import MISS
from ...config import Option
from ...errors import ConfigurationError

Clock = Callable[[], float]

OPTIONS: tuple[Option, ...] = (
    Option(
        "local_cache",
        bool,
        False,
        "Keep hot values in process memory, invalidated by the server (CLIENT TRACKING).",
    ),
    Option(
        "local_max_entries",
        int,
        10_000,
        "local_cache: most entries kept; least recently used go first.",
        minimum=1,
    ),
    Option(
        "local_max_bytes",
        int,
        64 * 1024 * 1024,
        "local_cache: most bytes (keys + values) kept; a larger value is never kept locally.",
        minimum=1,
    ),
    Option(
        "local_ttl",
        float,
        None,
        "local_cache: longest time in seconds a value is served locally; none = the server TTL.",
        minimum=0.001,
        nullable=True,
    ),
    Option(
        "local_clock",
        object,
        None,
        "local_cache: callable returning seconds for local deadlines (tests inject one).",
        nullable=True,
    ),
)
"""The options of the local cache (part of the Redis backend's options)."""


class Observer(Protocol):
    """What a ``LocalStore`` tells its observers (``LocalStore.observe``)."""

    def local_event(self, reason: str, count: int) -> None:
        """``reason``: ``invalidation`` (``count`` keys the server reported), ``flush`` (a null
        message, ``clear()``, or a Cluster topology change that kept tracking up), ``lost`` or
        ``restored`` (tracking went down or came back up; the table was emptied either way)."""


_IMMUTABLE: Final = frozenset((str, bytes, int, float))
"""Decoded types ``reader`` may hand out twice: nothing a caller does changes them."""

_RECENT: Final = 4096
"""Invalidated keys remembered for reads in flight; an older read refills nothing."""


@dataclass(frozen=True)
class LocalSettings:
    max_entries: int
    max_bytes: int
    ttl: float | None
    clock: Clock


def settings(options: Mapping[str, Any], name: str) -> LocalSettings | None:
    """The local cache's settings, or None when ``local_cache`` is off; raises
    ConfigurationError naming what cannot work together."""
    if not options["local_cache"]:
        return None
    if options["read_from_replicas"]:
        raise ConfigurationError(
            f"option 'local_cache' cannot be combined with 'read_from_replicas' (storage URL "
            f"{name!r}): a lagging replica could refill a value the primary already invalidated",
            option="local_cache",
        )
    clock = options["local_clock"]
    if clock is not None and not callable(clock):
        raise ConfigurationError(
            f"option 'local_clock' must be callable, not {clock!r}", option="local_clock"
        )
    return LocalSettings(
        max_entries=options["local_max_entries"],
        max_bytes=options["local_max_bytes"],
        ttl=options["local_ttl"],
        clock=clock or time.monotonic,
    )


class Ticket:
    """A read in flight: the generation and the time sampled before it was sent."""

    __slots__ = ("gen", "started")

    def __init__(self, gen: int, started: float) -> None:
        self.gen = gen
        self.started = started


class LocalStore:
    """``key -> (value, deadline)`` in LRU order, plus the generation state (module docstring)."""

    def __init__(self, s: LocalSettings) -> None:
        self.max_entries = s.max_entries
        self.max_bytes = s.max_bytes
        self.ttl = s.ttl
        self.clock = s.clock
        self._data: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.live = False
        self._gen = 0  # advanced by every invalidation, flush and own write
        self._floor = 0  # a read that began before this generation fills nothing
        self._recent: OrderedDict[bytes, int] = OrderedDict()  # key -> generation of its drop
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.flushes = 0
        self.refused = 0  # replies not kept: an invalidation or a flush overtook them
        self._observers: tuple[weakref.ref[Observer], ...] = ()

    # -- observers -------------------------------------------------------------------------------

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` of invalidations, flushes and tracking changes, from whichever
        thread sees them, until it is garbage or ``unobserve``d (held weakly: a Storage that is
        dropped stops listening). Reads and hits are not reported here (``redis.cached``)."""
        with self._lock:
            live = tuple(r for r in self._observers if r() is not None)
            self._observers = (*live, weakref.ref(observer))

    def unobserve(self, observer: Observer) -> None:
        with self._lock:
            self._observers = tuple(r for r in self._observers if r() not in (None, observer))

    def _report(self, reason: str, count: int) -> None:
        """Outside the lock: an observer runs listeners' code."""
        for ref in self._observers:
            observer = ref()
            if observer is not None:
                observer.local_event(reason, count)

    # -- reads ---------------------------------------------------------------------------------

    def lookup(self, key: bytes) -> bytes | None:
        """The local value of ``key``, or None (then the caller reads the server)."""
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                if entry[1] > self.clock():
                    self._data.move_to_end(key)
                    self.hits += 1
                    return entry[0]
                self._remove(key)
            self.misses += 1
            return None

    def reader(
        self,
        owner: Any,
        backend: Any,
        keys: Mapping[Any, bytes],
        decode: Callable[[bytes, bytes], Any],
        general: Callable[..., Any],
    ) -> Callable[..., Any]:
        """A ``get(key, default=None, version=None)`` (Django's cache API) that serves a hit
        as ``lookup`` and the Storage would, in one Python call: the key is looked up in
        ``keys`` (``key`` itself for version None, else ``(key, version)``; the adapter fills
        it), the entry read under the lock as ``lookup`` reads it, its bytes decoded by
        ``decode`` (the Storage's codec: a signature is checked as on every read). A key not
        in ``keys``, a local miss, and every call once ``owner._b`` is no longer ``backend``
        go to ``general`` with the same arguments.

        The value a str, bytes, int or float decodes to is remembered with the very bytes
        object it came from (held, so never another object at the same address): the next hit
        on those bytes returns it without decoding. A refill, an invalidation or an eviction
        replaces or drops the bytes, and the next hit decodes again. What is remembered is
        bounded as the table is (``local_max_entries``, ``local_max_bytes``, counting the bytes
        and the value each at the bytes' size), and forgotten whole when full.
        """
        data, clock, store = self._data, self.clock, self
        kept: dict[bytes, tuple[bytes, Any]] = {}  # key -> (its bytes, their immutable value)
        # bounded as the table is: an entry the table evicts stays here until replaced, so
        # without its own bound this would hold bytes the table has let go
        most, budget = self.max_entries, self.max_bytes
        held = [0]  # bytes kept here, about (the bytes and the value each count as their size)

        def get(key: Any, default: Any = None, version: Any = None) -> Any:
            k = keys.get(key if version is None else (key, version)) if type(key) is str else None
            if k is None or owner._b is not backend:
                return general(key, default, version)
            lock = store._lock  # (a forked child's store has a new one)
            lock.acquire()
            try:
                entry = data.get(k)
                if entry is None or entry[1] <= clock():
                    raw = None  # the general path counts the miss and drops an expired entry
                else:
                    data.move_to_end(k)
                    store.hits += 1
                    raw = entry[0]
            finally:
                lock.release()
            if raw is None:
                return general(key, default, version)
            known = kept.get(k)
            if known is not None and known[0] is raw:
                return known[1]
            value = decode(raw, k)
            if value is MISS:
                return default
            if type(value) in _IMMUTABLE:
                size = 2 * len(raw)
                if len(kept) >= most or held[0] + size > budget:
                    kept.clear()
                    held[0] = 0
                if size <= budget:
                    kept[k] = (raw, value)
                    held[0] += size
            return value

        return get

    def begin(self) -> Ticket | None:
        """Sample the state before a read is sent; None while tracking is down (keep nothing)."""
        if not self.live:
            return None
        return Ticket(self._gen, self.clock())

    def fill(self, key: bytes, value: bytes | None, pttl: int, ticket: Ticket | None) -> None:
        """Keep ``value`` (read with ``ticket``; ``pttl``: the server's PTTL from the same round
        trip) unless tracking went down or ``key`` was invalidated since the read began."""
        if ticket is None or value is None or pttl == -2:
            return
        size = len(key) + len(value)
        if size > self.max_bytes:
            return
        deadline = ticket.started + pttl / 1000.0 if pttl >= 0 else math.inf
        if self.ttl is not None:
            deadline = min(deadline, ticket.started + self.ttl)
        with self._lock:
            if not self._admits(key, ticket):
                self.refused += 1
                return
            if deadline <= self.clock():
                return
            if key in self._data:
                self._remove(key)
            self._data[key] = (value, deadline)
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                self._remove(next(iter(self._data)))

    def _admits(self, key: bytes, ticket: Ticket) -> bool:
        if not self.live or ticket.gen < self._floor:
            return False
        if ticket.gen == self._gen:
            return True
        dropped = self._recent.get(key)
        return dropped is None or dropped <= ticket.gen

    # -- invalidation ----------------------------------------------------------------------------

    def invalidate(self, keys: Iterable[bytes]) -> None:
        """The server says these keys changed."""
        count = 0
        with self._lock:
            for key in keys:
                count += 1
                self._drop(key)
            self.invalidations += count
        if self._observers:
            self._report("invalidation", count)

    def drop(self, keys: Iterable[bytes]) -> None:
        """This process writes these keys: forget them, and refuse reads already in flight."""
        with self._lock:
            for key in keys:
                self._drop(key)

    def flush(self) -> None:
        """Forget everything (a null invalidation, FLUSHDB/FLUSHALL, clear()): reads in flight
        keep nothing."""
        with self._lock:
            self.flushes += 1
            self._reset()
        if self._observers:
            self._report("flush", 1)

    def set_live(self, live: bool) -> None:
        """Tracking went up or down: either way the table starts empty."""
        with self._lock:
            was = self.live
            self._reset()
            self.live = live
        if self._observers and (was or live):
            self._report("flush" if was and live else "restored" if live else "lost", 1)

    def orphan(self) -> None:
        """A forked child's copy: empty, down, with a new lock (another thread may have held
        the old one at the fork)."""
        self._lock = threading.Lock()
        self.set_live(False)

    # -- helpers, lock held ----------------------------------------------------------------------

    def _drop(self, key: bytes) -> None:
        self._gen += 1
        if key in self._data:
            self._remove(key)
        recent = self._recent
        recent[key] = self._gen
        recent.move_to_end(key)
        if len(recent) > _RECENT:
            _, gen = recent.popitem(last=False)
            self._floor = max(self._floor, gen)

    def _reset(self) -> None:
        self._gen += 1
        self._floor = self._gen
        self._data.clear()
        self._recent.clear()
        self._bytes = 0

    def _remove(self, key: bytes) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= len(key) + len(value)

    # -- reporting -------------------------------------------------------------------------------

    def stats(self) -> dict[str, int | None]:
        with self._lock:
            return {
                "local_hits": self.hits,
                "local_misses": self.misses,
                "local_invalidations": self.invalidations,
                "local_flushes": self.flushes,
                "local_refused": self.refused,
                "local_entries": len(self._data),
                "local_bytes": self._bytes,
                "local_live": int(self.live),
            }
