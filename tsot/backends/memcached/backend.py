"""Memcached backend: one or many servers, sync and asyncio, over meta commands.

The memcached rules live in ``memcached.commands`` (operations as I/O-free generators),
``memcached.hot`` (the one-request fast paths) and ``memcached.protocol`` (keys, TTLs, int forms,
replies); this module holds the URL and options, and the two small drivers that run them over
a transport. docs/backends/memcached.md describes every quirk and how it is handled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from time import monotonic
from typing import Any, ClassVar, TypeVar

from ...config import Location, Option
from ...errors import ConfigurationError, NotSupportedError, require
from ..base import shared
from . import cas
from . import commands as ops
from .cluster import Cluster, Policy, ServerSpec, StepFailed
from .hot import ADD, REPLACE, Got, Handover, Hot, Plan

T = TypeVar("T")
DEFAULT_PORT = 11211


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
        from .transport_async import AsyncTransport

        require("pymemcache", "pymemcache", "memcached", "the memcached backend")
        from .transport_sync import SyncTransport

        self.cluster = Cluster(servers, options["dead_timeout"])
        self.policy = Policy(self.cluster, options["retries"], options["timeout"])
        self.sync = SyncTransport(
            self.cluster,
            options["connect_timeout"],
            options["timeout"],
            options["max_pool_size"],
            pool_timeout=(
                options["timeout"] if options["pool_timeout"] is None else options["pool_timeout"]
            ),
        )
        self.aio = AsyncTransport(
            self.cluster, options["connect_timeout"], options["timeout"], options["max_inflight"]
        )


def _shared_location(location: Location, options: Mapping[str, Any]) -> _Location:
    servers = _servers(location)
    key = ("memcached", tuple(servers), tuple(sorted(options.items())))
    return shared(key, lambda: _Location(servers, options))


NO_SCAN = (
    "memcached cannot list its keys, so keys(), iter_keys() and delete_pattern() are not "
    "available on it; use clear() to drop the whole namespace, keep the keys you need to find "
    "under one key (or in a versioned namespace), or use Redis, memory or RocksDB"
)


class _Base(Hot):
    __slots__ = ("loc",)
    EXPIRY_STEP_MS: ClassVar[int] = 1000
    """memcached ends a value on a tick of its whole-second clock: up to 1 s before its TTL
    (read-through entries are kept that much longer; tsot.readthrough.expiry_step_ms)."""

    def __init__(self, loc: _Location, prefix: bytes) -> None:
        super().__init__(ops.Namespace(loc.cluster, prefix), loc.policy)
        self.loc = loc

    @staticmethod
    def _no_scan() -> NotSupportedError:
        return NotSupportedError(NO_SCAN)


class MemcachedSync(_Base):
    """The Backend protocol over the sync transport.

    Hot operations first try their fast path (``memcached.hot``): one request on an idle
    pooled connection; anything unusual runs the full operation.
    """

    __slots__ = ()

    def _run(
        self, make: Callable[[], ops.Op[T]], idempotent: bool = True, routed: bool = True
    ) -> T:
        return self._drive(Handover(make, 0, idempotent), routed)

    def _drive(self, full: Handover[T], routed: bool = True) -> T:
        """Run a full operation to its end (``ops.resume``), retried as the policy allows."""
        op = self.policy.retried(full.make, full.idempotent, routed, full.attempt)
        execute, fresh = self.loc.sync.execute, not full.idempotent
        step = ops.resume(op, None)
        while not isinstance(step, ops.Done):
            try:
                got: ops.Replies | StepFailed = execute(step, fresh)
            except StepFailed as failed:
                got = failed
            step = ops.resume(op, got)
        return step.value

    def _hot(self, plan: Plan | Handover[T], done: Callable[[Plan, Got], T | Handover[T]]) -> T:
        """A hot call: its one request and ``done``, or the full operation they hand over to."""
        out = plan if isinstance(plan, Handover) else done(plan, self._one(plan))
        return self._drive(out) if isinstance(out, Handover) else out

    def _one(self, plan: Plan) -> Got:
        """The replies to a plan's request on an idle connection, or the attempt the full
        operation is: 0 when no connection is idle, 1 after a broken one."""
        s, request, idempotent, _, _ = plan
        if s < 0:
            try:
                return self.loc.sync.execute(request)
            except StepFailed as failed:
                return self.failed(failed, idempotent)
        try:
            rs = self.loc.sync.one(s, self.gen_cmd + request, 2, not idempotent)
        except Exception as exc:  # as ``execute`` would: translated by the retry policy
            return self.broken(s, exc, idempotent)
        return 0 if rs is None else rs

    def get(self, key: bytes) -> bytes | None:
        return self._hot(self.get_plan(key), self.get_done)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return self._hot(self.get_many_plan(keys), self.get_many_done)

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._hot(self.store_plan(key, value, ttl_ms, b""), self.store_done)

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        self._hot(self.set_many_plan(items, ttl_ms), self.set_many_done)

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._hot(self.store_plan(key, value, ttl_ms, ADD), self.store_done)

    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._hot(self.store_plan(key, value, ttl_ms, REPLACE), self.store_done)

    def delete(self, key: bytes) -> bool:
        return self._hot(self.delete_plan(key), self.delete_done)

    def delete_many(self, keys: Sequence[bytes]) -> int:
        return self._run(lambda: ops.delete_many(self.ns, keys))

    def exists(self, key: bytes) -> bool:
        return self._run(lambda: ops.exists(self.ns, key))

    def ttl(self, key: bytes) -> int:
        return self._run(lambda: ops.ttl(self.ns, key))

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: ops.expire(self.ns, key, ttl_ms))

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return self._hot(self.incr_plan(key, delta, create), self.incr_done)

    def clear(self, prefix: bytes) -> None:
        self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    def stats(self) -> dict[str, int | None]:
        return self._run(lambda: ops.stats(self.ns), True, False)

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        raise self._no_scan()

    def delete_if(self, key: bytes, value: bytes) -> bool:
        return self._run(lambda: cas.delete_if(self.ns, key, value), False)

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: cas.expire_if(self.ns, key, value, ttl_ms), False)

    def close(self) -> None:
        """Nothing to release: the pools are shared by every Storage on this location."""


class MemcachedAsync(_Base):
    """The AsyncBackend protocol over the asyncio transport (the same operations).

    Hot operations first try their fast path (``memcached.hot``): one command on the server's
    open connection behind the namespace generation check; anything unusual (no connection
    yet, an unknown generation or item size, a generation that moved) runs the full operation.
    A full operation's TTLs count from the call: a step sent a second or more after it has
    those seconds taken off (``asked``, the ``monotonic()`` of the call).
    """

    __slots__ = ()

    async def _run(
        self,
        make: Callable[[], ops.Op[T]],
        idempotent: bool = True,
        routed: bool = True,
        timed: bool = False,
    ) -> T:
        asked = monotonic() if timed else 0.0
        return await self._drive(Handover(make, 0, idempotent), asked, routed)

    async def _drive(self, full: Handover[T], asked: float, routed: bool = True) -> T:
        """Run a full operation to its end (``ops.resume``), retried as the policy allows."""
        op = self.policy.retried(full.make, full.idempotent, routed, full.attempt)
        execute, fresh = self.loc.aio.execute, not full.idempotent
        step = ops.resume(op, None)
        while not isinstance(step, ops.Done):
            try:
                got: ops.Replies | StepFailed = await execute(step, fresh, asked)
            except StepFailed as failed:
                got = failed
            step = ops.resume(op, got)
        return step.value

    async def _hot(
        self, plan: Plan | Handover[T], done: Callable[[Plan, Got], T | Handover[T]]
    ) -> T:
        """A hot call: its one request and ``done``, or the full operation they hand over to."""
        asked = monotonic()
        out = plan if isinstance(plan, Handover) else done(plan, await self._one(plan))
        if isinstance(out, Handover):
            return await self._drive(out, asked if out.timed else 0.0)
        return out

    async def _one(self, plan: Plan) -> Got:
        """The replies to a plan's request on the open connection, or the attempt the full
        operation is: 0 when no connection is open, 1 after a broken one."""
        s, request, idempotent, _, _ = plan
        if s < 0:
            try:
                return await self.loc.aio.execute(request)
            except StepFailed as failed:
                return self.failed(failed, idempotent)
        conn = self.loc.aio.ready(s)
        if conn is None:
            return 0
        try:
            rs = await conn.request(request, 1, self.gen_cmd, not idempotent)
        except OSError as exc:
            return self.broken(s, exc, idempotent)
        if self.cluster._dead:
            self.cluster.mark_alive(s)
        return rs

    async def get(self, key: bytes) -> bytes | None:
        return await self._hot(self.get_plan(key), self.get_done)

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return await self._hot(self.get_many_plan(keys), self.get_many_done)

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        await self._hot(self.store_plan(key, value, ttl_ms, b""), self.store_done)

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        await self._hot(self.set_many_plan(items, ttl_ms), self.set_many_done)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._hot(self.store_plan(key, value, ttl_ms, ADD), self.store_done)

    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._hot(self.store_plan(key, value, ttl_ms, REPLACE), self.store_done)

    async def delete(self, key: bytes) -> bool:
        return await self._hot(self.delete_plan(key), self.delete_done)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._run(lambda: ops.delete_many(self.ns, keys))

    async def exists(self, key: bytes) -> bool:
        return await self._run(lambda: ops.exists(self.ns, key))

    async def ttl(self, key: bytes) -> int:
        return await self._run(lambda: ops.ttl(self.ns, key))

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return await self._run(lambda: ops.expire(self.ns, key, ttl_ms), timed=ttl_ms is not None)

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return await self._hot(self.incr_plan(key, delta, create), self.incr_done)

    async def clear(self, prefix: bytes) -> None:
        await self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    async def stats(self) -> dict[str, int | None]:
        return await self._run(lambda: ops.stats(self.ns), True, False)

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]:
        raise self._no_scan()

    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return await self._run(lambda: cas.delete_if(self.ns, key, value), False)

    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._run(lambda: cas.expire_if(self.ns, key, value, ttl_ms), False)

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
            "pool_timeout",
            float,
            None,
            "Seconds a sync call waits for a free connection when max_pool_size are in use "
            "(default: timeout); then BackendUnavailable.",
            minimum=0,
            nullable=True,
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
    def check(cls, location: Location, options: Mapping[str, Any]) -> None:
        """Check the configuration without connecting (open connects on first use)."""
        _servers(location)
        require("pymemcache", "pymemcache", "memcached", "the memcached backend")

    @classmethod
    def open(cls, location: Location, options: Mapping[str, Any], prefix: bytes) -> MemcachedSync:
        return MemcachedSync(_shared_location(location, options), prefix)

    @classmethod
    def open_async(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> MemcachedAsync:
        return MemcachedAsync(_shared_location(location, options), prefix)
