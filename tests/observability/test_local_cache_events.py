"""The Redis local cache reports through the event hook (real servers, sync and asyncio): hits
in batches, the server's invalidations, flushes, tracking lost and restored; Prometheus
counters for them; and nothing of it when nobody listens or the local cache is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.backends import test_redis_local_cache as lc
from tests.backends.test_redis_local_cache import live, ns, raw, stat, until, url_of, write
from tests.servers.proc import Server
from tests.servers.redis import Program
from tsot import Storage
from tsot.backends.redis.cached import LocalCachedSync
from tsot.backends.redis.observed import HIT_BATCH, ObservedLocalSync
from tsot.events import Event

pytestmark = pytest.mark.server

# the fixtures of the local cache's own tests: servers per program, sync and async openers
_stop_listeners, program, own_server, opener = (
    lc._stop_listeners,
    lc.program,
    lc.own_server,
    lc.opener,
)


def local(events: list[Event], reason: str) -> list[int]:
    """The counts of the ``local`` events of ``reason`` received so far."""
    found = [e for e in list(events) if e.kind == "local"]
    return [e.fields["count"] for e in found if e.fields["reason"] == reason]


def test_local_activity_reaches_the_listeners(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, own_server), space))
    events: list[Event] = []
    store.listen(events.append)
    client = raw(own_server)

    write(store, "k", "v")  # the server reports this process's own write back
    until(lambda: sum(local(events, "invalidation")) >= 1, "an invalidation event")
    assert store.load("k") == "v"  # a miss, kept
    for _ in range(3):
        assert store.load("k") == "v"
    assert local(events, "hits") == []  # pending: reported in a batch, not one event per hit
    assert stat(store, "hits") == 3  # stats() reports what is pending
    assert local(events, "hits") == [3]

    client.set(f"{space}:other".encode(), b"x")
    until(lambda: sum(local(events, "invalidation")) >= 2, "another client's write")
    client.flushdb()
    until(lambda: local(events, "flush"), "the flush event")
    client.client_kill_filter(_type="pubsub")
    until(lambda: local(events, "lost") and local(events, "restored"), "lost, then restored")
    counted = store.stats()["events"]
    assert counted["local:lost"] >= 1 and counted["local:restored"] >= 1
    assert counted["local:flush"] >= 1 and counted["local:invalidation"] >= 2


def test_hits_come_in_batches_without_stats(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    store = live(opener(url_of(program, own_server), ns()))
    events: list[Event] = []
    store.listen(events.append)
    write(store, "k", 1)
    store.load("k")  # kept
    for _ in range(HIT_BATCH + 10):
        store.load("k")
    assert local(events, "hits") == [HIT_BATCH]
    store.load("missing")  # a read that goes to the server reports what is pending first
    assert local(events, "hits") == [HIT_BATCH, 10]


def test_prometheus_counts_local_activity(program: Program, own_server: Server) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    space = ns()
    store = live(
        Storage.from_url(
            url_of(program, own_server),
            namespace=space,
            secret=None,
            local_cache=True,
            metrics="prometheus",
            label="lc",
            prometheus_registry=registry,
        )
    )

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"storage": "lc"})  # type: ignore[no-any-return]

    write(store, "k", "v")
    store.load("k")
    store.load("k")
    store.load("k")
    store.stats()
    assert value("tsot_local_hits_total") == 2
    until(lambda: (value("tsot_local_invalidations_total") or 0) >= 1, "invalidations")
    raw(own_server).flushdb()
    until(lambda: (value("tsot_local_flushes_total") or 0) >= 1, "flushes")
    raw(own_server).client_kill_filter(_type="pubsub")
    until(lambda: value("tsot_local_tracking_lost_total") == 1, "lost")
    until(lambda: value("tsot_local_tracking_live") == 1, "restored")


def test_no_listener_no_reporting_twin(program: Program, own_server: Server) -> None:
    url = url_of(program, own_server)
    quiet = Storage.from_url(url, namespace=ns(), secret=None, local_cache=True)
    assert type(quiet.backend) is LocalCachedSync  # the hit path has no listener check
    heard = Storage.from_url(url, namespace=ns(), secret=None, local_cache=True)
    heard.listen(lambda e: None)
    assert type(heard.backend.inner) is ObservedLocalSync  # type: ignore[attr-defined]
    plain = Storage.from_url(url, namespace=ns(), secret=None)
    plain.listen(lambda e: None)
    assert not hasattr(plain.backend.inner, "with_events")  # type: ignore[attr-defined]
