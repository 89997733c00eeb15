"""Sentinel: the primary behind a fault proxy that the Sentinel monitors (sync and asyncio)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.faults.redis.conftest import ProxiedSentinel
from tsot import OutcomeUnknown, TsotError

pytestmark = pytest.mark.server


def test_a_lost_incr_reply_is_not_resent(
    proxied_sentinel: ProxiedSentinel, opener: Callable[..., Any]
) -> None:
    store = opener(proxied_sentinel.url)
    store.store_int("n", 100)
    fault = proxied_sentinel.proxy.drop_reply(match=b"INCRBY")
    with pytest.raises(OutcomeUnknown, match="INCRBY"):
        store.incr("n")
    assert fault.hits == 1
    assert store.load_int("n") == 101


def readonly_errors(client: redis.Redis) -> int:
    stats = client.info("errorstats")
    return int(stats.get("errorstat_READONLY", {}).get("count", 0))


@pytest.fixture
def demote(proxied_sentinel: ProxiedSentinel) -> Iterator[Callable[[], None]]:
    """``demote()`` makes the primary a replica (of nothing reachable: every write gets
    READONLY, while the Sentinel still names it); as soon as it has refused one write, a thread
    makes it a primary again, full (maxmemory 1, noeviction: every write gets OOM)."""
    raw = proxied_sentinel.raw()
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def promote_full(before: int) -> None:
        while not stop.is_set() and readonly_errors(raw) == before:
            stop.wait(0.005)
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)
        raw.execute_command("REPLICAOF", "NO", "ONE")

    def start() -> None:
        before = readonly_errors(raw)
        raw.execute_command("REPLICAOF", "127.0.0.1", "1")
        threads.append(threading.Thread(target=promote_full, args=(before,), daemon=True))
        threads[0].start()

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
    raw.execute_command("REPLICAOF", "NO", "ONE")
    raw.config_set("maxmemory", 0)


def test_an_error_reply_after_a_failover_retry_raises(
    proxied_sentinel: ProxiedSentinel,
    demote: Callable[[], None],
    opener: Callable[..., Any],
) -> None:
    """READONLY (demoted primary) is retried after asking the Sentinels again; the retry's own
    error reply (OOM here) must raise, not come back as a value (which stored nothing)."""
    store = opener(proxied_sentinel.url, retries=40, retry_backoff=0.02, retry_backoff_max=0.02)
    store.store("warm", 1)  # connected
    demote()
    with pytest.raises(TsotError, match="maxmemory"):
        store.store("k", "v")
    assert store.load("k") is None
