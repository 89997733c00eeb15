"""The circuit breaker and the fail_open wrappers (real server outages: tests/reliability)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot import (
    AsyncStorage,
    BackendUnavailable,
    ConfigurationError,
    Storage,
    StorageClosed,
    WriteRefused,
    failopen,
)
from tsot.backends.base import DirectAsync
from tsot.backends.memory import MemoryStore
from tsot.failopen import AsyncFailOpen, CircuitBreaker, FailOpen
from tsot.logs import RateLimitedLog, limited


class Switchable(MemoryStore):
    """A memory table that can be switched off: calls then raise BackendUnavailable."""

    down = False
    calls = 0

    def _hit(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("switched off")

    def get(self, key: bytes) -> bytes | None:
        self._hit()
        return super().get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self._hit()
        return super().get_many(keys)

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._hit()
        super().set(key, value, ttl_ms)

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        self._hit()
        return super().add(key, value, ttl_ms)

    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        self._hit()
        return super().replace(key, value, ttl_ms)

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        self._hit()
        return super().incr(key, delta, create)


def test_breaker_states() -> None:
    clock = FakeClock()
    b = CircuitBreaker(5.0, clock)
    assert b.allow() and not b.is_open
    b.failure()
    assert b.is_open and not b.allow()
    clock.advance(5)
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe per interval
    b.success()
    assert not b.is_open and b.allow()


def test_fail_open_costs_one_call_per_interval() -> None:
    clock = FakeClock()
    inner = Switchable()
    backend = FailOpen(inner, CircuitBreaker(2.0, clock), "test://")
    backend.set(b"k", b"s1", None)
    assert backend.get(b"k") == b"s1"
    inner.down = True
    before = inner.calls
    assert backend.get(b"k") is None  # the failing call
    for _ in range(100):
        assert backend.get(b"k") is None
        assert backend.get_many([b"a", b"b"]) == [None, None]
        assert backend.add(b"x", b"y", None) is False
        assert backend.replace(b"k", b"y", None) is False
        backend.set(b"k", b"s2", None)
    assert inner.calls - before == 1
    with pytest.raises(BackendUnavailable, match="circuit open"):
        backend.incr(b"n", 1, True)
    inner.down = False
    clock.advance(2)
    assert backend.get(b"k") == b"s1"  # the probe succeeds: closed again
    backend.set(b"k", b"s3", None)
    assert inner.get(b"k") == b"s3"


def test_async_fail_open() -> None:
    clock = FakeClock()
    inner = Switchable()
    backend = AsyncFailOpen(DirectAsync(inner), CircuitBreaker(1.0, clock), "test://")

    async def run() -> list[Any]:
        await backend.set(b"k", b"v", None)
        inner.down = True
        out = [await backend.get(b"k"), await backend.get(b"k")]
        inner.down = False
        clock.advance(1)
        out.append(await backend.get(b"k"))
        return out

    assert asyncio.run(run()) == [None, None, b"v"]


def test_fail_open_option_wraps_backend() -> None:
    s = Storage.from_url("memory://fo", fail_open=True, probe_interval=1)
    assert isinstance(s.backend, FailOpen)
    s.store("k", 1)
    assert s.load("k") == 1
    assert not isinstance(Storage.from_url("memory://fo").backend, FailOpen)


class Refusing(Switchable):
    """A memory table whose writes can be refused (WriteRefused) while it keeps serving."""

    full = False

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        if self.full:
            self.calls += 1
            raise WriteRefused("full")
        super().set(key, value, ttl_ms)

    def delete(self, key: bytes) -> bool:
        self._hit()
        if self.full:
            raise WriteRefused("no permission")
        return super().delete(key)

    def delete_many(self, keys: Sequence[bytes]) -> int:
        self._hit()
        return super().delete_many(keys)

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        self._hit()
        return super().expire(key, ttl_ms)

    def clear(self, prefix: bytes) -> None:
        self._hit()
        super().clear(prefix)


INVALIDATIONS: list[tuple[str, tuple[Any, ...], Any]] = [
    ("delete", (b"k",), False),
    ("delete_many", ([b"k", b"j"],), 0),
    ("expire", (b"k", 1000), False),
    ("clear", (b"",), None),
]


@pytest.mark.parametrize(("name", "args", "skipped"), INVALIDATIONS)
def test_invalidations_raise_under_fail_open_unless_opted_in(
    name: str, args: tuple[Any, ...], skipped: Any
) -> None:
    clock = FakeClock()
    for opted_in in (False, True):
        inner = Refusing()
        inner.set(b"k", b"v", None)
        breaker = CircuitBreaker(5.0, clock)
        backend = FailOpen(inner, breaker, "test://", invalidation=opted_in)
        inner.down = True
        for _ in range(2):  # the call that meets the outage, then one short-circuited
            if opted_in:
                assert getattr(backend, name)(*args) == skipped
            else:
                with pytest.raises(BackendUnavailable):
                    getattr(backend, name)(*args)
        assert breaker.is_open
        assert backend.stats()["skipped_writes"] == (2 if opted_in else 0)
        assert backend.stats()["short_circuited"] == 1
        assert inner.calls == 2  # the seed write and the one call that met the outage
        inner.down = False
        assert inner.get(b"k") == b"v"  # nothing was invalidated behind the caller's back


def test_short_circuited_invalidation_says_how_to_skip_it() -> None:
    inner = Refusing()
    backend = FailOpen(inner, CircuitBreaker(5.0, FakeClock()), "redis://h:1/0")
    inner.down = True
    with pytest.raises(BackendUnavailable):
        backend.delete(b"k")
    with pytest.raises(BackendUnavailable, match=r"redis://h:1/0 .*delete .*fail_open_invalid"):
        backend.delete(b"k")
    with pytest.raises(BackendUnavailable, match="incr raises under fail_open"):
        backend.incr(b"n", 1, True)


def test_reads_and_writes_fail_open_and_are_counted() -> None:
    inner = Refusing()
    backend = FailOpen(inner, CircuitBreaker(5.0, FakeClock()), "test://")
    inner.down = True
    assert backend.get(b"k") is None  # meets the outage
    assert backend.get_many([b"a", b"b"]) == [None, None]  # short-circuited from here on
    assert backend.exists(b"k") is False
    backend.set(b"k", b"v", None)
    assert backend.add(b"k", b"v", None) is False
    assert backend.replace(b"k", b"v", None) is False  # a write: skipped, "not stored"
    backend.set_many([(b"a", b"1")], None)
    counts = backend.stats()
    assert counts["outage_misses"] == 3
    assert counts["skipped_writes"] == 4
    assert counts["short_circuited"] == 6
    assert counts["refused_writes"] == 0


class Predating:
    """A third-party backend written before ``replace`` joined the protocol (it has no
    ``replace``): fail-open and the event hook still wrap it, and add no ``replace``."""

    def __init__(self) -> None:
        self.table = MemoryStore()

    def __getattr__(self, name: str) -> Any:
        if name == "replace":
            raise AttributeError(name)
        return getattr(self.table, name)


def test_a_backend_without_replace_is_still_guarded_and_observed() -> None:
    from tsot.events import Hub, Observed

    backend = FailOpen(Predating(), CircuitBreaker(5.0, FakeClock()), "test://")
    backend.set(b"k", b"v", None)
    assert backend.get(b"k") == b"v"
    assert not hasattr(backend, "replace")
    observed = Observed(Predating(), Hub(None))  # type: ignore[arg-type]
    assert not hasattr(observed, "replace")


def test_refused_write_is_reported_and_never_opens_the_breaker(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limited, "interval", 0.0)
    inner = Refusing()
    inner.set(b"k", b"v", None)
    breaker = CircuitBreaker(5.0, FakeClock())
    backend = FailOpen(inner, breaker, "redis://u:***@h:1/0")
    inner.full = True
    with caplog.at_level(logging.WARNING, logger="tsot"):
        backend.set(b"k", b"new", None)  # reported, not raised
    assert not breaker.is_open
    assert backend.get(b"k") == b"v"  # reads still reach the server: a hit, not a miss
    assert backend.stats()["refused_writes"] == 1
    assert "redis://u:***@h:1/0 refused set" in caplog.text
    with pytest.raises(WriteRefused):  # a refused invalidation is not skipped silently
        backend.delete(b"k")
    assert not breaker.is_open
    opted = FailOpen(inner, breaker, "test://", invalidation=True)
    assert opted.delete(b"k") is False
    assert backend.stats()["refused_writes"] == 2


def test_async_guard_makes_the_same_decisions() -> None:
    inner = Refusing()
    inner.set(b"k", b"v", None)
    breaker = CircuitBreaker(5.0, FakeClock())
    backend = AsyncFailOpen(DirectAsync(inner), breaker, "test://")

    async def run() -> dict[str, int | None]:
        inner.full = True
        await backend.set(b"k", b"x", None)
        assert not breaker.is_open
        assert await backend.get(b"k") == b"v"
        with pytest.raises(WriteRefused):
            await backend.delete(b"k")
        inner.full = False
        inner.down = True
        with pytest.raises(BackendUnavailable):
            await backend.delete(b"k")
        assert await backend.get(b"k") is None
        with pytest.raises(BackendUnavailable, match="circuit open"):
            await backend.clear(b"")
        return await backend.stats()

    counts = asyncio.run(run())
    assert counts["refused_writes"] == 1 and counts["outage_misses"] == 1
    assert counts["short_circuited"] == 2


def test_outage_and_recovery_lines_name_each_backend(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limit is per backend: a second backend's outage is logged while the first's
    line is still within the interval, and each recovery line names its backend."""
    clock = FakeClock()
    monkeypatch.setattr(failopen, "limited", RateLimitedLog(10.0, clock))
    names = [f"redis://h:{port}/0" for port in (1, 2)]
    inners = [Refusing(), Refusing()]
    backends = [
        FailOpen(inner, CircuitBreaker(1.0, clock, name=n), n)
        for inner, n in zip(inners, names, strict=True)
    ]
    with caplog.at_level(logging.WARNING, logger="tsot"):
        for inner, backend in zip(inners, backends, strict=True):
            inner.down = True
            backend.get(b"k")
        clock.advance(1)
        for inner, backend in zip(inners, backends, strict=True):
            inner.down = False
            backend.get(b"k")
        inners[0].down = True
        backends[0].get(b"k")  # the same backend again within the interval: suppressed
    lines = [r.getMessage() for r in caplog.records]
    for n in names:
        assert sum(n in line and "failed" in line for line in lines) == 1, lines
        assert sum(n in line and "reachable again" in line for line in lines) == 1, lines
    assert len(lines) == 4


@pytest.mark.parametrize("opt", [True, False])
def test_fail_open_invalidation_option_reaches_the_guard(opt: bool) -> None:
    s = Storage.from_url(
        f"memory://foi-{opt}", fail_open=True, fail_open_invalidation=opt, probe_interval=1
    )
    assert isinstance(s.backend, FailOpen) and s.backend._invalidation is opt
    with pytest.raises(ConfigurationError, match="fail_open_invalidation"):
        Storage.from_url("memory://foi", fail_open=True, fail_open_invalidation="maybe")


def test_closed_storage_raises_storage_closed() -> None:
    s = Storage.from_url("memory://closing", namespace="c")
    s.store("k", 1)
    s.close()
    s.close()  # twice is fine
    for call in (lambda: s.load("k"), lambda: s.store("k", 2), lambda: s.stats()):
        with pytest.raises(StorageClosed, match=r"memory://closing.* is closed"):
            call()
    assert Storage.from_url("memory://closing", namespace="c").load("k") == 1  # shared table

    async def run() -> None:
        a = AsyncStorage.from_url("memory://closing", namespace="c")
        async with a:
            assert await a.load("k") == 1
        for coro in (a.load, a.incr, a.delete):
            with pytest.raises(StorageClosed):
                await coro("k")
        with pytest.raises(StorageClosed):
            await a.stats()

    asyncio.run(run())
