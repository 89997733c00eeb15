"""Cluster and Sentinel faults: a frozen node or frozen Sentinels cost one socket_timeout per
call (redis-py's own retries used to multiply it), sync and asyncio."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from tests.faults.proxy import FaultProxy
from tests.faults.redis.conftest import timed
from tests.reliability.conftest import Silent
from tests.servers.proc import wait_for
from tests.servers.redis import Cluster, SentinelSet, start_cluster, start_sentinel_set
from tsot import OutcomeUnknown

pytestmark = pytest.mark.server

TIMEOUT = 0.5
BOUND = TIMEOUT + 0.4  # one timeout plus scheduling; the old code took 1.7 s (6.2 s for incr)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = start_cluster(tmp_path_factory.mktemp("fault-cluster"))
    yield made
    made.stop()


def owner(cluster: Cluster, key: bytes) -> int:
    """The announced port of the node serving ``key``'s slot (asked of the first node)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=cluster.nodes[0].port, socket_timeout=5)
    slot = key_slot(key)
    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"no node serves slot {slot}")


@pytest.mark.parametrize("call", ["load", "incr", "store", "load_many", "store_many"])
def test_a_frozen_cluster_node_costs_one_timeout(
    cluster: Cluster, opener: Callable[..., Any], call: str
) -> None:
    store = opener(cluster.url, socket_timeout=TIMEOUT, retries=3)
    store.store_int("n", 1)
    keys = ["n", *[f"k{i}" for i in range(20)]]  # spread over every node
    store.store_many(dict.fromkeys(keys, 0))
    port = owner(cluster, store.namespace.encode() + b":n")
    node = next(n for n in cluster.nodes if n.port == port)
    node.signal(signal.SIGSTOP)
    try:
        took, error = timed(
            {
                "load": lambda: store.load("n"),
                "incr": lambda: store.incr("n"),
                "store": lambda: store.store("n", 5),
                "load_many": lambda: store.load_many(keys),
                "store_many": lambda: store.store_many(dict.fromkeys(keys, 1), ttl=60),
            }[call]
        )
    finally:
        node.signal(signal.SIGCONT)
    assert took < BOUND, f"{call} took {took:.2f}s"
    assert "imeout" in str(error)
    assert isinstance(error, OutcomeUnknown) == (call == "incr")
    if call == "incr":  # sent once, never again: at most one increment
        assert store.load_int("n") in (1, 2)


@pytest.fixture
def behind_proxies(
    cluster: Cluster, fault_proxy: Callable[[int], FaultProxy]
) -> Iterator[dict[int, FaultProxy]]:
    """Every node announces a fault proxy's port (``cluster-announce-port``), so clients that
    learn the topology from CLUSTER SLOTS talk through the proxies; {node port: proxy}."""
    import redis

    proxies = {n.port: fault_proxy(n.port) for n in cluster.nodes}
    clients = [redis.Redis(host="127.0.0.1", port=n.port, socket_timeout=5) for n in cluster.nodes]

    def announced(ports: set[int]) -> bool:
        return all(
            {int(node[1]) for row in c.execute_command("CLUSTER", "SLOTS") for node in row[2:]}
            == ports
            for c in clients
        )

    for c, n in zip(clients, cluster.nodes, strict=True):
        c.config_set("cluster-announce-port", proxies[n.port].port)
    wait_for(lambda: announced({p.port for p in proxies.values()}), 15, "announced proxy ports")
    yield proxies
    for c in clients:
        c.config_set("cluster-announce-port", 0)
    wait_for(lambda: announced({n.port for n in cluster.nodes}), 15, "announced node ports")
    for c in clients:
        c.close()


def test_a_lost_reply_on_a_cluster_incr_is_not_resent(
    cluster: Cluster, behind_proxies: dict[int, FaultProxy], opener: Callable[..., Any]
) -> None:
    store = opener(
        cluster.url.replace(
            str(cluster.nodes[0].port), str(behind_proxies[cluster.nodes[0].port].port)
        ).replace(str(cluster.nodes[1].port), str(behind_proxies[cluster.nodes[1].port].port))
    )
    store.store_int("n", 100)
    port = owner(cluster, store.namespace.encode() + b":n")
    proxy = next(p for p in behind_proxies.values() if p.port == port)
    fault = proxy.drop_reply(match=b"INCRBY")
    with pytest.raises(OutcomeUnknown, match="INCRBY"):
        store.incr("n")
    assert fault.hits == 1
    assert store.load_int("n") == 101  # run once, not twice
    fault = proxy.drop_reply(match=b"GET")
    assert store.load_int("n") == 101  # a GET is sent again
    assert fault.hits == 1


# -- Sentinel ----------------------------------------------------------------------------------


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    made = start_sentinel_set(tmp_path)
    yield made
    made.stop()


def test_frozen_sentinels_cost_one_timeout(
    sentinel_set: SentinelSet, opener: Callable[..., Any]
) -> None:
    """Two Sentinels that accept and never answer, `retries=2`: discovery used to cost
    Sentinels x (retries + 1) x socket_timeout (3.0 s); it is one socket_timeout in all."""
    silent = Silent()
    try:
        url = (
            f"redis+sentinel://127.0.0.1:{sentinel_set.sentinel.port},"
            f"127.0.0.1:{silent.port}/mymaster/0"
        )
        sentinel_set.sentinel.signal(signal.SIGSTOP)
        try:
            store = opener(url, socket_timeout=TIMEOUT, retries=2)
            took, error = timed(lambda: store.load("k"))
        finally:
            sentinel_set.sentinel.signal(signal.SIGCONT)
        assert took < BOUND, f"discovery took {took:.2f}s"
        assert "no Sentinel named a primary" in str(error)
    finally:
        silent.close()
