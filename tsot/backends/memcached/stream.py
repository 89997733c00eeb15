"""Interleaved write and read of requests too big for the socket buffers (sync transport).

Writing a whole request before reading any reply can block for ever: memcached answers
commands as it reads them, and a connection whose replies it cannot write (the client's
receive buffer and the server's send buffer are full, because the client is still writing
and not reading) is not read any further. The client's ``sendall`` then waits for room that
never comes, until the read timeout. Measured on Linux loopback with 100-byte values: a
``get_many`` of 150,000-250,000 keys (4-7 MB of ``mg`` commands, 16-27 MB of replies) stalls
once about 5 MB of replies are buffered (client receive buffer about 2.3 MB, server send
buffer about 2.8 MB, both autotuned) while 2.8 MB of the request are still unsent; 100,000
keys (3 MB, which the client's send buffer takes whole) never stall. The threshold moves with
the kernel's buffer autotuning (``net.ipv4.tcp_rmem`` / ``tcp_wmem``) and with key and value
sizes, not with memcached's thread count (one connection is served by one worker thread).

So the transport never blocks in a write while replies are owed: it writes what the socket
takes at once (``send``, not ``sendall``) and, when a request did not fit, hands every
connection of the step to ``stream``, which writes and reads them together on one selector,
so the server can always make progress whatever the batch size.
"""

from __future__ import annotations

import select
import selectors
import socket
import time
from typing import Final

from .protocol import Reply, ReplyParser

_RECV: Final = 256 * 1024
_SEND: Final = 256 * 1024
_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)


class Job:
    """One connection's part of a step: the request bytes not yet written, the replies read."""

    __slots__ = ("count", "error", "out", "parser", "rest", "sock")

    def __init__(
        self, sock: socket.socket, parser: ReplyParser, rest: memoryview, count: int
    ) -> None:
        self.sock = sock
        self.parser = parser
        self.rest = rest
        self.count = count
        self.out: list[Reply] = []
        self.error: BaseException | None = None


def stream(jobs: list[Job], timeout: float | None) -> None:
    """Write each job's ``rest`` and read its ``count`` replies, all interleaved.

    A job that makes no progress (no byte written or read) for ``timeout`` seconds fails
    with TimeoutError; a closed or broken connection with ConnectionResetError / OSError.
    Failures are left in ``job.error``; the other jobs go on.
    """
    sel = selectors.DefaultSelector()
    deadlines: dict[Job, float] = {}
    now = time.monotonic()
    try:
        for job in jobs:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if job.rest else 0)
            sel.register(job.sock, events, job)
            deadlines[job] = now + (timeout if timeout is not None else 0.0)
        while deadlines:
            wait = None
            if timeout is not None:
                wait = max(0.0, min(deadlines.values()) - time.monotonic())
            for key, events in sel.select(wait):
                job = key.data
                try:
                    if _step(sel, job, events):
                        del deadlines[job]
                        sel.unregister(job.sock)
                    elif timeout is not None:
                        deadlines[job] = time.monotonic() + timeout
                except OSError as exc:
                    job.error = exc
                    del deadlines[job]
                    sel.unregister(job.sock)
            if timeout is not None:
                now = time.monotonic()
                for job, due in list(deadlines.items()):
                    if due <= now:
                        job.error = TimeoutError(f"no reply within {timeout:g} s")
                        del deadlines[job]
                        sel.unregister(job.sock)
    finally:
        sel.close()


def _step(sel: selectors.BaseSelector, job: Job, events: int) -> bool:
    """Write and read what the socket allows now; True once every reply is read."""
    sock = job.sock
    if events & selectors.EVENT_WRITE and job.rest:
        try:  # never waits, whatever the socket's mode (memcached.transport_sync.kernel_timeouts)
            sent = sock.send(job.rest[:_SEND], _DONTWAIT)
        except BlockingIOError:
            sent = 0
        job.rest = job.rest[sent:]
        if not job.rest:
            sel.modify(sock, selectors.EVENT_READ, job)
    if events & selectors.EVENT_READ:
        chunk = sock.recv(_RECV)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        job.parser.feed(chunk)
        job.parser.take(job.count - len(job.out), job.out)
    return len(job.out) >= job.count and not job.rest


def readable_now(sock: socket.socket) -> bool:
    """True if a read would not block now (bytes or an end of stream are waiting); poll, not
    select, where there is one: select cannot watch descriptors past FD_SETSIZE (1024)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select((sock,), (), (), 0)[0])
