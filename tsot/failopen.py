"""fail_open: backend outages become misses and skipped writes, behind a circuit breaker.

While the breaker is closed every call goes to the backend. The first BackendUnavailable opens
it: calls then get their fallback at once without touching the server, so a dead server costs
one timeout per ``probe_interval``, not one per call. After the interval one call probes the
server; success closes the breaker, failure keeps it open.

What a call gets while the backend is out depends on its kind (``KINDS``): a read misses and a
write (``set``, ``set_many``, ``add``, ``replace``) is skipped, but an invalidation (``delete``,
``delete_many``, ``clear``, ``expire``) raises BackendUnavailable unless
``fail_open_invalidation`` is on: a logout or a purge must not report success when it did not
happen. ``incr`` always raises (no number can be made up). An OutcomeUnknown (an ``add`` or
``incr`` whose reply was lost after it was sent: it may have run) is raised too, never turned
into a fallback: ``add`` answering False would report the caller's own lock as someone else's.

A WriteRefused (the server is up and refused to store: full, no permission) is not an outage:
it never opens the breaker. A refused write is reported (logged, counted) and skipped; a refused
invalidation raises as above, and so do a refused ``incr`` and a refused read (only an ACL
without read rights refuses one: a setting to fix, not a fault to hide).

Every decision is made in ``_Guard``; ``FailOpen`` and ``AsyncFailOpen`` differ only in the
``await`` of the backend call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from .backends.base import TTL_MISSING, AsyncBackend, Backend, backend_stats
from .errors import BackendUnavailable, OutcomeUnknown, WriteRefused
from .logs import limited

Clock = Callable[[], float]
Kind = Literal["read", "write", "invalidation", "count"]

COUNTERS: Final = ("short_circuited", "outage_misses", "skipped_writes", "refused_writes")
"""What ``stats()`` adds under fail_open (per process and URL, shared like the breaker):

- ``short_circuited``: calls answered by the open breaker without touching the server;
- ``outage_misses``: reads answered with a miss because the backend was out;
- ``skipped_writes``: writes (and, with ``fail_open_invalidation``, invalidations) not applied
  because the backend was out;
- ``refused_writes``: calls the server refused (WriteRefused) that were reported, not raised.
"""


class CircuitBreaker:
    """Closed -> open on a failure -> one probe per ``probe_interval`` -> closed on success.

    ``name`` (a masked URL) is what its log lines name; ``counts`` are the COUNTERS.
    """

    def __init__(
        self, probe_interval: float, clock: Clock = time.monotonic, name: str = "backend"
    ) -> None:
        self.probe_interval = probe_interval
        self.name = name
        self._clock = clock
        self._open_until: float | None = None
        self._lock = threading.Lock()
        self.failures = 0
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    @property
    def short_circuited(self) -> int:
        return self.counts["short_circuited"]

    def allow(self) -> bool:
        """True if a call may go to the backend (closed, or this caller is the probe)."""
        if self._open_until is None:
            return True
        with self._lock:
            if self._open_until is None:
                return True
            now = self._clock()
            if now >= self._open_until:
                self._open_until = now + self.probe_interval  # one probe per interval
                return True
            self.counts["short_circuited"] += 1
            return False

    def success(self) -> bool:
        """Close the breaker; True for the one call that closed it."""
        if self._open_until is None:
            return False
        with self._lock:
            if self._open_until is None:
                return False
            self._open_until = None
        limited.warning(
            f"breaker-closed:{self.name}",
            "tsot: %s is reachable again; fail_open: the cache is used again",
            self.name,
        )
        return True

    def failure(self) -> bool:
        """Open the breaker (again) for ``probe_interval``; True if it was closed."""
        with self._lock:
            self.failures += 1
            was_closed = self._open_until is None
            self._open_until = self._clock() + self.probe_interval
        return was_closed

    def count(self, counter: str) -> None:
        with self._lock:
            self.counts[counter] += 1

    def snapshot(self) -> dict[str, int]:
        """The COUNTERS, read together."""
        with self._lock:
            return dict(self.counts)


KINDS: Final[dict[str, tuple[Kind, Callable[..., Any] | None]]] = {
    "get": ("read", lambda key: None),
    "get_many": ("read", lambda keys: [None] * len(keys)),
    "exists": ("read", lambda key: False),
    "ttl": ("read", lambda key: TTL_MISSING),
    "set": ("write", lambda key, value, ttl_ms: None),
    "set_many": ("write", lambda items, ttl_ms: None),
    "add": ("write", lambda key, value, ttl_ms: False),
    "replace": ("write", lambda key, value, ttl_ms: False),
    "delete": ("invalidation", lambda key: False),
    "delete_many": ("invalidation", lambda keys: 0),
    "expire": ("invalidation", lambda key, ttl_ms: False),
    "clear": ("invalidation", lambda prefix: None),
    "incr": ("count", None),
}
"""Each primitive's kind and what it returns when it fails open. ``incr`` has no fallback."""

NEWER: Final = frozenset({"replace"})
"""Primitives of KINDS guarded only when the backend has them: a third-party backend may
predate them."""

PASSED: Final = ("scan", "delete_if", "expire_if")
"""Primitives that go to the backend unguarded: a key listing or a lock's owner check has no
fallback that would not lie (an empty listing, "not your lock")."""

_SKIPPED: Final[dict[Kind, str]] = {
    "read": "outage_misses",
    "write": "skipped_writes",
    "invalidation": "skipped_writes",
}


class _Guard:
    """What FailOpen and AsyncFailOpen share: wrapping every primitive, and every decision:
    before a call (short-circuit while open), after an outage and after a refusal."""

    def __init__(
        self, backend: Any, breaker: CircuitBreaker, where: str, invalidation: bool = False
    ) -> None:
        self.inner = backend
        self.breaker = breaker
        self._where = where
        self._invalidation = invalidation
        self.notify: Callable[..., None] | None = None  # tsot.events: skips and transitions
        for name, (kind, fallback) in KINDS.items():
            if name in NEWER and not hasattr(backend, name):
                continue
            if kind == "invalidation" and not invalidation:
                fallback = None
            setattr(self, name, self._wrap(getattr(backend, name), name, kind, fallback))
        self.close = backend.close
        for name in PASSED:  # no fallback is honest: an outage raises, as without fail_open
            if hasattr(backend, name):  # a third-party backend may predate them
                setattr(self, name, getattr(backend, name))

    def _wrap(
        self, call: Callable[..., Any], name: str, kind: Kind, fallback: Callable[..., Any] | None
    ) -> Any:
        raise NotImplementedError

    def rewrap(self, make: Callable[[Any], Any]) -> Any:
        """The same guard (breaker, options) around ``make(inner)`` (tsot.events instruments
        the backend inside the breaker)."""
        return type(self)(make(self.inner), self.breaker, self._where, self._invalidation)

    def _event(self, kind: str, operation: str, **fields: Any) -> None:
        if self.notify is not None:
            self.notify(kind, operation, **fields)

    def _closed_again(self, operation: str) -> None:
        self._event("breaker", operation, state="closed")

    def _open_error(self, name: str, kind: Kind) -> BackendUnavailable:
        """The error of a call that has no fallback, while the breaker is open."""
        if kind == "count":
            why = "no number can be made up"
        else:
            why = "an invalidation is not skipped silently; set fail_open_invalidation to skip it"
        return BackendUnavailable(
            f"{self._where} is unavailable (circuit open): {name} raises under fail_open ({why})"
        )

    def _short_circuit(
        self, name: str, kind: Kind, fallback: Callable[..., Any] | None, args: tuple[Any, ...]
    ) -> Any:
        if fallback is None:
            self._event("skip", name, reason="short_circuited", counter=None)
            raise self._open_error(name, kind)
        self.breaker.count(_SKIPPED[kind])
        self._event("skip", name, reason="short_circuited", counter=_SKIPPED[kind])
        return fallback(*args)

    def _caught(
        self,
        exc: BackendUnavailable | WriteRefused,
        name: str,
        kind: Kind,
        fallback: Callable[..., Any] | None,
        args: tuple[Any, ...],
    ) -> Any:
        """The answer to a call that raised ``exc``: its fallback, or ``exc`` raised again."""
        if isinstance(exc, WriteRefused):
            return self._refused(exc, name, kind, fallback, args)
        breaker = self.breaker
        if breaker.failure():
            self._event("breaker", name, state="open", error=type(exc).__name__)
        limited.warning(
            f"fail-open:{self._where}",
            "tsot: %s failed (%s); fail_open: reads miss and writes are skipped until it answers",
            self._where,
            exc,
        )
        if fallback is None or isinstance(exc, OutcomeUnknown):
            raise exc  # an add that may have run is not a skipped write (nor an incr a miss)
        breaker.count(_SKIPPED[kind])
        self._event("skip", name, reason="outage", counter=_SKIPPED[kind])
        return fallback(*args)

    def _refused(
        self, exc: WriteRefused, name: str, kind: Kind, fallback: Any, args: tuple[Any, ...]
    ) -> Any:
        if self.breaker.success():  # it answered: up, whatever it thinks of this command
            self._closed_again(name)
        if fallback is None or kind == "read":
            raise exc
        self.breaker.count("refused_writes")
        self._event("skip", name, reason="refused", counter="refused_writes")
        limited.warning(
            f"refused:{self._where}",
            "tsot: %s refused %s (%s); fail_open: skipped, the server stays in use",
            self._where,
            name,
            exc,
        )
        return fallback(*args)

    def _answered(self, name: str, result: Any) -> Any:
        """``result`` of a call that went through (closing the breaker if it was open)."""
        if self.breaker.success():
            self._closed_again(name)
        return result

    def _with_counters(self, out: dict[str, int | None]) -> dict[str, int | None]:
        return {**out, **self.breaker.snapshot()}


def unguarded(backend: Any) -> Any:
    """The backend behind a fail-open wrapper (``backend`` itself if it has none), for callers
    that must see an outage as an error: a lock's ``add`` failing open would report the lock as
    someone else's, forever."""
    return backend.inner if isinstance(backend, _Guard) else backend


class FailOpen(_Guard):
    """Wraps a sync backend; see the module docstring."""

    def __init__(
        self, backend: Backend, breaker: CircuitBreaker, where: str, invalidation: bool = False
    ) -> None:
        super().__init__(backend, breaker, where, invalidation)

    def stats(self) -> dict[str, int | None]:
        """The backend's counters (None for each while it is unavailable) and COUNTERS."""
        try:
            out = backend_stats(self.inner)
        except BackendUnavailable:
            out = backend_stats(None)
        return self._with_counters(out)

    def local_reader(self, *args: Any) -> Callable[..., Any] | None:
        """The inner backend's one-call local hits (a Redis local cache's ``local_reader``,
        same arguments), while the Storage calls this guard: a local hit never reaches the
        server, so there is nothing to fail open, and a miss goes to the general path, through
        the guard. None if the inner backend has none."""
        make = getattr(self.inner, "local_reader", None)
        return None if make is None else make(*args, self)

    def _wrap(
        self, call: Callable[..., Any], name: str, kind: Kind, fallback: Callable[..., Any] | None
    ) -> Callable[..., Any]:
        breaker = self.breaker

        def guarded(*args: Any) -> Any:
            if not breaker.allow():
                return self._short_circuit(name, kind, fallback, args)
            try:
                result = call(*args)
            except (BackendUnavailable, WriteRefused) as exc:
                return self._caught(exc, name, kind, fallback, args)
            return self._answered(name, result)

        return guarded


class AsyncFailOpen(_Guard):
    """Wraps an async backend; the same rules as FailOpen."""

    def __init__(
        self,
        backend: AsyncBackend,
        breaker: CircuitBreaker,
        where: str,
        invalidation: bool = False,
    ) -> None:
        super().__init__(backend, breaker, where, invalidation)

    async def stats(self) -> dict[str, int | None]:
        """The backend's counters (None for each while it is unavailable) and COUNTERS."""
        stats = getattr(self.inner, "stats", None)
        try:
            out = await stats() if stats is not None else backend_stats(None)
        except BackendUnavailable:
            out = backend_stats(None)
        return self._with_counters(out)

    def _wrap(
        self,
        call: Callable[..., Awaitable[Any]],
        name: str,
        kind: Kind,
        fallback: Callable[..., Any] | None,
    ) -> Callable[..., Awaitable[Any]]:
        breaker = self.breaker

        async def guarded(*args: Any) -> Any:
            if not breaker.allow():
                return self._short_circuit(name, kind, fallback, args)
            try:
                result = await call(*args)
            except (BackendUnavailable, WriteRefused) as exc:
                return self._caught(exc, name, kind, fallback, args)
            return self._answered(name, result)

        return guarded
