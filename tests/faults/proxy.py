"""A TCP proxy that injects faults between a client and a real server (protocol-agnostic).

``FaultProxy(upstream_port)`` listens on a free 127.0.0.1 port and relays every connection to
``127.0.0.1:upstream_port``. Faults are armed on the proxy and consumed by the *requests* that
follow: a request is one chunk the proxy reads from a client (a client that writes one command
and waits for its reply sends one chunk). A fault applies to the reply bytes that come back after
the request that took it:

- ``drop_reply``: the request reaches the server; the proxy waits for the first reply byte (proof
  that the server ran it), swallows it and closes both sides. The client sees the connection end
  with no reply: the outcome is unknown to it, the server has applied the command.
- ``cut_reply(after=n)``: the first ``n`` reply bytes are forwarded, then both sides close.
- ``delay(seconds)``: each reply chunk is held ``seconds`` before it is forwarded.
- ``blackhole``: the request reaches the server, replies are swallowed and the connection stays
  open (a server that stopped answering: the client waits for its read timeout).
- ``refuse(count)``: the next ``count`` new connections (all, if None) are accepted and reset at
  once, before any byte is relayed.

``match`` limits a fault to requests containing that byte string (for example the command name),
so handshake traffic a client sends on connect does not consume it; ``count`` is how many requests
take it (None: every matching request until ``clear()``). ``connection`` (an index into
``connections``, in accept order) limits a fault to one client connection.

Everything runs in daemon threads with short select timeouts; ``stop()`` closes every socket and
joins every thread within a bounded time. Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import enum
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_TICK = 0.05  # how often blocked threads look at the stop flag (seconds)
_CHUNK = 65536


class Kind(enum.Enum):
    DROP_REPLY = "drop_reply"
    CUT_REPLY = "cut_reply"
    DELAY = "delay"
    BLACKHOLE = "blackhole"


@dataclass
class Fault:
    """One armed fault; ``hits`` counts the requests that took it."""

    kind: Kind
    count: int | None = 1
    match: bytes | None = None
    connection: int | None = None
    after: int = 0  # CUT_REPLY: reply bytes forwarded before the cut
    seconds: float = 0.0  # DELAY: hold time per reply chunk
    hits: int = 0

    def wants(self, request: bytes, conn_index: int) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        if self.connection is not None and self.connection != conn_index:
            return False
        return self.match is None or self.match in request


@dataclass
class Connection:
    """One relayed client connection (for assertions: what passed and what the proxy did)."""

    index: int
    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    faults: list[Kind] = field(default_factory=list)
    closed: bool = False
    killed: bool = False  # cut_all(): end with an RST


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the peer sees ECONNRESET, not an orderly EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """A fault-injecting TCP relay in front of ``upstream_host:upstream_port`` (see module doc)."""

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", max_connections: int = 256
    ) -> None:
        if upstream_host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"upstream_host must be a loopback address, not {upstream_host!r}")
        self.upstream = (upstream_host, upstream_port)
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # notified when a relay has closed
        self._faults: list[Fault] = []
        self._refuse: int | None = 0  # connections still to refuse; None: all
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._relays: dict[int, tuple[Connection, socket.socket, socket.socket]] = {}
        self.connections: list[Connection] = []
        self.refused = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(_TICK)
        self.port: int = self._listener.getsockname()[1]
        self.host = "127.0.0.1"

    # -- arming faults ------------------------------------------------------------------------

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop_reply(
        self, count: int | None = 1, match: bytes | None = None, connection: int | None = None
    ) -> Fault:
        return self._arm(Fault(Kind.DROP_REPLY, count, match, connection))

    def cut_reply(
        self,
        after: int,
        count: int | None = 1,
        match: bytes | None = None,
        connection: int | None = None,
    ) -> Fault:
        if after < 0:
            raise ValueError(f"after must be >= 0, not {after}")
        return self._arm(Fault(Kind.CUT_REPLY, count, match, connection, after=after))

    def delay(
        self,
        seconds: float,
        count: int | None = 1,
        match: bytes | None = None,
        connection: int | None = None,
    ) -> Fault:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds}")
        return self._arm(Fault(Kind.DELAY, count, match, connection, seconds=seconds))

    def blackhole(
        self, count: int | None = None, match: bytes | None = None, connection: int | None = None
    ) -> Fault:
        return self._arm(Fault(Kind.BLACKHOLE, count, match, connection))

    def refuse(self, count: int | None = None) -> None:
        """Reset the next ``count`` new connections (None: every one until ``clear()``)."""
        with self._lock:
            self._refuse = count

    def clear(self) -> None:
        """Disarm every fault (faults already taken by a request still finish their reply)."""
        with self._lock:
            self._faults.clear()
            self._refuse = 0

    def cut_all(self) -> None:
        """Reset every open relayed connection now (the next request needs a new one).

        The relay threads close their own sockets: here they are only woken (``shutdown`` of
        the reading side ends a blocked ``recv`` or ``select``; ``close`` from another thread
        would not)."""
        relays = self._kill_relays(socket.SHUT_RD)
        with self._ended:  # return once they are reset: a request sent next needs a new one
            self._ended.wait_for(lambda: all(c.closed for c, _, _ in relays), timeout=5.0)

    def _kill_relays(self, how: int) -> list[tuple[Connection, socket.socket, socket.socket]]:
        """Mark every open relay killed and wake its thread (``shutdown(how)`` of both sockets);
        the relays, as they were."""
        with self._lock:
            relays = list(self._relays.values())
        for conn, client, server in relays:
            conn.killed = True
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(how)
        return relays

    def _take(self, request: bytes, conn: Connection) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.wants(request, conn.index):
                    fault.hits += 1
                    conn.faults.append(fault.kind)
                    return fault
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._spawn(self._accept_loop)
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every relayed socket; join the threads (bounded)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._kill_relays(socket.SHUT_RDWR)  # RDWR also wakes a send blocked on a full buffer
        # join until none is left: a connection accepted while stop() ran may have spawned its
        # relay after the list above was taken (it sees the stop flag within one tick)
        deadline = time.monotonic() + timeout
        while True:
            alive = [t for t in list(self._threads) if t.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0:
                break
            alive[0].join(min(left, _TICK))
        if alive:
            names = [t.name for t in alive]
            raise RuntimeError(f"proxy threads still running after {timeout}s: {names}")

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(
            target=target,
            args=args,
            daemon=True,  # type: ignore[arg-type]
            name=f"fault-proxy-{self.port}-{len(self._threads)}",
        )
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():
                _reset(client)
                return
            with self._lock:
                refuse = self._refuse is None or self._refuse > 0
                if refuse and self._refuse is not None:
                    self._refuse -= 1
                full = (
                    len(self.connections) - sum(c.closed for c in self.connections)
                    >= self.max_connections
                )
            if refuse or full:
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:
                _reset(client)  # upstream down: the client sees what it would see without us
                continue
            conn = Connection(len(self.connections))
            with self._lock:
                self.connections.append(conn)
                self._relays[conn.index] = (conn, client, server)
            self._spawn(self._relay, client, server, conn)

    # -- one connection -----------------------------------------------------------------------

    def _relay(self, client: socket.socket, server: socket.socket, conn: Connection) -> None:
        current: Fault | None = None
        forwarded = 0  # reply bytes forwarded under the current fault
        replied = False  # a reply byte came back since the current fault was taken
        rst = True  # how the client side ends: RST, or FIN after a drop or a cut
        sel = selectors.DefaultSelector()
        try:
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(True)
                sock.settimeout(None)
            sel.register(client, selectors.EVENT_READ, "up")
            sel.register(server, selectors.EVENT_READ, "down")
            while not self._stop.is_set() and not conn.killed:
                for key, _ in sel.select(_TICK):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        rst = False  # an orderly end on one side ends the other the same way
                        return
                    if key.data == "up":
                        conn.requests += 1
                        conn.bytes_up += len(data)
                        taken = self._take(data, conn)
                        if taken is not None:
                            current, forwarded, replied = taken, 0, False
                        elif replied:
                            current = None  # the faulted reply began: later requests pass
                        server.sendall(data)
                        continue
                    # a reply chunk
                    replied = True
                    if current is None:
                        client.sendall(data)
                        conn.bytes_down += len(data)
                    elif current.kind is Kind.DROP_REPLY:
                        rst = False
                        return  # the server ran it; the client gets no byte of the reply
                    elif current.kind is Kind.BLACKHOLE:
                        continue
                    elif current.kind is Kind.CUT_REPLY:
                        part = data[: max(0, current.after - forwarded)]
                        if part:
                            client.sendall(part)
                            conn.bytes_down += len(part)
                            forwarded += len(part)
                        if forwarded >= current.after:
                            rst = False
                            return
                    else:  # DELAY
                        if self._stop.wait(current.seconds):
                            return
                        client.sendall(data)
                        conn.bytes_down += len(data)
        except OSError:
            return
        finally:
            sel.close()
            if rst or conn.killed or self._stop.is_set():
                _reset(client)
            else:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    client.close()
            _reset(server)
            with self._ended:
                conn.closed = True
                self._relays.pop(conn.index, None)
                self._ended.notify_all()
