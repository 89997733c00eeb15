"""Memcached backend: one or many servers, sync (pymemcache) and asyncio (own meta client).

The memcached rules live in ``memcached_ops`` (operations as I/O-free generators) and
``memcached_proto`` (keys, TTLs, int forms, replies); this module holds the URL and options,
and the two small drivers that run an operation's steps over a transport. docs/backends/
memcached.md describes every quirk and how it is handled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ..config import Location, Option
from ..errors import ConfigurationError, require
from . import memcached_ops as ops
from . import memcached_proto as p
from .base import shared
from .memcached_cluster import Cluster, Policy, ServerSpec, StaleConnection, StepFailed
from .memcached_pipeline import Pipeline

T = TypeVar("T")
DEFAULT_PORT = 11211
MakeOp = Callable[[], ops.Op[Any]]


def _servers(location: Location) -> list[ServerSpec]:
    """``memcached://h1:11211,h2`` (TCP) or ``memcached:///path/mc.sock`` (unix socket)."""
    where = f"memcached URL {location.masked!r}"
    if location.username is not None or location.password is not None:
        raise ConfigurationError(f"{where}: memcached has no user or password")
    if not location.hosts:
        if not location.path.startswith("/") or location.path == "/":
            raise ConfigurationError(
                f"{where} names no server; expected memcached://host:11211[,host2:11211] or "
                "memcached:///path/to/memcached.sock"
            )
        return [ServerSpec(location.path)]
    if location.path not in ("", "/"):
        raise ConfigurationError(
            f"{where} has a path {location.path!r}; a unix socket is written "
            "memcached:///path/to/memcached.sock"
        )
    out: list[ServerSpec] = []
    for host, port in location.hosts:
        if host.startswith("/"):  # memcached://%2Fpath%2Fmc.sock in a server list
            out.append(ServerSpec(host))
        elif not host:
            raise ConfigurationError(f"{where} has an empty host")
        else:
            out.append(ServerSpec((host, port or DEFAULT_PORT)))
    if len(set(out)) != len(out):
        raise ConfigurationError(f"{where} names a server twice")
    return out


class _Location:
    """The process-wide state of one memcached location: cluster, sync pools, async conns."""

    def __init__(self, servers: list[ServerSpec], options: Mapping[str, Any]) -> None:
        from .memcached_aio import AsyncTransport

        require("pymemcache", "pymemcache", "memcached", "the memcached backend")
        from .memcached_sync import SyncTransport

        self.cluster = Cluster(servers, options["dead_timeout"])
        self.policy = Policy(self.cluster, options["retries"], options["timeout"])
        self.sync = SyncTransport(
            self.cluster, options["connect_timeout"], options["timeout"], options["max_pool_size"]
        )
        self.aio = AsyncTransport(
            self.cluster, options["connect_timeout"], options["timeout"], options["max_inflight"]
        )


def _shared_location(location: Location, options: Mapping[str, Any]) -> _Location:
    servers = _servers(location)
    key = ("memcached", tuple(servers), tuple(sorted(options.items())))
    return shared(key, lambda: _Location(servers, options))


class _Base:
    __slots__ = ("loc", "ns")

    def __init__(self, loc: _Location, prefix: bytes) -> None:
        self.loc = loc
        self.ns = ops.Namespace(loc.cluster, prefix)


class MemcachedSync(_Base):
    """The Backend protocol over the sync transport."""

    __slots__ = ()

    def _run(self, make: MakeOp, idempotent: bool = True, routed: bool = True) -> Any:
        transport, policy = self.loc.sync, self.loc.policy
        attempt = 0
        while True:
            op = make()
            try:
                step = next(op)
                while True:
                    step = op.send(transport.execute(step))
            except StopIteration as done:
                return done.value
            except StepFailed as failed:
                policy.again(failed, attempt, idempotent, routed)
                attempt += 1

    def get(self, key: bytes) -> bytes | None:
        return self._run(lambda: ops.get_many(self.ns, (key,)))[0]  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return self._run(lambda: ops.get_many(self.ns, keys))  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._run(lambda: ops.set_many(self.ns, ((key, value),), ttl_ms))

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        self._run(lambda: ops.set_many(self.ns, items, ttl_ms))

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: ops.set_many(self.ns, ((key, value),), ttl_ms, b" ME"), False)[0]  # type: ignore[no-any-return]

    def delete(self, key: bytes) -> bool:
        return self._run(lambda: ops.delete_many(self.ns, (key,)), False) == 1  # type: ignore[no-any-return]

    def delete_many(self, keys: Sequence[bytes]) -> int:
        return self._run(lambda: ops.delete_many(self.ns, keys), False)  # type: ignore[no-any-return]

    def exists(self, key: bytes) -> bool:
        return self._run(lambda: ops.exists(self.ns, key))  # type: ignore[no-any-return]

    def ttl(self, key: bytes) -> int:
        return self._run(lambda: ops.ttl(self.ns, key))  # type: ignore[no-any-return]

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: ops.expire(self.ns, key, ttl_ms))  # type: ignore[no-any-return]

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return self._run(lambda: ops.incr(self.ns, key, delta, create), False)  # type: ignore[no-any-return]

    def clear(self, prefix: bytes) -> None:
        self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    def stats(self) -> dict[str, int | None]:
        return self._run(lambda: ops.stats(self.ns), True, False)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to release: the pools are shared by every Storage on this location."""


class MemcachedAsync(_Base):
    """The AsyncBackend protocol over the asyncio transport (the same operations).

    Hot single-key operations first try one command on the server's open connection behind
    the namespace generation check (``_ready``); anything unusual (no connection yet, an
    unknown generation or item size, a generation that moved) runs the full operation.
    """

    __slots__ = ()

    async def _run(
        self, make: MakeOp, idempotent: bool = True, routed: bool = True, attempt: int = 0
    ) -> Any:
        transport, policy = self.loc.aio, self.loc.policy
        while True:
            op = make()
            try:
                step = next(op)
                while True:
                    step = op.send(await transport.execute(step))
            except StopIteration as done:
                return done.value
            except StepFailed as failed:
                policy.again(failed, attempt, idempotent, routed)
                attempt += 1

    def _ready(self, key: bytes, limits: bool = False) -> tuple[int, int, Pipeline] | None:
        """``(server, generation, connection)`` when one command can do, else None."""
        ns = self.ns
        cluster = ns.cluster
        s = 0 if len(cluster.servers) == 1 else cluster.route(key, cluster.live())
        gen = cluster.gens.get((s, ns.prefix))
        if gen is None or (limits and s not in cluster.limits):
            return None
        conn = self.loc.aio.ready(s)
        return None if conn is None else (s, gen, conn)

    def _broken(self, s: int, exc: OSError, idempotent: bool) -> int:
        """After a one-command attempt failed: raise, or the attempt the full operation is."""
        sent = not isinstance(exc, StaleConnection)
        self.loc.policy.again(StepFailed({s: (exc, sent)}), 0, idempotent, True)
        return 1

    async def get(self, key: bytes) -> bytes | None:
        ns, ready, attempt = self.ns, self._ready(key), 0
        if ready is not None:
            s, gen, conn = ready
            try:
                head, r = await conn.request(p.mg(ns.wire(key, gen), b"v"), 1, ns.gen_cmd)
            except OSError as exc:
                attempt = self._broken(s, exc, True)
            else:
                if ns.current(s, head, gen):
                    return ops.value(r, ns.cluster.names[s])
        return (await self._run(lambda: ops.get_many(ns, (key,)), attempt=attempt))[0]  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return await self._run(lambda: ops.get_many(self.ns, keys))  # type: ignore[no-any-return]

    async def _store(self, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes) -> bool:
        ns, ready, attempt = self.ns, self._ready(key, limits=True), 0
        if ready is not None:
            s, gen, conn = ready
            wk = ns.wire(key, gen)
            flags = b"T%d%b" % (p.exptime(ttl_ms), mode)
            cmd = p.ms(wk, ns.fit(s, key, wk, p.to_wire(value)), flags)
            try:
                head, r = await conn.request(cmd, 1, ns.gen_cmd)
            except OSError as exc:
                attempt = self._broken(s, exc, not mode)
            else:
                if ns.current(s, head, gen):
                    return ops.stored(r, ns.cluster.names[s], key)
        made = await self._run(
            lambda: ops.set_many(ns, ((key, value),), ttl_ms, mode), not mode, attempt=attempt
        )
        return made[0]  # type: ignore[no-any-return]

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        await self._store(key, value, ttl_ms, b"")

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        await self._run(lambda: ops.set_many(self.ns, items, ttl_ms))

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._store(key, value, ttl_ms, b" ME")

    async def delete(self, key: bytes) -> bool:
        ns, ready, attempt = self.ns, self._ready(key), 0
        if ready is not None:
            s, gen, conn = ready
            try:
                head, r = await conn.request(p.md(ns.wire(key, gen)), 1, ns.gen_cmd)
            except OSError as exc:
                attempt = self._broken(s, exc, False)
            else:
                if ns.current(s, head, gen):
                    return ops.deleted(r, ns.cluster.names[s])
        return await self._run(lambda: ops.delete_many(ns, (key,)), False, attempt=attempt) == 1  # type: ignore[no-any-return]

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._run(lambda: ops.delete_many(self.ns, keys), False)  # type: ignore[no-any-return]

    async def exists(self, key: bytes) -> bool:
        return await self._run(lambda: ops.exists(self.ns, key))  # type: ignore[no-any-return]

    async def ttl(self, key: bytes) -> int:
        return await self._run(lambda: ops.ttl(self.ns, key))  # type: ignore[no-any-return]

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return await self._run(lambda: ops.expire(self.ns, key, ttl_ms))  # type: ignore[no-any-return]

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        ns, flags, attempt = self.ns, ops.native_incr(delta, create), 0
        ready = self._ready(key) if flags is not None else None
        if ready is not None and flags is not None:
            s, gen, conn = ready
            try:
                head, r = await conn.request(p.ma(ns.wire(key, gen), flags), 1, ns.gen_cmd)
            except OSError as exc:
                attempt = self._broken(s, exc, False)
            else:
                if ns.current(s, head, gen):
                    if r.code == b"VA":
                        n = int(p.from_wire(r.value or b"0"))
                        if n >= p.NATIVE_MAX:
                            await self._run(lambda: ops.widen(ns, key), False)
                        return n
                    if r.code == b"NF":
                        return None
                    # refused (not a plain int on the server) or failed: nothing changed
        return await self._run(lambda: ops.incr(ns, key, delta, create), False, attempt=attempt)  # type: ignore[no-any-return]

    async def clear(self, prefix: bytes) -> None:
        await self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    async def stats(self) -> dict[str, int | None]:
        return await self._run(lambda: ops.stats(self.ns), True, False)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Nothing to release: connections are shared per event loop and location."""


class MemcachedBackend:
    """``memcached://host:11211[,host2:11211...]`` or ``memcached:///path/to/memcached.sock``."""

    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option(
            "connect_timeout",
            float,
            1.0,
            "Seconds to wait for a connection to a server (none = wait forever).",
            minimum=0.001,
            nullable=True,
        ),
        Option(
            "timeout",
            float,
            1.0,
            "Seconds to wait for a server's reply (none = wait forever).",
            minimum=0.001,
            nullable=True,
        ),
        Option(
            "max_pool_size",
            int,
            64,
            "Most sync connections per server (asyncio shares one per server and loop).",
            minimum=1,
        ),
        Option(
            "max_inflight",
            int,
            1024,
            "Most commands written and unanswered on one asyncio connection; more wait.",
            minimum=1,
        ),
        Option(
            "retries",
            int,
            1,
            "Attempts on a new connection after a broken one, before the server is skipped.",
            minimum=0,
        ),
        Option(
            "dead_timeout",
            float,
            10.0,
            "Seconds a failed server is skipped (its keys go to the other servers).",
            minimum=0,
        ),
    )

    @classmethod
    def open(cls, location: Location, options: Mapping[str, Any], prefix: bytes) -> MemcachedSync:
        return MemcachedSync(_shared_location(location, options), prefix)

    @classmethod
    def open_async(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> MemcachedAsync:
        return MemcachedAsync(_shared_location(location, options), prefix)
