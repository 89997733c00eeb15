"""``local_cache=true`` on Sentinel and Cluster: tracking per node, failover, topology changes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.backends.test_redis_local_cache import live, served_locally, stat, until, write
from tests.helpers import LoopThread, SyncView
from tests.servers.redis import (
    PROGRAMS,
    Cluster,
    SentinelSet,
    start_cluster,
    start_sentinel_set,
)
from tsot import AsyncStorage, Storage
from tsot.backends.redis.cached import close_all
from tsot.errors import BackendUnavailable
from tsot.events import Event

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _stop_listeners() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture(params=["sync", "async"])
def opener(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Callable[..., Any]:
    def open_(url: str, namespace: str, **options: Any) -> Any:
        options.setdefault("local_cache", True)
        if request.param == "sync":
            return Storage.from_url(url, namespace=namespace, secret=None, **options)
        aio = AsyncStorage.from_url(url, namespace=namespace, secret=None, **options)
        return SyncView(aio, loop_thread)

    return open_


def raw_cluster(cluster: Cluster) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.nodes])


def keys_on_every_node(client: RedisCluster, space: str) -> list[str]:
    """One key per primary: tracking is per node, so each node's invalidations are checked."""
    found: dict[str, str] = {}
    i = 0
    while len(found) < len(client.get_primaries()):
        key = f"k{i}"
        node = client.get_node_from_key(f"{space}:{key}")
        found.setdefault(node.name, key)
        i += 1
    return list(found.values())


@pytest.mark.parametrize("which", ["redis_cluster", "valkey_cluster"])
def test_cluster_tracks_every_node(
    request: pytest.FixtureRequest, opener: Callable[..., Any], which: str
) -> None:
    cluster: Cluster = request.getfixturevalue(which)
    space = f"lc{uuid.uuid4().hex[:8]}"
    store = live(opener(cluster.url, space))
    client = raw_cluster(cluster)
    keys = keys_on_every_node(client, space)
    for key in keys:
        write(store, key, "v1")
        assert store.load(key) == "v1"
        assert served_locally(store, key) == "v1"
    for key in keys:
        client.set(f"{space}:{key}", b"sv2")
        until(lambda k=key: store.load(k) == "v2", f"the other client's write of {key}")  # type: ignore[misc]
    client.close()


@pytest.fixture(params=PROGRAMS, ids=[p.name for p in PROGRAMS])
def own_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path, program=request.param)
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_a_slot_move_empties_the_table(own_cluster: Cluster) -> None:
    space = f"lc{uuid.uuid4().hex[:8]}"
    store = live(Storage.from_url(own_cluster.url, namespace=space, local_cache=True, secret=None))
    write(store, "k", "v")
    assert store.load("k") == "v"
    assert stat(store, "entries") == 1
    client = raw_cluster(own_cluster)
    # an empty slot changes owner: the cluster's topology changed, though no key moved
    slot = next(s for s in range(16384) if not client.cluster_countkeysinslot(s))
    source = client.nodes_manager.slots_cache[slot][0]
    target = next(n for n in client.get_primaries() if n.name != source.name)
    target_id = client.cluster_myid(target)
    for node in client.get_primaries():
        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id, target_nodes=node)
    until(lambda: stat(store, "entries") == 0, "the topology change")
    live(store)
    assert store.load("k") == "v"
    client.close()


@pytest.mark.parametrize("which", ["redis_sentinel", "valkey_sentinel"])
def test_sentinel_tracks_the_primary(
    request: pytest.FixtureRequest, opener: Callable[..., Any], which: str
) -> None:
    sset: SentinelSet = request.getfixturevalue(which)
    space = f"lc{uuid.uuid4().hex[:8]}"
    store = live(opener(sset.url, space))
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    assert served_locally(store, "k") == "v1"
    primary = redis.Redis(host="127.0.0.1", port=sset.master_port())
    primary.set(f"{space}:k".encode(), b"sv2")
    until(lambda: store.load("k") == "v2", "the other client's write")
    primary.close()


@pytest.fixture(params=PROGRAMS, ids=[p.name for p in PROGRAMS])
def sentinel_set(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentinelSet]:
    sset = start_sentinel_set(tmp_path, program=request.param)
    yield sset
    sset.stop()


def _load(store: Any, key: str) -> Any:
    try:
        return store.load(key)
    except BackendUnavailable:
        return None


def _entries(store: Any) -> int | None:
    try:
        return stat(store, "entries")
    except BackendUnavailable:
        return None


def reported(events: list[Event], reason: str) -> bool:
    """Whether a ``local`` event of ``reason`` has arrived."""
    return any(e.kind == "local" and e.fields["reason"] == reason for e in list(events))


@pytest.mark.slow
def test_sentinel_failover_empties_the_table(sentinel_set: SentinelSet) -> None:
    space = f"lc{uuid.uuid4().hex[:8]}"
    fast = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    store = live(
        Storage.from_url(sentinel_set.url, namespace=space, local_cache=True, secret=None, **fast)
    )
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    old = redis.Redis(host="127.0.0.1", port=sentinel_set.primary.port)
    assert old.wait(1, 2000) == 1
    events: list[Event] = []
    store.listen(events.append)  # stats() raises while no primary answers: the hook does not
    sentinel_set.primary.kill()
    until(lambda: reported(events, "lost"), "tracking down with the primary")
    until(lambda: sentinel_set.master_port() == sentinel_set.replica.port, "the failover", 30)
    # emptied when tracking went down, nothing read since (stats() needs the new primary)
    until(lambda: _entries(store) == 0, "stats() from the new primary", 30)
    new = redis.Redis(host="127.0.0.1", port=sentinel_set.replica.port)
    new.set(f"{space}:k".encode(), b"sv2")
    until(lambda: _load(store, "k") == "v2", "the new primary's value", 30)
    live(store)
    assert store.load("k") == "v2"
    new.set(f"{space}:k".encode(), b"sv3")  # tracked on the new primary
    until(lambda: store.load("k") == "v3", "the write on the new primary")
    new.close()
