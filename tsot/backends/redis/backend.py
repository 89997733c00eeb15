"""Redis backend (one server, Sentinel, Cluster; sync and asyncio) over shared connection pools.

The commands are built and parsed once, in ``redis.commands``; ``RedisSync`` and ``RedisAsync`` only
send them through a transport (``redis.transport_sync``, ``redis.transport_async``) and translate
driver errors in one place, ``translate``.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ...errors import require

require("redis", "redis", "redis", "the Redis backend")

from redis.exceptions import (  # noqa: E402
    NoPermissionError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
)

from ...config import Location, Option  # noqa: E402
from ...errors import BackendUnavailable, OutcomeUnknown, TsotError, WriteRefused, WrongType  # noqa: E402
from ..base import shared  # noqa: E402
from . import commands as ops  # noqa: E402
from . import keys  # noqa: E402
from .config import OPTIONS, RedisConfig, parse  # noqa: E402
from .info import UNKNOWN, stats_steps  # noqa: E402
from .local import settings  # noqa: E402
from .retry import MASTER_NOT_FOUND, LostReply  # noqa: E402
from .transport_async import AsyncTransport, LoopTransports  # noqa: E402
from .transport_sync import Transport, open_transport  # noqa: E402

if TYPE_CHECKING:
    from .cached import LocalCachedAsync, LocalCachedSync

T = TypeVar("T")


_SECRET_FIELD = re.compile(r"(password=)[^,)>\s]*")


def _scrub(exc: BaseException) -> None:
    """Mask a password that the driver's message holds (some redis-py releases put the repr of a
    Sentinel client, connection arguments included, into MasterNotFoundError): the message is
    rewritten in place, so the chained cause of the tsot error shows no secret either."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the whole chain a traceback shows
        seen.add(id(current))
        text = str(current)
        if "password=" in text:
            current.args = (_SECRET_FIELD.sub(r"\1***", text),)
        current = current.__cause__ or current.__context__


def translate(exc: RedisError, name: str) -> TsotError:
    """The tsot error for a redis-py error (the one place they are mapped).

    A server that is up but will not store (``OOM`` under ``noeviction``, ``MISCONF`` when it
    cannot persist, ``NOPERM`` for an ACL user without the right) is WriteRefused, never an
    outage. ``READONLY`` is not among them: it reaches the caller only when no writable primary
    was found after the transport asked again (a failover in progress), so it is unavailable.
    """
    _scrub(exc)
    if isinstance(exc, LostReply):
        return OutcomeUnknown(f"Redis {name}: {exc}")
    if isinstance(exc, MASTER_NOT_FOUND):  # its own text is the repr of every Sentinel client
        return BackendUnavailable(
            f"Redis {name} is unavailable: no Sentinel named a primary (each one failed, timed "
            "out or does not know the service; together they wait one socket_timeout)"
        )
    if isinstance(exc, OutOfMemoryError):
        return WriteRefused(f"Redis {name} is full and refused the write (OOM): {exc}")
    if isinstance(exc, NoPermissionError):
        return WriteRefused(f"Redis {name} refused the command for this user (NOPERM): {exc}")
    if isinstance(exc, ResponseError) and str(exc).startswith("MISCONF"):
        return WriteRefused(f"Redis {name} refused the write: {exc}")
    if isinstance(exc, ResponseError) and ops.is_wrongtype(exc):
        return WrongType(f"Redis {name}: {exc}")
    if isinstance(exc, ResponseError):
        return BackendUnavailable(f"Redis {name} refused the command: {exc}")
    return BackendUnavailable(f"Redis {name} is unavailable: {exc}")


def _sync(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def call(self: RedisSync, *args: Any) -> T:
        try:
            return fn(self, *args)
        except RedisError as exc:
            raise translate(exc, self.name) from exc

    return call


def _async(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(fn)
    async def call(self: RedisAsync, *args: Any) -> T:
        try:
            return await fn(self, *args)
        except RedisError as exc:
            raise translate(exc, self.name) from exc

    return call


def _replies(send: Callable[..., list[Any]], *args: Any) -> list[Any] | ResponseError:
    """A step's replies, or the error reply that refused it (``redis.commands.Run``)."""
    try:
        return send(*args)
    except ResponseError as exc:
        return exc


async def _areplies(replies: Awaitable[list[Any]]) -> list[Any] | ResponseError:
    """``_replies`` on asyncio."""
    try:
        return await replies
    except ResponseError as exc:
        return exc


class RedisSync:
    """The sync backend protocol over a process-wide transport."""

    __slots__ = ("_cluster", "_db", "_read", "_t", "_x", "name")

    def __init__(self, transport: Transport, db: int = 0) -> None:
        self._t = transport
        self._db = db
        self._x = transport.execute
        self._read = transport.execute_read
        self._cluster = transport.cluster
        self.name = transport.name

    def __repr__(self) -> str:
        return f"<RedisSync {self.name}>"

    def _drive(self, steps: ops.Steps) -> Any:
        """Send what a multi-step operation yields until it returns (``redis.commands.Run``)."""
        run = ops.Run(steps)
        for cmds, node in run:
            run.reply = _replies(self._t.pipeline, cmds, node)
        return run.value

    @_sync
    def get(self, key: bytes) -> bytes | None:
        return self._read("GET", key)  # type: ignore[no-any-return]

    @_sync
    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not self._cluster and len(keys) <= ops.MAX_KEYS:
            return self._read("MGET", *keys)  # type: ignore[no-any-return]
        groups = ops.slot_groups(keys, self._cluster)
        replies = self._t.pipeline(ops.grouped("MGET", keys, groups), read=True)
        return ops.mget_result(len(keys), groups, replies)

    @_sync
    def get_ttl(self, keys: Sequence[bytes]) -> list[tuple[bytes | None, int]]:
        """Each key's value and PTTL, in one round trip (the local cache's misses)."""
        return ops.pairs(self._t.pipeline(ops.get_ttl_cmds(keys), read=True))

    @_sync
    def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        self._x(*ops.set_cmd(key, value, ttl_ms))

    @_sync
    def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        self._t.pipeline(ops.set_many_cmds(items, ttl_ms, self._cluster))

    @_sync
    def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._x(*ops.set_cmd(key, value, ttl_ms, nx=True)) is not None

    @_sync
    def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._x(*ops.set_cmd(key, value, ttl_ms, xx=True)) is not None

    @_sync
    def delete(self, key: bytes) -> bool:
        return self._x("UNLINK", key) > 0  # type: ignore[no-any-return]

    @_sync
    def delete_many(self, keys: Sequence[bytes]) -> int:
        cmds = ops.grouped("UNLINK", keys, ops.slot_groups(keys, self._cluster))
        return sum(self._t.pipeline(cmds))

    @_sync
    def exists(self, key: bytes) -> bool:
        return self._read("EXISTS", key) > 0  # type: ignore[no-any-return]

    @_sync
    def ttl(self, key: bytes) -> int:
        return ops.ttl_result(self._read("PTTL", key))

    @_sync
    def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        return bool(self._t.pipeline(ops.expire_cmds(key, ttl_ms))[-1])

    @_sync
    def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return self._drive(ops.incr_steps(key, delta, create))  # type: ignore[no-any-return]

    @_sync
    def clear(self, prefix: bytes) -> None:
        for node in self._t.primaries():
            self._drive(ops.clear_steps(prefix, node, self._cluster))

    @_sync
    def stats(self) -> dict[str, int | None]:
        """The server's INFO counters (summed over the primaries of a Cluster)."""
        try:
            return self._drive(stats_steps(self._t.primaries(), self._db))  # type: ignore[no-any-return]
        except NoPermissionError:  # an ACL user without INFO: the counts are unknown
            return UNKNOWN.copy()

    def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> Iterator[bytes]:
        """SCAN MATCH on the server, or on each primary of a cluster in turn."""
        try:
            nodes = self._t.primaries()
        except RedisError as exc:
            raise translate(exc, self.name) from exc
        return self._scan(nodes, prefix, pattern, count)

    def _scan(
        self, nodes: list[Any], prefix: bytes, pattern: bytes, count: int | None
    ) -> Iterator[bytes]:
        page: list[bytes] = []
        run = ops.Run(keys.scan_steps(nodes, prefix, pattern, count, page))
        try:
            for cmds, node in run:
                yield from page  # the page the last step read
                run.reply = _replies(self._t.pipeline, cmds, node)
        except RedisError as exc:
            raise translate(exc, self.name) from exc
        yield from page

    @_sync
    def delete_if(self, key: bytes, value: bytes) -> bool:
        return self._drive(keys.delete_if_steps(key, value))  # type: ignore[no-any-return]

    @_sync
    def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return self._drive(keys.expire_if_steps(key, value, ttl_ms))  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to release: the pool is shared by every Storage of this URL."""


class RedisAsync:
    """The asyncio backend protocol; each event loop gets its own transport."""

    __slots__ = ("_bound", "_family", "name")

    def __init__(self, family: LoopTransports) -> None:
        self._family = family
        self._bound: tuple[Any, Any] = (None, None)  # (loop, transport), swapped atomically
        self.name = family.cfg.name

    def __repr__(self) -> str:
        return f"<RedisAsync {self.name}>"

    async def _tp(self) -> AsyncTransport:
        loop = asyncio.get_running_loop()
        bound = self._bound
        if bound[0] is loop:
            return bound[1]  # type: ignore[no-any-return]
        transport = await self._family.get(loop)
        self._bound = (loop, transport)
        return transport

    def _send(self, cmd: ops.Cmd, read: bool = False) -> Awaitable[Any]:
        """The reply of one command: a plain future on the hot path (no coroutine frames)."""
        bound = self._bound
        if bound[0] is asyncio.get_running_loop():
            return bound[1].send_read(cmd) if read else bound[1].send(cmd)  # type: ignore[no-any-return]
        return self._send_first(cmd, read)

    async def _send_first(self, cmd: ops.Cmd, read: bool) -> Any:
        t = await self._tp()
        return await (t.send_read(cmd) if read else t.send(cmd))

    async def _again(self, cmd: ops.Cmd, exc: RedisError, read: bool = False) -> Any:
        """A failed single command (hot path) through the retry policy: its reply, or the tsot
        error."""
        try:
            return (await (await self._tp()).again([cmd], exc, read))[0]
        except RedisError as err:
            raise translate(err, self.name) from err

    async def _drive(self, steps: ops.Steps) -> Any:
        """See ``RedisSync._drive``."""
        t, run = await self._tp(), ops.Run(steps)
        for cmds, node in run:
            run.reply = await _areplies(t.pipeline(cmds, node))
        return run.value

    # The single-command methods translate errors inline rather than through @_async: on the
    # hot path every coroutine frame counts (docs/architecture.md#async).
    async def get(self, key: bytes) -> bytes | None:
        cmd = ("GET", key)
        try:
            return await self._send(cmd, True)  # type: ignore[no-any-return]
        except RedisError as exc:
            return await self._again(cmd, exc, True)  # type: ignore[no-any-return]

    @_async
    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        t = await self._tp()
        if not t.cluster and len(keys) <= ops.MAX_KEYS:
            return await t.execute_read("MGET", *keys)  # type: ignore[no-any-return]
        groups = ops.slot_groups(keys, t.cluster)
        replies = await t.pipeline(ops.grouped("MGET", keys, groups), read=True)
        return ops.mget_result(len(keys), groups, replies)

    @_async
    async def get_ttl(self, keys: Sequence[bytes]) -> list[tuple[bytes | None, int]]:
        """See ``RedisSync.get_ttl``."""
        return ops.pairs(await (await self._tp()).pipeline(ops.get_ttl_cmds(keys), read=True))

    # Writes carry an absolute deadline (PXAT, PEXPIREAT) taken when the caller asked: the
    # command may reach the server a loop turn later, or seconds later on a busy loop.
    async def set(self, key: bytes, value: bytes, ttl_ms: int | None) -> None:
        cmd = ops.set_at_cmd(key, value, ttl_ms)
        try:
            await self._send(cmd)
        except RedisError as exc:
            await self._again(cmd, exc)

    @_async
    async def set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> None:
        cluster = self._family.cfg.topology == "cluster"
        cmds = ops.set_many_at_cmds(items, ttl_ms, cluster)  # the deadline: before any await
        await (await self._tp()).pipeline(cmds)

    async def add(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        cmd = ops.set_at_cmd(key, value, ttl_ms, nx=True)
        try:
            return await self._send(cmd) is not None
        except RedisError as exc:
            return await self._again(cmd, exc) is not None

    async def replace(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        cmd = ops.set_at_cmd(key, value, ttl_ms, xx=True)
        try:
            return await self._send(cmd) is not None
        except RedisError as exc:
            return await self._again(cmd, exc) is not None

    async def delete(self, key: bytes) -> bool:
        cmd = ("UNLINK", key)
        try:
            return await self._send(cmd) > 0  # type: ignore[no-any-return]
        except RedisError as exc:
            return await self._again(cmd, exc) > 0  # type: ignore[no-any-return]

    @_async
    async def delete_many(self, keys: Sequence[bytes]) -> int:
        t = await self._tp()
        return sum(await t.pipeline(ops.grouped("UNLINK", keys, ops.slot_groups(keys, t.cluster))))

    async def exists(self, key: bytes) -> bool:
        cmd = ("EXISTS", key)
        try:
            return await self._send(cmd, True) > 0  # type: ignore[no-any-return]
        except RedisError as exc:
            return await self._again(cmd, exc, True) > 0  # type: ignore[no-any-return]

    async def ttl(self, key: bytes) -> int:
        cmd = ("PTTL", key)
        try:
            return ops.ttl_result(await self._send(cmd, True))
        except RedisError as exc:
            return ops.ttl_result(await self._again(cmd, exc, True))

    @_async
    async def expire(self, key: bytes, ttl_ms: int | None) -> bool:
        cmds = ops.expire_at_cmds(key, ttl_ms)
        return bool((await (await self._tp()).pipeline(cmds))[-1])

    @_async
    async def incr(self, key: bytes, delta: int, create: bool) -> int | None:
        return await self._drive(ops.incr_steps(key, delta, create))  # type: ignore[no-any-return]

    @_async
    async def clear(self, prefix: bytes) -> None:
        t = await self._tp()
        for node in await t.primaries():
            await self._drive(ops.clear_steps(prefix, node, t.cluster))

    @_async
    async def stats(self) -> dict[str, int | None]:
        """See ``RedisSync.stats``."""
        t = await self._tp()
        try:
            return await self._drive(stats_steps(await t.primaries(), self._family.cfg.db))  # type: ignore[no-any-return]
        except NoPermissionError:
            return UNKNOWN.copy()

    async def scan(self, prefix: bytes, pattern: bytes, count: int | None) -> AsyncIterator[bytes]:
        """SCAN MATCH on the server, or on each primary of a cluster in turn."""
        try:
            t, page = await self._tp(), list[bytes]()
            run = ops.Run(keys.scan_steps(await t.primaries(), prefix, pattern, count, page))
            for cmds, node in run:
                for key in page:  # the page the last step read
                    yield key
                run.reply = await _areplies(t.pipeline(cmds, node))
            for key in page:
                yield key
        except RedisError as exc:
            raise translate(exc, self.name) from exc

    @_async
    async def delete_if(self, key: bytes, value: bytes) -> bool:
        return await self._drive(keys.delete_if_steps(key, value))  # type: ignore[no-any-return]

    @_async
    async def expire_if(self, key: bytes, value: bytes, ttl_ms: int | None) -> bool:
        return await self._drive(keys.expire_at_if_steps(key, value, ttl_ms))  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Nothing to release: connections belong to the loop and the URL, not to a Storage."""


class RedisBackend:
    """``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``;
    ``valkey://``, ``valkeys://``, ``valkey+sentinel://``, ``valkey+cluster://`` alike."""

    OPTIONS: ClassVar[tuple[Option, ...]] = OPTIONS

    @classmethod
    def config(cls, location: Location, options: Mapping[str, Any]) -> RedisConfig:
        return parse(location, options)

    @classmethod
    def check(cls, location: Location, options: Mapping[str, Any]) -> None:
        """Check the configuration without connecting (open connects on first use)."""
        settings(options, parse(location, options).name)

    @classmethod
    def open(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> RedisSync | LocalCachedSync:
        cfg = parse(location, options)
        backend = RedisSync(shared(("redis", cfg.key), lambda: open_transport(cfg)), cfg.db)
        local = settings(options, cfg.name)
        if local is None:
            return backend
        from .cached import LocalCachedSync, tracking

        return LocalCachedSync(backend, tracking(cfg, local, prefix))

    @classmethod
    def open_async(
        cls, location: Location, options: Mapping[str, Any], prefix: bytes
    ) -> RedisAsync | LocalCachedAsync:
        cfg = parse(location, options)
        backend = RedisAsync(shared(("redis-async", cfg.key), lambda: LoopTransports(cfg)))
        local = settings(options, cfg.name)
        if local is None:
            return backend
        from .cached import LocalCachedAsync, tracking

        return LocalCachedAsync(backend, tracking(cfg, local, prefix))
