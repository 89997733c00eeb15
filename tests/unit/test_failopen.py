"""The circuit breaker and the fail_open wrappers (real server outages: tests/reliability)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot import BackendUnavailable, Storage
from tsot.backends.base import DirectAsync
from tsot.backends.memory import MemoryStore
from tsot.failopen import AsyncFailOpen, CircuitBreaker, FailOpen


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
