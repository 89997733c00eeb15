"""An auto-pipelined asyncio Redis connection: many tasks' commands, one write, replies in order.

Every command queued during one event-loop iteration goes out in a single ``transport.write``;
replies are parsed by ``hiredis.Reader`` and handed to the waiters in FIFO order (Redis answers
one connection's commands in the order it received them). Rules that keep the stream in step:

- a waiter that was cancelled still has its reply read, and dropped;
- an error reply reaches only the waiter of its command;
- a lost or stalled connection fails every pending waiter with ``ConnectionError`` or
  ``TimeoutError`` and is never used again (the owner opens a new one): no waiter can receive
  another command's reply;
- at most ``max_inflight`` commands wait for replies; more callers wait for room first.

Only commands that neither block nor change connection state may share it: the cache backend
sends GET/SET/MGET/UNLINK/INCRBY/EVALSHA/SCAN-like commands, never WATCH/MULTI, SUBSCRIBE,
blocking pops or CLIENT TRACKING (``send`` refuses them).
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from redis._parsers.base import BaseParser
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    RedisError,
    TimeoutError,
)

from ..loop_lag import within
from .resp import SetRun, pack_batch, spellings

try:
    from hiredis import Reader as _Reader
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    from .resp import Reader as _Reader  # type: ignore[assignment]
_pack: Callable[[Any], bytes]
try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis < 2.1, or none
    from .resp import pack_command as _pack

Address = tuple[str, int] | str  # (host, port) or a unix socket path


class NotSent(ConnectionError):
    """The connection was lost before a queued command was written: it did not run."""


Cmd = Sequence[Any]

_STATEFUL = [
    "WATCH",
    "UNWATCH",
    "MULTI",
    "EXEC",
    "DISCARD",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "MONITOR",
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BRPOPLPUSH",
    "BZPOPMIN",
    "BZPOPMAX",
    "BLMPOP",
    "BZMPOP",
    "XREAD",
    "XREADGROUP",
    "WAIT",
    "CLIENT",
    "SELECT",
    "HELLO",
    "AUTH",
    "RESET",
    "QUIT",
    "READONLY",
    "READWRITE",
]
STATEFUL: Final = spellings(_STATEFUL)
"""Commands that would block the connection or change its state for every other waiter."""


class _ErrorReply(Exception):
    """What hiredis returns for an error reply; mapped to redis-py's class by ``error``."""


def error(reply: BaseException) -> RedisError:
    """The redis-py exception for an error reply (NoScriptError, MovedError, ResponseError...)."""
    return BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call,no-any-return]


class _Batch:
    """The waiter of several commands sent together: one future for all their replies."""

    __slots__ = ("fut", "left", "replies")

    def __init__(self, fut: asyncio.Future[list[Any]], n: int) -> None:
        self.fut = fut
        self.left = n
        self.replies: list[Any] = []


class PipelinedConnection(asyncio.Protocol):
    """One Redis connection shared by every task of one event loop (see the module docstring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, name: str, timeout: float | None, max_inflight: int
    ) -> None:
        self.loop = loop
        self.name = name  # the address, for messages: never credentials
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.pending = 0  # commands sent or queued whose replies have not arrived
        self.lost: BaseException | None = None  # set once: the connection is never reused
        self._transport: asyncio.Transport | None = None
        self._reader = _Reader(replyError=_ErrorReply)
        self._waiters: collections.deque[Any] = collections.deque()  # Future | _Batch
        self._wbuf: list[bytes] = []
        self._room: collections.deque[asyncio.Future[None]] = collections.deque()
        self._progress = 0.0  # loop time of the last bytes received, or of the write after idle
        self._paused = False  # the transport holds more than its high-water mark: a big write
        self._unsent = 0  # bytes it held at the last write or check while paused
        self._watchdog: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection to {self.name} lost" + (f": {exc}" if exc else "")
        self._fail(ConnectionError(reason))

    def pause_writing(self) -> None:
        self._paused = True
        self._unsent = self._unsent_now()

    def resume_writing(self) -> None:
        self._paused = False
        self._progress = self.loop.time()  # the server took the big write: progress

    def _unsent_now(self) -> int:
        if not self._paused or self._transport is None:
            return 0
        return self._transport.get_write_buffer_size()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        done = 0
        while (reply := reader.gets()) is not False:
            done += 1
            try:
                waiter = waiters[0]
            except IndexError:  # a reply nobody asked for: the stream is out of step
                self.abort(ConnectionError(f"unexpected reply from {self.name}"))
                return
            if waiter.__class__ is _Batch:
                waiter.replies.append(error(reply) if reply.__class__ is _ErrorReply else reply)
                waiter.left -= 1
                if waiter.left:
                    continue
                waiters.popleft()
                if not waiter.fut.done():  # else: cancelled; its replies are dropped
                    waiter.fut.set_result(waiter.replies)
                continue
            waiters.popleft()
            if not waiter.done():
                if reply.__class__ is _ErrorReply:
                    waiter.set_exception(error(reply))
                else:
                    waiter.set_result(reply)
        self._progress = self.loop.time()  # any byte is progress: a long reply is arriving
        if done:
            self.pending -= done
            if self._room and self.pending < self.max_inflight:
                self._wake_room()

    # -- sending -------------------------------------------------------------------------------
    def send(self, args: Cmd) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply, or raises its error reply."""
        if self.lost is not None:
            raise ConnectionError(str(self.lost))
        if args[0] in STATEFUL:
            raise ValueError(f"{args[0]!r} would block or change the shared connection")
        fut = self.loop.create_future()
        # _queue, inlined: this is the hot path of every single-key operation
        self._waiters.append(fut)
        self.pending += 1
        if not self._wbuf:
            self.loop.call_soon(self._flush)
        self._wbuf.append(_pack(args))
        return fut

    def send_many(self, cmds: Sequence[Cmd], check: bool = True) -> asyncio.Future[list[Any]]:
        """Queue several commands back to back; the future gets every reply (errors in place).

        ``check=False`` lets the handshake's connection-state commands through.
        """
        if self.lost is not None:
            raise ConnectionError(str(self.lost))
        if check and type(cmds) is not SetRun and any(c[0] in STATEFUL for c in cmds):
            raise ValueError("a command that blocks or changes the shared connection")
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        self._queue(pack_batch(cmds, _pack), _Batch(fut, len(cmds)), len(cmds))
        return fut

    def _queue(self, data: bytes, waiter: Any, n: int) -> None:
        self._waiters.append(waiter)
        self.pending += n
        if not self._wbuf:
            self.loop.call_soon(self._flush)
        self._wbuf.append(data)

    def _flush(self) -> None:
        buf = self._wbuf
        if not buf or self._transport is None:
            return
        self._wbuf = []
        if len(self._waiters) == len(buf):  # nothing written awaits a reply: idle until now
            self._clock_starts()
        self._transport.write(buf[0] if len(buf) == 1 else b"".join(buf))
        if self._paused:  # more for a big write in progress
            self._unsent = self._unsent_now()

    def _clock_starts(self) -> None:
        """The first write after idle starts the stall clock (and the watchdog, if off).

        At the write, not when the command was queued: the loop may run other tasks' blocking
        code in between, and that time is the loop's, not the server's.
        """
        self._progress = self.loop.time()
        if self._watchdog is None and self.timeout is not None:
            self._watchdog = self.loop.call_at(self._progress + self.timeout, self._check)

    async def room(self) -> None:
        """Wait until fewer than ``max_inflight`` commands are in flight."""
        while self.pending >= self.max_inflight and self.lost is None:
            fut = self.loop.create_future()
            self._room.append(fut)
            await fut

    def _wake_room(self) -> None:
        free = self.max_inflight - self.pending
        while self._room and free > 0:
            fut = self._room.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    # -- failure -------------------------------------------------------------------------------
    def _check(self) -> None:
        """The watchdog: no byte for ``timeout`` seconds while written commands wait = stalled
        (bytes of a big write that the socket takes count as progress too).

        It measures the server, not the loop: the clock starts at the write, and asyncio polls
        for I/O before it runs a timer that came due, then runs the I/O callbacks first, so
        every byte that arrived before the deadline has been read when this runs, however long
        other tasks kept the loop busy.
        """
        self._watchdog = None
        if len(self._waiters) == len(self._wbuf) or self.lost is not None or self.timeout is None:
            return  # nothing written waits (the next write starts the clock again)
        deadline = self._progress + self.timeout
        now = self.loop.time()
        if now >= deadline:
            # a big write the socket takes bit by bit (the loop was busy meanwhile): the server
            # reads, so it is alive; it answers once the last byte is in
            unsent = self._unsent_now()
            if not unsent or unsent >= self._unsent:
                self.abort(TimeoutError(f"Timeout reading from {self.name}"))
                return
            self._unsent, self._progress = unsent, now
            deadline = now + self.timeout
        self._watchdog = self.loop.call_at(deadline, self._check)

    def abort(self, exc: BaseException) -> None:
        """Fail every waiter with ``exc`` and close the connection for good."""
        self._fail(exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Fail every waiter and drop the socket now.

        ``abort`` rather than ``close``: a close waits for unsent bytes to drain, and a loop that
        stops meanwhile (shutdown, a dead server) would leave the socket open for the GC.
        """
        self._fail(ConnectionError(f"connection to {self.name} closed"))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiters, self._waiters = self._waiters, collections.deque()
        # the last len(_wbuf) waiters queued their commands after the last write: never sent
        written = len(waiters) - len(self._wbuf)
        self._wbuf = []
        self.pending = 0
        for i, waiter in enumerate(waiters):
            fut = waiter.fut if waiter.__class__ is _Batch else waiter
            if not fut.done():
                cls = NotSent if i >= written and isinstance(exc, ConnectionError) else type(exc)
                fut.set_exception(cls(*exc.args))  # one instance per waiter
        while self._room:
            fut = self._room.popleft()
            if not fut.done():
                fut.set_result(None)  # they find the connection lost and raise


# -- opening -------------------------------------------------------------------------------------


def ssl_context(conn: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context for redis-py connection keyword arguments (None without TLS)."""
    if "ssl_cert_reqs" not in conn:
        return None
    from redis.asyncio.connection import RedisSSLContext

    return RedisSSLContext(
        keyfile=conn["ssl_keyfile"],
        certfile=conn["ssl_certfile"],
        cert_reqs=conn["ssl_cert_reqs"],
        ca_certs=conn["ssl_ca_certs"],
        check_hostname=conn["ssl_check_hostname"],
    ).get()


def handshake(conn: Mapping[str, Any], readonly: bool = False) -> list[tuple[Any, ...]]:
    """The commands that prepare a new connection: HELLO/AUTH, CLIENT SETNAME, SELECT, READONLY."""
    user, password = conn["username"], conn["password"]
    cmds: list[tuple[Any, ...]] = []
    if conn.get("protocol", 2) == 3:
        hello: tuple[Any, ...] = ("HELLO", 3)
        if password is not None:
            hello += ("AUTH", user or "default", password)
        cmds.append(hello)
    elif password is not None:
        cmds.append(("AUTH", user, password) if user else ("AUTH", password))
    if conn["client_name"]:
        cmds.append(("CLIENT", "SETNAME", conn["client_name"]))
    if conn.get("db"):
        cmds.append(("SELECT", conn["db"]))
    if readonly:
        cmds.append(("READONLY",))
    return cmds


async def open_connection(
    address: Address,
    conn: Mapping[str, Any],
    max_inflight: int,
    readonly: bool = False,
) -> PipelinedConnection:
    """Connect, run the handshake and return a ready connection.

    Raises redis-py's ConnectionError/TimeoutError when the server cannot be reached, and
    AuthenticationError (never worth retrying) when it refuses the credentials.
    """
    loop = asyncio.get_running_loop()
    name = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
    proto = PipelinedConnection(loop, name, conn["socket_timeout"], max_inflight)
    try:
        if isinstance(address, str):
            opening = loop.create_unix_connection(lambda: proto, address)
        else:
            context = ssl_context(conn)
            opening = loop.create_connection(
                lambda: proto,
                address[0],
                address[1],
                ssl=context,
                server_hostname=address[0] if context is not None else None,
            )
        await within(opening, conn["socket_connect_timeout"])  # a busy loop is not counted
    except asyncio.TimeoutError as exc:  # first: on 3.11+ it is the builtin, an OSError
        proto.close()
        raise TimeoutError(f"Timeout connecting to {name}") from exc
    except (OSError, ssl.SSLError) as exc:
        proto.close()
        raise ConnectionError(f"Error connecting to {name}: {exc}") from exc
    if not isinstance(address, str) and conn.get("socket_keepalive"):
        sock = proto._transport.get_extra_info("socket") if proto._transport else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError as exc:  # reset as soon as it was accepted: the socket is closed
                proto.close()
                raise ConnectionError(f"Error connecting to {name}: {exc}") from exc
    if proto.lost is not None:
        raise ConnectionError(f"Error connecting to {name}: {proto.lost}")
    cmds = handshake(conn, readonly)
    if cmds:
        try:
            replies = await proto.send_many(cmds, check=False)
        except BaseException:
            proto.close()
            raise
        for reply in replies:
            if isinstance(reply, RedisError):  # AuthenticationError is not a ResponseError
                proto.close()
                if isinstance(reply, AuthenticationError) or "AUTH" in str(reply).upper():
                    raise AuthenticationError(f"{name} refused the credentials: {reply}")
                raise reply
    return proto


class Endpoint:
    """The current connection to one server, reopened once it is lost.

    ``locate`` returns the address to connect to: fixed for one server, asked of the Sentinels
    for a Sentinel-managed primary, so a new connection follows a failover.
    """

    __slots__ = ("_locate", "_lock", "_opts", "conn", "max_inflight", "readonly")

    def __init__(
        self,
        locate: Callable[[], Awaitable[Address]],
        conn: Mapping[str, Any],
        max_inflight: int,
        readonly: bool = False,
    ) -> None:
        self._locate = locate
        self._opts = conn
        self.max_inflight = max_inflight
        self.readonly = readonly
        self.conn: PipelinedConnection | None = None
        self._lock: asyncio.Lock | None = None

    async def connect(self) -> PipelinedConnection:
        """A live connection: the current one, or a new one (one attempt; the transport's
        retry policy decides whether to try again)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent callers share one attempt
            conn = self.conn
            if conn is not None and conn.lost is None:
                return conn
            address = await self._locate()
            conn = await open_connection(address, self._opts, self.max_inflight, self.readonly)
            self.conn = conn
            return conn

    def drop(self) -> None:
        """Close the current connection (the next ``connect`` opens, and locates, a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
