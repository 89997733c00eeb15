"""The fault proxy itself, against a tiny line server that counts what it ran."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.faults.proxy import FaultProxy, Kind


class LineServer:
    """Answers each line ``n`` with ``ok <k>\\n`` (k: lines run so far); counts what it ran."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.ran = 0
        self.reply_size = 0  # pad replies to this many bytes (for cuts)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    _line, buf = buf.split(b"\n", 1)
                    self.ran += 1
                    reply = f"ok {self.ran}".encode().ljust(self.reply_size, b".") + b"\n"
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(2)


@pytest.fixture
def line_server() -> Iterator[LineServer]:
    server = LineServer()
    yield server
    server.stop()


def connect(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection((proxy.host, proxy.port), timeout=2)
    s.settimeout(2)
    return s


def ask(s: socket.socket, line: bytes = b"x") -> bytes:
    s.sendall(line + b"\n")
    out = b""
    while not out.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            return out
        out += chunk
    return out


def test_passes_through(line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]) -> None:
    proxy = fault_proxy(line_server.port)
    with connect(proxy) as s:
        assert ask(s) == b"ok 1\n"
        assert ask(s) == b"ok 2\n"
    assert proxy.connections[0].requests == 2


def test_drop_reply_runs_the_request_and_closes(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    fault = proxy.drop_reply(match=b"incr")
    with connect(proxy) as s:
        assert ask(s, b"get") == b"ok 1\n"  # no match: passes
        assert ask(s, b"incr") == b""  # the connection ends with no reply byte
    assert line_server.ran == 2  # ... and the server did run it
    assert fault.hits == 1
    assert proxy.connections[0].faults == [Kind.DROP_REPLY]
    with connect(proxy) as s:  # count=1: the next connection and request pass
        assert ask(s, b"incr") == b"ok 3\n"


def test_cut_reply_forwards_part_then_closes(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    line_server.reply_size = 100
    proxy = fault_proxy(line_server.port)
    proxy.cut_reply(after=10)
    with connect(proxy) as s:
        assert ask(s) == b"ok 1......"
    assert line_server.ran == 1


def test_delay_holds_the_reply(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    proxy.delay(0.3)
    with connect(proxy) as s:
        start = time.monotonic()
        assert ask(s) == b"ok 1\n"
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        assert ask(s) == b"ok 2\n"  # count=1: the next reply is not held
        assert time.monotonic() - start < 0.25


def test_blackhole_swallows_replies_and_keeps_the_connection(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    proxy.blackhole()
    with connect(proxy) as s:
        s.settimeout(0.3)
        s.sendall(b"x\n")
        with pytest.raises(TimeoutError):
            s.recv(10)
    assert line_server.ran == 1


def test_refuse_resets_new_connections(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    proxy.refuse(count=1)
    # reset at connect or at the first request
    with pytest.raises(ConnectionResetError), connect(proxy) as s:
        ask(s)
    assert proxy.refused == 1
    with connect(proxy) as s:
        assert ask(s) == b"ok 1\n"
    assert line_server.ran == 1


def test_fault_on_one_connection_only(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    with connect(proxy) as first, connect(proxy) as second:
        assert ask(first) == b"ok 1\n"
        assert ask(second) == b"ok 2\n"
        proxy.drop_reply(count=None, connection=1)
        assert ask(first) == b"ok 3\n"
        assert ask(second) == b""
    assert line_server.ran == 4


def test_stop_is_bounded_with_open_connections(line_server: LineServer) -> None:
    proxy = FaultProxy(line_server.port).start()
    with connect(proxy) as s:
        proxy.blackhole()
        s.sendall(b"x\n")
        start = time.monotonic()
        proxy.stop()
        assert time.monotonic() - start < 1.0
        with pytest.raises(OSError):
            s.recv(10) or ask(s)


def test_cut_all_resets_open_connections_before_it_returns(
    line_server: LineServer, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(line_server.port)
    with connect(proxy) as s:
        assert ask(s) == b"ok 1\n"
        proxy.cut_all()
        assert all(c.closed for c in proxy.connections)
        with pytest.raises(ConnectionResetError):
            ask(s)
    assert line_server.ran == 1


def test_upstream_must_be_loopback() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.1"):
        FaultProxy(6379, upstream_host="10.0.0.1")
