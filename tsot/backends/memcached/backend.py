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
from . import protocol as p
from .cluster import Cluster, Policy, ServerSpec, StepFailed
from .hot import AGAIN, Hot

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
        self, make: MakeOp, idempotent: bool = True, routed: bool = True, attempt: int = 0
    ) -> Any:
        transport, policy = self.loc.sync, self.loc.policy
        while True:
            op = make()
            try:
                step = next(op)
                while True:
                    step = op.send(transport.execute(step, not idempotent))
            except StopIteration as done:
                return done.value
            except StepFailed as failed:
                policy.again(failed, attempt, idempotent, routed)
                attempt += 1

    def _one(self, s: int, cmd: bytes, idempotent: bool) -> list[p.Reply] | int:
        """The replies to the generation check and ``cmd`` on server ``s``, or the attempt
        the full operation is: 0 when no connection is idle, 1 after a broken one."""
        try:
            rs = self.loc.sync.one(s, self.gen_cmd + cmd, 2, not idempotent)
        except Exception as exc:  # as ``execute`` would: translated by the retry policy
            return self.broken(s, exc, idempotent)
        return 0 if rs is None else rs

    def _step(self, step: ops.Step, idempotent: bool) -> ops.Replies | int:
        """A many-key fast step's replies, or the attempt the full operation is."""
        try:
            return self.loc.sync.execute(step)
        except StepFailed as failed:
            return self.failed(failed, idempotent)

    def get(self, key: bytes) -> bytes | None:
        ready, attempt = self.ready(key), 0
        if ready is not None:
            s, gen = ready
            rs = self._one(s, self.get_cmd(key, gen), True)
            if isinstance(rs, int):
                attempt = rs
            else:
                value = self.got(s, gen, rs)
                if value is not AGAIN:
                    return value
        return self._run(lambda: ops.get_many(self.ns, (key,)), attempt=attempt)[0]  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        batch, attempt = self.batch(keys), 0
        if batch is not None:
            replies = self._step(self.get_step(batch), True)
            if isinstance(replies, int):
                attempt = replies
            else:
                values = self.values(batch, len(keys), replies)
                if values is not AGAIN:
                    return values
        return self._run(lambda: ops.get_many(self.ns, keys), attempt=attempt)  # type: ignore[no-any-return]

    def _store(self, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes) -> bool:
        ready, attempt = self.ready(key, limits=True), 0
        if ready is not None:
            s, gen = ready
            rs = self._one(s, self.store_cmd(s, gen, key, value, ttl_ms, mode), not mode)
            if isinstance(rs, int):
                attempt = rs
            else:
                done = self.stored(s, gen, rs, key)
                if done is not AGAIN:
                    return done
        made = self._run(
            lambda: ops.set_many(self.ns, ((key, value),), ttl_ms, mode), not mode, attempt=attempt
        )
        return made[0]  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._store(key, value, ttl_ms, b"")

    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        batch, attempt = self.batch([k for k, _ in items], limits=True), 0
        if batch is not None:
            replies = self._step(self.set_step(batch, items, ttl_ms), True)
            if isinstance(replies, int):
                attempt = replies
            elif self.stored_all(batch, len(items), replies) is not AGAIN:
                return
        self._run(lambda: ops.set_many(self.ns, items, ttl_ms), attempt=attempt)

    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._store(key, value, ttl_ms, b" ME")

    def delete(self, key: bytes) -> bool:
        ready, attempt = self.ready(key), 0
        if ready is not None:
            s, gen = ready
            rs = self._one(s, self.delete_cmd(key, gen), True)
            if isinstance(rs, int):
                attempt = rs
            else:
                done = self.deleted(s, gen, rs)
                if done is not AGAIN:
                    return done
        return self._run(lambda: ops.delete_many(self.ns, (key,)), attempt=attempt) == 1  # type: ignore[no-any-return]

    def delete_many(self, keys: Sequence[bytes]) -> int:
        return self._run(lambda: ops.delete_many(self.ns, keys))  # type: ignore[no-any-return]

    def exists(self, key: bytes) -> bool:
        return self._run(lambda: ops.exists(self.ns, key))  # type: ignore[no-any-return]

    def ttl(self, key: bytes) -> int:
        return self._run(lambda: ops.ttl(self.ns, key))  # type: ignore[no-any-return]

    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: ops.expire(self.ns, key, ttl_ms))  # type: ignore[no-any-return]

    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        flags, attempt = ops.native_incr(delta, create), 0
        ready = self.ready(key) if flags is not None else None
        if ready is not None and flags is not None:
            s, gen = ready
            rs = self._one(s, self.incr_cmd(key, gen, flags), False)
            if isinstance(rs, int):
                attempt = rs
            else:
                n = self.counted(s, gen, rs)
                if n is not AGAIN:
                    if n is not None and n >= p.NATIVE_MAX:
                        self._run(lambda: ops.widen(self.ns, key))  # re-reads: safe to re-run
                    return n
        return self._run(lambda: ops.incr(self.ns, key, delta, create), False, attempt=attempt)  # type: ignore[no-any-return]

    def clear(self, prefix: bytes) -> None:
        self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    def stats(self) -> dict[str, int | None]:
        return self._run(lambda: ops.stats(self.ns), True, False)  # type: ignore[no-any-return]

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        raise self._no_scan()

    def delete_if(self, key: bytes, value: bytes) -> bool:
        return self._run(lambda: cas.delete_if(self.ns, key, value), False)  # type: ignore[no-any-return]

    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._run(lambda: cas.expire_if(self.ns, key, value, ttl_ms), False)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to release: the pools are shared by every Storage on this location."""


class MemcachedAsync(_Base):
    """The AsyncBackend protocol over the asyncio transport (the same operations).

    Hot operations first try their fast path (``memcached.hot``): one command on the server's
    open connection behind the namespace generation check; anything unusual (no connection
    yet, an unknown generation or item size, a generation that moved) runs the full operation.
    """

    __slots__ = ()

    async def _run(
        self,
        make: MakeOp,
        idempotent: bool = True,
        routed: bool = True,
        attempt: int = 0,
        asked: float = 0.0,
    ) -> Any:
        """Run the full operation; ``asked`` (``monotonic()`` of the call) makes its TTLs count
        from the call: a step sent a second or more later has those seconds taken off."""
        transport, policy = self.loc.aio, self.loc.policy
        while True:
            op = make()
            try:
                step = next(op)
                while True:
                    step = op.send(await transport.execute(step, not idempotent, asked))
            except StopIteration as done:
                return done.value
            except StepFailed as failed:
                policy.again(failed, attempt, idempotent, routed)
                attempt += 1

    async def _one(self, s: int, cmd: bytes, idempotent: bool) -> list[p.Reply] | int:
        """The replies to the generation check and ``cmd`` on server ``s``, or the attempt
        the full operation is: 0 when no connection is open, 1 after a broken one."""
        conn = self.loc.aio.ready(s)
        if conn is None:
            return 0
        try:
            rs = await conn.request(cmd, 1, self.gen_cmd, not idempotent)
        except OSError as exc:
            return self.broken(s, exc, idempotent)
        if self.cluster._dead:
            self.cluster.mark_alive(s)
        return rs

    async def _step(self, step: ops.Step, idempotent: bool) -> ops.Replies | int:
        """A many-key fast step's replies, or the attempt the full operation is."""
        try:
            return await self.loc.aio.execute(step)
        except StepFailed as failed:
            return self.failed(failed, idempotent)

    async def get(self, key: bytes) -> bytes | None:
        ready, attempt = self.ready(key), 0
        if ready is not None:
            s, gen = ready
            rs = await self._one(s, self.get_cmd(key, gen), True)
            if isinstance(rs, int):
                attempt = rs
            else:
                value = self.got(s, gen, rs)
                if value is not AGAIN:
                    return value
        made = await self._run(lambda: ops.get_many(self.ns, (key,)), attempt=attempt)
        return made[0]  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        batch, attempt = self.batch(keys), 0
        if batch is not None:
            replies = await self._step(self.get_step(batch), True)
            if isinstance(replies, int):
                attempt = replies
            else:
                values = self.values(batch, len(keys), replies)
                if values is not AGAIN:
                    return values
        return await self._run(lambda: ops.get_many(self.ns, keys), attempt=attempt)  # type: ignore[no-any-return]

    async def _store(self, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes) -> bool:
        asked = monotonic() if ttl_ms is not None else 0.0
        ready, attempt = self.ready(key, limits=True), 0
        if ready is not None:
            s, gen = ready
            rs = await self._one(s, self.store_cmd(s, gen, key, value, ttl_ms, mode), not mode)
            if isinstance(rs, int):
                attempt = rs
            else:
                done = self.stored(s, gen, rs, key)
                if done is not AGAIN:
                    return done
        made = await self._run(
            lambda: ops.set_many(self.ns, ((key, value),), ttl_ms, mode),
            not mode,
            attempt=attempt,
            asked=asked,
        )
        return made[0]  # type: ignore[no-any-return]

    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        await self._store(key, value, ttl_ms, b"")

    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        asked = monotonic() if ttl_ms is not None else 0.0
        batch, attempt = self.batch([k for k, _ in items], limits=True), 0
        if batch is not None:
            replies = await self._step(self.set_step(batch, items, ttl_ms), True)
            if isinstance(replies, int):
                attempt = replies
            elif self.stored_all(batch, len(items), replies) is not AGAIN:
                return
        await self._run(lambda: ops.set_many(self.ns, items, ttl_ms), attempt=attempt, asked=asked)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._store(key, value, ttl_ms, b" ME")

    async def delete(self, key: bytes) -> bool:
        ready, attempt = self.ready(key), 0
        if ready is not None:
            s, gen = ready
            rs = await self._one(s, self.delete_cmd(key, gen), True)
            if isinstance(rs, int):
                attempt = rs
            else:
                done = self.deleted(s, gen, rs)
                if done is not AGAIN:
                    return done
        count = await self._run(lambda: ops.delete_many(self.ns, (key,)), attempt=attempt)
        return count == 1  # type: ignore[no-any-return]

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._run(lambda: ops.delete_many(self.ns, keys))  # type: ignore[no-any-return]

    async def exists(self, key: bytes) -> bool:
        return await self._run(lambda: ops.exists(self.ns, key))  # type: ignore[no-any-return]

    async def ttl(self, key: bytes) -> int:
        return await self._run(lambda: ops.ttl(self.ns, key))  # type: ignore[no-any-return]

    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        asked = monotonic() if ttl_ms is not None else 0.0
        return await self._run(lambda: ops.expire(self.ns, key, ttl_ms), asked=asked)  # type: ignore[no-any-return]

    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        flags, attempt = ops.native_incr(delta, create), 0
        ready = self.ready(key) if flags is not None else None
        if ready is not None and flags is not None:
            s, gen = ready
            rs = await self._one(s, self.incr_cmd(key, gen, flags), False)
            if isinstance(rs, int):
                attempt = rs
            else:
                n = self.counted(s, gen, rs)
                if n is not AGAIN:
                    if n is not None and n >= p.NATIVE_MAX:
                        await self._run(lambda: ops.widen(self.ns, key))  # re-reads: safe to re-run
                    return n
        return await self._run(  # type: ignore[no-any-return]
            lambda: ops.incr(self.ns, key, delta, create), False, attempt=attempt
        )

    async def clear(self, prefix: bytes) -> None:
        await self._run(lambda: ops.clear(ops.Namespace(self.loc.cluster, prefix)), True, False)

    async def stats(self) -> dict[str, int | None]:
        return await self._run(lambda: ops.stats(self.ns), True, False)  # type: ignore[no-any-return]

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]:
        raise self._no_scan()

    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return await self._run(lambda: cas.delete_if(self.ns, key, value), False)  # type: ignore[no-any-return]

    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._run(lambda: cas.expire_if(self.ns, key, value, ttl_ms), False)  # type: ignore[no-any-return]

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
