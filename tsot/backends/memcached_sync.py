"""The synchronous memcached transport: pooled blocking sockets speaking meta commands.

pymemcache opens each connection (name resolution over every address family, connect and read
timeouts, TCP_NODELAY, unix sockets); after that a request is one ``sendall`` of its commands
and a ``recv`` loop whose bytes ``memcached_proto.ReplyParser`` slices in place. pymemcache's
own command API speaks the text protocol, which cannot put a namespace-generation check in the
same request as a write, nor report a key's TTL, and its pool costs a lock per checkout.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import weakref
from typing import Any

from pymemcache.client.base import Client

from ..errors import BackendUnavailable
from .memcached_cluster import Address, Cluster, StaleConnection, StepFailed
from .memcached_ops import Replies, Step
from .memcached_proto import Reply, ReplyParser

_RECV = 256 * 1024
_IDLE_POLL = 0.001  # seconds between looks at the idle list while the pool is exhausted


class Conn:
    """One open socket to a server and the parser of its reply stream."""

    __slots__ = ("parser", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ReplyParser()

    def receive(self, count: int) -> list[Reply]:
        """The next ``count`` replies. StaleConnection if the server closed the connection
        before sending a byte of them (it did not run the request)."""
        parser, recv = self.parser, self.sock.recv
        out: list[Reply] = []
        got = parser.take(count, out) if parser.pending else 0
        received = False
        while got < count:
            try:
                chunk = recv(_RECV)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if received:
                    raise ConnectionResetError("the server closed the connection")
                raise StaleConnection("the server closed the connection")
            received = True
            parser.feed(chunk)
            got += parser.take(count - got, out)
        return out

    def close(self) -> None:
        self.sock.close()


class Pool:
    """The idle connections to one server, at most ``max_size`` open.

    A checkout is ``list.pop`` and a return ``list.append`` (each atomic under the GIL), so
    the common call takes no lock; only opening or dropping a connection counts under one.
    When ``max_size`` are open and none is idle, ``new`` waits up to ``pool_timeout`` (None:
    forever) for one to come back, as the Redis pool does, then gives up.
    """

    __slots__ = (
        "_cond",
        "_open",
        "address",
        "connect_timeout",
        "idle",
        "max_size",
        "pool_timeout",
        "timeout",
    )

    def __init__(
        self,
        address: Address,
        connect_timeout: float | None,
        timeout: float | None,
        max_size: int,
        pool_timeout: float | None = None,
    ) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_size = max_size
        self.pool_timeout = pool_timeout
        self.idle: list[Conn] = []
        self._open = 0
        self._cond = threading.Condition()

    def get(self) -> Conn | None:
        """An idle connection, or None when there is none (``new`` opens one)."""
        try:
            return self.idle.pop()
        except IndexError:
            return None

    def new(self) -> Conn | None:
        """A newly opened connection, or, when ``max_size`` are open, the first idle one
        within ``pool_timeout``; None after it (OSError if the server cannot be reached)."""
        with self._cond:
            got = self._reserve()
        if isinstance(got, Conn):
            return got
        if not got:
            return None
        try:
            client = Client(
                self.address,
                connect_timeout=self.connect_timeout,
                timeout=self.timeout,
                no_delay=True,
            )
            try:
                client._connect()
            except TimeoutError as exc:  # say which timeout: this one is connect_timeout
                raise ConnectionError(
                    f"no connection within connect_timeout={self.connect_timeout:g} s"
                ) from exc
            sock: Any = client.sock
            client.sock = None  # ours now: the Client object is dropped
            return Conn(sock)
        except BaseException:
            self._forget()
            raise

    def drop(self, conn: Conn) -> None:
        """Close a connection whose stream can no longer be trusted."""
        conn.close()
        self._forget()

    def _reserve(self) -> Conn | bool:
        """Under ``_cond``: True if a slot for a new connection is now counted, an idle
        connection if one came back first, False after ``pool_timeout``.

        A dropped connection frees a slot and notifies; a returned one is a lock-free
        ``idle.append`` that notifies no one, so a waiter looks at ``idle`` every
        ``_IDLE_POLL`` seconds. Only callers that found the pool exhausted pay for that.
        """
        deadline: float | None = None
        while self._open >= self.max_size:
            try:
                return self.idle.pop()
            except IndexError:
                pass
            if deadline is None:
                wait = self.pool_timeout
                deadline = math.inf if wait is None else time.monotonic() + wait
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(min(left, _IDLE_POLL))
        self._open += 1
        return True

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        while self.idle:
            self.drop(self.idle.pop())


class SyncTransport:
    """One ``Pool`` per server; a step goes out as one request per server, all sent before
    any reply is read (the servers work in parallel)."""

    def __init__(
        self,
        cluster: Cluster,
        connect_timeout: float | None,
        timeout: float | None,
        max_pool_size: int,
        pool_timeout: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.max_pool_size = max_pool_size
        self.pools = [
            Pool(s.address, connect_timeout, timeout, max_pool_size, pool_timeout)
            for s in cluster.servers
        ]
        # idle sockets are closed when the transport goes, or at exit (no ResourceWarning)
        weakref.finalize(self, _close_all, self.pools)

    def one(self, server: int, data: bytes, count: int) -> list[Reply] | None:
        """``count`` replies to ``data`` on an idle connection to ``server``, or None when
        none is idle (the full path opens one). OSError: the connection broke and is dropped
        (StaleConnection: before the server ran anything)."""
        pool = self.pools[server]
        try:
            conn = pool.idle.pop()
        except IndexError:
            return None
        try:
            conn.sock.sendall(data)
            out = conn.receive(count)
        except BaseException:
            pool.drop(conn)
            raise
        pool.idle.append(conn)
        return out

    def execute(self, step: Step) -> Replies:
        """Send each server its commands, then read every reply; StepFailed names failures."""
        cluster, pools = self.cluster, self.pools
        held: list[tuple[int, Conn, int]] = []
        failures: dict[int, tuple[BaseException, bool]] = {}
        out: Replies = {}
        try:
            for s, cmds in step.items():
                if cluster._dead and cluster.is_dead(s):
                    failures[s] = (cluster.dead_error(s), False)
                    continue
                pool = pools[s]
                try:
                    conn = pool.get() or pool.new()
                except Exception as exc:
                    failures[s] = (exc, False)
                    continue
                if conn is None:
                    failures[s] = (self._busy(s), False)
                    continue
                held.append((s, conn, len(cmds)))
                try:
                    conn.sock.sendall(b"".join(cmds))
                except Exception as exc:
                    held.pop()
                    pool.drop(conn)
                    failures[s] = (exc, False)
            while held:
                s, conn, count = held[0]
                try:
                    out[s] = conn.receive(count)
                except Exception as exc:
                    pools[s].drop(conn)
                    failures[s] = (exc, not isinstance(exc, StaleConnection))
                else:
                    pools[s].idle.append(conn)
                del held[0]
        except BaseException:  # interrupted: replies still owed make those streams useless
            for s, conn, _ in held:
                pools[s].drop(conn)
            raise
        if failures:
            raise StepFailed(failures)
        return out

    def _busy(self, server: int) -> BackendUnavailable:
        waited = self.pools[server].pool_timeout
        return BackendUnavailable(
            f"all {self.max_pool_size} connections to memcached {self.cluster.names[server]} "
            f"stayed in use for pool_timeout={waited:g} s (max_pool_size)"
        )

    def close(self) -> None:
        _close_all(self.pools)


def _close_all(pools: list[Pool]) -> None:
    for pool in pools:
        pool.close()
