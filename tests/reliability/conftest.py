"""Fixtures of the reliability suite: servers each test owns and may kill, freeze or restart."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers.proc import Server
from tests.servers.redis import Program, start_single
from tsot.logs import limited


@pytest.fixture
def own_redis(tmp_path: Path, server_program: Program) -> Iterator[Server]:
    """A server of this test alone, on a free port; restart it with ``start()``.

    redis-server, or valkey-server where the test parametrises ``server_program``.
    """
    server = start_single(tmp_path / server_program.name, program=server_program)
    yield server
    server.stop()


@pytest.fixture
def every_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn off the log rate limit, so each test sees its own warnings (not a neighbour's)."""
    monkeypatch.setattr(limited, "interval", 0.0)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


class Silent:
    """A TCP listener that never accepts: the kernel completes the handshake and buffers what
    the client sends, but no byte ever comes back (a server hung after ``listen``)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class Unreachable(Silent):
    """A listener whose accept queue is full: new connections get no SYN-ACK, so connecting
    hangs (what a firewalled or powered-off host looks like) until the connect timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill: list[socket.socket] = []
        for _ in range(8):  # the queue holds backlog + 1 connections on Linux
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", self.port))
            except OSError:
                probe.close()
                return
            self.fill.append(probe)
        raise RuntimeError("could not fill the accept queue of a listen(0) socket")

    def close(self) -> None:
        for probe in self.fill:
            probe.close()
        super().close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


@pytest.fixture
def unreachable() -> Iterator[Unreachable]:
    server = Unreachable()
    yield server
    server.close()


@pytest.fixture
def raw(redis_server: Server) -> Iterator[redis.Redis[bytes]]:
    """A plain redis-py client on the session's server: what a cache writer would use."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def url(redis_server: Server) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"
