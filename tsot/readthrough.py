"""The sync and asyncio drivers of ``tsot.stampede.read_through`` (get_or_compute).

Each driver turns a Step into one backend call (or a compute, a wait, a background refresh) on
the Storage's final keys; every decision is in ``tsot.stampede``. The lease is a key next to
the value's (``<final key>\\x00lease``), written with the backend's ``add`` (Redis ``SET NX PX``,
memcached ``add``, an atomic insert in the memory table or the RocksDB database) with a TTL of
``lease_timeout``, so a holder that dies frees it when it expires.

``begin`` / ``finish`` / ``abandon`` (and their ``a*`` twins) split one read-through around a
compute the caller runs itself, later (Django's two-part page middleware renders between
them); a refresh that caller wins is then computed by it, not in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from . import events
from .codec import MISS
from .stampede import (
    Entry,
    Flow,
    Op,
    Policy,
    Step,
    Timing,
    entry_of,
    entry_times,
    read_through,
    refresh,
    refresh_window,
)
from .ttl import EXPIRED

if TYPE_CHECKING:
    from .keys import Key
    from .storage import AsyncStorage, Storage, TTLArg

log = logging.getLogger("tsot.stampede")
LEASE_SUFFIX: Final = b"\x00lease"
DEFAULT_TIMING: Final = Timing()
_tasks: set[asyncio.Task[Any]] = set()  # background refreshes, kept until they finish


class _Run:
    """What both drivers need for one read-through of final key ``k``."""

    __slots__ = ("_token", "fn", "k", "lease_ms", "policy", "timing", "ttl_ms")

    def __init__(
        self, k: bytes, fn: Any, ttl_ms: int | None, policy: Policy, timing: Timing
    ) -> None:
        self.k, self.fn, self.ttl_ms, self.policy, self.timing = k, fn, ttl_ms, policy, timing
        self.lease_ms = math.ceil(policy.lease_timeout * 1000)
        self._token: bytes | None = None

    @property
    def lease_k(self) -> bytes:
        return self.k + LEASE_SUFFIX

    @property
    def token(self) -> bytes:
        """This read-through's lease value (a bytes value: readable by any tsot reader)."""
        if self._token is None:
            self._token = b"b" + os.urandom(12)
        return self._token

    def entry(self, storage: Storage | AsyncStorage, data: bytes | None) -> Entry | None:
        return _entry(storage, self.k, data)

    def encoded(self, storage: Storage | AsyncStorage, arg: Any) -> tuple[bytes, int | None]:
        value, delta = arg
        step = expiry_step_ms(storage.backend)
        policy = self.policy
        now, window = self.timing.clock(), refresh_window(policy, delta)
        soft_ms, server_ms = entry_times(self.ttl_ms, policy.grace, now, step, window)
        data = storage.codec.encode_entry(value, self.k, soft_ms, math.ceil(delta * 1000))
        return data, server_ms


def expiry_step_ms(backend: Any) -> int:
    """How long before its TTL ``backend`` may drop a value (its class's ``EXPIRY_STEP_MS``,
    through fail-open and event wrappers; 0 when it keeps TTLs to the millisecond). memcached
    counts expiry in whole seconds of its own clock: a 1 s TTL can end almost at once, before
    any early refresh, so entries are kept that much longer there."""
    while True:
        step = getattr(type(backend), "EXPIRY_STEP_MS", None)
        if step is not None:
            return int(step)
        backend = getattr(backend, "inner", None)
        if backend is None:
            return 0


def _entry(storage: Storage | AsyncStorage, k: bytes, data: bytes | None) -> Entry | None:
    if data is None:
        return None
    decoded = storage.codec.decode_entry(data, k)
    return None if decoded is MISS else entry_of(decoded)  # type: ignore[arg-type]


def _note(storage: Storage | AsyncStorage, reason: str) -> None:
    """A ``stampede`` event (docs/observability.md): ``wait``, ``refresh``, ``refresh_failed``."""
    events.notify(storage, "stampede", "get_or_compute", reason=reason)


def _failed_refresh(k: bytes, exc: BaseException) -> None:
    log.warning("tsot: background refresh of key %r failed: %r", k[:100], exc, exc_info=exc)


# -- sync --------------------------------------------------------------------------------------


def run_sync(storage: Storage, run: _Run, flow: Flow) -> Any:
    """Drive ``flow`` against ``storage``; return its value (or raise its error)."""
    b = storage.backend
    reply: Any = None
    try:
        step: Step = next(flow)
        while True:
            try:
                reply = _step_sync(storage, b, run, step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value


def _step_sync(storage: Storage, b: Any, run: _Run, step: Step) -> Any:
    op = step.op
    if op is Op.GET:
        return run.entry(storage, b.get(run.k))
    if op is Op.LEASE:
        return b.add(run.lease_k, run.token, run.lease_ms)
    if op is Op.COMPUTE:
        clock = run.timing.clock
        start = clock()
        value = run.fn()
        return value, max(0.0, clock() - start)
    if op is Op.STORE:
        data, ms = run.encoded(storage, step.arg)
        b.set(run.k, data, ms)
        return None
    if op is Op.RELEASE:
        if b.get(run.lease_k) == run.token:  # never free a lease another caller took over
            b.delete(run.lease_k)
        return None
    if op is Op.WAIT:
        if step.arg == run.timing.poll:  # this caller's first wait
            _note(storage, "wait")
        run.timing.sleep(step.arg)
        return None
    if op is Op.HOLD:
        if b.get(run.lease_k) == run.token:
            b.expire(run.lease_k, math.ceil(step.arg * 1000))
        return None
    # Op.REFRESH: the lease is ours; compute in a thread while this caller returns
    _note(storage, "refresh")
    threading.Thread(
        target=_refresh_sync, args=(storage, run, step.arg), name="tsot-refresh", daemon=True
    ).start()
    return None


def _refresh_sync(storage: Storage, run: _Run, seen_soft: float | None) -> None:
    try:
        run_sync(storage, run, refresh(run.policy, seen_soft))
    except Exception as exc:
        _note(storage, "refresh_failed")
        _failed_refresh(run.k, exc)


def get_or_compute(
    storage: Storage,
    k: bytes,
    fn: Callable[[], Any],
    ttl_ms: int | None,
    policy: Policy,
    timing: Timing,
) -> Any:
    """``Storage.get_or_compute`` on final key ``k`` past its fast path (a fresh hit, which
    that method answers itself: one frame less on the hottest path)."""
    run = _Run(k, fn, ttl_ms, policy, timing)
    return run_sync(storage, run, read_through(policy, ttl_ms, timing, k))


# -- asyncio -----------------------------------------------------------------------------------


async def run_async(storage: AsyncStorage, run: _Run, flow: Flow) -> Any:
    """Drive ``flow`` against ``storage`` on the running loop."""
    b = storage.backend
    reply: Any = None
    try:
        step: Step = next(flow)
        while True:
            try:
                reply = await _step_async(storage, b, run, step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value


async def _step_async(storage: AsyncStorage, b: Any, run: _Run, step: Step) -> Any:
    op = step.op
    if op is Op.GET:
        return run.entry(storage, await b.get(run.k))
    if op is Op.LEASE:
        return await b.add(run.lease_k, run.token, run.lease_ms)
    if op is Op.COMPUTE:
        clock = run.timing.clock
        start = clock()
        value = run.fn()
        if inspect.isawaitable(value):
            value = await value
        return value, max(0.0, clock() - start)
    if op is Op.STORE:
        data, ms = run.encoded(storage, step.arg)
        await b.set(run.k, data, ms)
        return None
    if op is Op.RELEASE:
        if await b.get(run.lease_k) == run.token:
            await b.delete(run.lease_k)
        return None
    if op is Op.WAIT:
        if step.arg == run.timing.poll:
            _note(storage, "wait")
        asleep = run.timing.asleep or asyncio.sleep
        await asleep(step.arg)
        return None
    if op is Op.HOLD:
        if await b.get(run.lease_k) == run.token:
            await b.expire(run.lease_k, math.ceil(step.arg * 1000))
        return None
    _note(storage, "refresh")
    task = asyncio.get_running_loop().create_task(_refresh_async(storage, run, step.arg))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return None


async def _refresh_async(storage: AsyncStorage, run: _Run, seen_soft: float | None) -> None:
    try:
        await run_async(storage, run, refresh(run.policy, seen_soft))
    except Exception as exc:
        _note(storage, "refresh_failed")
        _failed_refresh(run.k, exc)


async def aget_or_compute(
    storage: AsyncStorage,
    k: bytes,
    fn: Callable[[], Any | Awaitable[Any]],
    ttl_ms: int | None,
    policy: Policy,
    timing: Timing,
) -> Any:
    """``AsyncStorage.get_or_compute`` past its fast path, as ``get_or_compute``."""
    run = _Run(k, fn, ttl_ms, policy, timing)
    return await run_async(storage, run, read_through(policy, ttl_ms, timing, k))


# -- a value computed outside a read-through --------------------------------------------------


def _entry_run(storage: Storage | AsyncStorage, key: Key, ttl: TTLArg) -> _Run | None:
    ttl_ms = storage._ttl(ttl)
    if ttl_ms == EXPIRED:
        return None
    return _Run(storage._keys.make(key), None, ttl_ms, storage.policy, DEFAULT_TIMING)


def store_entry(storage: Storage, key: Key, value: Any, ttl: TTLArg, delta: float) -> None:
    """Store ``value`` as ``get_or_compute`` would after a compute of ``delta`` seconds (its
    soft expiry and compute time, so early refresh applies to it), for a value its caller
    computed without a read-through (a page's first render). A TTL <= 0 stores nothing."""
    run = _entry_run(storage, key, ttl)
    if run is not None:
        data, ms = run.encoded(storage, (value, delta))
        storage.backend.set(run.k, data, ms)


async def astore_entry(
    storage: AsyncStorage, key: Key, value: Any, ttl: TTLArg, delta: float
) -> None:
    """``store_entry`` on the running loop."""
    run = _entry_run(storage, key, ttl)
    if run is not None:
        data, ms = run.encoded(storage, (value, delta))
        await storage.backend.set(run.k, data, ms)


# -- split in two calls: begin, the caller computes, then finish or abandon ---------------------
# (the two-part page middleware: the request renders between its two halves)


class Deferred:
    """A read-through waiting for the value its caller computes (``begin`` to ``finish``)."""

    __slots__ = ("flow", "run", "start")

    def __init__(self, flow: Flow, run: _Run) -> None:
        self.flow, self.run, self.start = flow, run, run.timing.clock()


class Abandoned(Exception):
    """Thrown into a deferred read-through whose caller has no value to store."""


def begin(
    storage: Storage, key: Key, ttl: TTLArg, timing: Timing | None = None
) -> tuple[Any, Deferred | None]:
    """``(value, None)`` when ``storage.get_or_compute(key, fn, ttl)`` would return a value
    without computing (a hit, a value served while another caller refreshes it, one within
    grace), else ``(None, deferred)``: the caller computes, then calls ``finish`` or
    ``abandon``. Waits for another caller's compute as ``get_or_compute`` does."""
    policy, ttl_ms = storage.policy, storage._ttl(ttl)
    run = _Run(storage._keys.make(key), None, ttl_ms, policy, timing or DEFAULT_TIMING)
    k = run.k
    flow = read_through(policy, ttl_ms, run.timing, k)
    b = storage.backend
    try:
        step: Step = next(flow)
        while True:
            if step.op is Op.COMPUTE:  # the caller computes, then finishes
                return None, Deferred(flow, run)
            if step.op is Op.REFRESH:  # won for a value still served: this caller refreshes
                flow.close()  # (no function to run in the background)
                flow = refresh(run.policy, step.arg)
                step = next(flow)
                continue
            try:
                reply = _step_sync(storage, b, run, step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value, None


def _resume_sync(storage: Storage, d: Deferred, reply: Any, exc: Exception | None) -> None:
    b, flow = storage.backend, d.flow
    try:
        step = flow.send(reply) if exc is None else flow.throw(exc)
        while True:
            try:
                reply = _step_sync(storage, b, d.run, step)
            except Exception as err:
                step = flow.throw(err)
            else:
                step = flow.send(reply)
    except StopIteration:
        return


def finish(storage: Storage, d: Deferred, value: Any, ttl: TTLArg) -> None:
    """Store ``value`` for ``ttl`` (known once it was computed; as ``store`` reads it) as
    ``d``'s entry, with its compute time, and give the lease back. Raises what the store
    raises (the lease is given back)."""
    ttl_ms = storage._ttl(ttl)
    if ttl_ms == EXPIRED:
        return abandon(storage, d)
    d.run.ttl_ms = ttl_ms
    _resume_sync(storage, d, (value, max(0.0, d.run.timing.clock() - d.start)), None)


def abandon(storage: Storage, d: Deferred) -> None:
    """``d``'s caller has no value to store: a miss gives its lease back at once, a refresh
    keeps it ``REFRESH_BACKOFF`` seconds (as a failed background refresh)."""
    with contextlib.suppress(Abandoned):
        _resume_sync(storage, d, None, Abandoned())


async def abegin(
    storage: AsyncStorage, key: Key, ttl: TTLArg, timing: Timing | None = None
) -> tuple[Any, Deferred | None]:
    """``begin`` on the running loop."""
    policy, ttl_ms = storage.policy, storage._ttl(ttl)
    run = _Run(storage._keys.make(key), None, ttl_ms, policy, timing or DEFAULT_TIMING)
    k = run.k
    flow = read_through(policy, ttl_ms, run.timing, k)
    b = storage.backend
    try:
        step: Step = next(flow)
        while True:
            if step.op is Op.COMPUTE:  # the caller computes, then finishes
                return None, Deferred(flow, run)
            if step.op is Op.REFRESH:  # won for a value still served: this caller refreshes
                flow.close()  # (no function to run in the background)
                flow = refresh(run.policy, step.arg)
                step = next(flow)
                continue
            try:
                reply = await _step_async(storage, b, run, step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value, None


async def _resume_async(
    storage: AsyncStorage, d: Deferred, reply: Any, exc: Exception | None
) -> None:
    b, flow = storage.backend, d.flow
    try:
        step = flow.send(reply) if exc is None else flow.throw(exc)
        while True:
            try:
                reply = await _step_async(storage, b, d.run, step)
            except Exception as err:
                step = flow.throw(err)
            else:
                step = flow.send(reply)
    except StopIteration:
        return


async def afinish(storage: AsyncStorage, d: Deferred, value: Any, ttl: TTLArg) -> None:
    """``finish`` on the running loop."""
    ttl_ms = storage._ttl(ttl)
    if ttl_ms == EXPIRED:
        return await aabandon(storage, d)
    d.run.ttl_ms = ttl_ms
    await _resume_async(storage, d, (value, max(0.0, d.run.timing.clock() - d.start)), None)


async def aabandon(storage: AsyncStorage, d: Deferred) -> None:
    """``abandon`` on the running loop."""
    with contextlib.suppress(Abandoned):
        await _resume_async(storage, d, None, Abandoned())
