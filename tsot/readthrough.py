"""``tsot.stampede.read_through`` (get_or_compute) on a Storage or an AsyncStorage.

Each Step becomes its calls (a backend primitive on the Storage's final keys, the compute, a
wait, a background refresh), written once as a generator (``_steps``) and run by ``tsot.drive``'s
sync or asyncio driver; every decision is in ``tsot.stampede``. The lease is a key next to
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
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from . import drive, events
from .codec import MISS
from .drive import Steps as Operation
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


# -- the read-through's calls, run by tsot.drive's sync or asyncio driver --------------------


def _steps(
    storage: Storage | AsyncStorage,
    run: _Run,
    flow: Flow,
    aio: bool,
    reply: Any = None,
    error: BaseException | None = None,
) -> Operation[Any]:
    """The calls that do each Step of ``flow`` (resumed with ``reply``, or ``error`` thrown in):
    a backend primitive, the compute, a sleep, a background start; the flow's value at its end.
    A call's error is thrown into the flow."""
    b = storage.backend
    try:
        step: Step = flow.send(reply) if error is None else flow.throw(error)
        while True:
            op, reply = step.op, None
            try:  # the Step's calls, inline: a generator per Step would cost ~0.7 us each
                if op is Op.GET:
                    reply = run.entry(storage, (yield b.get, (run.k,)))
                elif op is Op.LEASE:
                    reply = yield b.add, (run.lease_k, run.token, run.lease_ms)
                elif op is Op.COMPUTE:  # the asyncio driver awaits fn's awaitable result
                    clock = run.timing.clock
                    start = clock()
                    value = yield run.fn, ()
                    reply = value, max(0.0, clock() - start)
                elif op is Op.STORE:
                    data, ms = run.encoded(storage, step.arg)
                    yield b.set, (run.k, data, ms)
                elif op is Op.RELEASE:
                    if (yield b.get, (run.lease_k,)) == run.token:  # never free another's lease
                        yield b.delete, (run.lease_k,)
                elif op is Op.WAIT:
                    if step.arg == run.timing.poll:  # this caller's first wait
                        _note(storage, "wait")
                    yield (
                        (run.timing.asleep or asyncio.sleep) if aio else run.timing.sleep,
                        (step.arg,),
                    )
                elif op is Op.HOLD:
                    if (yield b.get, (run.lease_k,)) == run.token:
                        # at least the backoff on a backend that may end a TTL early
                        hold_ms = math.ceil(step.arg * 1000) + expiry_step_ms(b)
                        yield b.expire, (run.lease_k, hold_ms)
                else:  # Op.REFRESH: the lease is ours; a task or thread computes, this caller goes
                    _note(storage, "refresh")
                    yield _start_task if aio else _start_thread, (storage, run, step.arg)
            except GeneratorExit:
                raise  # this generator is being closed: the flow can yield nothing more
            except BaseException as exc:  # a cancellation too: the flow frees its lease
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value


def _refreshing(
    storage: Storage | AsyncStorage, run: _Run, seen_soft: float | None, aio: bool
) -> Operation[None]:
    """A background refresh; its failure is logged and reported, never raised."""
    try:
        yield from _steps(storage, run, refresh(run.policy, seen_soft), aio)
    except Exception as exc:
        _note(storage, "refresh_failed")
        log.warning("tsot: background refresh of key %r failed: %r", run.k[:100], exc, exc_info=exc)


def _start_thread(storage: Storage, run: _Run, seen_soft: float | None) -> None:
    ops = _refreshing(storage, run, seen_soft, aio=False)
    threading.Thread(target=drive.run, args=(ops,), name="tsot-refresh", daemon=True).start()


def _start_task(storage: AsyncStorage, run: _Run, seen_soft: float | None) -> None:
    ops = _refreshing(storage, run, seen_soft, aio=True)
    task = asyncio.get_running_loop().create_task(drive.arun(ops))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _read(
    storage: Storage | AsyncStorage,
    k: bytes,
    fn: Callable[[], Any],
    ttl_ms: int | None,
    policy: Policy,
    timing: Timing,
    aio: bool,
) -> Operation[Any]:
    run = _Run(k, fn, ttl_ms, policy, timing)
    return _steps(storage, run, read_through(policy, ttl_ms, timing, k), aio)


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
    return drive.run(_read(storage, k, fn, ttl_ms, policy, timing, aio=False))


async def aget_or_compute(
    storage: AsyncStorage,
    k: bytes,
    fn: Callable[[], Any | Awaitable[Any]],
    ttl_ms: int | None,
    policy: Policy,
    timing: Timing,
) -> Any:
    """``AsyncStorage.get_or_compute`` past its fast path, as ``get_or_compute``."""
    return await drive.arun(_read(storage, k, fn, ttl_ms, policy, timing, aio=True))


# -- a value computed outside a read-through --------------------------------------------------


def _entry_write(
    storage: Storage | AsyncStorage, key: Key, value: Any, ttl: TTLArg, delta: float
) -> tuple[bytes, bytes, int | None] | None:
    """The ``set`` arguments of ``store_entry`` (None: a TTL <= 0 stores nothing)."""
    ttl_ms = storage._ttl(ttl)
    if ttl_ms == EXPIRED:
        return None
    run = _Run(storage._keys.make(key), None, ttl_ms, storage.policy, DEFAULT_TIMING)
    return (run.k, *run.encoded(storage, (value, delta)))


def store_entry(storage: Storage, key: Key, value: Any, ttl: TTLArg, delta: float) -> None:
    """Store ``value`` as ``get_or_compute`` would after a compute of ``delta`` seconds (its
    soft expiry and compute time, so early refresh applies to it), for a value its caller
    computed without a read-through (a page's first render). A TTL <= 0 stores nothing."""
    write = _entry_write(storage, key, value, ttl, delta)
    if write is not None:
        storage.backend.set(*write)


async def astore_entry(
    storage: AsyncStorage, key: Key, value: Any, ttl: TTLArg, delta: float
) -> None:
    """``store_entry`` on the running loop."""
    write = _entry_write(storage, key, value, ttl, delta)
    if write is not None:
        await storage.backend.set(*write)


# -- split in two calls: begin, the caller computes, then finish or abandon ---------------------
# (the two-part page middleware: the request renders between its two halves)


class Deferred:
    """A read-through waiting for the value its caller computes (``begin`` to ``finish``)."""

    __slots__ = ("flow", "run", "start")

    def __init__(self, flow: Flow, run: _Run) -> None:
        self.flow, self.run, self.start = flow, run, run.timing.clock()


class Abandoned(Exception):
    """Thrown into a deferred read-through whose caller has no value to store."""


def _until_compute(run: _Run, flow: Flow) -> Flow:
    """``flow`` up to its compute, which the caller of ``begin`` runs itself: ``(None,
    Deferred)`` then, else ``(value, None)``. A refresh it wins (for a value still served) is
    this caller's too: the refresh's flow goes on in its place (no function to run in the
    background)."""
    try:
        step: Step = next(flow)
        while True:
            if step.op is Op.COMPUTE:
                return None, Deferred(flow, run)
            if step.op is Op.REFRESH:
                flow.close()
                flow = refresh(run.policy, step.arg)
                step = next(flow)
                continue
            try:
                reply = yield step
            except GeneratorExit:
                raise  # this generator is being closed: the flow can yield nothing more
            except BaseException as exc:  # a cancellation too: the flow frees its lease
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return stop.value, None


def _begin(
    storage: Storage | AsyncStorage, key: Key, ttl: TTLArg, timing: Timing | None, aio: bool
) -> Operation[tuple[Any, Deferred | None]]:
    policy, ttl_ms = storage.policy, storage._ttl(ttl)
    run = _Run(storage._keys.make(key), None, ttl_ms, policy, timing or DEFAULT_TIMING)
    flow = read_through(policy, ttl_ms, run.timing, run.k)
    return (yield from _steps(storage, run, _until_compute(run, flow), aio))  # type: ignore[no-any-return]


def _finish(
    storage: Storage | AsyncStorage, d: Deferred, value: Any, ttl: TTLArg, aio: bool
) -> Operation[None]:
    ttl_ms = storage._ttl(ttl)
    if ttl_ms == EXPIRED:
        return (yield from _abandon(storage, d, aio))
    d.run.ttl_ms = ttl_ms
    took = max(0.0, d.run.timing.clock() - d.start)
    yield from _steps(storage, d.run, d.flow, aio, (value, took))


def _abandon(storage: Storage | AsyncStorage, d: Deferred, aio: bool) -> Operation[None]:
    with contextlib.suppress(Abandoned):
        yield from _steps(storage, d.run, d.flow, aio, None, Abandoned())


def begin(
    storage: Storage, key: Key, ttl: TTLArg, timing: Timing | None = None
) -> tuple[Any, Deferred | None]:
    """``(value, None)`` when ``storage.get_or_compute(key, fn, ttl)`` would return a value
    without computing (a hit, a value served while another caller refreshes it, one within
    grace), else ``(None, deferred)``: the caller computes, then calls ``finish`` or
    ``abandon``. Waits for another caller's compute as ``get_or_compute`` does."""
    return drive.run(_begin(storage, key, ttl, timing, aio=False))


def finish(storage: Storage, d: Deferred, value: Any, ttl: TTLArg) -> None:
    """Store ``value`` for ``ttl`` (known once it was computed; as ``store`` reads it) as
    ``d``'s entry, with its compute time, and give the lease back. Raises what the store
    raises (the lease is given back)."""
    drive.run(_finish(storage, d, value, ttl, aio=False))


def abandon(storage: Storage, d: Deferred) -> None:
    """``d``'s caller has no value to store: a miss gives its lease back at once, a refresh
    keeps it ``REFRESH_BACKOFF`` seconds (as a failed background refresh)."""
    drive.run(_abandon(storage, d, aio=False))


async def abegin(
    storage: AsyncStorage, key: Key, ttl: TTLArg, timing: Timing | None = None
) -> tuple[Any, Deferred | None]:
    """``begin`` on the running loop."""
    return await drive.arun(_begin(storage, key, ttl, timing, aio=True))


async def afinish(storage: AsyncStorage, d: Deferred, value: Any, ttl: TTLArg) -> None:
    """``finish`` on the running loop."""
    await drive.arun(_finish(storage, d, value, ttl, aio=True))


async def aabandon(storage: AsyncStorage, d: Deferred) -> None:
    """``abandon`` on the running loop."""
    await drive.arun(_abandon(storage, d, aio=True))
