"""Locks over any backend, with redis-py's Lock interface, fencing tokens and safe release.

Acquiring is ``add`` (Redis ``SET NX PX``) of a random token, then ``incr`` of the lock's fence
counter (``<name>:fence``), then ``expire_if`` (the token's TTL set again, only if the token is
still there: a check made on the primary). A holder that
passes the check held the lock through its ``incr``, so fencing tokens grow in the order the
lock was held, even when a holder stalls and its lock expires. Release and extend compare the
token and act in one atomic step (``delete_if`` / ``expire_if``: a Lua script on Redis, CAS on
memcached, the store's own lock on memory and RocksDB): a lock that expired and was taken by
another owner is never released or extended by the first one, which gets LockNotOwnedError.

The steps are generators of backend calls; every operation of ``Lock`` and ``AsyncLock`` is one
generator too (``_LockBase``), run by ``tsot.drive``'s sync or asyncio driver: the two classes
differ only in that driver and the sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Generator
from types import SimpleNamespace, TracebackType
from typing import Any, Final, TypeVar

from .backends.base import TTL_PERSISTENT
from .codec import Codec
from .drive import Steps as Operation
from .drive import arun, run
from .errors import ConfigurationError, LockError, LockNotOwnedError
from .keys import shown
from .ttl import to_ms

Call = tuple[str, tuple[Any, ...]]
Steps = Generator[Call, Any, Any]
FENCE_SUFFIX: Final = b":fence"
"""The fence counter of lock ``name`` is the key ``name:fence`` (an int that never expires)."""


def _seconds(value: object, what: str, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    if not ok or value < 0 or (positive and value == 0):  # type: ignore[operator]
        need = "a positive number of seconds" if positive else "seconds (0 or more)"
        raise ConfigurationError(f"lock {what} must be {need} or None, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def acquire_steps(key: bytes, stored: bytes, ttl_ms: int | None) -> Steps:
    """The fencing token if this attempt took the lock, else None."""
    if not (yield "add", (key, stored, ttl_ms)):
        return None
    fence = yield "incr", (key + FENCE_SUFFIX, 1, True)
    # Still ours? Asked of the primary with a compare-and-write (a replica's GET may lag): it
    # expired before the incr and may be someone else's now if the token is gone.
    if not (yield "expire_if", (key, stored, ttl_ms)):
        return None
    return fence


def extend_steps(key: bytes, stored: bytes, add_ms: int, replace: bool) -> Steps:
    """True if the TTL was changed (``add_ms`` more, or exactly ``add_ms`` with ``replace``)."""
    if replace:
        new_ms = add_ms
    else:
        left = yield "ttl", (key,)
        # missing (-2): not ours any more; persistent (-1): nothing to add to, so add_ms
        new_ms = left + add_ms if left >= 0 else (add_ms if left == TTL_PERSISTENT else 0)
    if new_ms <= 0:
        return False
    return (yield "expire_if", (key, stored, new_ms))


L = TypeVar("L", bound="_LockBase")


class _PerThread(threading.local):
    """A lock's owner state, one per thread; the class attributes are every thread's start."""

    token: bytes | None = None
    stored: bytes | None = None
    fence: int | None = None


class _LockBase:
    """The state and checks ``Lock`` and ``AsyncLock`` share."""

    PER_THREAD: bool = True
    """Whether ``thread_local`` keeps the token per thread (Lock) or has no effect (AsyncLock)."""

    def __init__(
        self,
        backend: Any,
        key: bytes,
        codec: Codec,
        timeout: float | None,
        sleep: float,
        blocking: bool,
        blocking_timeout: float | None,
        thread_local: bool,
    ) -> None:
        self._b = backend
        self.name = key
        self._codec = codec
        self.timeout = None if timeout is None else _seconds(timeout, "timeout", True)
        self._ttl_ms = None if self.timeout is None else to_ms(self.timeout)
        self.sleep = _seconds(sleep, "sleep", False)
        self.blocking = bool(blocking)
        self.blocking_timeout = (
            None
            if blocking_timeout is None
            else _seconds(blocking_timeout, "blocking_timeout", False)
        )
        self.thread_local = bool(thread_local)
        per_thread = thread_local and self.PER_THREAD
        self.local: Any = (
            _PerThread() if per_thread else SimpleNamespace(token=None, stored=None, fence=None)
        )

    @property
    def _shown(self) -> str:
        """The lock's name for messages: the key the caller gave, without the namespace."""
        return shown(self.name, self._codec.key_prefix)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._shown} timeout={self.timeout}>"

    @property
    def fence(self) -> int | None:
        """The fencing token of the current acquisition by this owner (None if not held)."""
        return self.local.fence if self.local.token is not None else None

    def _new(self, token: str | bytes | None) -> tuple[bytes, bytes]:
        """(token, stored bytes) for an attempt."""
        if token is None:
            raw = uuid.uuid4().hex.encode()
        elif isinstance(token, str):
            raw = token.encode()
        elif isinstance(token, bytes):
            raw = token
        else:
            raise ConfigurationError(f"lock token must be str or bytes, not {type(token).__name__}")
        return raw, self._codec.encode(raw, self.name)

    def _deadline(
        self, blocking: bool | None, blocking_timeout: float | None
    ) -> tuple[bool, float | None]:
        wait = self.blocking if blocking is None else bool(blocking)
        limit = (
            self.blocking_timeout
            if blocking_timeout is None
            else _seconds(blocking_timeout, "blocking_timeout", False)
        )
        return wait, None if limit is None else time.monotonic() + limit

    def _pause(self, wait: bool, deadline: float | None) -> float | None:
        """Seconds to sleep before the next attempt, or None to give up."""
        if not wait:
            return None
        if deadline is None:
            return self.sleep
        left = deadline - time.monotonic()
        return None if left <= 0 else min(self.sleep, left)

    def _took(self, raw: bytes, stored: bytes, fence: int) -> int:
        self.local.token, self.local.stored, self.local.fence = raw, stored, fence
        return fence

    def _held(self, what: str) -> bytes:
        if self.local.token is None:
            raise LockError(f"Cannot {what} an unlocked lock ({self._shown})")
        return self.local.stored  # type: ignore[no-any-return]

    def _extend_args(self, additional_time: float, replace: bool) -> int:
        if self.timeout is None:
            raise LockError(f"Cannot extend a lock with no timeout ({self._shown})")
        ms = to_ms(_seconds(additional_time, "additional_time", replace))
        return 0 if ms is None else ms

    def _not_owned(self, what: str) -> LockNotOwnedError:
        return LockNotOwnedError(
            f"Cannot {what} a lock that's no longer owned ({self._shown}: it expired and "
            "another owner may hold it)"
        )

    # the operations, free of I/O: generators of calls run by tsot.drive's run or arun (several
    # calls), or the steps before and after the one call of release and reacquire
    _sleep: Callable[[float], Any]

    def _acquiring(
        self, blocking: bool | None, blocking_timeout: float | None, token: str | bytes | None
    ) -> Operation[int | bool]:
        wait, deadline = self._deadline(blocking, blocking_timeout)
        raw, stored = self._new(token)
        while True:
            try:
                fence = yield from _on(self._b, acquire_steps(self.name, stored, self._ttl_ms))
            except Exception:
                with contextlib.suppress(Exception):  # undo an add that went through
                    yield self._b.delete_if, (self.name, stored)
                raise
            if fence is not None:
                return self._took(raw, stored, fence)
            pause = self._pause(wait, deadline)
            if pause is None:
                return False
            yield self._sleep, (pause,)

    def _release_token(self) -> bytes:
        """``release``'s token: the lock is no longer this owner's, whatever the backend says."""
        stored = self._held("release")
        self.local.token = None
        return stored

    def _extending(self, additional_time: float, replace: bool) -> Operation[bool]:
        stored, ms = self._held("extend"), self._extend_args(additional_time, replace)
        if not (yield from _on(self._b, extend_steps(self.name, stored, ms, replace))):
            raise self._not_owned("extend")
        return True

    def _reacquire_token(self) -> bytes:
        """``reacquire``'s token (held, and the lock has a timeout to set again)."""
        stored = self._held("reacquire")
        if self.timeout is None:
            raise LockError(f"Cannot reacquire a lock with no timeout ({self._shown})")
        return stored

    def _owned(self, ok: bool, what: str) -> bool:
        """The result of ``release``'s or ``reacquire``'s one call: True, or LockNotOwnedError."""
        if not ok:
            raise self._not_owned(what)
        return True

    def _entered(self: L, acquired: int | bool) -> L:
        if acquired:
            return self
        raise LockError(f"Unable to acquire lock {self._shown} within the time specified")


def _on(backend: Any, steps: Steps) -> Operation[Any]:
    """``steps`` (backend method names) as calls on ``backend``."""
    try:
        name, args = next(steps)
        while True:
            name, args = steps.send((yield getattr(backend, name), args))
    except StopIteration as stop:
        return stop.value


class Lock(_LockBase):
    """A lock on a ``Storage`` (``storage.lock(name, timeout=...)``), redis-py's interface.

    ``acquire`` returns the fencing token (a positive int, so truthy) or False; ``release`` and
    ``extend`` raise LockNotOwnedError if the lock expired and is another owner's now.
    """

    _sleep = staticmethod(time.sleep)

    def acquire(
        self,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | bytes | None = None,
    ) -> int | bool:
        """Take the lock: its fencing token, or False if not taken (non-blocking, or
        ``blocking_timeout`` seconds passed). Sleeps ``sleep`` seconds between attempts."""
        return run(self._acquiring(blocking, blocking_timeout, token))

    def release(self) -> None:
        """Release the lock; LockNotOwnedError if it expired and may be another owner's."""
        self._owned(self._b.delete_if(self.name, self._release_token()), "release")

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Add ``additional_time`` seconds to the TTL (or set it, ``replace_ttl``); True."""
        return run(self._extending(additional_time, replace_ttl))

    def reacquire(self) -> bool:
        """Reset the TTL to ``timeout``; True (LockNotOwnedError if no longer owned)."""
        ok = self._b.expire_if(self.name, self._reacquire_token(), self._ttl_ms)
        return self._owned(ok, "reacquire")

    def locked(self) -> bool:
        """True if anyone holds the lock."""
        return bool(self._b.exists(self.name))

    def owned(self) -> bool:
        """True if this owner holds it (its token is still stored)."""
        return self.local.token is not None and self._b.get(self.name) == self.local.stored

    def __enter__(self) -> Lock:
        return self._entered(self.acquire())

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class AsyncLock(_LockBase):
    """The asyncio twin of Lock (``AsyncStorage.lock``): the same methods, awaited, and
    ``async with``. The token belongs to the lock object: every task of a loop runs on one
    thread, so ``thread_local`` (accepted for redis-py's signature) changes nothing; give each
    task that competes for the lock its own lock object."""

    PER_THREAD = False
    _sleep = staticmethod(asyncio.sleep)

    async def acquire(
        self,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | bytes | None = None,
    ) -> int | bool:
        """See ``Lock.acquire`` (sleeps with ``asyncio.sleep``)."""
        return await arun(self._acquiring(blocking, blocking_timeout, token))

    async def release(self) -> None:
        """See ``Lock.release``."""
        self._owned(await self._b.delete_if(self.name, self._release_token()), "release")

    async def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """See ``Lock.extend``."""
        return await arun(self._extending(additional_time, replace_ttl))

    async def reacquire(self) -> bool:
        """See ``Lock.reacquire``."""
        ok = await self._b.expire_if(self.name, self._reacquire_token(), self._ttl_ms)
        return self._owned(ok, "reacquire")

    async def locked(self) -> bool:
        """See ``Lock.locked``."""
        return bool(await self._b.exists(self.name))

    async def owned(self) -> bool:
        """See ``Lock.owned``."""
        return self.local.token is not None and await self._b.get(self.name) == self.local.stored

    async def __aenter__(self) -> AsyncLock:
        return self._entered(await self.acquire())

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
