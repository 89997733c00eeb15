"""A read-through split in two calls, for callers that compute between a ``get`` and a ``set``
(Flask-Caching's ``cached`` and ``memoize`` do): docs/stampede.md#flask.

``get`` answers a hit, or a miss that makes the calling thread responsible for the value: it
then holds the key's lease (the same lease as ``get_or_compute``) until its ``set`` of that key,
which writes an entry (soft expiry, compute time) and frees the lease. Other threads and
processes wait for the value meanwhile, at most ``lease_timeout``. Early refresh and grace
apply as in ``get_or_compute``, except that the one caller who refreshes does it inline (there
is no function to run in the background): it gets a miss while everyone else keeps the value.

A caller that does not ``set`` after its miss (its compute raised) calls ``abandon``: a lease
taken for a miss is freed at once, so a waiter computes; one taken to refresh a value still
served is kept ``REFRESH_BACKOFF`` seconds, so a failing compute is retried at most that often
(as a failed background refresh of ``get_or_compute``).
"""

from __future__ import annotations

import math
import os
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from . import readthrough
from .codec import MISS
from .readthrough import LEASE_SUFFIX
from .stampede import (
    REFRESH_BACKOFF,
    Entry,
    Freshness,
    Timing,
    draw,
    entry_of,
    entry_times,
    freshness,
    refresh_window,
)
from .ttl import EXPIRED

if TYPE_CHECKING:
    from .keys import Key
    from .storage import Storage, TTLArg


class SplitReadThrough:
    """``get`` then ``set`` with the stampede protection of ``storage.policy``."""

    def __init__(self, storage: Storage, timing: Timing | None = None) -> None:
        self.storage = storage
        self.timing = timing
        # final key -> Pending; ``handed``: keys whose refresh this thread handed off
        self._mine = threading.local()

    def _pending(self) -> dict[bytes, Pending]:
        pending = getattr(self._mine, "keys", None)
        if pending is None:
            pending = self._mine.keys = {}
        return pending

    def _handed(self) -> set[bytes]:
        handed = getattr(self._mine, "handed", None)
        if handed is None:
            handed = self._mine.handed = set()
        return handed

    def _entry(self, k: bytes) -> Entry | None:
        data = self.storage.backend.get(k)
        if data is None:
            return None
        decoded = self.storage.codec.decode_entry(data, k)
        return None if decoded is MISS else entry_of(decoded)  # type: ignore[arg-type]

    def get(self, key: Key) -> Any:
        """The value of ``key``, or ``MISSING`` when the caller must compute and ``set`` it."""
        storage, timing = self.storage, self.timing or readthrough.DEFAULT_TIMING
        policy, b = storage.policy, storage.backend
        k = storage._keys.make(key)
        self._mine.last = k
        self._handed().discard(k)
        held = self._pending().get(k)
        if held is not None and held.token is not None:  # this thread holds the lease: compute
            return MISSING
        lease_k = k + LEASE_SUFFIX
        token = b"b" + os.urandom(12)
        lease_ms = math.ceil(policy.lease_timeout * 1000)
        waited_since: float | None = None
        pause = timing.poll
        while True:
            entry = self._entry(k)
            now = timing.clock()
            if entry is not None:
                state = freshness(entry, now, policy, draw(timing, k, entry))
                if state is Freshness.FRESH:
                    return entry.value
                if state is not Freshness.EXPIRED:  # early, stale, overdue: one recomputes
                    if policy.stampede and b.add(lease_k, token, lease_ms):
                        # as stampede.refresh: a newer value stored since our read is served
                        newer = self._entry(k)
                        if newer is not None and newer.soft != entry.soft:
                            self._release(lease_k, token)
                            return newer.value
                        # an overdue value is not served to the caller that recomputes it
                        overdue = state is Freshness.OVERDUE
                        return self._miss(k, token, now, served=None if overdue else entry)
                    if policy.stampede:
                        return entry.value
            if not policy.stampede:
                return self._miss(k, None, now)
            if b.add(lease_k, token, lease_ms):
                entry = self._entry(k)  # the previous holder may have just stored it
                if entry is not None and freshness(entry, now, policy, 0.0) is Freshness.FRESH:
                    self._release(lease_k, token)
                    return entry.value
                return self._miss(k, token, now)
            if waited_since is None:
                waited_since = now
            elif now - waited_since >= policy.lease_timeout:
                return self._miss(k, None, now)
            timing.sleep(pause)
            pause = min(pause * 2, timing.poll_max)

    def _miss(self, k: bytes, token: bytes | None, now: float, served: Entry | None = None) -> Any:
        self._pending()[k] = Pending(token, now, served)
        return MISSING

    def hand_off(self) -> Pending | None:
        """The refresh this thread's last ``get`` won (it returned ``MISSING`` for a value still
        served), for another thread to compute (``adopt``); None if that ``get`` was anything
        else. This thread's next ``set`` of that key is then skipped (it would store what the
        caller returns meanwhile, the value still served: ``Pending.served``)."""
        k: bytes | None = getattr(self._mine, "last", None)
        pending = self._pending()
        held = pending.get(k) if k is not None else None
        if k is None or held is None or held.token is None or held.served is None or held.adopted:
            return None
        del pending[k]
        self._handed().add(k)
        return held._replace(k=k)

    def adopt(self, handed: Pending) -> None:
        """Take over a refresh ``hand_off`` gave in another thread: this thread's next ``get``
        of its key misses, and its ``set`` stores the value (timed from now) and frees the
        lease; ``abandon`` gives it up as a failed refresh."""
        clock = (self.timing or readthrough.DEFAULT_TIMING).clock
        self._pending()[handed.k] = handed._replace(start=clock(), adopted=True)

    def abandon(self) -> None:
        """Give up every value this thread missed and has not ``set`` (its compute raised):
        free the leases of misses at once, keep those of refreshes ``REFRESH_BACKOFF`` seconds
        (at most ``lease_timeout``). Safe to call when nothing is pending."""
        self._handed().clear()
        pending = getattr(self._mine, "keys", None)
        if not pending:
            return
        b = self.storage.backend
        hold_ms = math.ceil(min(self.storage.policy.lease_timeout, REFRESH_BACKOFF) * 1000)
        hold_ms += readthrough.expiry_step_ms(b)  # at least the backoff on memcached
        for k, held in list(pending.items()):
            del pending[k]
            token = held.token
            if token is None:
                continue
            lease_k = k + LEASE_SUFFIX
            if b.get(lease_k) != token:  # expired, perhaps taken over: not ours to touch
                continue
            if held.served is not None:  # a refresh
                b.expire(lease_k, hold_ms)
            else:
                b.delete(lease_k)

    def _release(self, lease_k: bytes, token: bytes) -> None:
        b = self.storage.backend
        if b.get(lease_k) == token:
            b.delete(lease_k)

    def set(self, key: Key, value: Any, ttl: TTLArg) -> None:
        """Store ``value`` as an entry (with its compute time when this thread missed it just
        before) and free this thread's lease of ``key``; a TTL <= 0 deletes the key."""
        storage, timing = self.storage, self.timing or readthrough.DEFAULT_TIMING
        k = storage._keys.make(key)
        handed = self._handed()
        if k in handed:  # its refresh was handed off: another thread stores the new value
            handed.discard(k)
            return
        held = self._pending().pop(k, None)
        token, start = (None, None) if held is None else (held.token, held.start)
        try:
            data_ms = storage._ttl(ttl)
            if data_ms == EXPIRED:
                storage.backend.delete(k)
                return
            now = timing.clock()
            step = readthrough.expiry_step_ms(storage.backend)
            delta = 0.0 if start is None else max(0.0, now - start)
            window = refresh_window(storage.policy, delta)
            soft_ms, server_ms = entry_times(data_ms, storage.policy.grace, now, step, window)
            delta_ms = math.ceil(delta * 1000)
            data = storage.codec.encode_entry(value, k, soft_ms, delta_ms)
            storage.backend.set(k, data, server_ms)
        finally:
            if token is not None:
                self._release(k + LEASE_SUFFIX, token)


class Pending(NamedTuple):
    """A value this thread must compute and ``set``: the lease ``token`` (None: computing
    without it), when the compute started, the entry still ``served`` meanwhile (a refresh;
    None for a miss), its final key ``k`` (set by ``hand_off``), and whether this thread
    ``adopt``-ed it (it computes it: no second hand-off)."""

    token: bytes | None
    start: float
    served: Entry | None
    k: bytes = b""
    adopted: bool = False


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What ``SplitReadThrough.get`` returns when the caller must compute the value."""
