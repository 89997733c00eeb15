"""Redis Sentinel failover and replica reads, and TLS (rediss://), on servers of their own."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import LoopThread, SyncView
from tests.servers.proc import Server, free_port, need_program, unavailable, wait_for
from tests.servers.redis import SentinelSet, start_sentinel_set, start_single
from tsot import AsyncStorage, Storage
from tsot.errors import BackendUnavailable

pytestmark = pytest.mark.server


def raw(server: Server) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    """A Sentinel set for one test, free to break (the contract suite keeps its own)."""
    sset = start_sentinel_set(tmp_path)
    yield sset
    sset.stop()


def _until_written(store: Any, value: str, seconds: float) -> int:
    """Write until it works (bounded: failover takes the servers' real time); failures seen."""
    deadline = time.monotonic() + seconds
    failures = 0
    while True:
        try:
            store.store("k", value)
            return failures
        except BackendUnavailable:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_writes_resume_after_failover(sentinel_set: SentinelSet, loop_thread: LoopThread) -> None:
    fast = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    sync = Storage.from_url(sentinel_set.url, namespace="fo", **fast)
    aio = SyncView(AsyncStorage.from_url(sentinel_set.url, namespace="fo", **fast), loop_thread)
    sync.store("k", "before")
    assert aio.load("k") == "before"
    assert raw(sentinel_set.primary).wait(1, 2000) == 1  # the replica has it
    assert sentinel_set.master_port() == sentinel_set.primary.port

    sentinel_set.primary.kill()  # SIGKILL: a crash, not a shutdown
    failures = _until_written(sync, "after", 30)
    assert failures >= 1  # the old master really was gone for a while
    assert sentinel_set.master_port() == sentinel_set.replica.port
    assert sync.load("k") == "after"
    assert raw(sentinel_set.replica).get(b"fo:k") is not None
    _until_written(aio, "async after", 10)  # the asyncio pool finds the new master too
    assert sync.load("k") == "async after"


@pytest.mark.parametrize("sentinel_set_of", ["redis_sentinel", "valkey_sentinel"])
def test_reads_from_replicas_only_when_asked(
    request: pytest.FixtureRequest, sentinel_set_of: str
) -> None:
    redis_sentinel: SentinelSet = request.getfixturevalue(sentinel_set_of)
    writer = Storage.from_url(redis_sentinel.url, namespace="rr")
    reader = Storage.from_url(redis_sentinel.url, namespace="rr", read_from_replicas=True)
    writer.store_many({"a": 1, "b": 2})
    assert raw(redis_sentinel.primary).wait(1, 2000) == 1
    replica, primary = raw(redis_sentinel.replica), raw(redis_sentinel.primary)
    # a replica that has just joined may still finish a full resync after WAIT counted it, and
    # reads nothing while it loads: wait until it holds both keys (this tests routing only)
    wait_for(lambda: replica.exists(b"rr:a", b"rr:b") == 2, 10, "the replica holding the keys")
    replica.config_resetstat()
    primary.config_resetstat()
    assert reader.load("a") == 1
    assert reader.load_many(["a", "b"]) == {"a": 1, "b": 2}
    assert writer.load("a") == 1
    replica_stats, primary_stats = replica.info("commandstats"), primary.info("commandstats")
    assert replica_stats["cmdstat_get"]["calls"] == 1
    assert replica_stats["cmdstat_mget"]["calls"] == 1
    assert primary_stats["cmdstat_get"]["calls"] == 1  # the writer's read
    reader.store("c", 3)  # writes always go to the master
    assert primary.exists(b"rr:c") == 1
    writer.clear()


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A server with a TLS port and a self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl") or unavailable("openssl is not installed")
    need_program("redis-server")
    d = tmp_path_factory.mktemp("redis-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            str(openssl),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    server = start_single(
        d,
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
    )
    yield port, cert
    server.stop()


def test_tls(tls_server: tuple[int, Path], loop_thread: LoopThread) -> None:
    port, cert = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    store = Storage.from_url(url, namespace="tls")
    store.store("k", "over TLS")
    assert store.load("k") == "over TLS"
    aio = SyncView(AsyncStorage.from_url(url, namespace="tls"), loop_thread)
    assert aio.load("k") == "over TLS"
    unverified = Storage.from_url(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")
    assert unverified.load("tls:k") == "over TLS"
    untrusted = Storage.from_url(f"rediss://127.0.0.1:{port}/0", retries=0)
    with pytest.raises(BackendUnavailable, match=r"(?i)certificate"):
        untrusted.load("tls:k")
    plain_to_tls = Storage.from_url(f"redis://127.0.0.1:{port}/0", retries=0, socket_timeout=0.5)
    with pytest.raises(BackendUnavailable):
        plain_to_tls.load("tls:k")
    store.clear()
