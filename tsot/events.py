"""The event hook: what a Storage's backend did, for metrics, traces and ``stats()``.

A Storage starts uninstrumented: its backend calls go straight to the backend, so a storage
nobody listens to pays nothing. The first ``Storage.listen(listener)`` (or a ``metrics`` /
``tracing`` option) swaps the backend for an ``Observed`` twin that times every primitive and
hands an ``Event`` to each listener after the call; under ``fail_open`` the twin sits inside the
breaker, so events show what reached the server and the breaker reports skips and transitions.

Event kinds (``Event.kind``):

- ``"op"``: one backend primitive (``get``, ``get_many``, ``set``, ... ``clear``): ``keys``,
  ``hits`` (reads only), ``bytes`` read or written, ``duration`` and, if it raised, ``error``;
- ``"breaker"``: the fail-open breaker of this storage's URL opened or closed
  (``fields["state"]`` is ``"open"`` or ``"closed"``), reported once, by the storage whose call
  made it change;
- ``"skip"``: a call answered under ``fail_open`` without the server (``fields["reason"]`` is
  ``short_circuited``, ``outage`` or ``refused``; ``fields["counter"]`` the fail-open counter);
- any other kind a later feature emits through ``Hub.emit`` (stampede protection, local-cache
  invalidations): ``operation`` and ``fields`` carry what it needs; listeners ignore kinds they
  do not know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from .backends.base import TTL_MISSING
from .lazy import wrapped
from .logs import limited

PRIMITIVES: Final = (
    "get",
    "get_many",
    "set",
    "set_many",
    "add",
    "delete",
    "delete_many",
    "exists",
    "ttl",
    "expire",
    "incr",
    "clear",
)
"""The backend calls an Observed backend times (``close`` and ``stats`` are not operations)."""

OPTIONAL: Final = ("replace", "delete_if", "expire_if")
"""Primitives timed when the backend has them (``replace``, a lock's owner-checked release and
extension: a third-party backend may predate them); ``scan`` (an iterator) passes through
untimed."""

READS: Final = frozenset({"get", "get_many", "exists", "ttl"})

_NO_FIELDS: Final[Mapping[str, Any]] = MappingProxyType({})

_SYSTEMS: Final = {"rediss": "redis", "unix": "redis", "valkeys": "valkey"}


@dataclass(frozen=True)
class Source:
    """The storage an event comes from: ``name`` (the ``label`` option, else its URL without
    credentials or query), ``system`` (redis, valkey, memcached, memory, rocksdb, or a
    third-party scheme), the first server's address and port (None for local stores) and the
    namespace."""

    name: str
    system: str
    address: str | None = None
    port: int | None = None
    namespace: str = ""

    @classmethod
    def of(cls, location: Any, namespace: str, label: str) -> Source:
        """The Source of a storage at ``location`` (a tsot.config.Location, or None for a
        private memory store)."""
        if location is None:
            return cls(label or "memory://(private)", "memory", None, None, namespace)
        scheme = location.scheme
        system = _SYSTEMS.get(scheme, scheme.split("+")[0])
        address, port = location.hosts[0] if location.hosts else (None, None)
        if not label:
            hosts = ",".join(h if p is None else f"{h}:{p}" for h, p in location.hosts)
            label = f"{scheme}://{hosts}{location.path}"
        return cls(label, system, address or None, port, namespace)


@dataclass(slots=True)
class Event:
    """One thing a storage did; see the module docstring for the kinds (treat it as read-only:
    every listener gets the same object)."""

    source: Source
    kind: str
    operation: str = ""
    keys: int = 0
    hits: int | None = None
    bytes: int = 0
    duration: float = 0.0
    """Seconds the backend call took (``perf_counter``)."""
    error: str | None = None
    """The class name of the exception the call raised (it is re-raised after the event)."""
    exception: BaseException | None = field(default=None, repr=False)
    fields: Mapping[str, Any] = field(default_factory=lambda: _NO_FIELDS)
    end_ns: int = 0
    """Wall-clock end of the call (``time.time_ns``), so a tracer can place the span."""


Listener = Callable[[Event], None]


class OpStats:
    """Counters of one operation (``stats()["events"]``)."""

    __slots__ = ("bytes", "calls", "errors", "hits", "misses", "seconds")

    def __init__(self) -> None:
        self.calls = self.hits = self.misses = self.errors = self.bytes = 0
        self.seconds = 0.0

    def as_dict(self) -> dict[str, int | float]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}


class Hub:
    """The listeners of one storage, the counters ``stats()`` reports, and ``emit``."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.listeners: tuple[Listener, ...] = ()
        self.lock = threading.Lock()
        self._ops: dict[str, OpStats] = {}
        self._kinds: dict[str, int] = {}

    def op_stats(self, operation: str) -> OpStats:
        """The counters of ``operation`` (made on first use)."""
        with self.lock:
            found = self._ops.get(operation)
            if found is None:
                found = self._ops[operation] = OpStats()
            return found

    def add(self, listener: Listener) -> Callable[[], None]:
        """Attach ``listener``; return the function that detaches it."""
        if not callable(listener):
            raise TypeError(f"a listener must be callable, not {type(listener).__name__}")
        with self.lock:
            self.listeners = (*self.listeners, listener)

        def remove() -> None:
            with self.lock:
                self.listeners = tuple(x for x in self.listeners if x is not listener)

        return remove

    def emit(self, event: Event) -> None:
        """Count ``event`` and hand it to every listener."""
        self._count(event)
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to every listener; a failing listener is logged (at a bounded rate)
        and never fails the cache call."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:
                limited.warning(
                    f"listener:{self.source.name}",
                    "tsot: an event listener of %s raised %r; the event was dropped for it",
                    self.source.name,
                    exc,
                )

    def notify(self, kind: str, operation: str = "", **fields: Any) -> None:
        """Emit an event of ``kind`` with ``fields`` (breaker, skip, and later kinds)."""
        self.emit(Event(self.source, kind, operation, fields=fields, end_ns=time.time_ns()))

    def _count(self, event: Event) -> None:
        if event.kind != "op":
            key = f"{event.kind}:{event.fields.get('state') or event.fields.get('reason', '')}"
            with self.lock:
                self._kinds[key] = self._kinds.get(key, 0) + 1
            return
        ops = self.op_stats(event.operation)
        with self.lock:
            ops.calls += 1
            ops.seconds += event.duration
            ops.bytes += event.bytes
            if event.error is not None:
                ops.errors += 1
            elif event.hits is not None:
                ops.hits += event.hits
                ops.misses += event.keys - event.hits

    def snapshot(self) -> dict[str, Any]:
        """``{"operations": {op: counters}, "events": {"kind:detail": count}}``."""
        with self.lock:
            return {
                "operations": {op: s.as_dict() for op, s in sorted(self._ops.items()) if s.calls},
                "events": dict(sorted(self._kinds.items())),
            }


# -- what each primitive read or wrote -----------------------------------------------------


def _size(data: Any) -> int:
    return len(data) if data is not None else 0  # values are bytes (the backend protocol)


Measure = Callable[[Sequence[Any], Any], tuple[int, int | None, int]]

_MEASURES: Final[dict[str, Measure]] = {
    "get": lambda args, result: (1, 0, 0) if result is None else (1, 1, len(result)),
    "get_many": lambda args, result: (
        len(args[0]),
        sum(r is not None for r in result),
        sum(len(r) for r in result if r is not None),
    ),
    "set": lambda args, result: (1, None, len(args[1])),
    "add": lambda args, result: (1, None, len(args[1])),
    "replace": lambda args, result: (1, None, len(args[1])),
    "set_many": lambda args, result: (len(args[0]), None, sum(len(v) for _, v in args[0])),
    "exists": lambda args, result: (1, int(bool(result)), 0),
    "ttl": lambda args, result: (1, int(result != TTL_MISSING), 0),
    "delete_many": lambda args, result: (len(args[0]), None, 0),
    "clear": lambda args, result: (0, None, 0),
}


def _one_key(args: Sequence[Any], result: Any) -> tuple[int, int | None, int]:
    return 1, None, 0


def _failed(operation: str, args: Sequence[Any]) -> tuple[int, int]:
    """``(keys, bytes)`` of a call that raised: what it tried."""
    if operation in ("get_many", "delete_many"):
        return len(args[0]), 0
    if operation == "set_many":
        return len(args[0]), sum(_size(v) for _, v in args[0])
    if operation in ("set", "add", "replace"):
        return 1, _size(args[1])
    return (0 if operation == "clear" else 1), 0


class _Observed:
    """A backend twin whose primitives emit an ``op`` event; anything else is the backend's."""

    def __init__(self, backend: Any, hub: Hub) -> None:
        self.inner = backend
        self.hub = hub
        for name in PRIMITIVES:
            setattr(self, name, self._wrap(getattr(backend, name), name))
        for name in OPTIONAL:
            if hasattr(backend, name):  # a third-party backend may predate them
                setattr(self, name, self._wrap(getattr(backend, name), name))

    def __getattr__(self, name: str) -> Any:  # close, stats, backend-specific extras
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]:
        raise NotImplementedError

    def _finisher(self, name: str) -> Callable[[Sequence[Any], Any, float], Any]:
        """What runs after a successful call of ``name``: count it, then (only if someone
        listens) build its Event and deliver it; it returns the call's result. Shared by the
        sync and async twins, whose wrappers differ only in the await of the call."""
        hub, lock = self.hub, self.hub.lock
        measure, counts = _MEASURES.get(name, _one_key), hub.op_stats(name)

        def done(args: Sequence[Any], result: Any, started: float) -> Any:
            duration = time.perf_counter() - started
            keys, hits, size = measure(args, result)
            with lock:
                counts.calls += 1
                counts.seconds += duration
                counts.bytes += size
                if hits is not None:
                    counts.hits += hits
                    counts.misses += keys - hits
            if hub.listeners:
                end = time.time_ns()
                hub.deliver(Event(hub.source, "op", name, keys, hits, size, duration, end_ns=end))
            return result

        return done

    def _raised(self, name: str, args: Sequence[Any], exc: BaseException, started: float) -> None:
        """Emit the event of a call that raised ``exc``."""
        duration = time.perf_counter() - started
        keys, size = _failed(name, args)
        self.hub.emit(
            Event(
                self.hub.source,
                "op",
                name,
                keys,
                None,
                size,
                duration,
                type(exc).__name__,
                exc,
                end_ns=time.time_ns(),
            )
        )


class Observed(_Observed):
    """The sync twin."""

    def _wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]:
        done = self._finisher(name)

        def observed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                result = call(*args)
            except Exception as exc:
                self._raised(name, args, exc, started)
                raise
            return done(args, result, started)

        return observed


class AsyncObserved(_Observed):
    """The asyncio twin: the event is emitted in the awaiting task, so its context (the current
    span) is the caller's even when the call rode an auto-pipelined connection."""

    def _wrap(
        self, call: Callable[..., Awaitable[Any]], name: str
    ) -> Callable[..., Awaitable[Any]]:
        done = self._finisher(name)

        async def observed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await call(*args)
            except Exception as exc:
                self._raised(name, args, exc, started)
                raise
            return done(args, result, started)

        return observed


def notify(storage: Any, kind: str, operation: str = "", **fields: Any) -> None:
    """Report an event of a new ``kind`` (stampede protection, local-cache invalidations, ...)
    to ``storage``'s listeners; nothing happens, at the cost of one attribute read, when it has
    none."""
    hub: Hub | None = storage._hub
    if hub is not None:
        hub.notify(kind, operation, **fields)


_attach_lock = threading.Lock()


def attach(storage: Any, listener: Listener | None, asynchronous: bool) -> Callable[[], None]:
    """``storage.listen``: give ``storage`` its Hub and instrumented backend on first use (once,
    even when threads race), then add ``listener`` (None: only the counters of ``stats()``)."""
    hub: Hub | None = storage._hub
    if hub is None:
        with _attach_lock:
            hub = storage._hub
            if hub is None:
                hub = Hub(Source.of(storage.location, storage.namespace, storage._label))
                # on a lazily opened backend: instrumented when it opens (tsot.lazy)
                storage._b = wrapped(storage._b, lambda b: instrument(b, hub, asynchronous))
                storage._hub = hub
    return hub.add(listener) if listener is not None else _nothing


def _nothing() -> None:
    """Detaching no listener."""


def instrument(backend: Any, hub: Hub, asynchronous: bool) -> Any:
    """``backend`` with every primitive observed by ``hub`` (inside a fail-open guard, whose
    skips and breaker transitions go to ``hub`` too)."""
    from .failopen import _Guard

    twin = AsyncObserved if asynchronous else Observed

    def observed(inner: Any) -> Any:
        # a backend that reports events of its own (the Redis local cache) gets the hub's
        # notify as its sink; backends never import this module
        report = getattr(inner, "with_events", None)
        return twin(inner if report is None else report(hub.notify), hub)

    if isinstance(backend, _Guard):
        guard = backend.rewrap(observed)
        guard.notify = hub.notify
        return guard
    return observed(backend)


S = TypeVar("S")


def configure(storage: S, core: Mapping[str, Any]) -> S:
    """Attach the listeners the ``metrics`` and ``tracing`` options ask for (tsot.observers)."""
    if core["metrics"] or core["tracing"]:
        from .observers import attach

        attach(storage, core)
    return storage
