"""Redis ``stats()`` from INFO: hits, misses, keys of the db and the server's other counters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.servers.proc import Server
from tests.servers.redis import Cluster, start_single
from tsot import AsyncStorage, Storage
from tsot.backends.redis.info import stats_result

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose statistics these tests reset."""
    server = start_single(tmp_path_factory.mktemp("redis-stats"))
    yield server
    server.stop()


def reset(server: Server) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    client.config_resetstat()
    client.flushall()
    client.close()


def _traffic(store: Storage) -> None:
    store.store("a", 1)
    store.store("b", "two")
    assert store.load("a") == 1
    assert store.load("absent") is None


async def _atraffic(store: AsyncStorage) -> None:
    await store.store("a", 1)
    await store.store("b", "two")
    assert await store.load("a") == 1
    assert await store.load("absent") is None


def _check(stats: dict[str, Any]) -> None:
    assert stats["hits"] == 1
    assert stats["misses"] == 1
    assert stats["keys"] == 2  # only the keys of db 3, not the one in db 0
    assert stats["evictions"] == 0
    assert stats["memory_bytes"] > 0
    assert stats["clients"] >= 1


def test_single_server_sync(own: Server) -> None:
    reset(own)
    Storage.from_url(f"redis://127.0.0.1:{own.port}/0").store("elsewhere", 1)
    store = Storage.from_url(f"redis://127.0.0.1:{own.port}/3", namespace="st")
    _traffic(store)
    _check(store.stats())


def test_single_server_async(own: Server) -> None:
    reset(own)
    Storage.from_url(f"redis://127.0.0.1:{own.port}/0").store("elsewhere", 1)

    async def main() -> dict[str, Any]:
        store = AsyncStorage.from_url(f"redis://127.0.0.1:{own.port}/3?protocol=3")
        await _atraffic(store)
        return await store.stats()

    _check(asyncio.run(main()))


def _dbsize(cluster: Cluster) -> int:
    total = 0
    for node in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5)
        total += int(client.dbsize())
        client.close()
    return total


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cluster_sums_every_primary(redis_cluster: Cluster, kind: str) -> None:
    """The keys of all three primaries, and hit/miss deltas that count every node's reads."""
    ns = uuid.uuid4().hex
    keys = [f"k{i}" for i in range(30)]  # spread over the slots of all three primaries

    def sync() -> tuple[dict[str, Any], dict[str, Any]]:
        store = Storage.from_url(redis_cluster.url, namespace=ns)
        before = store.stats()
        store.store_many(dict.fromkeys(keys, 1))
        assert len(store.load_many([*keys, "x", "y"])) == 30
        return before, store.stats()

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        store = AsyncStorage.from_url(redis_cluster.url, namespace=ns)
        before = await store.stats()
        await store.store_many(dict.fromkeys(keys, 1))
        assert len(await store.load_many([*keys, "x", "y"])) == 30
        return before, await store.stats()

    before, after = sync() if kind == "sync" else asyncio.run(run())
    assert after["hits"] - before["hits"] == 30
    assert after["misses"] - before["misses"] == 2
    assert after["keys"] - before["keys"] == 30
    assert after["keys"] == _dbsize(redis_cluster)


def test_info_text_and_parsed_forms_agree() -> None:
    """tsot's connections return INFO's text; RedisCluster returns redis-py's parsed dict."""
    text = (
        b"# Stats\r\nkeyspace_hits:5\r\nkeyspace_misses:2\r\nevicted_keys:1\r\n"
        b"# Memory\r\nused_memory:1000\r\n# Clients\r\nconnected_clients:3\r\n"
        b"# Keyspace\r\ndb0:keys=9,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=5\r\n"
    )
    parsed = {
        "keyspace_hits": 5,
        "keyspace_misses": 2,
        "evicted_keys": 1,
        "used_memory": 1000,
        "connected_clients": 3,
        "db0": {"keys": 9, "expires": 0, "avg_ttl": 0},
        "db2": {"keys": 4, "expires": 1, "avg_ttl": 5},
    }
    want = {"hits": 5, "misses": 2, "keys": 4, "memory_bytes": 1000, "evictions": 1, "clients": 3}
    assert stats_result([text], 2) == want
    assert stats_result([parsed], 2) == want
    assert stats_result([text, parsed], 1)["keys"] == 0  # no line: an empty database
    assert stats_result([text, parsed], 0)["hits"] == 10


def test_memory_backend_reports_its_size() -> None:
    with Storage.new_imc() as store:
        assert store.stats()["memory_bytes"] == 0
        store.store("k", "value")
        assert store.stats()["memory_bytes"] > 0


def test_a_user_without_info_gets_unknown_counts(own: Server) -> None:
    """An ACL user that may not run INFO: stats() says None (unknown), it does not fail."""
    admin = redis.Redis(host="127.0.0.1", port=own.port, socket_timeout=5)
    admin.execute_command("ACL", "SETUSER", "noinfo", "on", ">noinfo-pw", "~*", "+@all", "-info")
    admin.close()
    url = f"redis://noinfo:noinfo-pw@127.0.0.1:{own.port}/0"
    stats = Storage.from_url(url, namespace="acl").stats()
    assert (stats["hits"], stats["misses"], stats["keys"], stats["clients"]) == (None,) * 4

    async def main() -> dict[str, Any]:
        return await AsyncStorage.from_url(url, namespace="acl").stats()

    assert asyncio.run(main())["keys"] is None
