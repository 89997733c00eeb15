"""Load for the outage tests: workers request a Django view and record every request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.test import AsyncClient, Client


@dataclass(frozen=True)
class Sample:
    """One request: when it started (monotonic), how long it took, whether the cache served it
    and, if it failed, why."""

    start: float
    latency: float
    hit: bool
    error: str | None = None

    @property
    def end(self) -> float:
        return self.start + self.latency


@dataclass
class Timeline:
    """Every request of a run, and when the fault began and ended (monotonic seconds)."""

    samples: list[Sample] = field(default_factory=list)
    fault_at: float = 0.0
    back_at: float = 0.0

    def snapshot(self) -> list[Sample]:
        return list(self.samples)  # the workers keep appending

    def during(self) -> list[Sample]:
        """Requests that started while the server was down or frozen."""
        return [s for s in self.snapshot() if self.fault_at <= s.start < self.back_at]

    def first_hit_after_back(self) -> Sample | None:
        hits = [s for s in self.snapshot() if s.hit and s.start >= self.back_at]
        return min(hits, key=lambda s: s.end, default=None)

    def recovery(self) -> float | None:
        """Seconds from the server's return to the end of the first request the cache served."""
        hit = self.first_hit_after_back()
        return None if hit is None else hit.end - self.back_at


def _record(
    out: Timeline, started: float, status: int | None, body: object, error: str | None
) -> None:
    hit = isinstance(body, dict) and body.get("hit") is True
    if error is None and status != 200:
        error = f"HTTP {status}"
    out.samples.append(Sample(started, time.monotonic() - started, hit, error))


def thread_worker(path: str, out: Timeline, stop: threading.Event) -> None:
    """Request ``path`` with a Django test Client of this thread until ``stop``."""
    client = Client()
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = client.get(path)
            _record(out, started, response.status_code, response.json(), None)
        except Exception as exc:  # the view raised: the Client re-raises it
            _record(out, started, None, None, repr(exc))
        time.sleep(0.002)  # leave the GIL to the other workers and the test


async def task_worker(path: str, out: Timeline, stop: threading.Event) -> None:
    """Request ``path`` with a Django AsyncClient (an ASGI request on this loop) until ``stop``."""
    client = AsyncClient()
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await client.get(path)
            _record(out, started, response.status_code, response.json(), None)
        except Exception as exc:
            _record(out, started, None, None, repr(exc))
        await asyncio.sleep(0.002)


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    """Poll ``check`` for up to ``seconds`` (the servers' real time is what is measured)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def choreograph(
    out: Timeline,
    workers: int,
    fault: Callable[[], None],
    restore: Callable[[], None],
    outage: float,
    recovery_bound: float,
) -> None:
    """Warm the cache, inject ``fault`` for ``outage`` seconds, ``restore``, wait for a hit."""
    warm = wait_until(lambda: sum(s.hit for s in out.snapshot()) >= 2 * workers, 15)
    assert warm, f"the cache never warmed up: {out.snapshot()[-5:]}"
    out.fault_at = time.monotonic()
    fault()
    time.sleep(outage)  # the outage itself: real time on purpose
    restore()
    out.back_at = time.monotonic()
    wait_until(lambda: out.first_hit_after_back() is not None, recovery_bound)
    time.sleep(0.2)  # a few requests after recovery, to see that it lasts
