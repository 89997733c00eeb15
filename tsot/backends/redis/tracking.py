"""The local cache's invalidation connections: one per Redis node, each read by its own thread.

Each listener opens a dedicated RESP2 connection and sends, in order, ``CLIENT ID``,
``CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <namespace>`` and ``SUBSCRIBE
__redis__:invalidate``. In broadcasting mode the server reports every change of a key under
the prefix, whichever connection read or wrote it, so the sync pool and every event loop's
pipelined connection share one local cache and one listener; and RESP2 pub/sub works whatever
protocol the data connections speak. A ``None`` payload (FLUSHDB, FLUSHALL) empties the cache.

A listener that loses its connection, misses a PING reply, or (Sentinel) finds that the
Sentinels name another primary, marks tracking down (the cache empties and fills nothing), and
connects again with backoff; coming back up empties the cache once more. On a Cluster a
supervisor thread reads ``CLUSTER NODES`` every ``REFRESH`` seconds, keeps one listener per
primary, and empties the cache whenever the primaries or their slots change; when the data
path meets a MOVED or ASK reply or loses a node (``redis.topology``), the cache stops serving at
once and the supervisor reads the topology right away, serving again when every listener of
the topology it found is up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import redis.connection
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry as RedisRetry

from ...logs import limited
from . import topology
from .config import RedisConfig
from .local import LocalStore
from .transport_sync import connection_kwargs, sentinel_pools

CHANNEL: Final = b"__redis__:invalidate"
HEARTBEAT: Final = 0.5
"""Seconds of silence after which a listener PINGs (and, on Sentinel, checks the primary)."""
REFRESH: Final = 1.0
"""Seconds between two readings of a Cluster's topology."""
_BACKOFF: Final = (0.02, 1.0)  # first and longest wait between two connection attempts

_NO_RETRY = RedisRetry(NoBackoff(), 0)


def _listener_kwargs(cfg: RedisConfig) -> dict[str, Any]:
    kwargs = connection_kwargs(cfg, _NO_RETRY)
    kwargs["protocol"] = 2  # pub/sub redirection: the same messages on every server version
    kwargs["health_check_interval"] = 0
    return kwargs


def _connection_class(cfg: RedisConfig, kwargs: dict[str, Any]) -> Any:
    if cfg.unix_path is not None:
        return redis.connection.UnixDomainSocketConnection
    ssl = "ssl_cert_reqs" in kwargs
    return redis.connection.SSLConnection if ssl else redis.connection.Connection


def _nodes(conn: Any) -> str:
    conn.send_command("CLUSTER", "NODES")
    text = conn.read_response()
    return text.decode() if isinstance(text, bytes) else str(text)


class Listener:
    """One node's tracking connection and the daemon thread that reads it."""

    def __init__(
        self,
        hub: Tracking,
        make: Callable[[], Any],
        label: str,
        primary: Callable[[], Any] | None = None,
    ) -> None:
        self._hub = hub
        self._make = make
        self.label = label  # host:port, for logs: never credentials
        self._primary = primary  # Sentinel: the address the Sentinels name now
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"tsot-tracking {label}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        sock = getattr(conn, "_sock", None)
        if sock is not None:  # wakes the reader at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = _BACKOFF[0]
        while not self._stop.is_set():
            conn = self._conn = self._make()
            up = False
            try:
                self._subscribe(conn)
                self._hub.up(self)
                up = True
                delay = _BACKOFF[0]
                self._read(conn)
            except Exception as exc:  # whatever happens, the listener carries on
                if not self._stop.is_set():
                    # a refusal (NOPERM, an unknown command) says why; other errors by type only
                    why = f"{exc}" if isinstance(exc, ResponseError) else type(exc).__name__
                    limited.warning(
                        f"tracking {self.label}",
                        "Redis local cache: invalidation connection to %s lost (%s); serving "
                        "from the server until it is back",
                        self.label,
                        why,
                    )
            finally:
                if up:
                    self._hub.down(self)
                conn.disconnect()
            self._stop.wait(delay)
            delay = min(delay * 2, _BACKOFF[1])

    def _subscribe(self, conn: Any) -> None:
        conn.connect()
        conn.send_command("CLIENT", "ID")
        cid = conn.read_response()
        prefix = self._hub.prefix
        args: list[Any] = ["CLIENT", "TRACKING", "on", "REDIRECT", cid, "BCAST"]
        if prefix:
            args += ["PREFIX", prefix]
        conn.send_command(*args)
        conn.read_response()
        conn.send_command("SUBSCRIBE", CHANNEL)
        conn.read_response()

    def _read(self, conn: Any) -> None:
        timeout = conn.socket_timeout or 2.0
        pinged: float | None = None
        while not self._stop.is_set():
            if conn.can_read(timeout=HEARTBEAT):
                self._handle(conn.read_response())
                pinged = None
                continue
            if pinged is None:
                if self._primary is not None and self._primary() != (conn.host, conn.port):
                    raise OSError("the Sentinels name another primary")
                conn.send_command("PING")
                pinged = time.monotonic()
            elif time.monotonic() - pinged > timeout:
                raise TimeoutError(f"no PING reply in {timeout:g}s")

    def _handle(self, msg: Any) -> None:
        if not isinstance(msg, list) or len(msg) < 3 or msg[0] != b"message":
            return  # a PING reply, or the subscription's confirmation
        keys = msg[2]
        if keys is None:
            self._hub.store.flush()
        else:
            self._hub.store.invalidate(keys)


class Tracking:
    """The listeners of one storage (config and namespace) and the local store they keep."""

    def __init__(self, cfg: RedisConfig, prefix: bytes, store: LocalStore) -> None:
        _hubs.add(self)
        self.cfg = cfg
        self.prefix = prefix
        self.store = store
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener] = {}
        self._up: set[Listener] = set()
        self._closed = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._suspect = False  # (Cluster) the data path saw a move: serve nothing until re-read
        if cfg.topology == "cluster":
            self._seen: Any = None
            self._control: Any = None  # the supervisor's connection for CLUSTER NODES
            self._wake = threading.Event()  # read the topology now, not at the next poll
            topology.watch(cfg.key, self.suspect)
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"tsot-tracking {cfg.name}", daemon=True
            )
            self._supervisor.start()
        else:
            self._add(self._single())

    def _single(self) -> Listener:
        cfg = self.cfg
        if cfg.topology == "sentinel":
            pool = sentinel_pools(cfg, redis.sentinel, _NO_RETRY)[0]
            kwargs = {**pool.connection_kwargs, "protocol": 2, "health_check_interval": 0}
            return Listener(
                self,
                lambda: pool.connection_class(**kwargs),
                f"{cfg.service} via Sentinel",
                pool.get_master_address,
            )
        kwargs = _listener_kwargs(cfg)
        cls = _connection_class(cfg, kwargs)
        label = cfg.unix_path or f"{cfg.hosts[0][0]}:{cfg.hosts[0][1]}"
        return Listener(self, lambda: cls(**kwargs), label)

    def _node(self, host: str, port: int) -> Listener:
        kwargs = {k: v for k, v in _listener_kwargs(self.cfg).items() if k != "db"}
        kwargs.update(host=host, port=port)
        cls = _connection_class(self.cfg, kwargs)
        return Listener(self, lambda: cls(**kwargs), f"{host}:{port}")

    def _add(self, listener: Listener) -> None:
        with self._lock:  # started under the lock, so close() never meets an unstarted one
            if self._closed.is_set():
                return
            self._listeners[listener.label] = listener
            self.store.set_live(False)
            listener.start()

    # -- listener state ------------------------------------------------------------------------

    def up(self, listener: Listener) -> None:
        with self._lock:
            if self._listeners.get(listener.label) is not listener:
                return  # removed (a Cluster node that left) while it connected
            self._up.add(listener)
            self.store.set_live(self._all_up())  # empties the table either way: a fresh start

    def _all_up(self) -> bool:
        """Whether the table may serve: every listener up and, on a Cluster, no move reported
        by the data path that the supervisor has not read yet."""
        if self._closed.is_set() or self._up != set(self._listeners.values()):
            return False
        return not self._suspect

    def down(self, listener: Listener) -> None:
        with self._lock:
            if self._listeners.get(listener.label) is not listener:
                return
            self._up.discard(listener)
            self.store.set_live(False)

    # -- Cluster topology ----------------------------------------------------------------------

    def suspect(self) -> None:
        """The data path met MOVED/ASK or lost a node: stop serving (the table empties and
        keeps nothing) and wake the supervisor. Called from any thread or event loop."""
        with self._lock:
            if self._closed.is_set():
                return
            self._suspect = True
            self.store.set_live(False)
        self._wake.set()

    def _supervise(self) -> None:
        while not self._closed.is_set():
            self._wake.clear()  # before the flag is read: a move reported from now on wakes it
            with self._lock:
                suspect, self._suspect = self._suspect, False
            try:
                self._refresh()
            except Exception as exc:  # the supervisor carries on, whatever happens
                if suspect:
                    with self._lock:
                        self._suspect = True  # still not serving: try again at the next poll
                limited.warning(
                    f"tracking {self.cfg.name}",
                    "Redis local cache: cannot read the Cluster topology of %s (%s)",
                    self.cfg.name,
                    type(exc).__name__,
                )
            else:
                if suspect:
                    with self._lock:  # serving again if every listener is up and no new move
                        if not self.store.live:  # _apply may have restored it (and kept since)
                            self.store.set_live(self._all_up())
            self._wake.wait(REFRESH)

    def _refresh(self) -> None:
        """Read ``CLUSTER NODES`` over the kept control connection, or a new one to a node we
        know (a listener's, or a URL's host)."""
        conn = self._control
        if conn is not None:
            try:
                return self._apply(_nodes(conn))
            except (RedisError, OSError):
                conn.disconnect()
                self._control = None
        kwargs = {k: v for k, v in _listener_kwargs(self.cfg).items() if k != "db"}
        known = [tuple(label.rsplit(":", 1)) for label in self._listeners]
        candidates = dict.fromkeys([(h, int(p)) for h, p in known] + list(self.cfg.hosts))
        last: BaseException | None = None
        for host, port in candidates:
            conn = _connection_class(self.cfg, kwargs)(**{**kwargs, "host": host, "port": port})
            try:
                text = _nodes(conn)
            except (RedisError, OSError) as exc:
                conn.disconnect()
                last = exc
                continue
            self._control = conn
            return self._apply(text)
        raise last or OSError("no Cluster node to ask")

    def _apply(self, text: str) -> None:
        """Keep one listener per healthy primary; any change of primaries or slots empties
        the cache."""
        primaries: dict[str, tuple[str, ...]] = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2].split(","):
                continue
            if "fail" in fields[2].split(",") or "noaddr" in fields[2].split(","):
                continue
            address = fields[1].split("@", 1)[0]
            primaries[address] = (fields[0], *sorted(fields[8:]))
        if primaries == self._seen:
            return
        self._seen = primaries
        with self._lock:
            gone = [lb for lb in self._listeners if lb not in primaries]
            for label in gone:
                old = self._listeners.pop(label)
                self._up.discard(old)
                old.stop()
            if not self._closed.is_set():
                # a new primary's listener is counted before the table may serve again: had it
                # been added after, the table would have been live for a moment without it
                for address in primaries:
                    if address not in self._listeners:
                        host, port = address.rsplit(":", 1)
                        new = self._node(host or self.cfg.hosts[0][0], int(port))
                        self._listeners[new.label] = new
                        new.start()  # its up() waits for this lock
            # empty either way; live again at once if every listener, new ones too, is up
            self.store.set_live(self._all_up())

    def orphan(self) -> None:
        """In a forked child: down for good. The locks are new, since a thread of the parent
        may have held them at the fork."""
        self._lock = threading.Lock()
        self._closed.set()
        self._listeners.clear()
        self._up.clear()
        self.store.orphan()

    def close(self) -> None:
        """Stop every listener (tests; a process normally keeps them until it exits)."""
        self._closed.set()
        with self._lock:
            listeners = list(self._listeners.values())
            self.store.set_live(False)
        for listener in listeners:
            listener.stop()
        for listener in listeners:
            listener.join(5)
        if self._supervisor is not None:
            topology.unwatch(self.cfg.key, self.suspect)
            self._wake.set()
            self._supervisor.join(5)
            if self._control is not None:
                self._control.disconnect()


_hubs: weakref.WeakSet[Tracking] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child the listener threads are gone: every table of the parent stops serving
    (a Storage opened before the fork reads the server; one opened in the child, which is what
    Django and the registries do, gets listeners of its own)."""
    for hub in list(_hubs):
        hub.orphan()


os.register_at_fork(after_in_child=_after_fork)
