"""The synchronous memcached transport: pymemcache's connections and pools, meta commands.

pymemcache connects (TCP or unix socket, connect and read timeouts, TCP_NODELAY) and pools the
connections per server; its command API speaks the text protocol, which cannot put a
namespace-generation check in the same request as a write, nor report a key's TTL, so each
step is sent as meta commands over its sockets and parsed by ``memcached_proto``.
"""

from __future__ import annotations

from typing import Any

from pymemcache.client.base import Client, PooledClient

from ..errors import BackendUnavailable
from .memcached_cluster import Address, Cluster, StaleConnection, StepFailed
from .memcached_ops import Replies, Step
from .memcached_proto import Reply, ReplyParser

_RECV = 256 * 1024


class MetaClient(Client):  # type: ignore[misc]
    """A pymemcache connection that sends raw meta commands and parses their replies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser = ReplyParser()

    def send(self, data: bytes) -> None:
        if self.sock is None:
            self._connect()
            self.parser = ReplyParser()
        self.sock.sendall(data)

    def receive(self, count: int) -> list[Reply]:
        parser, sock = self.parser, self.sock
        out: list[Reply] = []
        received = False
        while len(out) < count:
            reply = parser.next()
            if reply is None:
                try:
                    chunk = sock.recv(_RECV)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    if received:
                        raise ConnectionResetError("the server closed the connection")
                    raise StaleConnection("the server closed the connection")
                received = True
                parser.feed(chunk)
            else:
                out.append(reply)
        return out


class SyncTransport:
    """One pymemcache ``PooledClient`` per server; a step goes out as one request per server,
    all sent before any reply is read (the servers work in parallel)."""

    def __init__(
        self,
        cluster: Cluster,
        connect_timeout: float | None,
        timeout: float | None,
        max_pool_size: int,
    ) -> None:
        self.cluster = cluster
        self.max_pool_size = max_pool_size
        self.pools = [
            self._pool(s.address, connect_timeout, timeout, max_pool_size) for s in cluster.servers
        ]

    @staticmethod
    def _pool(
        address: Address, connect_timeout: float | None, timeout: float | None, size: int
    ) -> Any:
        pool = PooledClient(
            address,
            connect_timeout=connect_timeout,
            timeout=timeout,
            no_delay=True,
            max_pool_size=size,
        )
        pool.client_class = MetaClient
        return pool

    def execute(self, step: Step) -> Replies:
        """Send each server its commands, then read every reply; StepFailed names failures."""
        cluster = self.cluster
        held: list[tuple[int, Any, int]] = []
        failures: dict[int, tuple[BaseException, bool]] = {}
        out: Replies = {}
        for s, cmds in step.items():
            if cluster.is_dead(s):
                failures[s] = (cluster.dead_error(s), False)
                continue
            objects = self.pools[s].client_pool
            try:
                conn = objects.get()
            except RuntimeError:  # pymemcache's pool does not wait: it refuses
                failures[s] = (self._busy(s), False)
                continue
            try:
                conn.send(b"".join(cmds))
            except Exception as exc:
                objects.destroy(conn)
                conn.close()
                failures[s] = (exc, False)
                continue
            held.append((s, conn, len(cmds)))
        for s, conn, count in held:
            objects = self.pools[s].client_pool
            try:
                out[s] = conn.receive(count)
            except Exception as exc:
                objects.destroy(conn)
                conn.close()
                failures[s] = (exc, not isinstance(exc, StaleConnection))
                continue
            objects.release(conn)
        if failures:
            raise StepFailed(failures)
        return out

    def _busy(self, server: int) -> BackendUnavailable:
        return BackendUnavailable(
            f"all {self.max_pool_size} connections to memcached {self.cluster.names[server]} "
            "are in use (max_pool_size)"
        )

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
