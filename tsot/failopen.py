"""fail_open: backend outages become misses and skipped writes, behind a circuit breaker.

While the breaker is closed every call goes to the backend. The first BackendUnavailable opens
it: calls then return their fallback at once (a miss, a skipped write) without touching the
server, so a dead server costs one timeout per ``probe_interval``, not one per call. After the
interval one call probes the server; success closes the breaker, failure keeps it open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from .backends.base import TTL_MISSING, AsyncBackend, Backend, backend_stats
from .errors import BackendUnavailable
from .logs import limited

Clock = Callable[[], float]


class CircuitBreaker:
    """Closed -> open on a failure -> one probe per ``probe_interval`` -> closed on success."""

    def __init__(self, probe_interval: float, clock: Clock = time.monotonic) -> None:
        self.probe_interval = probe_interval
        self._clock = clock
        self._open_until: float | None = None
        self._lock = threading.Lock()
        self.failures = 0
        self.short_circuited = 0

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

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
            self.short_circuited += 1
            return False

    def success(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until = None
            limited.warning("breaker-closed", "tsot: backend is reachable again; cache in use")

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            self._open_until = self._clock() + self.probe_interval


FALLBACKS: Final[dict[str, Callable[..., Any]]] = {
    "get": lambda key: None,
    "get_many": lambda keys: [None] * len(keys),
    "set": lambda key, value, ttl_ms: None,
    "set_many": lambda items, ttl_ms: None,
    "add": lambda key, value, ttl_ms: False,
    "delete": lambda key: False,
    "delete_many": lambda keys: 0,
    "exists": lambda key: False,
    "ttl": lambda key: TTL_MISSING,
    "expire": lambda key, ttl_ms: False,
    "clear": lambda prefix: None,
}
"""What each primitive returns while the backend is out. ``incr`` has no honest fallback (no
number can be made up), so it still raises BackendUnavailable, immediately while open."""


def _unavailable(where: str) -> BackendUnavailable:
    return BackendUnavailable(f"{where} is unavailable (circuit open; fail_open is on)")


class _Guard:
    """What FailOpen and AsyncFailOpen share: wrapping every primitive, and the decisions
    before a call (short-circuit while open) and after a failure (fallback or raise)."""

    def __init__(self, backend: Any, breaker: CircuitBreaker, where: str) -> None:
        self.inner = backend
        self.breaker = breaker
        self._where = where
        for name, fallback in FALLBACKS.items():
            setattr(self, name, self._wrap(getattr(backend, name), fallback))
        self.incr = self._wrap(backend.incr, None)
        self.close = backend.close

    def _wrap(self, call: Callable[..., Any], fallback: Callable[..., Any] | None) -> Any:
        raise NotImplementedError

    def _short_circuit(self, fallback: Callable[..., Any] | None, args: tuple[Any, ...]) -> Any:
        if fallback is None:
            raise _unavailable(self._where)
        return fallback(*args)

    def _failed(
        self, exc: BackendUnavailable, fallback: Callable[..., Any] | None, args: tuple[Any, ...]
    ) -> Any:
        self.breaker.failure()
        limited.warning("fail-open", "tsot: %s failed (%s); serving misses", self._where, exc)
        if fallback is None:
            raise exc
        return fallback(*args)


class FailOpen(_Guard):
    """Wraps a sync backend; see the module docstring."""

    def __init__(self, backend: Backend, breaker: CircuitBreaker, where: str) -> None:
        super().__init__(backend, breaker, where)

    def stats(self) -> dict[str, int | None]:
        """The backend's counters; None for each while it is unavailable."""
        try:
            return backend_stats(self.inner)
        except BackendUnavailable:
            return backend_stats(None)

    def _wrap(
        self, call: Callable[..., Any], fallback: Callable[..., Any] | None
    ) -> Callable[..., Any]:
        breaker = self.breaker

        def guarded(*args: Any) -> Any:
            if not breaker.allow():
                return self._short_circuit(fallback, args)
            try:
                result = call(*args)
            except BackendUnavailable as exc:
                return self._failed(exc, fallback, args)
            breaker.success()
            return result

        return guarded


class AsyncFailOpen(_Guard):
    """Wraps an async backend; the same rules as FailOpen."""

    def __init__(self, backend: AsyncBackend, breaker: CircuitBreaker, where: str) -> None:
        super().__init__(backend, breaker, where)

    async def stats(self) -> dict[str, int | None]:
        """The backend's counters; None for each while it is unavailable."""
        stats = getattr(self.inner, "stats", None)
        try:
            return await stats() if stats is not None else backend_stats(None)
        except BackendUnavailable:
            return backend_stats(None)

    def _wrap(
        self, call: Callable[..., Awaitable[Any]], fallback: Callable[..., Any] | None
    ) -> Callable[..., Awaitable[Any]]:
        breaker = self.breaker

        async def guarded(*args: Any) -> Any:
            if not breaker.allow():
                return self._short_circuit(fallback, args)
            try:
                result = await call(*args)
            except BackendUnavailable as exc:
                return self._failed(exc, fallback, args)
            breaker.success()
            return result

        return guarded
