"""The Redis local cache reporting to a storage's event hub, made only once someone listens.

``local`` events (``fields["reason"]``): ``hits`` (``count`` local hits, reported in batches:
with the next read that goes to the server, every ``HIT_BATCH`` hits, and at ``stats()`` and
``close()``), ``invalidation`` (``count`` keys the server reported changed), ``flush`` (the
table emptied by a null message, ``clear()`` or a Cluster topology change), ``lost`` and
``restored`` (tracking went down or came back up). A storage nobody listens to keeps the plain
``redis.cached`` classes, so the local cache's hot path has no check for a listener.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

from .cached import LocalCachedAsync, LocalCachedSync, Notify, _split
from .local import LocalStore
from .tracking import Tracking

HIT_BATCH: Final = 256
"""Local hits reported in one event at most: an event per hit would cost as much as the hit
(docs/observability.md, "Cost")."""


class _Reports:
    """What both twins share: the pending hits and the store's reports (no ``__slots__``: a
    twin needs a weak reference, which the store holds)."""

    _notify: Notify
    _pending: int
    _plock: threading.Lock
    _s: LocalStore

    def _start(self, notify: Notify) -> None:
        self._notify = notify
        self._pending = 0
        self._plock = threading.Lock()
        self._s.observe(self)

    def _hits(self, count: int) -> None:
        with self._plock:
            pending = self._pending + count
            if pending < HIT_BATCH:
                self._pending = pending
                return
            self._pending = 0
        self._notify("local", reason="hits", count=pending)

    def _report_hits(self) -> None:
        if self._pending:  # read without the lock: a hit racing it is reported next time
            with self._plock:
                pending, self._pending = self._pending, 0
            if pending:
                self._notify("local", reason="hits", count=pending)

    def _seen(self, key: bytes) -> bytes | None:
        """get's local look-up, reported: a hit counted, or the hits so far sent before a read
        goes to the server."""
        value = self._s.lookup(key)
        if value is not None:
            self._hits(1)
        else:
            self._report_hits()
        return value

    def _local(self, keys: Sequence[bytes]) -> tuple[list[bytes | None], list[int]]:
        """get_many's local look-ups (``redis.cached``), reported as ``_seen`` reports."""
        found, todo = _split(self._s, keys)
        if len(todo) < len(keys):
            self._hits(len(keys) - len(todo))
        if todo:
            self._report_hits()
        return found, todo

    def local_event(self, reason: str, count: int) -> None:
        """From the store (any thread): an invalidation, a flush, tracking lost or restored."""
        self._notify("local", reason=reason, count=count)


class ObservedLocalSync(_Reports, LocalCachedSync):
    """``LocalCachedSync`` with its activity reported."""

    def __init__(self, backend: Any, hub: Tracking, notify: Notify) -> None:
        super().__init__(backend, hub)
        self._start(notify)

    def get(self, key: bytes) -> bytes | None:
        value = self._seen(key)
        return value if value is not None else self._read(key)

    def stats(self) -> Any:
        self._report_hits()
        return super().stats()

    def close(self) -> None:
        self._report_hits()


class ObservedLocalAsync(_Reports, LocalCachedAsync):
    """``LocalCachedAsync`` with its activity reported."""

    def __init__(self, backend: Any, hub: Tracking, notify: Notify) -> None:
        super().__init__(backend, hub)
        self._start(notify)

    async def get(self, key: bytes) -> bytes | None:
        value = self._seen(key)
        return value if value is not None else await self._read(key)

    async def stats(self) -> Any:
        self._report_hits()
        return await super().stats()

    async def close(self) -> None:
        self._report_hits()
