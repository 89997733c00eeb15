"""Lazy start: a Storage's backend is opened on first use, not when the Storage is made.

``Storage.from_url`` checks the configuration at once (a backend class's ``check``) and leaves
the connecting, and the opening of a RocksDB directory, to the first call. So a process that
builds caches and never uses them (a reloader's parent, ``manage.py check --deploy``,
``collectstatic``, a pre-fork master) holds no socket and no database lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Deferred:
    """Stands in for a backend until its first use, then puts the opened one in its place.

    Any attribute (``get``, ``set``, ``stats``, ...) opens the backend, once, under a lock (two
    threads racing get the same backend), and stores it in ``owner._b`` so later calls go to it
    directly, at no cost. An open that fails is not remembered: the next call tries again.
    """

    __slots__ = ("_lock", "_open", "_owner", "_real")

    def __init__(self, open_backend: Callable[[], Any]) -> None:
        self._open = open_backend
        self._lock = threading.Lock()
        self._real: Any = None
        self._owner: Any = None

    def bind(self, owner: Any) -> None:
        """Tell this stand-in which object's ``_b`` to replace once the backend is open (None:
        none, e.g. when the owner closes; waits for an open in progress)."""
        with self._lock:
            self._owner = owner

    def compose(self, wrap: Callable[[Any], Any]) -> bool:
        """Open into ``wrap(backend)`` from now on; False (nothing done) if already open."""
        with self._lock:
            if self._real is not None:
                return False
            inner = self._open
            self._open = lambda: wrap(inner())
            return True

    @property
    def opened(self) -> bool:
        return self._real is not None

    def resolve(self) -> Any:
        """The backend, opened now if it is not yet."""
        real = self._real
        if real is not None:
            return real
        with self._lock:
            if self._real is None:
                self._real = self._open()
                owner = self._owner
                if owner is not None and owner._b is self:
                    owner._b = self._real
            return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return f"<backend opened on first use{' (open)' if self.opened else ''}>"


def detach(backend: Any) -> None:
    """Before its owner closes: a Deferred ``backend`` will no longer replace the owner's ``_b``."""
    if isinstance(backend, Deferred):
        backend.bind(None)


def wrapped(backend: Any, wrap: Callable[[Any], Any]) -> Any:
    """``wrap(backend)``; for a Deferred not yet open, the Deferred itself, now opening into
    ``wrap(opened backend)`` (an observer stays outside fail-open and inside nothing else)."""
    if isinstance(backend, Deferred) and backend.compose(wrap):
        return backend
    return wrap(resolved(backend))


def resolved(backend: Any) -> Any:
    """``backend`` itself, or the backend a Deferred stands for (opened now)."""
    return backend.resolve() if isinstance(backend, Deferred) else backend


def is_open(storage: Any) -> bool:
    """Whether ``storage``'s backend is open (a Deferred one opens on its first use)."""
    backend = storage._b
    return not isinstance(backend, Deferred) or backend.opened
