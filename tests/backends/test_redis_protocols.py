"""RESP2 and RESP3 on Redis and Valkey: what each connection really speaks, asked of the server.

``protocol=3`` must reach every connection the sync pool, redis-py's RedisCluster and the
asyncio pipelined connections open (``HELLO 3``); the server's ``CLIENT LIST`` says which
protocol each connection speaks. The contract suite runs in full on RESP3 for one Redis
server (``redis-resp3``); this checks every topology of both servers, quickly.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers.proc import Server
from tests.servers.redis import PROGRAMS, Cluster, SentinelSet
from tsot import AsyncStorage, Storage

pytestmark = pytest.mark.server

BIG = 2**70


def admin(port: int) -> redis.Redis[bytes]:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def resp_of(ports: list[int], name: str) -> set[str]:
    """The RESP versions of the connections named ``name`` on the servers at ``ports``."""
    seen: set[str] = set()
    for port in ports:
        client = admin(port)
        try:
            seen |= {c["resp"] for c in client.client_list() if c.get("name") == name}
        finally:
            client.close()
    return seen


def where(request: pytest.FixtureRequest, program: str, topology: str) -> tuple[str, list[int]]:
    """(URL, ports of the data servers) of the session's ``program`` servers in ``topology``."""
    fixture = {"single": "server", "cluster": "cluster", "sentinel": "sentinel"}[topology]
    servers: Any = request.getfixturevalue(f"{program}_{fixture}")
    if isinstance(servers, Cluster):
        return servers.url, [n.port for n in servers.nodes]
    if isinstance(servers, SentinelSet):
        return servers.url, [servers.primary.port]
    return f"{program}://127.0.0.1:{servers.port}/0", [servers.port]


def exercise(store: Any) -> None:
    """Every kind of reply the backend parses: bulk, nil, integer, array, script, SCAN."""
    store.store("k", {"v": [1, 2]}, ttl=60)
    assert store.load("k") == {"v": [1, 2]}
    assert store.load("absent") is None
    assert store.add("k", 0) is False
    assert store.incr("n", 5) == 5
    assert store.incr("n", BIG) == BIG + 5  # past 64 bits: the Lua script's reply
    assert store.load_many(["k", "absent", "n"]) == {"k": {"v": [1, 2]}, "n": BIG + 5}
    store.store_many({"a": 1, "b": 2}, ttl=30)
    assert 0 < store.ttl("a") <= 30
    assert store.expire("a", None) is True and store.ttl("a") == float("inf")
    assert store.exists("b") and not store.exists("absent")
    assert store.delete_many(["a", "absent"]) == 1
    store.clear()
    assert store.load_many(["k", "b", "n"]) == {}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("topology", ["single", "cluster", "sentinel"])
@pytest.mark.parametrize("program", [p.name for p in PROGRAMS])
def test_sync_connections_speak_the_protocol_asked(
    request: pytest.FixtureRequest, program: str, topology: str, protocol: int
) -> None:
    url, ports = where(request, program, topology)
    name = f"p{protocol}-{uuid.uuid4().hex[:8]}"
    store = Storage.from_url(url, namespace=name, protocol=protocol, client_name=name)
    exercise(store)
    assert resp_of(ports, name) == {str(protocol)}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("topology", ["single", "cluster", "sentinel"])
@pytest.mark.parametrize("program", [p.name for p in PROGRAMS])
def test_async_connections_speak_the_protocol_asked(
    request: pytest.FixtureRequest, program: str, topology: str, protocol: int
) -> None:
    url, ports = where(request, program, topology)
    name = f"a{protocol}-{uuid.uuid4().hex[:8]}"

    async def main() -> set[str]:
        store = AsyncStorage.from_url(url, namespace=name, protocol=protocol, client_name=name)
        await store.store("k", "v")
        assert await store.load("k") == "v"
        assert await store.load("absent") is None
        assert await store.incr("n", BIG) == BIG
        assert await store.load_many(["k", "n", "absent"]) == {"k": "v", "n": BIG}
        assert await store.ttl("k") == float("inf")
        await store.clear()
        assert await store.load_many(["k", "n"]) == {}
        return await asyncio.to_thread(resp_of, ports, name)  # while the connections live

    assert asyncio.run(main()) == {str(protocol)}


def test_the_servers_are_the_versions_the_docs_name(
    redis_server: Server, valkey_server: Server
) -> None:
    """docs/backends/redis.md names the tested servers; the fixtures must run those versions."""
    table = (Path(__file__).resolve().parents[2] / "docs" / "backends" / "redis.md").read_text()
    documented = dict(re.findall(r"^\| (Redis|Valkey) \| (\d+\.\d+) \|", table, re.MULTILINE))
    redis_info = admin(redis_server.port).info("server")
    valkey_info = admin(valkey_server.port).info("server")
    assert redis_info.get("server_name", "redis") == "redis"  # Redis 7 has no server_name
    assert valkey_info["server_name"] == "valkey"
    running = {
        "Redis": str(redis_info["redis_version"]),
        "Valkey": str(valkey_info["valkey_version"]),
    }
    assert documented.keys() == running.keys()
    for server, version in running.items():
        assert version.startswith(documented[server] + "."), (server, version, documented)
