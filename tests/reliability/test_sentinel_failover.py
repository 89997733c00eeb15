"""Sentinel failover while writers run: writes resume after the promotion; the outage measured.

tests/backends/test_redis_topologies.py checks that writes resume after a failover; here a sync
writer thread and an asyncio writer task keep writing through it, and every acknowledged write
is checked on the new primary.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import LoopThread
from tests.servers.redis import SentinelSet, start_sentinel_set
from tsot import AsyncStorage, Storage
from tsot.errors import BackendUnavailable

pytestmark = [pytest.mark.server, pytest.mark.slow]

FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
RESUME_BOUND = 20.0  # down-after 1 s + election + promotion on a loaded machine


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    sset = start_sentinel_set(tmp_path)
    yield sset
    sset.stop()


@dataclass
class Writes:
    """What one writer saw: acknowledged sequence numbers with their times, and failures."""

    acked: list[tuple[int, float]] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)

    def outage(self, killed_at: float) -> float:
        """Seconds from the kill to the first acknowledged write after a failure."""
        first_failure = min((t for t in self.failed if t >= killed_at), default=None)
        assert first_failure is not None, "no write ever failed: the primary was not gone"
        return min(t for _, t in self.acked if t > first_failure) - killed_at

    def after(self, moment: float) -> list[int]:
        return [n for n, t in self.acked if t >= moment]


def write_sync(store: Storage, out: Writes, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            store.store(f"s{n}", n)
            out.acked.append((n, time.monotonic()))
        except BackendUnavailable:
            out.failed.append(time.monotonic())
            time.sleep(0.02)


async def write_async(store: AsyncStorage, out: Writes, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await store.store(f"a{n}", n)
            out.acked.append((n, time.monotonic()))
        except BackendUnavailable:
            out.failed.append(time.monotonic())
            await asyncio.sleep(0.02)
        await asyncio.sleep(0)


def test_writes_resume_after_failover_while_writers_run(
    sentinel_set: SentinelSet, loop_thread: LoopThread
) -> None:
    sync = Storage.from_url(sentinel_set.url, namespace="fw", **FAST)
    aio = AsyncStorage.from_url(sentinel_set.url, namespace="fw", **FAST)
    sync_w, aio_w = Writes(), Writes()
    stop = threading.Event()
    thread = threading.Thread(target=write_sync, args=(sync, sync_w, stop))
    thread.start()
    task: Any = asyncio.run_coroutine_threadsafe(write_async(aio, aio_w, stop), loop_thread.loop)
    try:
        deadline = time.monotonic() + 10
        while (len(sync_w.acked) < 50 or len(aio_w.acked) < 50) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sync_w.acked) >= 50 and len(aio_w.acked) >= 50
        killed_at = time.monotonic()
        sentinel_set.primary.kill()  # SIGKILL: a crash

        def resumed(w: Writes) -> bool:
            return bool(w.failed) and bool(w.acked) and w.acked[-1][1] > max(w.failed)

        deadline = killed_at + RESUME_BOUND
        while not (resumed(sync_w) and resumed(aio_w)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # more writes on the new primary
    finally:
        stop.set()
        thread.join(10)
        task.result(10)
    assert sentinel_set.master_port() == sentinel_set.replica.port  # the replica was promoted
    new_primary = redis.Redis(host="127.0.0.1", port=sentinel_set.replica.port, socket_timeout=5)
    outages = {}
    for name, writes, prefix in (("sync", sync_w, "s"), ("async", aio_w, "a")):
        outages[name] = writes.outage(killed_at)
        assert outages[name] <= RESUME_BOUND
        resumed_at = killed_at + outages[name]
        after = writes.after(resumed_at)
        assert len(after) >= 5  # writing went on after the promotion...
        stored = new_primary.mget([f"fw:{prefix}{n}".encode() for n in after])
        assert stored == [str(n).encode() for n in after]  # ...and each ack is on the primary
        before = [n for n, t in writes.acked if t < killed_at]
        lost = sum(
            v is None for v in new_primary.mget([f"fw:{prefix}{n}".encode() for n in before])
        )
        print(
            f"\nsentinel failover, {name} writer: outage {outages[name]:.2f} s, "
            f"{len(writes.failed)} failed writes, {len(after)} acknowledged after it; "
            f"{lost} of {len(before)} writes acknowledged before the kill were lost "
            "(replication is asynchronous)"
        )
    new_primary.close()
