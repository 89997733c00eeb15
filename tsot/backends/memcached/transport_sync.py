"""The synchronous memcached transport: pooled blocking sockets speaking meta commands.

pymemcache opens each connection (name resolution over every address family, connect and read
timeouts, TCP_NODELAY, unix sockets); after that a request is one write of its commands and a
``recv`` loop whose bytes ``memcached.protocol.ReplyParser`` slices in place (a request too big for
the socket buffers is written and read interleaved: ``memcached.stream``). pymemcache's
own command API speaks the text protocol, which cannot put a namespace-generation check in the
same request as a write, nor report a key's TTL, and its pool costs a lock per checkout.
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import sys
import threading
import time
import weakref
from time import monotonic
from typing import Any, Final

from pymemcache.client.base import Client

from ...errors import BackendUnavailable
from .cluster import Address, Cluster
from .commands import Replies, Step
from .protocol import Reply, ReplyParser
from .stream import Job, readable_now, stream

_RECV = 256 * 1024
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def kernel_timeouts(sock: socket.socket, timeout: float | None) -> None:
    """Put ``sock`` in blocking mode with ``timeout`` kept by the kernel (SO_RCVTIMEO and
    SO_SNDTIMEO) where that is Linux: a socket with a Python timeout polls before every send
    and every recv, two system calls per request more than the raw client makes. A read or
    write that runs out then fails with EAGAIN, which ``Conn`` raises as TimeoutError; writes
    that must not wait say so (MSG_DONTWAIT). Elsewhere the Python timeout stays."""
    if sys.platform != "linux" or _DONTWAIT == 0:
        return
    if timeout is not None:
        sec = int(timeout)
        usec = min(999_999, round((timeout - sec) * 1e6))
        if sec == 0:
            usec = max(1, usec)  # 0 would mean "never" to the kernel
        tv = struct.pack("@ll", sec, usec)  # struct timeval
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    sock.settimeout(None)


_IDLE_POLL = 0.001  # seconds between looks at the idle list while the pool is exhausted
PROVEN: Final = 0.001
"""Seconds after a connection's last checked-out request began during which ``Pool.get(fresh)``
takes it as open without a poll: that request's replies came after it began, so the server had
not closed it then (``Conn.proven``)."""


class Conn:
    """One open socket to a server and the parser of its reply stream."""

    __slots__ = ("parser", "poller", "proven", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ReplyParser()
        self.proven = -math.inf  # when its last ``fresh`` checkout began (``Pool.get``)
        # made once: ``idle`` (before every add and incr) is then one poll(2) and no setup
        self.poller: Any = None
        if hasattr(select, "poll"):
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)

    def send(self, data: bytes) -> None:
        """``sendall``, as one write(2) where the socket takes it all (a socket with a Python
        timeout would poll first); the rest, if any, through ``sendall``."""
        try:
            sent = os.write(self.sock.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            try:
                self.sock.sendall(memoryview(data)[sent:])
            except BlockingIOError:  # SO_SNDTIMEO ran out (kernel_timeouts)
                raise TimeoutError("timed out writing to memcached") from None

    def receive(self, count: int) -> list[Reply]:
        """The next ``count`` replies (ConnectionResetError if the server closes first: a
        request it was sent may have run, whether or not a byte of its reply arrived;
        TimeoutError after the read timeout)."""
        parser, recv = self.parser, self.sock.recv
        out: list[Reply] = []
        got = parser.take(count, out) if parser.pending else 0
        try:
            while got < count:
                chunk = recv(_RECV)
                if not chunk:
                    raise ConnectionResetError("the server closed the connection")
                parser.feed(chunk)
                got += parser.take(count - got, out)
        except BlockingIOError:  # SO_RCVTIMEO ran out (kernel_timeouts)
            raise TimeoutError("timed out reading from memcached") from None
        return out

    def idle(self) -> bool:
        """True if nothing is waiting to be read, as on a healthy idle connection; False if
        the server closed it (a restart) or sent bytes nobody asked for."""
        poller = self.poller
        return not (poller.poll(0) if poller is not None else readable_now(self.sock))

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

    def get(self, fresh: bool = False) -> Conn | None:
        """An idle connection, or None when there is none (``new`` opens one). ``fresh``:
        one known to be open and quiet (a request that must not run twice is written only
        where a failure cannot be a connection the server had closed before the call).

        A connection is only ever idle after every reply it was asked for arrived, so one
        whose last ``fresh`` checkout began less than ``PROVEN`` ago was open then: it is
        taken without a poll (a tight loop of ``incr`` or ``add`` costs no system call more
        than the raw client). Otherwise it is polled. A server that closes it within that
        window makes the request's outcome unknown, as a server failing during it would:
        the request is still never sent twice."""
        while True:
            try:
                conn = self.idle.pop()
            except IndexError:
                return None
            if not fresh:
                return conn
            now = monotonic()
            if now - conn.proven < PROVEN or conn.idle():
                conn.proven = now
                return conn
            self.drop(conn)

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
            kernel_timeouts(sock, self.timeout)
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
        """Close the idle connections (after a failure: they were opened to the same server,
        which may have restarted or gone; the next request opens a new one)."""
        while True:
            try:
                conn = self.idle.pop()
            except IndexError:
                return
            self.drop(conn)


class SyncTransport:
    """One ``Pool`` per server; a step goes out as one request per server, all sent before
    any reply is awaited (the servers work in parallel), and never blocks in a write while
    replies are owed: a request the socket does not take at once is written and its replies
    read interleaved (``memcached.stream``), whatever the batch size."""

    def __init__(
        self,
        cluster: Cluster,
        connect_timeout: float | None,
        timeout: float | None,
        max_pool_size: int,
        pool_timeout: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.max_pool_size = max_pool_size
        self.pools = [
            Pool(s.address, connect_timeout, timeout, max_pool_size, pool_timeout)
            for s in cluster.servers
        ]
        # idle sockets are closed when the transport goes, or at exit (no ResourceWarning)
        weakref.finalize(self, _close_all, self.pools)

    def one(self, server: int, data: bytes, count: int, fresh: bool = False) -> list[Reply] | None:
        """``count`` replies to ``data`` on an idle connection to ``server``, or None when
        none is idle (the full path opens one); ``fresh`` as in ``Pool.get``. ``data`` is
        at most two commands, the first a small read: the server reads it all before its
        second reply, so ``sendall`` cannot stall. OSError: the connection broke after the
        request was written; it and the pool's idle connections are dropped."""
        pool = self.pools[server]
        conn = pool.get(fresh)
        if conn is None:
            return None
        try:
            conn.send(data)
            out = conn.receive(count)
        except BaseException:
            pool.drop(conn)
            pool.close()
            raise
        pool.idle.append(conn)
        if self.cluster._dead:
            self.cluster.mark_alive(server)
        return out

    def execute(self, step: Step, fresh: bool = False) -> Replies:
        """Send each server its commands, then read every reply; StepFailed names failures
        (each with whether any byte of its request was written). ``fresh``: see ``Pool.get``."""
        cluster, pools = self.cluster, self.pools
        held: list[tuple[int, Conn, int, memoryview | None]] = []
        failures: dict[int, tuple[BaseException, bool]] = {}
        out: Replies = {}
        try:
            for s, cmds in step.items():
                if cluster.skipped(s, failures):
                    continue
                pool = pools[s]
                try:
                    conn = pool.get(fresh) or pool.new()
                except Exception as exc:
                    failures[s] = (exc, False)
                    continue
                if conn is None:
                    failures[s] = (self._busy(s), False)
                    continue
                data = b"".join(cmds)
                try:
                    sent = conn.sock.send(data, _DONTWAIT)  # what fits now: never waits
                except BlockingIOError:
                    sent = 0
                except Exception as exc:
                    self._broken(s, conn)
                    failures[s] = (exc, True)
                    continue
                rest = memoryview(data)[sent:] if sent < len(data) else None
                held.append((s, conn, len(cmds), rest))
            if any(rest is not None for *_, rest in held):
                self._stream(held, out, failures)
            else:
                while held:
                    s, conn, count, _ = held[0]
                    try:
                        out[s] = conn.receive(count)
                    except Exception as exc:
                        self._broken(s, conn)
                        failures[s] = (exc, True)
                    else:
                        pools[s].idle.append(conn)
                    del held[0]
        except BaseException:  # interrupted: replies still owed make those streams useless
            for s, conn, *_ in held:
                pools[s].drop(conn)
            raise
        return cluster.settle(out, failures)

    def _stream(
        self,
        held: list[tuple[int, Conn, int, memoryview | None]],
        out: Replies,
        failures: dict[int, tuple[BaseException, bool]],
    ) -> None:
        """Finish every held request with writes and reads interleaved; empties ``held``."""
        jobs = [
            Job(conn.sock, conn.parser, rest if rest is not None else memoryview(b""), count)
            for _, conn, count, rest in held
        ]
        stream(jobs, self.timeout)
        for (s, conn, _, _), job in zip(held, jobs, strict=True):
            if job.error is None:
                out[s] = job.out
                self.pools[s].idle.append(conn)
            else:
                self._broken(s, conn)
                failures[s] = (job.error, True)
        held.clear()

    def _broken(self, server: int, conn: Conn) -> None:
        pool = self.pools[server]
        pool.drop(conn)
        pool.close()

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
