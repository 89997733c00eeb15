"""Memcached fixtures: real ``memcached`` processes on free loopback ports, stopped by PID.

PYTEST_DONT_REWRITE: tests/contract/registry.py imports this module before pytest loads it as
a plugin, so it cannot be assertion-rewritten (and holds no asserts).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.registry import Spec, Target
from tests.servers.proc import Server, free_port, need_program, wait_for

CONTRACT_SPECS = [
    Spec("memcached", "memcached_target", ("server",)),
    Spec("memcached-3", "memcached3_target", ("server",)),
]


def start_memcached(log_dir: Path, name: str, *extra: str) -> Server:
    """Start one memcached on a free 127.0.0.1 port (64 MB, no UDP; ``extra`` arguments)."""
    program = need_program("memcached")
    port = free_port()
    argv = [program, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", *extra]
    if os.geteuid() == 0:  # memcached refuses to run as root without a user to switch to
        argv += ["-u", "root"]
    return Server(argv, port, log_dir / f"{name}-{port}.log").start()


def url_of(servers: list[Server], query: str = "") -> str:
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    return f"memcached://{hosts}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_memcached(tmp_path_factory.mktemp("memcached"), "memcached")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memcached_servers3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    log_dir = tmp_path_factory.mktemp("memcached3")
    servers: list[Server] = []
    try:
        for i in range(3):
            servers.append(start_memcached(log_dir, f"memcached3-{i}"))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def memcached_url(memcached_server: Server) -> str:
    """One server; tests use their own namespaces (clear() never flushes the server)."""
    return url_of([memcached_server])


@pytest.fixture
def memcached3_url(memcached_servers3: list[Server]) -> str:
    """Three servers, keys spread by rendezvous hashing."""
    return url_of(memcached_servers3)


@pytest.fixture
def memcached_target(memcached_url: str) -> Target:
    return Target(url=memcached_url, caps=frozenset({"bigint", "server"}))


@pytest.fixture
def memcached3_target(memcached3_url: str) -> Target:
    return Target(url=memcached3_url, caps=frozenset({"bigint", "server"}))


@contextlib.contextmanager
def own_servers(directory: Path, count: int, name: str) -> Iterator[list[Server]]:
    """``count`` memcached servers of the caller's own, all stopped on the way out (a SIGSTOPped
    one too: stop sends SIGCONT first)."""
    servers: list[Server] = []
    try:
        for i in range(count):
            servers.append(start_memcached(directory, f"{name}-{i}"))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def memcached_fresh3(tmp_path: Path) -> Iterator[list[Server]]:
    """Three servers of this test's own, for tests that stop one of them."""
    with own_servers(tmp_path, 3, "fresh") as servers:
        yield servers


@pytest.fixture
def memcached_unix_socket(tmp_path: Path) -> Iterator[str]:
    """A memcached listening on a unix socket only (its path; stopped by its process)."""
    path = str(tmp_path / "mc.sock")
    argv = [need_program("memcached"), "-s", path, "-a", "0700", "-m", "16"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    with open(tmp_path / "mc.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
        return True

    try:
        wait_for(ready, 10, "memcached on a unix socket")
        yield path
    finally:
        proc.terminate()
        proc.wait(10)
