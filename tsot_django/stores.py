"""The tsot storages behind a cache configuration, shared by every backend instance in a process.

Django builds a backend instance per thread (and per async context); all instances with the same
LOCATION, OPTIONS and secrets share one ``Stores``: one sync ``Storage`` per URL, and one
``AsyncStorage`` per URL and event loop (redis.asyncio pools belong to the loop they were made
on). Pools, tables and database handles are tsot's process-wide resources underneath.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured

from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.integration import count_refusals_in

S = TypeVar("S", Storage, AsyncStorage)


def _open(factory: Callable[..., S], url: str, options: Mapping[str, Any], where: str) -> S:
    try:
        return factory(url, **options)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from exc


class Stores:
    """A primary storage (all writes) and optional read replicas, sync and per event loop.

    Reads that Django sends to a replica (get, get_many, has_key) pick one at random, as
    Django's RedisCache does; with no replicas everything goes to the primary.
    """

    def __init__(self, urls: Sequence[str], options: Mapping[str, Any], where: str) -> None:
        self._urls = tuple(urls)
        self._options = dict(options)
        self._where = where
        self.sync = [_open(Storage.from_url, url, options, where) for url in self._urls]
        self._loops: WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncStorage]]
        self._loops = WeakKeyDictionary()
        self._lock = threading.Lock()
        # the last loop's storages: one identity check on the hot path, no lock (swapped whole)
        self._last: tuple[Any, list[AsyncStorage]] = (None, [])

    @staticmethod
    def pick(storages: Sequence[S], read: bool) -> S:
        if not read or len(storages) == 1:
            return storages[0]
        return storages[random.randint(1, len(storages) - 1)]

    def for_loop(self, loop: asyncio.AbstractEventLoop) -> list[AsyncStorage]:
        """The AsyncStorages (primary first) for ``loop``, made on first use in that loop."""
        last = self._last
        if last[0] is loop:
            return last[1]
        found = self._for_loop(loop)
        self._last = (loop, found)
        return found

    def _for_loop(self, loop: asyncio.AbstractEventLoop) -> list[AsyncStorage]:
        with self._lock:
            found = self._loops.get(loop)
        if found is not None:
            return found
        made = [_open(AsyncStorage.from_url, url, self._options, self._where) for url in self._urls]
        for storage, sync in zip(made, self.sync, strict=True):
            count_refusals_in(sync, [storage])  # one "undecodable" in storage.stats()
        with self._lock:
            # A closed loop's storages can never be used again; drop them now rather than
            # waiting for the loop object to be collected.
            for old in [lp for lp in self._loops if lp.is_closed()]:
                del self._loops[old]
            return self._loops.setdefault(loop, made)


_cache: OrderedDict[tuple[Any, ...], Stores] = OrderedDict()
_cache_lock = threading.Lock()
_MAX_CONFIGS = 64  # settings overrides in tests make new configurations; keep the newest


def fingerprint(*parts: Any, secrets: Sequence[str | bytes] = ()) -> tuple[Any, ...]:
    """A process-unique key for a configuration, as a digest: LOCATION and OPTIONS may hold
    passwords and the secrets sign, so none of them is kept in the registry as text."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    for secret in secrets:
        digest.update(
            secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else secret
        )
        digest.update(b"\0")
    return (os.getpid(), digest.hexdigest())


def stores_for(key: tuple[Any, ...], build: Callable[[], Stores]) -> Stores:
    """The Stores for ``key``, built once per process (a failed build is not remembered)."""
    found = _cache.get(key)
    if found is not None:
        return found
    with _cache_lock:
        found = _cache.get(key)
        if found is None:
            found = build()
            _cache[key] = found
            while len(_cache) > _MAX_CONFIGS:
                _cache.popitem(last=False)
        return found
