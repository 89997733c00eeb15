"""get_or_compute on every backend, sync and async: the lease, early refresh, grace, errors.

Time is a FakeClock (soft expiries and, on memory and RocksDB, the backend's TTLs too); computes
are gates the test opens; waits are observed through the injected sleeps. Nothing is timed.
"""

from __future__ import annotations

import asyncio
import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.contract.registry import Target
from tests.helpers import FakeClock
from tests.stampede_support import BOUND, Gate, Waiters, eventually
from tsot.stampede import Timing, shared_draw

LEASE = "\x00lease"  # the lease of key k is the key k + LEASE (tsot/readthrough.py)


def _value(v: Any) -> Any:
    return lambda: v


def test_exactly_one_compute_under_100_concurrent_misses(
    opener: Any, target: Target, mode: str, clock: FakeClock
) -> None:
    # redis-py's Cluster pool refuses a connection past max_connections (64) instead of
    # waiting for one: give Redis 100 threads' worth, and time to connect on a busy machine
    redis = not target.url.startswith(("memory", "rocksdb", "memcached"))
    slack = {"max_connections": 128, "socket_connect_timeout": 20, "socket_timeout": 20}
    store = opener(**slack) if redis else opener()
    gate, waiters = Gate(mode), Waiters()
    timing = waiters.timing(clock)
    barrier = threading.Barrier(100)

    def call() -> Any:
        barrier.wait(BOUND)
        return store.get_or_compute("hot", gate.fn, 60, timing=timing)

    with ThreadPoolExecutor(100) as pool:
        futures = [pool.submit(call) for _ in range(100)]
        try:
            # everyone but the lease holder is waiting for its value (or a call failed: raise)
            eventually(
                lambda: len(waiters.seen) >= 99 or any(f.done() for f in futures), "99 waiters"
            )
            for f in futures:
                if f.done():
                    f.result()
            eventually(lambda: gate.calls == 1, "the lease holder's compute")
        finally:
            gate.release()
        results = [f.result(BOUND) for f in futures]
    assert results == ["v1"] * 100
    assert gate.calls == 1
    assert store.load("hot") == "v1"  # a plain read sees the entry's value
    assert not store.exists("hot" + LEASE)  # the lease was given back


def test_a_waiter_takes_over_when_the_lease_holder_dies(
    store: Any, target: Target, mode: str, clock: FakeClock
) -> None:
    # A holder that died: its lease is in the backend and nobody will give it back. On a server
    # it expires on real time (1 s; memcached counts whole seconds); with an injected clock the
    # first wait moves the clock past it.
    holder_ttl = 1 if target.advance is None else 30
    assert store.add("k" + LEASE, b"dead holder", ttl=holder_ttl)
    moved: list[bool] = []

    def on_wait() -> None:
        if target.advance is not None and not moved:
            moved.append(True)
            target.advance(31)

    waiters = Waiters(on_wait)
    gate = Gate(mode)
    gate.release()
    # lease_timeout is long and the FakeClock barely moves: only the lease's expiry lets it in
    value = store.get_or_compute("k", gate.fn, 600, lease_timeout=60, timing=waiters.timing(clock))
    assert value == "v1"
    assert gate.calls == 1
    assert waiters.count >= 1  # it waited for the dead holder first
    assert store.load("k") == "v1"
    assert not store.exists("k" + LEASE)


def test_early_refresh_never_blocks_a_reader(store: Any, mode: str, clock: FakeClock) -> None:
    def slow_first() -> str:
        clock.advance(10)  # the compute takes 10 s: delta = 10
        return "first"

    assert store.get_or_compute("k", slow_first, 100, timing=Timing(clock=clock)) == "first"
    clock.advance(95)  # 5 s before the soft expiry
    # XFetch with u = 1 - 0.99: 10 + 10 * ln(1/0.01) = 56 s >= 5 s left: this read refreshes
    eager = Timing(clock=clock, random=lambda: 0.99)
    gate = Gate(mode)
    assert store.get_or_compute("k", gate.fn, 100, timing=eager) == "first"  # not blocked
    eventually(lambda: gate.calls == 1, "the background refresh start")
    assert store.exists("k" + LEASE)  # the refresh holds the lease
    # another eager reader during the refresh: the current value, no second compute
    assert store.get_or_compute("k", gate.fn, 100, timing=eager) == "first"
    gate.release()
    eventually(lambda: store.load("k") == "v1", "the refreshed value")
    eventually(lambda: not store.exists("k" + LEASE), "the lease given back")
    assert gate.calls == 1


def test_every_reader_sees_an_entry_due_at_the_same_moment_and_one_refreshes_it(
    opener: Any, mode: str, clock: FakeClock
) -> None:
    # Two Storage objects on one backend stand in for two processes. XFetch's draw is the
    # entry's (a hash of its key and soft expiry), not each reader's: both see the entry due
    # from the same moment on, and the first reader after it refreshes it, once.
    ns = f"due{uuid.uuid4().hex[:8]}"
    first, second = opener(namespace=ns), opener(namespace=ns)

    def slow_first() -> str:
        clock.advance(10)  # delta = 10 s
        return "first"

    timing = Timing(clock=clock)
    assert first.get_or_compute("k", slow_first, 100, timing=timing) == "first"
    soft_ms = round(clock.now * 1000) + 100_000
    u = shared_draw(first._keys.make("k"), soft_ms)
    due = soft_ms / 1000 - 10 * (1 - math.log(1.0 - u))  # beta = 1
    gate = Gate(mode)
    clock.now = due - 0.01
    for reader in (first, second, first):
        assert reader.get_or_compute("k", gate.fn, 100, timing=timing) == "first"
    assert gate.calls == 0
    assert not first.exists("k" + LEASE)
    clock.now = due + 0.01
    assert second.get_or_compute("k", gate.fn, 100, timing=timing) == "first"  # refreshes
    eventually(lambda: gate.calls == 1, "the background refresh start")
    assert first.get_or_compute("k", gate.fn, 100, timing=timing) == "first"  # due, leased
    gate.release()
    eventually(lambda: second.load("k") == "v1", "the refreshed value")
    assert gate.calls == 1


def test_a_refresh_landing_late_is_not_waited_for_within_its_window(
    store: Any, target: Target, mode: str, clock: FakeClock
) -> None:
    # An early refresh that lands after the soft expiry (a saturated process): readers get the
    # value it replaces for up to one compute time (delta) past the expiry, never wait for it;
    # past that window they wait for it as for any miss. (The lease outlives the test: on
    # memory and RocksDB the backend TTLs follow the fake clock.)
    def slow_first() -> str:
        clock.advance(10)  # delta = 10 s: the entry's refresh window
        return "first"

    assert (
        store.get_or_compute("k", slow_first, 100, lease_timeout=60, timing=Timing(clock=clock))
        == "first"
    )
    clock.advance(95)  # 5 s before the soft expiry: an eager reader starts the refresh
    gate = Gate(mode)
    eager = Timing(clock=clock, random=lambda: 0.99)
    assert store.get_or_compute("k", gate.fn, 100, lease_timeout=60, timing=eager) == "first"
    eventually(lambda: gate.calls == 1, "the background refresh start")
    never = Waiters(on_wait=lambda: pytest.fail("a reader waited within the window"))
    late = Timing(clock=clock, sleep=never.sleep, asleep=never.asleep)
    clock.advance(9)  # 4 s past the soft expiry, the refresh still running
    assert store.get_or_compute("k", gate.fn, 100, lease_timeout=60, timing=late) == "first"
    assert gate.calls == 1
    clock.advance(7)  # 11 s past the soft expiry: past the window
    waits = Waiters(on_wait=gate.release)  # a waiter lets the refresh land
    after = Timing(clock=clock, sleep=waits.sleep, asleep=waits.asleep)
    got = store.get_or_compute("k", gate.fn, 100, lease_timeout=60, timing=after)
    assert waits.count >= 1
    # the refreshed value; through a local cache whose invalidation of the old entry had not
    # arrived when the lease was freed, the waiter may compute the next one itself
    assert got == "v1" or ("local_cache" in target.url and got == "v2")


def test_an_overdue_value_without_a_refresh_under_way_is_recomputed(
    store: Any, clock: FakeClock
) -> None:
    def slow_first() -> str:
        clock.advance(10)  # delta = 10 s
        return "first"

    assert store.get_or_compute("k", slow_first, 100, timing=Timing(clock=clock)) == "first"
    clock.advance(104)  # 4 s past the soft expiry, no refresh ran: the reader computes
    assert store.get_or_compute("k", _value("second"), 100, timing=Timing(clock=clock)) == (
        "second"
    )
    assert not store.exists("k" + LEASE)


def test_a_read_far_from_expiry_does_not_refresh(store: Any, clock: FakeClock) -> None:
    def slow_first() -> str:
        clock.advance(1)  # delta = 1 s
        return "first"

    store.get_or_compute("k", slow_first, 100, timing=Timing(clock=clock))
    clock.advance(50)
    # u = 1 - 0.99 gives 1 + 4.6 s of lead: 50 s before expiry nothing is refreshed
    calls: list[int] = []
    again = store.get_or_compute(
        "k", lambda: calls.append(1), 100, timing=Timing(clock=clock, random=lambda: 0.99)
    )
    assert again == "first"
    assert calls == []
    assert not store.exists("k" + LEASE)


def test_grace_serves_stale_while_one_caller_refreshes(
    store: Any, mode: str, clock: FakeClock
) -> None:
    timing = Timing(clock=clock)
    assert store.get_or_compute("k", _value("old"), 10, grace=5, timing=timing) == "old"
    clock.advance(12)  # 2 s past the soft expiry, within grace
    gate = Gate(mode)
    assert store.get_or_compute("k", gate.fn, 10, grace=5, timing=timing) == "old"
    eventually(lambda: gate.calls == 1, "the background refresh start")
    assert store.get_or_compute("k", gate.fn, 10, grace=5, timing=timing) == "old"
    gate.release()
    eventually(lambda: store.load("k") == "v1", "the refreshed value")
    assert gate.calls == 1


def test_grace_bounds_staleness_and_serves_stale_on_errors(
    store: Any, target: Target, clock: FakeClock
) -> None:
    timing = Timing(clock=clock)
    store.get_or_compute("k", _value("old"), 10, grace=5, timing=timing)
    failures: list[int] = []

    def failing() -> Any:
        failures.append(1)
        raise RuntimeError("backend of the compute is down")

    def read() -> Any:
        return store.get_or_compute("k", failing, 10, grace=5, timing=timing)

    def lease_ttl() -> float:
        return store.ttl("k" + LEASE) or 0.0

    clock.advance(12)  # stale-if-error: within grace the old value is served
    assert read() == "old"
    eventually(lambda: failures == [1], "the failed refresh")
    # the failed refresh keeps the lease for its backoff (1 s, not lease_timeout's 10 s)...
    eventually(lambda: 0 < lease_ttl() <= 2, "the lease held for the backoff")
    assert read() == "old"  # ...so reads meanwhile serve the old value and do not retry
    assert failures == [1]
    if target.advance is not None:
        target.advance(1.5)  # 13.5 s
    eventually(lambda: not store.exists("k" + LEASE), "the backoff's end")
    assert read() == "old"  # still within grace: served, and one retry
    eventually(lambda: failures == [1, 1], "the retried refresh")
    clock.advance(4)  # past ttl + grace: the old value is never served again
    with pytest.raises(RuntimeError, match="compute is down"):
        read()


def test_a_compute_error_on_a_miss_propagates_and_frees_the_lease(
    store: Any, clock: FakeClock
) -> None:
    def failing() -> Any:
        raise ValueError("no such row")

    with pytest.raises(ValueError, match="no such row"):
        store.get_or_compute("k", failing, 60, timing=Timing(clock=clock))
    assert not store.exists("k" + LEASE)
    assert not store.exists("k")
    assert store.get_or_compute("k", _value(7), 60, timing=Timing(clock=clock)) == 7
    assert store.load("k") == 7


class Interrupted(BaseException):
    """Not an Exception, as KeyboardInterrupt and a task's CancelledError are not."""


def test_an_interrupted_compute_frees_the_lease(store: Any, mode: str, clock: FakeClock) -> None:
    """A compute ended by a BaseException gives the lease back at once: the next caller computes
    instead of waiting out lease_timeout (60 s here; the FakeClock never reaches it)."""
    timing = Timing(clock=clock)

    def interrupted() -> Any:
        raise Interrupted

    if mode == "sync":
        with pytest.raises(Interrupted):
            store.get_or_compute("k", interrupted, 60, lease_timeout=60, timing=timing)
    else:  # the task is cancelled while its compute awaits
        core, loop = store._target, store._loop

        async def cancelled() -> None:
            started = asyncio.Event()

            async def forever() -> Any:
                started.set()
                await asyncio.Event().wait()

            task = asyncio.ensure_future(
                core.get_or_compute("k", forever, 60, lease_timeout=60, timing=timing)
            )
            await asyncio.wait_for(started.wait(), BOUND)
            assert await core.exists("k" + LEASE)  # held while the compute runs
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        loop.run(cancelled())
    assert not store.exists("k" + LEASE)
    assert store.get_or_compute("k", _value(8), 60, lease_timeout=60, timing=timing) == 8


def test_plain_values_are_read_as_fresh(store: Any, clock: FakeClock) -> None:
    store.store("k", {"plain": True}, 60)
    calls: list[int] = []
    got = store.get_or_compute("k", lambda: calls.append(1), 60, timing=Timing(clock=clock))
    assert got == {"plain": True}
    assert calls == []


def test_without_stampede_protection_every_miss_computes(store: Any, clock: FakeClock) -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    timing = Timing(clock=clock)
    assert store.get_or_compute("k", compute, 0, stampede=False, timing=timing) == 1
    assert store.get_or_compute("k", compute, 0, timing=timing) == 2  # ttl 0: never stored
    assert store.get_or_compute("k", compute, 60, stampede=False, timing=timing) == 3
    assert store.get_or_compute("k", compute, 60, stampede=False, timing=timing) == 3
    assert not store.exists("k" + LEASE)
