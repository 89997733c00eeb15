"""Locks (``Storage.lock`` / ``AsyncStorage.lock``) on every backend, sync and async: redis-py's
interface, safe release after expiry-then-steal, and fencing tokens that grow in holding order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.contract.registry import Target
from tests.helpers import SyncView
from tsot import ConfigurationError, LockError, LockNotOwnedError


def lock_of(store: Any, name: str = "job", **kw: Any) -> Any:
    """A Lock, or an AsyncLock driven through SyncView (its coroutines run on the store's loop)."""
    if isinstance(store, SyncView):
        return SyncView(store._target.lock(name, **kw), store._loop)
    return store.lock(name, **kw)


def expire_lock(target: Target, store: Any, name: str, timeout: float) -> None:
    """Make the lock's key go as expiry would: move the clock, or remove it on a server."""
    if target.advance is not None:
        target.advance(timeout + 0.5)
        assert not store.exists(name)
    else:
        store.delete(name)


def test_acquire_release_and_state(store: Any) -> None:
    a, b = lock_of(store, timeout=30), lock_of(store, timeout=30)
    assert not a.locked()
    fence = a.acquire(blocking=False)
    assert type(fence) is int and fence >= 1
    assert a.fence == fence
    assert a.locked() and a.owned()
    assert b.locked() and not b.owned()
    assert b.acquire(blocking=False) is False
    assert 0 < store.ttl("job") <= 30
    a.release()
    assert not a.locked() and a.fence is None
    assert b.acquire(blocking=False) > fence
    b.release()


def test_no_timeout_never_expires(store: Any) -> None:
    lock = lock_of(store)
    assert lock.acquire(blocking=False)
    assert store.ttl("job") == float("inf")
    with pytest.raises(LockError, match="no timeout"):
        lock.extend(5)
    lock.release()


def test_release_of_unlocked_raises(store: Any) -> None:
    lock = lock_of(store, timeout=5)
    with pytest.raises(LockError, match="unlocked"):
        lock.release()
    with pytest.raises(LockError, match="unlocked"):
        lock.extend(5)


def test_expired_then_stolen_is_never_released_by_the_first_owner(
    target: Target, store: Any
) -> None:
    first, second = lock_of(store, timeout=5), lock_of(store, timeout=5)
    f1 = first.acquire(blocking=False)
    expire_lock(target, store, "job", 5)
    f2 = second.acquire(blocking=False)
    assert f2 > f1
    with pytest.raises(LockNotOwnedError):
        first.extend(10)
    with pytest.raises(LockNotOwnedError):
        first.release()
    assert second.owned() and second.locked()
    assert second.extend(10)
    assert 10 < store.ttl("job") <= 15
    assert second.extend(3, replace_ttl=True)
    assert store.ttl("job") <= 3
    assert second.reacquire()
    assert 3 < store.ttl("job") <= 5
    second.release()
    assert not second.locked()


def test_context_manager_and_blocking_timeout(store: Any) -> None:
    aio = isinstance(store, SyncView)
    holder = lock_of(store, timeout=30)
    enter, leave = ("__aenter__", "__aexit__") if aio else ("__enter__", "__exit__")
    assert getattr(holder, enter)() is (holder._target if aio else holder)
    assert holder.owned()
    waiter = lock_of(store, timeout=30, sleep=0.01, blocking_timeout=0.05)
    with pytest.raises(LockError, match="Unable to acquire"):
        getattr(waiter, enter)()
    assert holder.owned()
    getattr(holder, leave)(None, None, None)
    assert not holder.locked()


def test_custom_token_and_bad_arguments(store: Any) -> None:
    lock = lock_of(store, timeout=5)
    assert lock.acquire(blocking=False, token="mine")
    assert lock.local.token == b"mine"
    lock.release()
    for kw, what in (
        ({"timeout": 0}, "timeout"),
        ({"sleep": -1}, "sleep"),
        ({"timeout": "5"}, "timeout"),
    ):
        with pytest.raises(ConfigurationError, match=what):
            lock_of(store, **kw)


def test_fencing_tokens_grow_in_holding_order(store: Any) -> None:
    """Threads (tasks on one loop for AsyncStorage) each take the lock in turn; the tokens the
    holders saw, in the order they held it, strictly increase and no two holders overlap."""
    workers, rounds = 4, 5
    held: list[int] = []
    inside = threading.Lock()
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work() -> None:
        lock = lock_of(store, timeout=30, sleep=0.005, blocking_timeout=60)
        barrier.wait()
        try:
            for _ in range(rounds):
                fence = lock.acquire()
                assert fence
                assert inside.acquire(blocking=False), "two holders at once"
                held.append(fence)
                inside.release()
                lock.release()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(held) == workers * rounds
    assert held == sorted(held) and len(set(held)) == len(held)


def test_fencing_tokens_with_asyncio_tasks(target: Target, mode: str, opener: Any) -> None:
    if mode != "async":
        pytest.skip("the asyncio twin of test_fencing_tokens_grow_in_holding_order")
    view = opener()
    storage, loop = view._target, view._loop

    async def run() -> list[int]:
        held: list[int] = []
        busy = [False]

        async def work() -> None:
            lock = storage.lock("job", timeout=30, sleep=0.002, blocking_timeout=60)
            for _ in range(5):
                async with lock:
                    assert not busy[0], "two holders at once"
                    busy[0] = True
                    held.append(lock.fence)
                    await asyncio.sleep(0)
                    busy[0] = False

        await asyncio.gather(*(work() for _ in range(4)))
        return held

    held = loop.run(run())
    assert len(held) == 20
    assert held == sorted(held) and len(set(held)) == len(held)


def test_failed_acquire_leaves_no_lock(store: Any) -> None:
    store.store("job:fence", "not a counter")
    lock = lock_of(store, timeout=30)
    with pytest.raises(TypeError):
        lock.acquire(blocking=False)
    assert not lock.locked()
    assert store.load("job:fence") == "not a counter"


def test_thread_local_token(mode: str, store: Any) -> None:
    if mode != "sync":
        pytest.skip("an AsyncLock keeps its token on the object")
    lock = lock_of(store, timeout=30)
    assert lock.acquire(blocking=False)
    seen: list[Any] = []

    def elsewhere() -> None:
        seen.append(lock.owned())
        seen.append(lock.fence)
        try:
            lock.release()
        except LockError as exc:
            seen.append(type(exc))

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join(30)
    assert seen == [False, None, LockError]  # another thread does not hold this thread's lock
    assert lock.owned()
    shared = lock_of(store, "other", timeout=30, thread_local=False)
    assert shared.acquire(blocking=False)
    t = threading.Thread(target=shared.release)
    t.start()
    t.join(30)
    assert not shared.locked()
    lock.release()
