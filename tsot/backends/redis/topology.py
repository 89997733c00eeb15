"""Word from a Redis Cluster's data path that its topology moved, for whoever tracks it.

The Cluster transports (sync and asyncio) call ``moved(key)`` when a command meets a MOVED or
ASK reply or loses a node's connection (refused, reset: not a timeout, which a slow node also
gives); the local cache's listeners (``redis.tracking``) watch
their configuration's key and stop serving, then read the topology again, at once rather than
at their next poll. Nobody watching costs one dict lookup, and only on those rare paths.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Watcher = Callable[[], None]

_watchers: dict[str, tuple[Watcher, ...]] = {}
_lock = threading.Lock()


def watch(key: str, watcher: Watcher) -> None:
    """Call ``watcher()`` whenever the data path of configuration ``key`` sees a move."""
    with _lock:
        _watchers[key] = (*_watchers.get(key, ()), watcher)


def unwatch(key: str, watcher: Watcher) -> None:
    with _lock:
        left = tuple(w for w in _watchers.get(key, ()) if w != watcher)
        if left:
            _watchers[key] = left
        else:
            _watchers.pop(key, None)


def moved(key: str) -> None:
    """The data path of configuration ``key`` met MOVED/ASK or lost a node (any thread or
    loop; a watcher only flags and wakes, it never blocks on I/O)."""
    for watcher in _watchers.get(key, ()):
        watcher()
