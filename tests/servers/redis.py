"""Redis server fixtures: one server, a 3-primary Cluster, a primary + replica + Sentinel.

Every process binds 127.0.0.1 on a free port, keeps its files in a pytest tmp dir and is
stopped by PID. The session-scoped sets serve the contract suite; tests that break a server
(failover) start their own with ``start_single``/``start_sentinel_set``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract.registry import Spec, Target
from tests.servers.proc import Server, free_port, need_program, unavailable, wait_for

CONTRACT_SPECS = [
    Spec("redis", "redis_target", ("server",)),
    Spec("redis-cluster", "redis_cluster_target", ("server",)),
    Spec("redis-sentinel", "redis_sentinel_target", ("server",)),
]

SERVICE = "mymaster"


def _client(port: int, **kwargs: Any) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, **kwargs)


def start_single(directory: Path, *extra: str, name: str = "redis") -> Server:
    """A redis-server with no persistence on a free port (``extra``: more arguments)."""
    exe = need_program("redis-server")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--protected-mode",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        *extra,
    ]
    return Server(argv, port, directory / f"{name}-{port}.log", cwd=directory).start()


@dataclass
class Cluster:
    nodes: list[Server]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, size: int = 3) -> Cluster:
    """``size`` primaries joined by ``redis-cli --cluster create``; ready when all say ok."""
    cli = need_program("redis-cli")
    nodes: list[Server] = []
    cluster = Cluster(nodes)
    try:
        for _ in range(size):
            port_dir = directory / f"node-{uuid.uuid4().hex[:6]}"
            # the bus port defaults to port + 10000, which may be taken or past 65535
            nodes.append(
                start_single(
                    port_dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    name="cluster",
                )
            )
        out = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *[f"127.0.0.1:{n.port}" for n in nodes],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            unavailable(f"redis-cli --cluster create failed: {out.stdout[-1000:]}{out.stderr}")
        clients = [_client(n.port) for n in nodes]

        def ready() -> bool:
            return all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients)

        wait_for(ready, 30, "the Redis Cluster")
        for c in clients:
            c.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class SentinelSet:
    primary: Server
    replica: Server
    sentinel: Server
    extra: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"

    def master_port(self) -> int:
        c = _client(self.sentinel.port)
        try:
            _host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return int(port)
        finally:
            c.close()

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary, *self.extra):
            server.stop()


def start_sentinel_set(directory: Path) -> SentinelSet:
    """A primary, its replica and one Sentinel (quorum 1) that fails over in a few seconds."""
    started: list[Server] = []
    try:
        primary = start_single(directory / "primary", name="primary")
        started.append(primary)
        replica = start_single(
            directory / "replica", "--replicaof", "127.0.0.1", str(primary.port), name="replica"
        )
        started.append(replica)
        sdir = directory / "sentinel"
        sdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = sdir / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {sdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        sentinel = Server(
            [need_program("redis-server"), str(conf), "--sentinel"],
            port,
            sdir / "sentinel.log",
            cwd=sdir,
        ).start()
        started.append(sentinel)
        rc, sc = _client(replica.port), _client(sentinel.port)

        def ready() -> bool:
            in_sync = rc.info("replication").get("master_link_status") == "up"
            known = sc.execute_command("SENTINEL", "REPLICAS", SERVICE)
            return in_sync and len(known) == 1

        wait_for(ready, 30, "the Sentinel set")
        rc.close()
        sc.close()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return SentinelSet(primary, replica, sentinel)


# -- session-scoped servers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_single(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    sset = start_sentinel_set(tmp_path_factory.mktemp("redis-sentinel"))
    yield sset
    sset.stop()


# -- the agreed URL fixtures and the contract targets ------------------------------------------


@pytest.fixture
def redis_url(redis_server: Server) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture
def redis_cluster_url(redis_cluster: Cluster) -> str:
    return redis_cluster.url


@pytest.fixture
def redis_sentinel_url(redis_sentinel: SentinelSet) -> str:
    return redis_sentinel.url


@pytest.fixture
def redis_target(redis_url: str) -> Target:
    return Target(url=redis_url, caps=frozenset({"bigint", "server"}))


@pytest.fixture
def redis_cluster_target(redis_cluster_url: str) -> Target:
    return Target(url=redis_cluster_url, caps=frozenset({"bigint", "server"}))


@pytest.fixture
def redis_sentinel_target(redis_sentinel_url: str) -> Target:
    return Target(url=redis_sentinel_url, caps=frozenset({"bigint", "server"}))
