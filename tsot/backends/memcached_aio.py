"""The asyncio memcached transport: one pipelined connection per server and event loop.

Requests from concurrent tasks share the connection: each is written as it comes and queued
with the number of replies it expects; replies are parsed as they arrive and handed out in
order (memcached answers one connection's commands in order). ``AsyncConnection.request`` is
the seam where writes can later be coalesced (auto-pipelining) without touching anything else.

The connection reads through ``loop.add_reader`` on a socket it owns instead of an asyncio
transport, so a connection left behind by an event loop that was closed (test loops,
``asyncio.run``) is released quietly when it is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import weakref
from collections import deque
from typing import Any

from .memcached_cluster import Address, Cluster, StaleConnection, StepFailed
from .memcached_ops import Replies, Step
from .memcached_proto import Reply, ReplyParser

_RECV = 256 * 1024


class AsyncConnection:
    """A non-blocking socket with a reply parser and a FIFO of waiting requests."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = weakref.ref(loop)  # the loop's registry holds us: no cycle through it
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._parser = ReplyParser()
        self._waiters: deque[tuple[int, list[Reply], asyncio.Future[list[Reply]]]] = deque()
        self._wbuf = bytearray()
        self._received = False
        loop.add_reader(self._fd, self._on_readable)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def request(self, data: bytes, count: int) -> asyncio.Future[list[Reply]]:
        """Write ``data`` and return a future for its ``count`` replies."""
        loop = self._loop()
        if loop is None or self._sock is None:
            raise StaleConnection("connection closed")
        fut: asyncio.Future[list[Reply]] = loop.create_future()
        if not self._waiters:
            self._received = False
        self._waiters.append((count, [], fut))
        if self._wbuf:
            self._wbuf += data
            return fut
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.fail(exc)
            return fut
        if sent < len(data):
            self._wbuf += data[sent:]
            loop.add_writer(self._fd, self._on_writable)
        return fut

    def _on_writable(self) -> None:
        if self._sock is None:
            return
        try:
            sent = self._sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(exc)
            return
        del self._wbuf[:sent]
        if not self._wbuf:
            loop = self._loop()
            if loop is not None:
                loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        if self._sock is None:
            return
        error: BaseException | None = None
        try:
            data = self._sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            data, error = b"", exc
        if not data:
            if error is None:
                error = (ConnectionResetError if self._received else StaleConnection)(
                    "the server closed the connection"
                )
            self.fail(error)
            return
        self._received = True
        parser, waiters = self._parser, self._waiters
        parser.feed(data)
        while waiters:
            count, got, fut = waiters[0]
            while len(got) < count:
                reply = parser.next()
                if reply is None:
                    return
                got.append(reply)
            waiters.popleft()
            if not fut.done():  # a cancelled caller's replies are read and dropped
                fut.set_result(got)
            self._received = False

    def fail(self, exc: BaseException) -> None:
        """Close the connection and fail every waiting request with ``exc``."""
        self.close()
        while self._waiters:
            _, _, fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        sock.close()

    def __del__(self) -> None:
        if self._sock is not None:
            self._sock.close()  # explicit close: no ResourceWarning from a collected loop's conn


async def _open(address: Address, loop: asyncio.AbstractEventLoop) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = address
    else:
        host, port = address
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            target = (host, port)
        except ValueError:  # a name: resolve it (only when connecting)
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, target = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, target)
    except BaseException:
        sock.close()
        raise
    return sock


class AsyncTransport:
    """The connections of one location, per event loop; a step is one request per server,
    all written before any reply is awaited."""

    def __init__(
        self, cluster: Cluster, connect_timeout: float | None, timeout: float | None
    ) -> None:
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Any]] = (
            weakref.WeakKeyDictionary()
        )

    async def _connection(self, server: int, loop: asyncio.AbstractEventLoop) -> AsyncConnection:
        conns = self._loops.get(loop)
        if conns is None:
            conns = self._loops[loop] = {}
        current = conns.get(server)
        if isinstance(current, AsyncConnection) and not current.closed:
            return current
        if isinstance(current, asyncio.Future):
            return await asyncio.shield(current)
        pending: asyncio.Future[AsyncConnection] = loop.create_future()
        conns[server] = pending
        try:
            opening = _open(self.cluster.servers[server].address, loop)
            sock = await asyncio.wait_for(opening, self.connect_timeout)
            conn = AsyncConnection(loop, sock)
        except BaseException as exc:
            conns.pop(server, None)
            pending.set_exception(exc)
            pending.exception()  # retrieved: other waiters get it, no "never retrieved" log
            raise
        conns[server] = conn
        pending.set_result(conn)
        return conn

    async def execute(self, step: Step) -> Replies:
        """Send each server its commands, then await every reply; StepFailed names failures."""
        cluster, loop = self.cluster, asyncio.get_running_loop()
        failures: dict[int, tuple[BaseException, bool]] = {}
        futures: dict[int, asyncio.Future[list[Reply]]] = {}
        for s, cmds in step.items():
            if cluster.is_dead(s):
                failures[s] = (cluster.dead_error(s), False)
                continue
            try:
                conn = await self._connection(s, loop)
            except Exception as exc:
                failures[s] = (exc, False)
                continue
            futures[s] = conn.request(b"".join(cmds), len(cmds))
        out: Replies = {}
        for s, fut in futures.items():
            try:
                out[s] = await self._wait(fut, s, loop)
            except Exception as exc:
                failures[s] = (exc, not isinstance(exc, StaleConnection))
        if failures:
            raise StepFailed(failures)
        return out

    async def _wait(
        self, fut: asyncio.Future[list[Reply]], server: int, loop: asyncio.AbstractEventLoop
    ) -> list[Reply]:
        if self.timeout is None or fut.done():
            return await fut
        timer = loop.call_later(self.timeout, self._expire, fut, server, loop)
        try:
            return await fut
        finally:
            timer.cancel()

    def _expire(
        self, fut: asyncio.Future[list[Reply]], server: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        if fut.done():
            return
        conns = self._loops.get(loop) or {}
        conn = conns.pop(server, None)
        error = TimeoutError(f"no reply within {self.timeout} s")
        if isinstance(conn, AsyncConnection):
            conn.fail(error)  # the replies would be out of step: drop the connection
        if not fut.done():
            fut.set_exception(error)

    def close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's connections (the next request opens new ones)."""
        for conn in (self._loops.pop(loop, None) or {}).values():
            if isinstance(conn, AsyncConnection):
                with contextlib.suppress(Exception):
                    conn.close()
