"""``local_cache=true`` on a Cluster whose slots move: a MOVED or ASK reply met by the data path
(sync and asyncio) stops local serving before the read returns and has the listeners read the
topology at once, not at their next poll (which these tests push an hour away)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from tests.backends import test_redis_local_topologies as topo
from tests.backends.test_redis_local_cache import live, served_locally, until, write
from tests.servers.proc import Server, free_port
from tests.servers.redis import PROGRAMS, Cluster, start_single
from tsot.backends.redis import tracking as redis_tracking
from tsot.events import Event

pytestmark = [pytest.mark.server, pytest.mark.slow]

# the fixtures of the topology tests: a fresh cluster per test, sync and async openers
_stop_listeners, own_cluster, opener = topo._stop_listeners, topo.own_cluster, topo.opener


@pytest.fixture(autouse=True)
def _slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the data path can make the listeners look at the topology in time."""
    monkeypatch.setattr(redis_tracking, "REFRESH", 3600.0)


@pytest.fixture
def new_node(own_cluster: Cluster, tmp_path: Path) -> Iterator[Server]:
    """A primary that joins the cluster with no slots (when yielded, every node knows every
    other as a primary: the new node knows the others too, or it could not import a slot)."""
    program = next(p for p in PROGRAMS if p.name == own_cluster.scheme)
    bus = free_port()
    node = start_single(
        tmp_path / "new",
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        str(bus),
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
        name="cluster",
        program=program,
    )
    try:
        first = redis.Redis(port=own_cluster.nodes[0].port)
        first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)
        ids = [
            _text(redis.Redis(port=n.port).execute_command("CLUSTER", "MYID"))
            for n in [*own_cluster.nodes, node]
        ]

        def known() -> bool:  # every node sees every node as a primary (not "handshake")
            for n in [*own_cluster.nodes, node]:
                text = _text(redis.Redis(port=n.port).execute_command("CLUSTER", "NODES"))
                flags = {ln.split()[0]: ln.split()[2].split(",") for ln in text.splitlines()}
                if any(i not in flags or flags[i][-1] != "master" for i in ids):
                    return False
            return True

        until(known, "the new node joining", 30)
        yield node
    finally:
        node.stop()


def give_slot(cluster: Cluster, node: Server, slot: int) -> None:
    """``slot`` (empty) now belongs to ``node``, moved as redis-cli's resharding does.

    The target first imports the slot and the owner marks it migrating: a node ignores other
    nodes' claims on a slot it imports, and ``SETSLOT NODE`` on the importing node bumps its
    config epoch, so the owner's older gossip cannot take the slot back. (Told ``NODE`` alone,
    the new node kept config epoch 0; an earlier gossip of the owner then won the slot back and,
    left with no slot, the new node turned into the owner's replica: "not a master" for good.)
    """
    target = redis.Redis(port=node.port)
    node_id = _text(target.execute_command("CLUSTER", "MYID"))
    owner = _owner_port(cluster, slot)
    owner_id = _text(redis.Redis(port=owner).execute_command("CLUSTER", "MYID"))
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", owner_id)
    redis.Redis(port=owner).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id)
    others = [n.port for n in cluster.nodes if n.port != owner]
    for port in [node.port, owner, *others]:  # the target, the old owner, then the rest
        # a node that has not yet heard the new node's latest gossip may still see it in a state
        # other than primary ("Target node is not a master"): ask again until it agrees
        try:
            until(lambda port=port: _setslot(port, slot, node_id), f"node {port} taking it", 30)
        except AssertionError as exc:  # what that node thinks of the cluster, for the report
            nodes = redis.Redis(port=port).execute_command("CLUSTER", "NODES")
            raise AssertionError(f"{exc}; its CLUSTER NODES:\n{nodes!r}") from None

    def settled() -> bool:
        for port in [node.port, *(n.port for n in cluster.nodes)]:
            if b"cluster_state:ok" not in redis.Redis(port=port).execute_command("CLUSTER", "INFO"):
                return False
        return True

    until(settled, "the cluster agreeing on the move", 30)


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _owner_port(cluster: Cluster, slot: int) -> int:
    """The port of the primary that serves ``slot`` now."""
    for start, end, primary, *_ in redis.Redis(port=cluster.nodes[0].port).execute_command(
        "CLUSTER", "SLOTS"
    ):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"no node serves slot {slot}")


def _setslot(port: int, slot: int, node_id: Any) -> bool:
    try:
        redis.Redis(port=port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id)
    except redis.ResponseError as exc:
        if "not a master" not in str(exc):
            raise
        return False
    return True


def _moved(
    cluster: Cluster, node: Server, opener: Callable[..., Any]
) -> tuple[Any, str, Callable[[], list[Event]]]:
    """A live local-cached store in a new namespace, listened to, whose key ``k`` is in a slot
    just given to ``node``: the store, the namespace and its "lost" events so far."""
    space = f"lc{uuid.uuid4().hex[:8]}"
    store = live(opener(cluster.url, space))
    events: list[Event] = []
    store.listen(events.append)
    give_slot(cluster, node, key_slot(f"{space}:k".encode()))
    return (
        store,
        space,
        lambda: [e for e in events if e.kind == "local" and e.fields["reason"] == "lost"],
    )


def _served_from(node: Server, store: Any, space: str) -> None:
    """``k`` (v1) is served locally, and another client's write on ``node`` reaches it."""
    assert store.load("k") == "v1"
    assert served_locally(store, "k") == "v1"
    redis.Redis(port=node.port).set(f"{space}:k", b"sv2")  # another client, on the new node
    until(lambda: store.load("k") == "v2", "the new node's invalidation")


def test_a_slot_moved_to_a_new_node_is_tracked_before_it_is_served(
    own_cluster: Cluster, new_node: Server, opener: Callable[..., Any]
) -> None:
    store, space, lost = _moved(own_cluster, new_node, opener)
    assert store.load("k") is None  # sent to the old owner: MOVED
    assert lost(), "the MOVED reply did not stop local serving before the read returned"
    live(store)  # the new node's listener is up: within the WAIT, not an hour
    write(store, "k", "v1")  # the invalidation comes from the new node's listener
    _served_from(new_node, store, space)


def test_a_write_that_follows_moved_has_the_new_node_tracked(
    own_cluster: Cluster, new_node: Server, opener: Callable[..., Any]
) -> None:
    # the client follows a write's MOVED itself and patches its slot map: later reads go to the
    # new owner without meeting MOVED, so the write must report it, or they would fill the
    # local table from a node no listener hears
    store, space, lost = _moved(own_cluster, new_node, opener)
    store.store("k", "v0")  # the first command for the moved slot: a write
    until(lost, "the write's MOVED reported to the listeners")
    live(store)  # the new node's listener is up: within the WAIT, not an hour
    write(store, "k", "v1")  # and hears this process's writes
    _served_from(new_node, store, space)
