"""The asyncio memcached transport: one auto-pipelined connection per server and event loop.

Every task of a loop shares one ``Pipeline`` per server (``memcached.pipeline``): requests
queued in one loop iteration go out in one write and their replies are matched in order. A
step (one request per server) is queued on every server before any reply is awaited.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from asyncio import get_running_loop
from time import monotonic
from typing import Any

from ..loop_lag import within
from .cluster import Address, Cluster, StaleConnection, StepFailed
from .commands import Replies, Step
from .pipeline import Pipeline
from .protocol import Reply, SharedRead, retime


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


def _request(
    conn: Pipeline, cmds: list[bytes], fresh: bool, asked: float = 0.0
) -> asyncio.Future[list[Reply]]:
    """Queue a server's commands; a leading SharedRead goes as the write's shared head.

    ``asked``: ``monotonic()`` of the call; the whole seconds since are taken off the commands'
    relative TTLs (the pipeline takes off those the request then waits to be written).
    """
    if asked and (held := int(monotonic() - asked)):
        cmds = [c if c.__class__ is SharedRead else retime(c, held) for c in cmds]
    if cmds and cmds[0].__class__ is SharedRead:
        return conn.request(b"".join(cmds[1:]), len(cmds) - 1, cmds[0], fresh)
    return conn.request(b"".join(cmds), len(cmds), None, fresh)


class AsyncTransport:
    """The connections of one location, per event loop; a step is one request per server,
    all queued before any reply is awaited."""

    def __init__(
        self,
        cluster: Cluster,
        connect_timeout: float | None,
        timeout: float | None,
        max_inflight: int = 1024,
    ) -> None:
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_inflight = max_inflight
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Any]] = (
            weakref.WeakKeyDictionary()
        )
        # the last loop's connections, found without hashing a weak reference per call
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], dict[int, Any]] | None = None

    def connections(self, loop: asyncio.AbstractEventLoop) -> dict[int, Any]:
        """``server -> Pipeline`` (or a future while it connects) for ``loop``."""
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        conns = self._loops.get(loop)
        if conns is None:
            conns = self._loops[loop] = {}
        self._last = (weakref.ref(loop), conns)
        return conns

    def ready(self, server: int) -> Pipeline | None:
        """The running loop's open connection to ``server``, else None (the caller has
        checked that the server is not skipped: ``memcached.hot.Hot.ready``)."""
        loop = get_running_loop()
        last = self._last
        conns = last[1] if last is not None and last[0]() is loop else self.connections(loop)
        conn = conns.get(server)
        if conn.__class__ is not Pipeline or conn.closed:
            return None
        return conn

    async def _connect(self, server: int, loop: asyncio.AbstractEventLoop) -> Pipeline:
        conns = self.connections(loop)
        current = conns.get(server)
        if isinstance(current, Pipeline) and not current.closed:
            return current
        if isinstance(current, asyncio.Future):
            return await asyncio.shield(current)
        pending: asyncio.Future[Pipeline] = loop.create_future()
        conns[server] = pending
        try:
            opening = _open(self.cluster.servers[server].address, loop)
            try:
                sock = await within(opening, self.connect_timeout)  # a busy loop is not counted
            except asyncio.TimeoutError as exc:  # say which timeout: this one is connect's
                raise ConnectionError(
                    f"no connection within connect_timeout={self.connect_timeout:g} s"
                ) from exc
            conn = Pipeline(loop, sock, self.max_inflight, self.timeout)
        except BaseException as exc:
            conns.pop(server, None)
            pending.set_exception(exc)
            pending.exception()  # retrieved: other waiters get it, no "never retrieved" log
            raise
        conns[server] = conn
        pending.set_result(conn)
        return conn

    async def execute(self, step: Step, fresh: bool = False, asked: float = 0.0) -> Replies:
        """Send each server its commands, then await every reply; StepFailed names failures
        (each with whether any byte of its request was written). ``fresh``: a request that
        must not run twice is not written on a connection the server has closed. ``asked``:
        ``monotonic()`` of the call, so TTLs count from it (``_request``)."""
        cluster, loop = self.cluster, asyncio.get_running_loop()
        conns = self.connections(loop)
        if len(step) == 1:  # the common case, without the bookkeeping of several servers
            for s, cmds in step.items():
                conn = conns.get(s)
                if conn.__class__ is not Pipeline or conn.closed or cluster.is_dead(s):
                    break
                try:
                    replies = await _request(conn, cmds, fresh, asked)
                except OSError as exc:
                    raise StepFailed({s: (exc, not isinstance(exc, StaleConnection))}) from None
                if cluster._dead:
                    cluster.mark_alive(s)
                return {s: replies}
        failures: dict[int, tuple[BaseException, bool]] = {}
        futures: dict[int, asyncio.Future[list[Reply]]] = {}
        for s, cmds in step.items():
            if cluster.skipped(s, failures):
                continue
            try:
                conn = conns.get(s)
                if conn.__class__ is not Pipeline or conn.closed:
                    conn = await self._connect(s, loop)
                futures[s] = _request(conn, cmds, fresh, asked)
            except Exception as exc:
                failures[s] = (exc, False)
        out: Replies = {}
        try:
            for s, fut in futures.items():
                try:
                    out[s] = await fut
                except Exception as exc:
                    failures[s] = (exc, not isinstance(exc, StaleConnection))
        except asyncio.CancelledError:
            for fut in futures.values():
                fut.cancel()  # their replies are dropped; no "exception never retrieved"
            raise
        return cluster.settle(out, failures)
