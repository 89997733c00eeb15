"""An auto-pipelined asyncio memcached connection: concurrent requests share one write.

Requests queued during one event-loop iteration are written together, followed by a ``mn``
(no-op) marker; memcached answers one connection's commands in order, so the replies of a
write come back as one run ending in ``MN``. A run is handed out only once its marker has
arrived where the count of commands says it must: a reply stream out of step (a parser bug, a
server answering a command twice) fails the connection instead of giving any caller another
command's reply.

- A request may name a shared head: a read-only command (the namespace generation check)
  whose one reply every request of the same write that names it receives first. It is written
  once, before the first of them; memcached runs it before all of them.
- A cancelled caller's replies are still read and dropped: the stream never shifts.
- A broken connection fails every waiter: written requests get the error (they may have run,
  even if no byte of their replies arrived), requests not yet written get ``StaleConnection``,
  which tells the retry policy they never reached the server.
- At most ``max_inflight`` commands are written and unanswered; further requests wait, in
  order, unwritten (back-pressure: memory stays bounded whatever the callers do).
- ``timeout`` bounds the wait for the oldest unanswered write while no byte arrives or leaves
  (a big write whose replies keep coming is not cut short); one timer per connection. The
  clock starts when the request is written, so time the loop spends on other tasks before the
  write never counts against the server.
- A request written a second or more after it was made (the loop was busy, or back-pressure
  held it) has those whole seconds taken off its relative TTLs (``retime``): expiry counts
  from the call.

The socket is read through ``loop.add_reader`` instead of an asyncio transport, so a
connection left behind by an event loop that was closed is released quietly when collected.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections import deque
from typing import Final

from .cluster import StaleConnection
from .protocol import MN, MN_REPLY, Reply, ReplyParser, retime
from .stream import readable_now

_RECV: Final = 256 * 1024
Waiter = tuple[int, int, int, "asyncio.Future[list[Reply]]"]
"""(position of its first reply in the write, count, position of its shared head or -1, fut)"""


class OutOfStep(ConnectionResetError):
    """The replies did not line up with the commands written: the connection is dropped."""


class _Write:
    """One write: its waiters in order, the replies they expect, when it was sent."""

    __slots__ = ("count", "sent_at", "waiters")

    def __init__(self, waiters: list[Waiter], count: int, sent_at: float) -> None:
        self.waiters = waiters
        self.count = count
        self.sent_at = sent_at


class Pipeline:
    """One non-blocking socket to one server, shared by every task of one event loop."""

    __slots__ = (
        "__weakref__",
        "_asked",
        "_backlog",
        "_burst",
        "_fd",
        "_got",
        "_heads",
        "_last_read",
        "_loop",
        "_out",
        "_parser",
        "_queued",
        "_queued_count",
        "_scheduled",
        "_sent",
        "_sock",
        "_timer",
        "_wbuf",
        "closed",
        "inflight",
        "max_inflight",
        "peak_inflight",
        "timeout",
        "writes",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        max_inflight: int,
        timeout: float | None,
    ) -> None:
        self._loop = weakref.ref(loop)  # the loop's registry holds us: no cycle through it
        self._sock: socket.socket | None = sock
        self.closed = False
        self._fd = sock.fileno()
        self._parser = ReplyParser()
        self._sent: deque[_Write] = deque()  # written, replies pending
        self._got: list[Reply] = []  # replies of the oldest write read so far
        self._out: list[bytes] = []  # requests queued for the next write
        self._queued: list[Waiter] = []
        self._queued_count = 0
        self._heads: dict[bytes, int] = {}  # shared heads of the next write -> reply position
        self._backlog: deque[
            tuple[bytes, int, bytes | None, asyncio.Future[list[Reply]], float]
        ] = deque()  # (data, count, head, fut, loop time of the request)
        self._wbuf = bytearray()  # bytes the socket did not take yet
        self._scheduled = False
        self._asked: list[tuple[int, float]] = []  # (index in _out, loop time) of held requests
        self._burst = False  # many waiters were just woken: their requests will follow
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0  # loop time of the last bytes received, or sent after a full socket
        self.inflight = 0
        """Commands queued or written and not answered yet."""
        self.peak_inflight = 0
        self.writes = 0
        """Writes made (each carries every request queued since the previous one)."""
        self.max_inflight = max_inflight
        self.timeout = timeout
        loop.add_reader(self._fd, self._on_readable)

    @property
    def partial(self) -> int:
        """Replies of the oldest unanswered write read so far (it is handed out when whole)."""
        return len(self._got)

    @property
    def waiting(self) -> int:
        """Requests held back, unwritten, by the in-flight bound."""
        return len(self._backlog)

    def request(
        self, data: bytes, count: int, head: bytes | None = None, fresh: bool = False
    ) -> asyncio.Future[list[Reply]]:
        """Queue ``data`` (``count`` commands) for the next write; a future for its replies,
        preceded by the reply to the shared ``head`` command if one is named.

        Raises StaleConnection if the connection is closed, or, with ``fresh`` (a request
        that must not run twice), if it is idle and the server has closed it (a restart the
        event loop has not noticed yet): the request is then never written.
        """
        loop = self._loop()
        if loop is None or self._sock is None:
            raise StaleConnection("connection closed")
        if fresh and not self.inflight and readable_now(self._sock):
            self.fail(StaleConnection("the server closed the idle connection"))
            raise StaleConnection("the server closed the idle connection")
        fut = loop.create_future()
        inflight = self.inflight
        if self._backlog or (inflight and inflight + count + 1 > self.max_inflight):
            self._backlog.append((data, count, head, fut, loop.time()))
            return fut
        if self._scheduled:
            self._queue(data, count, head, fut, loop.time())  # written on a later turn
        elif self._sent or self._burst:  # gather what other tasks queue in this iteration
            self._queue(data, count, head, fut, loop.time())
            self._scheduled = True
            loop.call_soon(self._flush)
        else:  # idle: nothing to wait for, write now (one task costs no extra turn)
            self._queue(data, count, head, fut)
            self._flush()
        return fut

    def _queue(
        self,
        data: bytes,
        count: int,
        head: bytes | None,
        fut: asyncio.Future[list[Reply]],
        asked: float = 0.0,
    ) -> None:
        """Add a request to the next write; ``asked`` (loop time of the request) if that write
        may come later, so ``_flush`` can take the wait off its TTLs."""
        at = -1
        if head is not None:
            heads = self._heads
            at = heads.get(head, -1)
            if at < 0:
                at = heads[head] = self._queued_count
                self._out.append(head)
                self._queued_count += 1
                count_head = 1
            else:
                count_head = 0
        else:
            count_head = 0
        if asked:
            self._asked.append((len(self._out), asked))
        self._out.append(data)
        self._queued.append((self._queued_count, count, at, fut))
        self._queued_count += count
        self.inflight = inflight = self.inflight + count + count_head
        if inflight > self.peak_inflight:
            self.peak_inflight = inflight

    def _flush(self) -> None:
        asked, self._asked = self._asked, []
        self._scheduled = self._burst = False
        if self._sock is None or not self._queued:
            return
        loop = self._loop()
        if loop is None:
            return
        out = self._out
        now = loop.time()
        for i, at in asked:  # held a second or more (a busy loop): TTLs count from the request
            if now - at >= 1.0:
                out[i] = retime(out[i], int(now - at))
        out.append(MN)
        data = b"".join(out)
        self._sent.append(_Write(self._queued, self._queued_count, now))
        self.writes += 1
        self._out, self._queued, self._queued_count = [], [], 0
        if self._heads:
            self._heads = {}
        if self._timer is None and self.timeout is not None:
            self._timer = loop.call_later(self.timeout, self._check_timeout)
        if self._wbuf:
            self._wbuf += data
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.fail(exc)
            return
        if sent < len(data):
            self._wbuf += memoryview(data)[sent:]
            loop.add_writer(self._fd, self._on_writable)

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
        loop = self._loop()
        if loop is None:
            return
        if sent:  # the server takes our bytes: progress, as replies are (a big write, a slow loop)
            self._last_read = loop.time()
        if not self._wbuf:
            loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(exc)
            return
        if not data:
            # written requests may have run, whether or not a byte of their replies came
            self.fail(ConnectionResetError("the server closed the connection"))
            return
        if self._timer is not None:  # progress: the timeout counts from the last bytes
            loop = self._loop()
            if loop is not None:
                self._last_read = loop.time()
        parser, sent, got = self._parser, self._sent, self._got
        parser.feed(data)
        while sent:
            write = sent[0]
            need = write.count + 1 - len(got)
            if parser.take(need, got) < need:
                return
            if got[-1] is not MN_REPLY or got.count(MN_REPLY) != 1:
                self.fail(OutOfStep(f"replies out of step with commands: {got[-1]!r}"))
                return
            sent.popleft()
            self._got = []
            self.inflight -= write.count
            for i, count, at, fut in write.waiters:
                if fut.done():  # a cancelled caller's replies are read and dropped
                    continue
                if at < 0:
                    fut.set_result(got[i : i + count])
                elif count == 1:
                    fut.set_result([got[at], got[i]])
                else:
                    fut.set_result([got[at], *got[i : i + count]])
            if len(write.waiters) > 1:
                self._burst = True
            got = self._got
        if self._backlog:
            self._admit()

    def _admit(self) -> None:
        """Queue backlogged requests while the in-flight bound allows (never reordered)."""
        backlog, queued = self._backlog, False
        while backlog:
            data, count, head, fut, asked = backlog[0]
            if fut.done():  # cancelled before it was written: never sent
                backlog.popleft()
                continue
            inflight = self.inflight
            if inflight and inflight + count + 1 > self.max_inflight:
                break
            backlog.popleft()
            self._queue(data, count, head, fut, asked)  # _flush takes the wait off its TTLs
            queued = True
        if queued and not self._scheduled:
            self._flush()

    def _check_timeout(self) -> None:
        """No byte in or out for ``timeout`` seconds since the oldest unanswered write = stalled.

        It measures the server, not the loop: ``sent_at`` is the write itself, and asyncio polls
        for I/O before it runs a timer that came due, then runs the I/O callbacks first, so
        every byte that arrived before the deadline has been read when this runs.
        """
        self._timer = None
        loop = self._loop()
        if not self._sent or loop is None or self.timeout is None:
            return
        due = max(self._sent[0].sent_at, self._last_read) + self.timeout
        if loop.time() >= due:
            self.fail(TimeoutError(f"no reply within {self.timeout:g} s"))
        else:
            self._timer = loop.call_at(due, self._check_timeout)

    def fail(self, exc: BaseException) -> None:
        """Close the connection; every waiter gets ``exc`` (unwritten ones StaleConnection)."""
        self.close()
        sent, queued, backlog = self._sent, self._queued, self._backlog
        self._sent, self._queued, self._backlog = deque(), [], deque()
        self._out, self._got, self._heads, self.inflight = [], [], {}, 0
        self._asked = []
        for write in sent:
            for *_, fut in write.waiters:
                if not fut.done():
                    fut.set_exception(exc)
        unsent = StaleConnection(f"connection closed before the request was sent: {exc}")
        for fut in [*(w[3] for w in queued), *(b[3] for b in backlog)]:
            if not fut.done():
                fut.set_exception(unsent)

    def close(self) -> None:
        """Close the socket (waiters are left to ``fail``)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        sock.close()

    def __del__(self) -> None:
        if self._sock is not None:
            self._sock.close()  # explicit close: no ResourceWarning from a collected loop's conn
